"""Reading one image file: decoding with a bound on its pixels, colour rules, the ADM crop.

Every image the data interface reads from a file goes through here. Preprocessing (defaults the
paper leaves open):
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

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
from PIL import Image
from pydantic import AfterValidator
from torch import Tensor

from latentbench.errors import UserError

#: The default bound on one image's pixels (``--max-pixels``): 64 MP. Above every common camera
#: (full-frame bodies top out near 61 MP) and below Pillow's own decompression-bomb warning
#: (89.5 MP). One 8-bit RGB copy of such an image is 192 MB, and preprocessing briefly holds a
#: few copies (decode, RGB conversion, first halving), so the bound keeps one image near 0.5 GB.
DEFAULT_MAX_PIXELS = 64_000_000


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


_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


class UnreadableImage(Exception):
    """An image file that cannot be decoded; ``str(e)`` is the one-line reason."""


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
        return one_line(f"over Pillow's decompression-bomb limit: {error}")
    return one_line(f"corrupt or truncated image: {error}")


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


def open_rgb(path: Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """The image at ``path`` converted by Pillow to RGB (no alpha compositing, unlike
    :func:`read_image`); an UnreadableImage with the reason when it cannot be read."""
    with open_image(path, max_pixels) as img:
        return img.convert("RGB")


def one_line(text: str) -> str:
    return " ".join(text.split())


def _valid_max_pixels(value: int | None) -> int | None:
    if problem := max_pixels_problem(value):
        raise ValueError(problem)
    return value


#: A config field's type for the pixel bound (None: Pillow's own limit only).
MaxPixels = Annotated[int | None, AfterValidator(_valid_max_pixels)]
