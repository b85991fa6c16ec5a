"""Image datasets: folders, captions ``.jsonl``, scikit-image photos, Fashion-MNIST, HF datasets.

Every dataset here is an :class:`ImageDataset`: ``dataset[i]`` is an item dict (see
:class:`latentbench.data.ImageItem`) whose image is a float tensor (3, S, S) in [-1, 1].

Preprocessing (defaults the paper leaves open):
- Decoding: Pillow, always a full decode (``Image.load()``), with Pillow's
  ``LOAD_TRUNCATED_IMAGES`` left False so a truncated file is an error, not a grey patch.
  Multi-frame files (GIF, TIFF, WebP) give their first frame. EXIF orientation is not applied
  (as in guided-diffusion, clean-fid and torch-fidelity).
- Size bound: an image of more than ``max_pixels`` pixels (default :data:`DEFAULT_MAX_PIXELS`)
  is unreadable, decided from its header before any decode; Pillow's decompression-bomb
  warning is never printed (the bound decides) and its error is a reason like any other. No
  JPEG draft-mode (DCT-domain) downscaling: it would give other pixels than the BOX halving
  below, so a file's format would change the preprocessing; the bound caps the memory instead.
- Colour: RGBA / LA / palette-with-transparency are composited on white; grayscale, palette,
  CMYK and YCbCr are converted to RGB by Pillow; 16-bit grayscale is scaled to 8 bits
  (v / 257, rounded); 16-bit RGB is read by Pillow as its high byte; 32-bit float ("F") images
  follow Pillow's convention of [0, 255].
- Size: the ADM (guided-diffusion) center crop: halve with a BOX filter while the short side is
  >= 2 * S, resize with BICUBIC so the short side is S (sides rounded with Python's round()),
  then crop the center S x S (offsets floor((side - S) / 2)). ``image_size=None`` keeps the
  native size (used by ``latentbench data export``).
- Values: uint8 x -> x / 127.5 - 1.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from latentbench.data import DEFAULT_MAX_PIXELS
from latentbench.errors import UserError, unknown_choice

#: Files with these extensions (case-insensitive) are images; everything else is ignored.
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".bmp",
    ".gif",
    ".jpeg",
    ".jpg",
    ".pgm",
    ".png",
    ".ppm",
    ".tif",
    ".tiff",
    ".webp",
)

#: An unreadable-images error names this many of them, then says how many more.
STRICT_NAMED = 10

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


class UnreadableImage(Exception):
    """An image file that cannot be decoded; ``str(e)`` is the one-line reason."""


# ------------------------------------------------------------------ decoding and preprocessing


def to_rgb(img: Image.Image) -> Image.Image:
    """A new 8-bit RGB image from any Pillow mode (see the module docstring for the rules)."""
    if img.mode in _SIXTEEN_BIT_MODES:
        # Pillow's own conversion clips values above 255 instead of scaling them.
        levels = np.clip(np.asarray(img, dtype=np.float64), 0, 65535)  # (H, W)
        img = Image.fromarray(np.round(levels / 257.0).astype(np.uint8), mode="L")
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def center_crop_resize(img: Image.Image, size: int) -> Image.Image:
    """ADM center crop of an RGB image to ``size`` x ``size`` (guided-diffusion convention)."""
    while min(img.size) >= 2 * size:
        img = img.resize((img.width // 2, img.height // 2), resample=Image.Resampling.BOX)
    scale = size / min(img.size)
    img = img.resize(
        (round(img.width * scale), round(img.height * scale)), resample=Image.Resampling.BICUBIC
    )
    left, top = (img.width - size) // 2, (img.height - size) // 2
    return img.crop((left, top, left + size, top + size))


def pil_to_tensor(img: Image.Image) -> Tensor:
    """RGB uint8 image -> float32 (3, H, W) in [-1, 1]."""
    pixels = torch.from_numpy(np.array(img, dtype=np.uint8))  # (H, W, 3)
    return pixels.permute(2, 0, 1).float() / 127.5 - 1.0  # (3, H, W)


def tensor_to_pil(image: Tensor) -> Image.Image:
    """(3, H, W) in [-1, 1] -> RGB uint8 image (rounded, clipped)."""
    pixels = ((image.detach().float().cpu() + 1.0) * 127.5).round().clamp(0, 255)  # (3, H, W)
    return Image.fromarray(pixels.to(torch.uint8).permute(1, 2, 0).numpy(), mode="RGB")


def pillow_pixel_limit() -> int | None:
    """The pixels above which Pillow refuses to open an image (twice ``MAX_IMAGE_PIXELS``)."""
    limit = Image.MAX_IMAGE_PIXELS
    return None if limit is None else 2 * limit


def max_pixels_problem(max_pixels: int | None) -> str | None:
    """Why ``max_pixels`` is not a usable bound (None: it is; None, no bound of ours, is too)."""
    top = pillow_pixel_limit()
    if max_pixels is not None and (max_pixels < 1 or (top is not None and max_pixels > top)):
        upper = f"{top} (Pillow's decompression-bomb limit)" if top is not None else "any size"
        return f"must be between 1 and {upper}"
    return None


def check_max_pixels(max_pixels: int | None) -> None:
    """A UserError unless ``max_pixels`` is None (no bound of ours) or in 1 .. Pillow's limit."""
    if problem := max_pixels_problem(max_pixels):
        raise UserError(f"--max-pixels {problem}, got {max_pixels}")


