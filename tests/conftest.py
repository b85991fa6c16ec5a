"""Shared fixtures. Tests are offline and deterministic."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(min(2, os.cpu_count() or 1))

REPO = Path(__file__).resolve().parent.parent
SHARED_WEIGHTS = REPO.parent / "shared" / "weights"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own latentbench cache folder."""
    monkeypatch.setenv("LATENTBENCH_CACHE", str(tmp_path_factory.mktemp("lbcache")))


@pytest.fixture
def images() -> torch.Tensor:
    """(4, 3, 64, 64) smooth random images in [-1, 1], fixed seed."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 16, 16, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(x, size=64, mode="bilinear", align_corners=False)
