"""Datasets named by a data SPEC keyword: ``skimage``, ``fashion-mnist``, ``hf:DATASET``."""

from __future__ import annotations

import gzip
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from latentbench.data.decode import (
    DEFAULT_MAX_PIXELS,
    UnreadableImage,
    one_line,
    open_image,
    to_rgb,
)
from latentbench.data.images import ImageDataset, first_items
from latentbench.errors import UserError, unknown_choice

#: The photographs in ``skimage.data`` that ship with scikit-image (no download). Left out:
#: synthetic or binary arrays (binary_blobs, checkerboard, colorwheel, horse, logo,
#: shepp_logan_phantom), ``cat`` (the same picture as chelsea), ``lfw_subset`` (200 tiny face
#: crops) and the files scikit-image downloads with pooch (brain, eagle, kidney, lily, ...).
#: ``stereo_motorcycle`` is its left view.
SKIMAGE_PHOTOS: tuple[str, ...] = (
    "astronaut",
    "brick",
    "camera",
    "cell",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "microaneurysms",
    "moon",
    "page",
    "retina",
    "rocket",
    "stereo_motorcycle",
    "text",
)


class SkimagePhotos(ImageDataset):
    """Photos of ``skimage.data`` by name (default: all of :data:`SKIMAGE_PHOTOS`, in order).

    Keys are the names; grayscale photos are repeated to RGB.
    """

    def __init__(
        self,
        names: Sequence[str] | None,
        image_size: int | None,
        *,
        limit: int | None = None,
        strict: bool = False,
    ) -> None:
        if names is None:
            spec, chosen = "skimage", list(SKIMAGE_PHOTOS)
        else:
            chosen = list(dict.fromkeys(n.strip() for n in names if n.strip()))
            if not chosen:
                raise UserError("skimage: no photo names given; use 'skimage' for all of them")
            for name in chosen:
                if name not in SKIMAGE_PHOTOS:
                    raise unknown_choice("skimage photo", name, SKIMAGE_PHOTOS)
            spec = "skimage:" + ",".join(chosen)
        super().__init__(spec, image_size, strict)
        self.names = list(first_items(chosen, limit))

    def __len__(self) -> int:
        return len(self.names)

    def key(self, index: int) -> str:
        return self.names[index]

    def source(self, index: int) -> str:
        return f"skimage.data.{self.names[index]}"

    def read(self, index: int) -> Image.Image:
        import skimage.data

        try:
            pixels = getattr(skimage.data, self.names[index])()
        except (AttributeError, ModuleNotFoundError, OSError) as e:  # old version; needs pooch
            raise UnreadableImage(one_line(f"scikit-image cannot load it offline: {e}")) from None
        if isinstance(pixels, tuple):  # stereo_motorcycle: (left, right, disparity)
            pixels = pixels[0]
        return to_rgb(Image.fromarray(np.ascontiguousarray(pixels)))


# ------------------------------------------------------------------ Fashion-MNIST

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_ENV = "LATENTBENCH_FASHION_MNIST_DIR"
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_FASHION_PREFIX = {"train": "train", "test": "t10k"}


def fashion_mnist_dir() -> Path:
    """``$LATENTBENCH_FASHION_MNIST_DIR``, else the Debian package's folder."""
    return Path(os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DIR)


def read_idx(path: Path, count: int | None = None) -> np.ndarray:
    """The first ``count`` (default all) records of a gzipped IDX file of unsigned bytes."""
    try:
        with gzip.open(path, "rb") as f:
            magic = f.read(4)
            if len(magic) != 4 or magic[:3] != b"\x00\x00\x08" or not 1 <= magic[3] <= 4:
                raise UserError(f"{str(path)!r} is not an IDX file of unsigned bytes")
            dims = [int.from_bytes(f.read(4), "big") for _ in range(magic[3])]
            dims[0] = dims[0] if count is None else min(count, dims[0])
            want = math.prod(dims)
            data = f.read(want)
    except (OSError, EOFError) as e:
        raise UserError(one_line(f"cannot read {str(path)!r}: {e}")) from None
    if len(data) != want:
        raise UserError(f"{str(path)!r} is truncated ({len(data)} of {want} bytes)")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