def _pixels(n: int) -> str:
    return f"{n / 1e6:.3g} MP" if n >= 1_000_000 else f"{n} pixels"


def check_pixels(size: tuple[int, int], max_pixels: int | None) -> None:
    """Raise UnreadableImage when an image of ``size`` (W, H) has more than ``max_pixels``."""
    width, height = size
    if max_pixels is not None and width * height > max_pixels:
        raise UnreadableImage(
            f"{width}x{height} = {_pixels(width * height)} > --max-pixels {_pixels(max_pixels)}"
        )


def unreadable_reason(error: Exception) -> str:
    """The one-line reason of an exception Pillow raised while opening or decoding."""
    if isinstance(error, FileNotFoundError):
        return "file not found"
    if isinstance(error, Image.UnidentifiedImageError):
        return "not an image Pillow can read"
    if isinstance(error, Image.DecompressionBombError):
        return _one_line(f"over Pillow's decompression-bomb limit: {error}")
    return _one_line(f"corrupt or truncated image: {error}")


#: What Pillow raises for a file it cannot read (beyond UnreadableImage, raised here).
PILLOW_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


@contextmanager
def open_image(
    source: Path | io.BytesIO, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> Iterator[Image.Image]:
    """``Image.open(source)`` (a file, or its bytes), lazy: only the header is read, and an
    image of more than ``max_pixels`` pixels is refused before anything is decoded.

    Any failure, in the ``with`` body too (decode, conversion), is an :class:`UnreadableImage`
    with a one-line reason; Pillow's DecompressionBombWarning is not shown (the bound decides).
    """
    try:
        in_memory = isinstance(source, io.BytesIO)
        if (source.getbuffer().nbytes if in_memory else source.stat().st_size) == 0:
            raise UnreadableImage("empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                check_pixels(img.size, max_pixels)
                yield img
    except PILLOW_ERRORS as e:
        raise UnreadableImage(unreadable_reason(e)) from None


def read_image(path: Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Fully decode ``path`` into an RGB image; raise :class:`UnreadableImage` with the reason
    (an image of more than ``max_pixels`` pixels is refused without decoding it)."""
    with open_image(path, max_pixels) as img:
        img.load()  # full decode: truncation and corrupt data surface here
        return to_rgb(img)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------------ the base dataset


class ImageDataset(Dataset, ABC):
    """Base of every dataset here: subclasses say how to read item ``i``; this class preprocesses
    it and turns an unreadable image into an item with ``image=None`` and ``error=<reason>``.

    :meth:`check_readable` reads every item once and names every unreadable one
    (:func:`latentbench.data.open_images` calls it under ``strict``). With ``strict=True``,
    ``dataset[i]`` also raises a :class:`UserError` naming an unreadable image, and
    :func:`latentbench.data.iter_batches` (which reads items with the non-raising :meth:`item`)
    raises in the main process naming every unreadable image of the batch: for a file that
    changed after the check.

    ``max_pixels`` bounds the pixels of one image read from a file (None: no bound of ours);
    datasets of in-memory arrays of known size have ``max_pixels = None``.
    """

    spec: str
    label_names: list[str] | None = None
    #: False where no item can fail to read (arrays checked when the dataset opens).
    can_fail: bool = True

    def __init__(
        self,
        spec: str,
        image_size: int | None,
        strict: bool = False,
        max_pixels: int | None = None,
    ) -> None:
        if image_size is not None and image_size < 1:
            raise UserError(f"image size must be >= 1, got {image_size}")
        check_max_pixels(max_pixels)
        self.spec, self.image_size, self.strict = spec, image_size, strict
        self.max_pixels = max_pixels

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def key(self, index: int) -> str: ...

    @abstractmethod
    def read(self, index: int) -> Image.Image:
        """The RGB image of item ``index``; raises UnreadableImage."""

    def label(self, index: int) -> int:
        return -1

    def caption(self, index: int) -> str:
        return ""

    def source(self, index: int) -> str:
        """Where item ``index`` comes from, for error messages (a file path by default)."""
        return self.key(index)

    def preprocess(self, img: Image.Image) -> Image.Image:
        if self.image_size is None:
            return img
        return center_crop_resize(img, self.image_size)

    def item(self, index: int) -> dict[str, Any]:
        """Item ``index``; an unreadable image gives ``image=None`` and the reason in ``error``."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        item: dict[str, Any] = {
            "image": None,
            "key": self.key(index),
            "label": self.label(index),
            "caption": self.caption(index),
            "error": None,
        }
        try:
            item["image"] = pil_to_tensor(self.preprocess(self.read(index)))  # (3, S, S)
        except UnreadableImage as e:
            item["error"] = str(e)
        return item

    def __getitem__(self, index: int) -> dict[str, Any]:
        """:meth:`item`, raising a UserError for an unreadable image when ``strict``."""
        item = self.item(index)
        if self.strict and item["error"] is not None:
            raise strict_error([(self.source(index), item["error"])])
        return item

    def unreadable(self, progress: bool = True) -> list[tuple[str, str]]:
        """(key, reason) of every item whose image cannot be read: each one read (a full
        decode) once, as a run would read it. A progress bar shows when it takes a while."""
        from tqdm.auto import tqdm

        if not self.can_fail:
            return []
        bad = []
        indices = tqdm(
            range(len(self)),
            desc="--strict: checking every image",
            unit="img",
            delay=2.0,
            leave=False,
            disable=None if progress else True,  # None: off when stderr is not a terminal
        )
        for index in indices:
            try:
                self.read(index)
            except UnreadableImage as e:
                bad.append((self.key(index), str(e)))
        return bad

    def check_readable(self, progress: bool = True) -> None:
        """Raise one UserError naming every unreadable image (see :meth:`unreadable`)."""
        bad = self.unreadable(progress)
        if bad:
            raise strict_error(bad, where=self.spec)


def strict_error(bad: Sequence[tuple[str, str]], where: str = "") -> UserError:
    """One line naming the unreadable images of ``bad`` ((name, reason) pairs): the first
    :data:`STRICT_NAMED`, then how many more."""
    names = ", ".join(f"{name!r} ({reason})" for name, reason in bad[:STRICT_NAMED])
    more = f" and {len(bad) - STRICT_NAMED} more" if len(bad) > STRICT_NAMED else ""
    what = "unreadable image" if len(bad) == 1 else f"{len(bad)} unreadable images"
    place = f" in {where!r}" if where else ""
    return UserError(f"{what}{place}: {names}{more}; strict mode, drop --strict to skip them")


def _first(items: Sequence[Any], limit: int | None) -> Sequence[Any]:
    return items if limit is None else items[:limit]


# ------------------------------------------------------------------ folders


def list_images(root: Path) -> list[str]:
    """Image files under ``root`` (recursive, by extension), as sorted POSIX relative paths.

    Hidden files and folders (names starting with '.') are ignored; folder symlinks are not
    followed.
    """
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                found.append((Path(folder) / name).relative_to(root).as_posix())
    return sorted(found)


class ImageFolder(ImageDataset):
    """Every image under a folder, recursively, in sorted relative-path order.

    Keys are the relative paths. When every image lies in a first-level subfolder (the
    ImageNet / torchvision layout), the subfolder names, sorted, are the classes and give the
    labels; otherwise labels are -1.
    """

    def __init__(
        self,
        root: str | Path,
        image_size: int | None,
        *,
        limit: int | None = None,
        strict: bool = False,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        root = Path(root).expanduser().resolve()
        super().__init__(str(root), image_size, strict, max_pixels)
        self.root = root
        all_files = list_images(root)
        if not all_files:
            raise UserError(
                f"no image files under {str(root)!r} (looked for {' '.join(IMAGE_EXTENSIONS)})"
            )
        classes = sorted({f.split("/")[0] for f in all_files})
        if all("/" in f for f in all_files):
            self.label_names = classes
        self.files = list(_first(all_files, limit))
        self._class_index = {name: i for i, name in enumerate(classes)}

    def __len__(self) -> int:
        return len(self.files)

    def key(self, index: int) -> str:
        return self.files[index]

    def source(self, index: int) -> str:
        return str(self.root / self.files[index])

    def read(self, index: int) -> Image.Image:
        return read_image(self.root / self.files[index], self.max_pixels)

    def label(self, index: int) -> int:
        if self.label_names is None:
            return -1
        return self._class_index[self.files[index].split("/")[0]]


# ------------------------------------------------------------------ captions .jsonl


class CaptionsFile(ImageDataset):
    """A ``.jsonl`` file of ``{"image": path, "text": caption}`` lines (other keys ignored).

    Image paths are relative to the file's folder (absolute paths also work); keys are the paths
    as written. Blank lines are ignored. A missing or corrupt image file is skipped and counted
    like any unreadable image.
    """

    def __init__(
        self,
        path: str | Path,
        image_size: int | None,
        *,
        limit: int | None = None,
        strict: bool = False,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        path = Path(path).expanduser().resolve()
        super().__init__(str(path), image_size, strict, max_pixels)
        self.path = path
        rows = _read_caption_lines(path)
        if not rows:
            raise UserError(f"captions file {str(path)!r} has no lines")
        self.rows = list(_first(rows, limit))

    def __len__(self) -> int:
        return len(self.rows)

    def key(self, index: int) -> str:
        return self.rows[index][0]

    def caption(self, index: int) -> str:
        return self.rows[index][1]

    def source(self, index: int) -> str:
        return str(self.path.parent / self.rows[index][0])

    def read(self, index: int) -> Image.Image:
        return read_image(self.path.parent / self.rows[index][0], self.max_pixels)


def _read_caption_lines(path: Path) -> list[tuple[str, str]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{where}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise UserError(f"{where}: expected an object with 'image' and 'text'")
            for field in ("image", "text"):
                if not isinstance(row.get(field), str) or (field == "image" and not row[field]):
                    raise UserError(f"{where}: {field!r} must be a non-empty string")
            rows.append((row["image"], row["text"]))
    return rows


# ------------------------------------------------------------------ scikit-image photos

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
        self.names = list(_first(chosen, limit))

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
            raise UnreadableImage(_one_line(f"scikit-image cannot load it offline: {e}")) from None
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
        raise UserError(_one_line(f"cannot read {str(path)!r}: {e}")) from None
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
            _one_line(
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


# ------------------------------------------------------------------ export


def export_name(key: str, keep_suffix: bool = False) -> PurePosixPath:
    """A safe relative ``.png`` path for a key (no '..', no absolute part): ``a/b.jpg`` ->
    ``a/b.png`` (``a/b.jpg.png`` with ``keep_suffix``), ``astronaut`` -> ``astronaut.png``."""
    parts = [p for p in PurePosixPath(key.replace("\\", "/")).parts if p not in ("/", ".", "..")]
    path = PurePosixPath(*parts) if parts else PurePosixPath("image")
    if path.suffix.lower() in IMAGE_EXTENSIONS and not keep_suffix:
        return path.with_suffix(".png")
    return path.with_name(path.name + ".png")


def export_images(dataset: ImageDataset, out: str | Path) -> tuple[int, list[tuple[str, str]]]:
    """Write every readable item of ``dataset`` as a PNG under ``out``, named by its key.

    Returns (number written, skipped (key, reason) pairs). When two keys map to one name
    (``a.jpg`` and ``a.png``), the later keeps its full key (``a.png.png``).
    """
    out = Path(out)
    used: set[PurePosixPath] = set()
    written, skipped = 0, []
    for index in range(len(dataset)):
        item = dataset[index]
        if item["image"] is None:
            skipped.append((item["key"], item["error"]))
            continue
        name = export_name(item["key"])
        if name in used:
            name = export_name(item["key"], keep_suffix=True)
        used.add(name)
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        tensor_to_pil(item["image"]).save(target)
        written += 1
    return written, skipped
