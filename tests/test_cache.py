"""Latent cache: sharded float16 memmaps, keying, reuse, flips, stats, atomicity, concurrency."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from latentbench.data.cache import CachedLatents, build_cache, cache_key, cache_path, cache_root
from latentbench.errors import UserError
from latentbench.spaces import build_space
from latentbench.spaces.base import LatentStats


class Toy(Dataset):
    """n deterministic images; items listed in ``bad`` are unreadable; optional sources."""

    def __init__(self, n=10, size=8, bad=(), edits=False, spec=None):
        self.n, self.image_size, self.bad, self.edits = n, size, set(bad), edits
        self.spec = spec or f"toy:{n}{':edits' if edits else ''}"
        self.label_names = None

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        img = torch.rand(3, self.image_size, self.image_size, generator=g) * 2 - 1
        item = {
            "image": None if i in self.bad else img,
            "key": f"k{i}",
            "label": i % 3,
            "caption": f"item {i}",
            "error": "broken" if i in self.bad else None,
        }
        if self.edits:
            item["source"] = -img
        return item


def _pixel(size=8):
    return build_space("pixel", image_size=size)


def test_build_reads_back_float16_shards_and_stats(tmp_path):
    space, data = _pixel(), Toy(10)
    cache = build_cache(space, data, shard_size=4)
    assert len(cache) == 10 and cache.latent_shape == (3, 8, 8)
    assert sorted(p.name for p in cache.path.glob("latents_*.npy")) == [
        "latents_00000.npy",
        "latents_00001.npy",
        "latents_00002.npy",
    ]
    assert isinstance(cache.array(5), np.memmap) or isinstance(cache.array(5).base, np.memmap)
    ds = CachedLatents(cache)
    item = ds[7]
    expect = space.encode(data[7]["image"][None])[0].half().float()
    torch.testing.assert_close(item["latent"], expect, rtol=0, atol=0)
    assert (item["label"], item["caption"], item["key"]) == (1, "item 7", "k7")
    all_z = torch.stack([ds[i]["latent"] for i in range(10)])
    ref = LatentStats.from_latents([all_z], seed=0)
    np.testing.assert_allclose(cache.stats.mean, ref.mean, rtol=1e-6)
    np.testing.assert_allclose(cache.stats.std, ref.std, rtol=1e-6)
    assert space.stats == cache.stats  # set on the space, which had none
    assert cache.path.parent.parent == cache_root()


def test_stats_record_the_seed_a_generated_set_was_drawn_at():
    from latentbench.data import open_images

    cache = build_cache(_pixel(16), open_images("shapes:4", 16, seed=3))  # it said 0
    assert cache.stats.seed == 3 and cache.meta["stats"]["seed"] == 3
    assert build_cache(_pixel(), Toy(4)).stats.seed == 0  # a set without a seed


def test_progress_line_names_the_space_by_the_label_it_is_given(capsys):
    build_cache(_pixel(), Toy(6), quiet=False, label="pixel8")
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.startswith("cache pixel8: ") for line in lines)


def test_reused_across_runs_and_keyed_by_space_data_and_flip(tmp_path):
    space, data = _pixel(), Toy(6)
    first = build_cache(space, data)
    mtime = (first.path / "meta.json").stat().st_mtime_ns
    again = build_cache(_pixel(), Toy(6))
    assert again.path == first.path and (again.path / "meta.json").stat().st_mtime_ns == mtime
    paths = {
        first.path,
        cache_path(cache_key(space, data, flip=True)),
        cache_path(cache_key(_pixel(16), Toy(6, size=16), flip=False)),
        cache_path(cache_key(space, Toy(6, spec="other:6"), flip=False)),
        cache_path(cache_key(build_space("pixel", image_size=8, patch=2), data, flip=False)),
    }
    assert len(paths) == 5


def test_flipped_copies_follow_each_image():
    space = _pixel()
    cache = build_cache(space, Toy(4), flip=True)
    assert len(cache) == 8 and cache.meta["keys"][:2] == ["k0", "k0#flip"]
    a, b = cache.item(2)["latent"], cache.item(3)["latent"]
    torch.testing.assert_close(b, a.flip(-1), rtol=0, atol=0)


def test_unreadable_images_are_skipped_and_listed():
    cache = build_cache(_pixel(), Toy(5, bad={1, 3}))
    assert cache.meta["keys"] == ["k0", "k2", "k4"]
    assert cache.meta["skipped"] == [["k1", "broken"], ["k3", "broken"]]
    with pytest.raises(UserError, match="no readable image"):
        build_cache(_pixel(), Toy(2, bad={0, 1}))


def test_edit_sources_are_cached():
    cache = build_cache(_pixel(), Toy(3, edits=True))
    item = cache.item(1)
    assert cache.has_source
    torch.testing.assert_close(item["source"], -item["latent"], rtol=0, atol=1e-3)


def test_a_failed_build_leaves_nothing_behind(monkeypatch):
    space, data = _pixel(), Toy(8)
    calls = {"n": 0}
    real = type(space)._encode

    def flaky(self, images, sample, generator):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("killed")
        return real(self, images, sample, generator)

    monkeypatch.setattr(type(space), "_encode", flaky)
    with pytest.raises(RuntimeError, match="killed"):
        build_cache(space, data, batch_size=4)
    parent = cache_path(cache_key(space, data, flip=False)).parent
    assert [p.name for p in parent.iterdir() if not p.name.endswith(".lock")] == []
    calls["n"] = 10
    assert len(build_cache(space, data, batch_size=4)) == 8


CHILD = """
import os, sys, time
import torch
from latentbench.data.cache import build_cache
from latentbench.spaces import build_space
sys.path.insert(0, {tests!r})
from test_cache import Toy

space = build_space("pixel", image_size=8)
real = type(space)._encode

def logged(self, images, sample, generator):
    with open({log!r}, "a") as f:
        f.write(f"{{os.getpid()}}\\n")
    time.sleep(0.2)  # keep the lock long enough for the other process to arrive
    return real(self, images, sample, generator)

type(space)._encode = logged
while time.time() < {start}:  # start both builders at the same moment
    time.sleep(0.01)
assert len(build_cache(space, Toy(12), batch_size=4)) == 12
"""


def test_two_processes_filling_at_once_encode_once(tmp_path):
    log = tmp_path / "encodes.log"
    script = CHILD.format(tests=str(Path(__file__).parent), log=str(log), start=time.time() + 6)
    procs = [
        subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"})
        for _ in range(2)
    ]
    assert [p.wait(90) for p in procs] == [0, 0]
    pids = log.read_text().split()
    assert len(pids) == 3 and len(set(pids)) == 1  # 12 images / batch 4, by one builder
    assert len(build_cache(_pixel(), Toy(12))) == 12
