"""The committed benchmark results say which code they measured, and the README quotes them.

Issue 13: every result JSON records the commit it was measured at, and the README quotes only
results of one (the final) commit: a result measured at older code must be re-measured, not kept.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = sorted((ROOT / "benchmarks" / "results").glob("*.json"))


def _commit(path: Path) -> str | None:
    return json.loads(path.read_text()).get("git")


def test_there_is_one_result_per_benchmark_script() -> None:
    scripts = {p.stem for p in (ROOT / "benchmarks").glob("*.py")} - {"gpu_check"}
    assert {p.stem for p in RESULTS} == scripts


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: p.stem)
def test_each_result_records_a_clean_commit_that_the_readme_quotes(path: Path) -> None:
    commit = _commit(path)
    assert commit is not None and re.fullmatch(r"[0-9a-f]{40}", commit), (
        f"{path.name}: 'git' is {commit!r}, not the commit of a clean checkout"
    )
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"benchmarks/{path.stem}.py" in readme
    assert commit[:7] in readme, f"README does not say that {path.name} is of commit {commit[:7]}"


def test_every_result_was_measured_at_the_same_code() -> None:
    commits = {p.name: _commit(p) for p in RESULTS}
    assert len(set(commits.values())) == 1, commits
