"""Shared fixtures. Tests are offline and deterministic."""

from __future__ import annotations

import os
import sys
import urllib.error
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import transformers.utils.logging as transformers_logging

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(min(2, os.cpu_count() or 1))

# transformers binds its log handler to the sys.stderr of the moment it first logs. Bind it now,
# to the session's stream: bound inside a test, it holds that test's captured stream, closed when
# the test ends, and a later test's warning prints "--- Logging error ---" with a traceback.
transformers_logging.get_logger()

REPO = Path(__file__).resolve().parent.parent
SHARED_WEIGHTS = REPO.parent / "shared" / "weights"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own latentbench cache folder."""
    monkeypatch.setenv("LATENTBENCH_CACHE", str(tmp_path_factory.mktemp("lbcache")))


@pytest.fixture
def one_thread():
    """One intra-op torch thread for the test: on a busy 2-core machine two made the steps of tiny
    models ~100x slower (synchronisation cost). Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def images() -> torch.Tensor:
    """(4, 3, 64, 64) smooth random images in [-1, 1], fixed seed."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 16, 16, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(x, size=64, mode="bilinear", align_corners=False)


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A He-initialised stand-in for torch-fidelity's Inception-v3, under the real file name."""
    from latentbench.testing.standins import write_inception_standin

    return write_inception_standin(tmp_path_factory.mktemp("inception"))


@pytest.fixture
def no_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache, no $LATENTBENCH_WEIGHTS, and no network for torch.hub."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("LATENTBENCH_WEIGHTS", raising=False)

    def offline(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "torch"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., int]:
    """``cli(*args)`` runs ``latentbench ARGS`` in this process, through ``latentbench.cli.main``
    (a UserError: one line on stderr, exit 2), and returns the exit code (0 when it returns)."""
    from latentbench.cli import main

    def run(*args: str) -> int:
        monkeypatch.setattr(sys, "argv", ["latentbench", *args])
        try:
            main()
        except SystemExit as e:
            return int(e.code or 0)
        return 0

    return run
