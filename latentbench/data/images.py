"""Image datasets read from files: the base :class:`ImageDataset`, folders, captions ``.jsonl``.

Every dataset of the data interface that reads images (here and in :mod:`latentbench.data.named`)
is an :class:`ImageDataset`: ``dataset[i]`` is an item dict (see
:class:`latentbench.data.ImageItem`) whose image is a float tensor (3, S, S) in [-1, 1], read
and preprocessed by the rules of :mod:`latentbench.data.decode`.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from torch.utils.data import Dataset

from latentbench.data.decode import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    UnreadableImage,
    center_crop_resize,
    check_max_pixels,
    pil_to_tensor,
    read_image,
)
from latentbench.errors import UserError

#: An unreadable-images error names this many of them, then says how many more.
STRICT_NAMED = 10


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


def first_items(items: Sequence[Any], limit: int | None) -> Sequence[Any]:
    return items if limit is None else items[:limit]


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
        self.files = list(first_items(all_files, limit))
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
        rows = read_caption_lines(path)
        if not rows:
            raise UserError(f"captions file {str(path)!r} has no lines")
        self.rows = list(first_items(rows, limit))

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


def read_caption_lines(path: Path) -> list[tuple[str, str]]:
    """(image path as written, caption) of every line of a captions .jsonl; a bad line is one
    UserError naming it."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file (captions .jsonl expected)") from None
    rows = []
    for number, line in enumerate(lines, start=1):
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
