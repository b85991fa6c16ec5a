"""Durable writes: what a file or folder is renamed to is on the disk before its name is.

A power loss cannot be staged in a test; what can be checked is the order of the system calls
that make a rename durable: every file and folder written is flushed (fsync) before the rename
that publishes it, and the folder that holds the new name is flushed after it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from latentbench.atomic import atomic_write_json, atomic_write_text
from latentbench.runs import staged_dir


@pytest.fixture
def calls(monkeypatch) -> list[tuple[str, ...]]:
    """Every fsync (the path its descriptor names) and rename, in order."""
    seen: list[tuple[str, ...]] = []
    fsync, replace = os.fsync, os.replace

    def record_fsync(fd: int) -> None:
        seen.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def record_replace(src, dst) -> None:
        seen.append(("replace", str(src), str(dst)))
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", record_fsync)
    monkeypatch.setattr(os, "replace", record_replace)
    return seen


def _published(calls: list[tuple[str, ...]], final: Path) -> tuple[int, str]:
    """The index of the rename onto ``final`` and the temporary name it renamed."""
    [(i, src)] = [
        (i, c[1]) for i, c in enumerate(calls) if c[0] == "replace" and c[2] == str(final)
    ]
    return i, src


def _synced(calls: list[tuple[str, ...]], path: str | Path) -> list[int]:
    return [i for i, c in enumerate(calls) if c == ("fsync", str(path))]


@pytest.mark.parametrize("write", [atomic_write_text, atomic_write_json])
def test_a_file_is_on_the_disk_before_its_name_is(write, calls, tmp_path):
    final = tmp_path / "out" / "metrics.json"
    write(final, "old")
    calls.clear()
    write(final, "new")  # replacing: a power loss must leave "old" or "new", never ""
    i, tmp = _published(calls, final)
    assert any(j < i for j in _synced(calls, tmp)), f"{tmp} renamed before it was flushed"
    assert any(j > i for j in _synced(calls, final.parent)), "the new name was never flushed"
    assert final.read_text() in ('"new"\n', "new")


def test_a_staged_folder_and_everything_in_it_is_on_the_disk_before_its_name_is(calls, tmp_path):
    final = tmp_path / "step_00000002"
    for attempt in ("first", "second"):  # a new folder, then one replacing it
        calls.clear()
        with staged_dir(final) as tmp:
            (tmp / "sub").mkdir()
            (tmp / "model.safetensors").write_bytes(attempt.encode())
            (tmp / "sub" / "a.txt").write_text(attempt)
            written = [p.relative_to(tmp) for p in [tmp, *tmp.rglob("*")]]
        i, staged = _published(calls, final)
        for rel in written:
            path = Path(staged, rel)
            assert any(j < i for j in _synced(calls, path)), f"{rel} renamed before it was flushed"
        assert any(j > i for j in _synced(calls, final.parent)), "the new name was never flushed"
        assert (final / "sub" / "a.txt").read_text() == attempt
