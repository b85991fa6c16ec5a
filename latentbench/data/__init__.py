"""The data interface: ``open_images(SPEC)`` -> a Dataset of item dicts; ``iter_batches``.

An item is ``{"image": (3, S, S) float in [-1, 1] or None, "key": str, "label": int (-1: none),
"caption": str ("" when none), "error": str | None}``. A dataset has ``spec`` (canonical spec),
``image_size`` and ``label_names``; datasets read from files also have ``max_pixels`` (the bound
on one image's pixels: larger ones are skipped). ``limit`` keeps the first N items, so
(:func:`data_identity`, ``len(dataset)``, ``image_size``) names exactly which images a run saw.

Data SPECs (the built-in names win over a folder of the same name; write ``./shapes`` for that):
- a folder of images (recursive; see :data:`latentbench.data.decode.IMAGE_EXTENSIONS`);
- a captions ``.jsonl`` (lines of ``{"image": path relative to the file, "text": caption}``);
- ``shapes[:N]``: the procedural shapes world (default N = 1000, seeded by ``seed``);
- ``shapes-single[:N]``: Shapes scenes of exactly one object, labelled by its shape (probing);
- ``fashion-mnist[:train|test]`` (default train) from the Debian package files;
- ``skimage[:NAME,NAME...]``: scikit-image's photos (default: all);
- ``hf:DATASET[:SPLIT]`` (default split train) through the optional ``datasets`` package.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Any, TypedDict

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from latentbench.data.decode import DEFAULT_MAX_PIXELS, MaxPixels, check_max_pixels
from latentbench.errors import UserError, did_you_mean

DEFAULT_SHAPES = 1000


class ImageItem(TypedDict):
    image: Tensor | None  # (3, S, S) float32 in [-1, 1]; None when unreadable
    key: str
    label: int
    caption: str
    error: str | None


@dataclass
class ImageBatch:
    images: Tensor  # (B, 3, S, S) float32 in [-1, 1]; only readable items
    keys: list[str]
    labels: Tensor  # (B,) int64, -1 where none
    captions: list[str]
    skipped: list[tuple[str, str]]  # (key, reason) of the unreadable items of this batch

    def __len__(self) -> int:
        return len(self.keys)


class DataKind(str, Enum):
    FOLDER = "folder"
    CAPTIONS = "captions"
    SHAPES = "shapes"
    SHAPES_SINGLE = "shapes-single"
    FASHION_MNIST = "fashion-mnist"
    SKIMAGE = "skimage"
    HF = "hf"


_NAMED = (
    DataKind.SHAPES,
    DataKind.SHAPES_SINGLE,
    DataKind.FASHION_MNIST,
    DataKind.SKIMAGE,
    DataKind.HF,
)
SPEC_FORMS = (
    "a folder of images, a captions .jsonl, shapes[:N], shapes-single[:N], "
    "fashion-mnist[:train|test], "
    "skimage[:NAME,...], hf:DATASET[:SPLIT]"
)


@dataclass(frozen=True)
class DataSpec:
    kind: DataKind
    arg: str | None  # folder/file path, N, split, photo names, "DATASET[:SPLIT]"; None: default


def parse_spec(spec: str) -> DataSpec:
    """Parse a data SPEC string (see the module docstring); a bad one is a UserError."""
    spec = spec.strip()
    head, colon, arg = spec.partition(":")
    for kind in _NAMED:
        if head == kind.value:
            if colon and not arg.strip():
                raise UserError(f"data spec {spec!r}: nothing after ':'")
            return DataSpec(kind, arg.strip() if colon else None)
    path = Path(spec).expanduser()
    if path.is_dir():
        return DataSpec(DataKind.FOLDER, spec)
    if path.is_file() and path.suffix.lower() == ".jsonl":
        return DataSpec(DataKind.CAPTIONS, spec)
    if path.is_file():
        raise UserError(f"data {spec!r} is a file but not a .jsonl; expected {SPEC_FORMS}")
    hint = did_you_mean(head, [k.value for k in _NAMED]) if "/" not in spec else ""
    raise UserError(f"data path {spec!r} does not exist{hint}; expected {SPEC_FORMS}")


def data_paths(*specs: str | None) -> list[Path]:
    """The files and folders that data SPECs read, for an output claim to keep clear of: a
    folder; a captions .jsonl and every folder holding one of its images; the local folder of an
    ``hf:`` dataset saved with ``save_to_disk``. Built-in data and hub names read none, nor does
    a SPEC that does not parse (the command says so when it opens the data)."""
    found: list[Path] = []
    for spec in specs:
        try:
            parsed = parse_spec(spec) if spec else None
        except UserError:
            continue
        if parsed is None or parsed.arg is None:
            continue
        if parsed.kind in (DataKind.FOLDER, DataKind.CAPTIONS):
            found.append(Path(parsed.arg).expanduser())
        if parsed.kind is DataKind.CAPTIONS:
            found += _image_folders(Path(parsed.arg).expanduser())
        if parsed.kind is DataKind.HF:  # DATASET[:SPLIT]; DATASET may be a local folder
            local = [Path(n).expanduser() for n in (parsed.arg, parsed.arg.rpartition(":")[0])]
            found += [p for p in local if str(p) != "." and p.is_dir()][:1]
    return found


def _image_folders(captions: Path) -> list[Path]:
    """The folders that hold the images a captions .jsonl names ([] when it cannot be read)."""
    from latentbench.data.images import read_caption_lines

    try:
        rows = read_caption_lines(captions)
    except (UserError, OSError):
        return []
    return sorted({(captions.parent / Path(image).expanduser()).parent for image, _ in rows})


def open_images(
    spec: str,
    image_size: int | None,
    *,
    limit: int | None = None,
    strict: bool = False,
    seed: int = 0,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    quiet: bool = False,
) -> Dataset:
    """Open the dataset a SPEC names, preprocessed to ``image_size`` (None: native size).

    ``limit`` keeps the first ``limit`` items (deterministic); ``seed`` is passed to datasets
    that sample (shapes). ``max_pixels`` bounds the pixels of an image read from a file (None:
    Pillow's limit only): a larger image is skipped, from its header, without decoding it.
    ``strict`` reads every image once, here, and raises one UserError naming every unreadable
    one (with a progress bar when that takes a while, unless ``quiet``).
    """
    from latentbench.data.images import ImageDataset

    if limit is not None and limit < 1:
        raise UserError(f"limit must be >= 1, got {limit}")
    check_max_pixels(max_pixels)
    dataset = _open(parse_spec(spec), image_size, limit, strict, seed, max_pixels)
    if strict and isinstance(dataset, ImageDataset):
        dataset.check_readable(progress=not quiet)
    return dataset


def _open(
    parsed: DataSpec,
    image_size: int | None,
    limit: int | None,
    strict: bool,
    seed: int,
    max_pixels: int | None,
) -> Dataset:
    from latentbench.data import images, named

    options: dict[str, Any] = {"limit": limit, "strict": strict}
    files = {**options, "max_pixels": max_pixels}  # datasets that read image files
    if parsed.kind is DataKind.FOLDER:
        return images.ImageFolder(parsed.arg, image_size, **files)
    if parsed.kind is DataKind.CAPTIONS:
        return images.CaptionsFile(parsed.arg, image_size, **files)
    if parsed.kind is DataKind.SKIMAGE:
        names = parsed.arg.split(",") if parsed.arg else None
        return named.SkimagePhotos(names, image_size, **options)
    if parsed.kind is DataKind.FASHION_MNIST:
        return named.FashionMNIST(parsed.arg or "train", image_size, **options)
    if parsed.kind is DataKind.HF:
        if parsed.arg is None:
            raise UserError("hf: name a dataset, as hf:DATASET[:SPLIT]")
        name, _, split = parsed.arg.rpartition(":") if ":" in parsed.arg else (parsed.arg, "", "")
        return named.HFImages(name, split or "train", image_size, **files)
    single = parsed.kind is DataKind.SHAPES_SINGLE
    return _open_shapes(parsed.arg, image_size, limit=limit, seed=seed, single=single)


def data_identity(dataset: Dataset) -> str:
    """What names a dataset's images in cache keys: its ``spec``, and its ``max_pixels`` when
    it has one (the bound decides which images are skipped)."""
    spec = str(getattr(dataset, "spec", "") or "")
    max_pixels = getattr(dataset, "max_pixels", None)
    return spec if max_pixels is None else f"{spec} max_pixels={max_pixels}"


def _open_shapes(
    arg: str | None, image_size: int | None, *, limit: int | None, seed: int, single: bool
):
    from latentbench.registry import import_object

    name = DataKind.SHAPES_SINGLE.value if single else DataKind.SHAPES.value
    try:
        n = DEFAULT_SHAPES if arg is None else int(arg)
    except ValueError:
        raise UserError(f"{name}:N needs a whole number of images, got {arg!r}") from None
    if n < 1:
        raise UserError(f"{name}:N needs N >= 1, got {n}")
    if image_size is None:
        raise UserError(f"{name}: give an image size (the shapes are drawn at that size)")
    make = "single_object_dataset" if single else "ShapesDataset"
    dataset = import_object(f"latentbench.data.shapes:{make}")(n, image_size, seed)
    return dataset if limit is None or limit >= len(dataset) else First(dataset, limit)


class First(Dataset):
    """The first ``n`` items of a dataset, with its ``spec``, ``image_size``, ``label_names``."""

    def __init__(self, dataset: Dataset, n: int) -> None:
        self.dataset, self.n = dataset, n
        self.spec = dataset.spec
        self.image_size = dataset.image_size
        self.label_names = getattr(dataset, "label_names", None)
        self.strict = getattr(dataset, "strict", False)
        self.seed = getattr(dataset, "seed", 0)  # a generated set's draw

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> ImageItem:
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} items")
        return self.dataset[index]


def collate_images(items: Sequence[ImageItem], image_size: int | None = None) -> ImageBatch:
    """Stack the readable items; list the unreadable ones in ``skipped``.

    A batch with no readable item has ``images`` of shape (0, 3, S, S) (S = ``image_size``,
    0 when not given).
    """
    good = [it for it in items if it["image"] is not None]
    skipped = [(it["key"], it["error"] or "unreadable") for it in items if it["image"] is None]
    if good:
        sizes = {tuple(it["image"].shape) for it in good}
        if len(sizes) > 1:
            raise UserError(
                f"images of different sizes in one batch ({sorted(sizes)}); give an image size"
            )
        images = torch.stack([it["image"] for it in good]).float()  # (B, 3, S, S)
    else:
        side = image_size or 0
        images = torch.empty((0, 3, side, side))
    return ImageBatch(
        images=images,
        keys=[it["key"] for it in good],
        labels=torch.tensor([int(it["label"]) for it in good], dtype=torch.long),  # (B,)
        captions=[it["caption"] for it in good],
        skipped=skipped,
    )


def iter_batches(dataset: Dataset, batch_size: int, num_workers: int = 0) -> Iterator[ImageBatch]:
    """Batches in dataset order (no shuffling), through a DataLoader with ``num_workers``.

    With a strict dataset, the first batch with unreadable images raises one UserError that
    names each of them (in the main process, whatever ``num_workers``).
    """
    if batch_size < 1:
        raise UserError(f"batch size must be >= 1, got {batch_size}")
    if num_workers < 0:
        raise UserError(f"num_workers must be >= 0, got {num_workers}")
    loader = DataLoader(
        _Items(dataset),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=partial(collate_images, image_size=getattr(dataset, "image_size", None)),
    )
    strict = getattr(dataset, "strict", False)
    for batch in loader:
        if strict and batch.skipped:
            from latentbench.data.images import strict_error

            raise strict_error(batch.skipped, where=getattr(dataset, "spec", ""))
        yield batch


class _Items(Dataset):
    """A dataset's items without the strict-mode raise (``item(i)`` where the dataset has it),
    so that iter_batches can name every unreadable image of a batch in the main process."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> ImageItem:
        read = getattr(self.dataset, "item", None)
        return read(index) if read is not None else self.dataset[index]


__all__ = [
    "DataKind",
    "DataSpec",
    "ImageBatch",
    "ImageItem",
    "DEFAULT_MAX_PIXELS",
    "MaxPixels",
    "collate_images",
    "data_identity",
    "iter_batches",
    "open_images",
    "parse_spec",
]