class FashionMNIST(ImageDataset):
    """Fashion-MNIST from the IDX ``.gz`` files of the Debian package ``dataset-fashion-mnist``
    (``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``). Default split: train (60k; test 10k).

    The 28x28 grayscale images are resized to ``image_size`` with BICUBIC (no crop: they are
    square) and repeated to RGB. Keys are ``<split>/<index:05d>``; labels 0-9 name
    :data:`FASHION_MNIST_CLASSES`.
    """

    label_names = list(FASHION_MNIST_CLASSES)
    can_fail = False  # 28x28 arrays, checked when the files are read

    def __init__(
        self,
        split: str,
        image_size: int | None,
        *,
        root: str | Path | None = None,
        limit: int | None = None,
        strict: bool = False,
    ) -> None:
        if split not in _FASHION_PREFIX:
            raise unknown_choice("fashion-mnist split", split, _FASHION_PREFIX)
        super().__init__(f"fashion-mnist:{split}", image_size, strict)
        folder = Path(root) if root is not None else fashion_mnist_dir()
        prefix = _FASHION_PREFIX[split]
        images = folder / f"{prefix}-images-idx3-ubyte.gz"
        labels = folder / f"{prefix}-labels-idx1-ubyte.gz"
        missing = [str(p) for p in (images, labels) if not p.is_file()]
        if missing:
            raise UserError(
                f"fashion-mnist: missing {', '.join(missing)}; run "
                f"'apt-get install dataset-fashion-mnist' or set {FASHION_MNIST_ENV}"
            )
        self.split = split
        self.images = read_idx(images, limit)  # (N, 28, 28) uint8
        self.labels = read_idx(labels, limit)  # (N,) uint8
        if self.images.ndim != 3 or len(self.images) != len(self.labels):
            raise UserError(f"fashion-mnist: {images} and {labels} do not match")

    def __len__(self) -> int:
        return len(self.images)

    def key(self, index: int) -> str:
        return f"{self.split}/{index:05d}"

    def label(self, index: int) -> int:
        return int(self.labels[index])

    def read(self, index: int) -> Image.Image:
        return Image.fromarray(self.images[index], mode="L")

    def preprocess(self, img: Image.Image) -> Image.Image:
        size = self.image_size
        if size is not None and img.size != (size, size):
            img = img.resize((size, size), resample=Image.Resampling.BICUBIC)
        return img.convert("RGB")


# ------------------------------------------------------------------ Hugging Face datasets


class HFImages(ImageDataset):
    """A Hugging Face ``datasets`` split (needs ``pip install 'latentbench[datasets]'``).

    ``name`` is a hub id (needs the network or the local HF cache) or a folder written by
    ``save_to_disk`` (offline). The image column is the first column of type ``Image``; the
    label column the first ``ClassLabel`` column (else an integer column named ``label``);
    the caption column the first string column named caption, text or prompt. Keys are the row
    index, ``<index:06d>``.
    """

    def __init__(
        self,
        name: str,
        split: str,
        image_size: int | None,
        *,
        limit: int | None = None,
        strict: bool = False,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__(f"hf:{name}:{split}", image_size, strict, max_pixels)
        table = _load_hf(name, split)  # a UserError when ``datasets`` is not installed
        import datasets

        columns = _hf_columns(table.features)
        self.image_column, self.label_column, self.caption_column, self.label_names = columns
        # Rows give the encoded image ({"bytes", "path"}), so that the pixel bound is checked
        # on the header before any decode (``datasets`` would decode every image in full).
        table = table.cast_column(self.image_column, datasets.Image(decode=False))
        self.table = table if limit is None else table.select(range(min(limit, len(table))))

    def __len__(self) -> int:
        return len(self.table)

    def key(self, index: int) -> str:
        return f"{index:06d}"

    def label(self, index: int) -> int:
        if self.label_column is None:
            return -1
        value = self.table[index][self.label_column]
        return -1 if value is None else int(value)

    def caption(self, index: int) -> str:
        if self.caption_column is None:
            return ""
        return self.table[index][self.caption_column] or ""

    def source(self, index: int) -> str:
        return f"{self.spec} row {index}"

    def read(self, index: int) -> Image.Image:
        encoded = self.table[index][self.image_column] or {}  # {"bytes": ..., "path": ...}
        if encoded.get("bytes"):
            source: Path | io.BytesIO = io.BytesIO(encoded["bytes"])
        elif encoded.get("path"):
            source = Path(encoded["path"])
        else:
            raise UnreadableImage("no image in this row")
        with open_image(source, self.max_pixels) as img:
            img.load()
            return to_rgb(img)


def _load_hf(name: str, split: str) -> Any:
    try:
        import datasets
    except ImportError:
        raise UserError(
            "hf: data needs the 'datasets' package: pip install 'latentbench[datasets]'"
        ) from None
    folder = Path(name).expanduser()
    try:
        if (folder / "state.json").is_file() or (folder / "dataset_dict.json").is_file():
            table = datasets.load_from_disk(str(folder))
            if isinstance(table, datasets.DatasetDict):
                if split not in table:
                    raise unknown_choice(f"split of {name}", split, table.keys())
                table = table[split]
            return table
        return datasets.load_dataset(name, split=split)
    except (OSError, ValueError) as e:  # includes ConnectionError and DatasetNotFoundError
        raise UserError(
            one_line(
                f"hf: cannot load {name!r} split {split!r}: {e} (offline: use a dataset in the "
                "local HF cache, or a folder written by save_to_disk)"
            )
        ) from None


def _hf_columns(features: Any) -> tuple[str, str | None, str | None, list[str] | None]:
    """(image column, label column, caption column, label names) of a ``datasets`` schema."""
    import datasets

    image = next((c for c, f in features.items() if isinstance(f, datasets.Image)), None)
    if image is None:
        raise UserError(f"hf: no column of type Image among {', '.join(features)}")
    label = next((c for c, f in features.items() if isinstance(f, datasets.ClassLabel)), None)
    names = list(features[label].names) if label is not None else None
    if label is None and getattr(features.get("label"), "dtype", "").startswith(("int", "uint")):
        label = "label"
    caption = next(
        (
            c
            for c in ("caption", "text", "prompt")
            if getattr(features.get(c), "dtype", None) == "string"
        ),
        None,
    )
    return image, label, caption, names
