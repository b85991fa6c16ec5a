"""Latent cache: encode a dataset once per space, then train from memory-mapped float16 shards.

Layout of one cache entry, ``<root>/latents/<key>/``::

    meta.json            key fields, item count, latent shape, shard sizes, keys, labels,
                         captions, skipped items, per-channel stats (written last)
    latents_00000.npy    (n, C, h, w) float16, the space's own units (not normalised)
    sources_00000.npy    (n, C, h, w) float16, clean source latents (edit datasets only)

- The key hashes the space fingerprint (config + weights), the data spec, the number of items,
  the image size, the flip option and a preprocessing version. Anything else that changes the
  latents must change one of these.
- Writes are atomic: the entry is built in a temporary folder and renamed into place, so a
  killed build leaves nothing that looks complete.
- A file lock per key makes concurrent builders safe: the first builds, the others wait and reuse.
- An entry is checked before reuse (:func:`entry_problem`: meta.json and its fields, every shard
  maps as float16 of its shape); a damaged one is rebuilt, with a note.
- ``flip=True`` stores a horizontally flipped copy of every image right after it (item 2i is the
  original, 2i+1 the flip). Captions are kept as they are, so do not flip data whose captions
  name left/right (Shapes captions do).
- Per-channel stats (:class:`LatentStats`, fitted on the cached float16 latents) are stored in
  meta.json; :func:`build_cache` sets them on the space when it has none.

Root: ``$LATENTBENCH_CACHE`` or ``~/.cache/latentbench``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from latentbench.atomic import atomic_write_json
from latentbench.errors import UserError
from latentbench.files import first_line, note, read_json_object
from latentbench.runs import cache_root, staged_dir
from latentbench.spaces.base import LatentSpace, LatentStats
from latentbench.terminal import track

PREPROCESS_VERSION = "2"  # bump when the way images reach encode(), or their captions, change
META = "meta.json"
META_FIELDS: dict[str, type | tuple[type, ...]] = {
    "num_items": int,
    "shard_size": int,
    "latent_shape": list,
    "has_source": bool,
    "keys": list,
    "labels": list,
    "captions": list,
    "stats": dict,
}


@dataclass(frozen=True)
class CacheKey:
    """Everything that determines the cached latents."""

    space: str  # space.fingerprint()
    data: str  # dataset.spec
    num_items: int
    image_size: int
    flip: bool
    preprocess: str = PREPROCESS_VERSION

    def digest(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:20]


class LatentCache:
    """A complete cache entry; item ``i`` lives in shard ``i // shard_size``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        meta_path = self.path / META
        if not meta_path.is_file():
            raise UserError(f"not a complete latent cache: {self.path}")
        self.meta: dict[str, Any] = read_json_object(meta_path, META_FIELDS)
        self.shard_size = int(self.meta["shard_size"])
        self._shards: dict[tuple[str, int], np.ndarray] = {}

    def __len__(self) -> int:
        return int(self.meta["num_items"])

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return tuple(self.meta["latent_shape"])

    @property
    def has_source(self) -> bool:
        return bool(self.meta["has_source"])

    @property
    def stats(self) -> LatentStats:
        return LatentStats.from_dict(self.meta["stats"])

    def _shard(self, kind: str, index: int) -> np.ndarray:
        key = (kind, index)
        if key not in self._shards:  # opened lazily: safe across DataLoader worker forks
            self._shards[key] = np.load(self.path / f"{kind}_{index:05d}.npy", mmap_mode="r")
        return self._shards[key]

    def array(self, i: int, kind: str = "latents") -> np.ndarray:
        """(C, h, w) float16 view of item ``i``."""
        if not 0 <= i < len(self):
            raise IndexError(f"item {i} out of range for {len(self)} cached latents")
        return self._shard(kind, i // self.shard_size)[i % self.shard_size]

    def item(self, i: int) -> dict[str, Any]:
        return {
            "latent": torch.from_numpy(np.array(self.array(i), dtype=np.float32)),  # (C, h, w)
            "source": (
                torch.from_numpy(np.array(self.array(i, "sources"), dtype=np.float32))
                if self.has_source
                else None
            ),
            "label": int(self.meta["labels"][i]),
            "caption": self.meta["captions"][i],
            "key": self.meta["keys"][i],
            "index": i,
        }


class CachedLatents(Dataset):
    """The cache as a Dataset of dicts: latent (C, h, w) float32, source, label, caption, key."""

    def __init__(self, cache: LatentCache) -> None:
        self.cache = cache
        self.spec = cache.meta["key"]["data"]

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.cache.item(i)


# -- building -------------------------------------------------------------------------------------
def _collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    good = [it for it in items if it.get("image") is not None]
    return {
        "images": torch.stack([it["image"] for it in good]) if good else None,  # (B, 3, S, S)
        "sources": (
            torch.stack([it["source"] for it in good]) if good and "source" in good[0] else None
        ),
        "keys": [str(it["key"]) for it in good],
        "labels": [int(it.get("label", -1)) for it in good],
        "captions": [str(it.get("caption", "")) for it in good],
        "skipped": [
            (str(it["key"]), str(it.get("error"))) for it in items if it.get("image") is None
        ],
    }


class _ShardWriter:
    def __init__(self, folder: Path, kind: str, shard_size: int) -> None:
        self.folder, self.kind, self.size = folder, kind, shard_size
        self.buffer: list[np.ndarray] = []
        self.count = 0
        self.index = 0

    def add(self, z: np.ndarray) -> None:  # (B, C, h, w) float16
        for row in z:
            self.buffer.append(row)
            if len(self.buffer) == self.size:
                self.flush()

    def flush(self) -> None:
        if self.buffer:
            np.save(self.folder / f"{self.kind}_{self.index:05d}.npy", np.stack(self.buffer))
            self.count += len(self.buffer)
            self.index += 1
            self.buffer = []


def cache_path(key: CacheKey, root: Path | None = None) -> Path:
    """The folder of the latent cache entry ``key`` under ``root`` (default: the cache root)."""
    return (root or cache_root()) / "latents" / key.digest()


def cache_key(space: LatentSpace, dataset: Dataset, flip: bool) -> CacheKey:
    return replace(cache_key_for(space.fingerprint(), dataset), flip=flip)


def cache_key_for(fingerprint: str, dataset: Dataset) -> CacheKey:
    """The key of what a computation named by ``fingerprint`` gives on ``dataset`` (no flip)."""
    spec = getattr(dataset, "spec", None)
    if not spec:
        raise UserError("the dataset has no 'spec': it cannot be cached")
    from latentbench.data import data_identity

    return CacheKey(
        fingerprint, data_identity(dataset), len(dataset), int(dataset.image_size), False
    )


def build_cache(
    space: LatentSpace,
    dataset: Dataset,
    *,
    flip: bool = False,
    batch_size: int = 32,
    shard_size: int = 4096,
    root: Path | None = None,
    num_workers: int = 0,
    quiet: bool = True,
    set_stats: bool = True,
    label: str | None = None,
) -> LatentCache:
    """Encode ``dataset`` with ``space`` into the cache, or reuse a complete entry.

    Items with a ``"source"`` image (edit datasets) get their source latents cached too.
    ``set_stats``: give the space the cache's per-channel stats when it has none. ``label``: the
    space's name in the progress line (default: its spec's name).
    """
    key = cache_key(space, dataset, flip)
    final = cache_path(key, root)
    _reuse_or_build(
        final,
        "latent cache",
        entry_problem,
        lambda tmp: _encode_into(
            tmp,
            key,
            space,
            dataset,
            flip,
            batch_size,
            shard_size,
            num_workers,
            quiet,
            label or space.spec.name,
        ),
    )
    cache = LatentCache(final)
    if set_stats and space.stats is None:
        space.stats = cache.stats
    return cache


def _reuse_or_build(
    final: Path, what: str, problem: Callable[[Path], str | None], build: Callable[[Path], None]
) -> None:
    """Make ``final`` a complete entry: reuse it when ``problem`` finds none, else ``build`` it
    in a staged folder moved into place. A file lock per entry: concurrent builders wait."""
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        why = problem(final) if final.exists() else "missing"
        if final.exists() and why is not None:
            note(f"{what} {final} is damaged ({why}); rebuilding it")
        if why is not None:
            with staged_dir(final) as tmp:
                build(tmp)


def entry_problem(path: Path) -> str | None:
    """Why the cache entry ``path`` is not complete and intact, or None when it is.

    Cheap but real: meta.json parses with its fields and stats; every shard it implies exists
    and maps (memory-mapped, so nothing is read) as float16 of the right shape; a truncated or
    garbage shard does not map.
    """
    try:
        meta = read_json_object(path / META, META_FIELDS)
        LatentStats.from_dict(meta["stats"])
    except UserError as e:
        return str(e)
    except (KeyError, TypeError, ValueError) as e:
        return f"{path / META}: bad stats ({e!r})"
    n, size, shape = meta["num_items"], meta["shard_size"], tuple(meta["latent_shape"])
    if n < 1 or size < 1 or not len(meta["keys"]) == len(meta["labels"]) == n:
        return f"{path / META}: {n} items, shard size {size}, {len(meta['keys'])} keys"
    for kind in ("latents", "sources") if meta["has_source"] else ("latents",):
        for index in range(-(-n // size)):
            file = path / f"{kind}_{index:05d}.npy"
            expected = (min(size, n - index * size), *shape)
            try:
                array = np.load(file, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError, EOFError) as e:
                return f"{file}: {first_line(e)}"
            if array.dtype != np.float16 or array.shape != expected:
                return f"{file}: {array.dtype} {array.shape}, expected float16 {expected}"
    return None


def _encode_into(
    folder: Path,
    key: CacheKey,
    space: LatentSpace,
    dataset: Dataset,
    flip: bool,
    batch_size: int,
    shard_size: int,
    num_workers: int,
    quiet: bool,
    label: str,
) -> None:
    loader = DataLoader(
        dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=_collate
    )
    latents = _ShardWriter(folder, "latents", shard_size)
    sources = _ShardWriter(folder, "sources", shard_size)
    keys: list[str] = []
    labels: list[int] = []
    captions: list[str] = []
    skipped: list[tuple[str, str]] = []
    stat_batches: list[Tensor] = []
    has_source = False
    for batch in track(loader, len(loader), f"cache {label}", disable=quiet):
        skipped += batch["skipped"]
        if batch["images"] is None:
            continue
        z = _encode(space, batch["images"], flip)  # (B or 2B, C, h, w) float16
        latents.add(z.numpy())
        stat_batches.append(z.float())
        if batch["sources"] is not None:
            has_source = True
            sources.add(_encode(space, batch["sources"], flip).numpy())
        copies = 2 if flip else 1
        for k, lab, cap in zip(batch["keys"], batch["labels"], batch["captions"]):
            keys += [k, f"{k}#flip"][:copies]
            labels += [lab] * copies
            captions += [cap] * copies
    latents.flush()
    sources.flush()
    if not keys:
        raise UserError(f"no readable image in {key.data}: nothing to cache")
    # over every cached latent; the seed is the one a generated set was drawn at (a folder: 0)
    stats = LatentStats.from_latents(stat_batches, seed=getattr(dataset, "seed", 0))
    atomic_write_json(
        folder / META,
        {
            "key": asdict(key),
            "space": space.spec.to_dict(),
            "num_items": len(keys),
            "latent_shape": list(space.spec.latent_shape),
            "dtype": "float16",
            "shard_size": shard_size,
            "has_source": has_source,
            "keys": keys,
            "labels": labels,
            "captions": captions,
            "skipped": skipped,
            "stats": stats.to_dict(),
        },
    )


@torch.inference_mode()
def _encode(space: LatentSpace, images: Tensor, flip: bool) -> Tensor:
    """(B, 3, S, S) -> (B, C, h, w) float16 on CPU; with flip, (2B, ...) interleaved."""
    if flip:
        images = torch.stack([images, images.flip(-1)], dim=1).flatten(0, 1)  # (2B, 3, S, S)
    z = space.encode(images)  # finite: encode checks
    if z.abs().max() > 65000:
        raise UserError(f"space {space.spec.name!r}: latents exceed the float16 range")
    return z.to("cpu", torch.float16)


# -- frozen features (tokenizer training) ----------------------------------------------------------
FEATURES_META = {"num_items": int, "arrays": dict, "keys": list}


class FeatureCache:
    """A complete feature entry, ``<root>/features/<key>/``: ``meta.json`` (key fields, item count,
    array shapes, item keys) and one ``<name>.npy`` float32 array (N, ...) per named tensor.

    Holds whatever a computation gives per image that never changes during a run (the images
    themselves, a frozen encoder's features, perceptual features of the target images), keyed by
    :class:`CacheKey` with ``space`` = the fingerprint of that computation.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.meta: dict[str, Any] = read_json_object(self.path / META, FEATURES_META)
        self.arrays = {
            name: np.load(self.path / f"{name}.npy", mmap_mode="r") for name in self.meta["arrays"]
        }

    def __len__(self) -> int:
        return int(self.meta["num_items"])


class CachedFeatures(Dataset):
    """A :class:`FeatureCache` as a Dataset of dicts ``{name: (...) float32 tensor}``."""

    def __init__(self, cache: FeatureCache) -> None:
        self.cache = cache

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {k: torch.from_numpy(np.array(a[i])) for k, a in self.cache.arrays.items()}


def feature_entry_problem(path: Path) -> str | None:
    """Why the feature entry ``path`` is not complete and intact (None: it is); memory-mapped
    checks of every array's dtype and shape, as :func:`entry_problem` does for latents."""
    try:
        meta = read_json_object(path / META, FEATURES_META)
    except UserError as e:
        return str(e)
    n = meta["num_items"]
    for name, shape in meta["arrays"].items():
        file = path / f"{name}.npy"
        try:
            array = np.load(file, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            return f"{file}: {first_line(e)}"
        if array.dtype != np.float32 or array.shape != (n, *shape):
            return f"{file}: {array.dtype} {array.shape}, expected float32 {(n, *shape)}"
    return None


def build_feature_cache(
    fingerprint: str,
    dataset: Dataset,
    compute: Callable[[Tensor], dict[str, Tensor]],
    *,
    batch_size: int = 64,
    root: Path | None = None,
    quiet: bool = True,
) -> FeatureCache:
    """Run ``compute`` ((B, 3, S, S) images -> {name: (B, ...)}) once over ``dataset`` into the
    cache, or reuse a complete entry. ``fingerprint`` must name the computation (its modules'
    weights and settings); the data part of the key is the latent cache's. Unreadable items are
    left out."""
    key = replace(cache_key_for(fingerprint, dataset), flip=False)
    final = (root or cache_root()) / "features" / key.digest()

    def build(folder: Path) -> None:
        loader = DataLoader(dataset, batch_size=batch_size, collate_fn=_collate)
        arrays: dict[str, np.ndarray] = {}
        keys: list[str] = []
        n = len(dataset)
        for batch in track(loader, len(loader), "cache features", disable=quiet):
            if batch["images"] is None:
                continue
            with torch.inference_mode():
                out = {k: v.to("cpu", torch.float32) for k, v in compute(batch["images"]).items()}
            for name, value in out.items():
                if name not in arrays:  # preallocated for every item, trimmed at the end
                    arrays[name] = np.lib.format.open_memmap(
                        folder / f"{name}.npy", "w+", np.float32, (n, *value.shape[1:])
                    )
                arrays[name][len(keys) : len(keys) + len(value)] = value.numpy()
            keys += batch["keys"]
        if not keys:
            raise UserError(f"no readable image in {key.data}: nothing to cache")
        shapes = {name: list(array.shape[1:]) for name, array in arrays.items()}
        if len(keys) < n:  # unreadable items: rewrite each array at its true length
            kept = {name: np.array(array[: len(keys)]) for name, array in arrays.items()}
            arrays.clear()
            for name, array in kept.items():
                np.save(folder / f"{name}.npy", array)
        for array in arrays.values():
            array.flush()
        atomic_write_json(
            folder / META,
            {"key": asdict(key), "num_items": len(keys), "arrays": shapes, "keys": keys},
        )

    _reuse_or_build(final, "feature cache", feature_entry_problem, build)
    return FeatureCache(final)
