"""``latentbench data export``: a dataset's readable images as PNG files named by their keys."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from latentbench.data.decode import IMAGE_EXTENSIONS, tensor_to_pil
from latentbench.data.images import ImageDataset


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
