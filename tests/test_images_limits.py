"""Reading image folders safely: --strict checks every file before any work; --max-pixels bounds
the pixels decoded per image, and Pillow's decompression-bomb warning never prints."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from latentbench.data import open_images
from latentbench.errors import UserError

BIG = (12000, 12000)  # 144 MP: over the 64 MP default, under Pillow's 179 MP error limit


def png_bilevel(path: Path, width: int, height: int) -> None:
    """A black 1-bit PNG written row by row: a few KB on disk, ``width * height`` pixels."""
    row = b"\x00" + bytes((width + 7) // 8)  # filter byte + packed bits
    z = zlib.compressobj(9)
    data = b"".join(z.compress(row) for _ in range(height)) + z.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def save_rgb(path: Path, side: int, seed: int = 0) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def truncated_jpeg(path: Path) -> None:
    """A JPEG whose header opens but whose data stops half-way: fails only at decode."""
    buffer = io.BytesIO()
    pixels = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    path.write_bytes(data[: len(data) // 2])
    with Image.open(path) as img:  # the header reads: only the decode fails
        assert img.size == (64, 64)


@pytest.fixture
def bad_folder(tmp_path: Path) -> Path:
    """A good image, a truncated JPEG (opens, fails to decode) and a zero-byte file."""
    root = tmp_path / "imgs"
    root.mkdir()
    save_rgb(root / "a_good.png", 20)
    truncated_jpeg(root / "b_truncated.jpg")
    (root / "c_empty.png").write_bytes(b"")
    return root


@pytest.fixture
def big_folder(tmp_path: Path) -> Path:
    root = tmp_path / "big"
    root.mkdir()
    png_bilevel(root / "big.png", *BIG)
    save_rgb(root / "good.png", 20)
    assert (root / "big.png").stat().st_size < 30_000
    return root


@pytest.fixture
def decoded_sizes(monkeypatch) -> list[tuple[int, int]]:
    """The size of every image Pillow decodes from a file (ImageFile.load) from now on."""
    sizes: list[tuple[int, int]] = []
    load = ImageFile.ImageFile.load

    def recording_load(self):
        if self.tile:  # not decoded yet (load() is called again by conversions)
            sizes.append(self.size)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", recording_load)
    return sizes


# ------------------------------------------------------------------ --strict


def test_strict_recon_names_every_unreadable_file_before_any_work(
    bad_folder: Path, tmp_path: Path, cli, monkeypatch, capsys
) -> None:
    import latentbench.bench.recon as recon

    def no_work(*args, **kwargs):
        raise AssertionError("recon started work before the strict check")

    monkeypatch.setattr(recon, "resolve_spaces", no_work)
    monkeypatch.setattr(recon, "build_fd_extractor", no_work)
    out = tmp_path / "run"
    code = cli(
        "recon", "--space", "pixel", "--data", str(bad_folder), "--image-size",
        "16", "--batch-size", "1", "--fd", "none", "--lpips", "none", "--strict", "--quiet",
        "--out", str(out),
    )  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "2 unreadable images" in err
    assert "b_truncated.jpg" in err and "truncated" in err
    assert "c_empty.png" in err and "empty file" in err
    assert "a_good.png" not in err
    assert not out.exists()


def test_strict_export_writes_nothing(bad_folder: Path, tmp_path: Path, cli, capsys) -> None:
    out = tmp_path / "export"
    code = cli("data", "export", "--data", str(bad_folder), "--out", str(out),
                   "--strict")  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "b_truncated.jpg" in err and "c_empty.png" in err
    assert not out.exists()
    # Without --strict, both are skipped and counted, truncated included.
    assert cli("data", "export", "--data", str(bad_folder), "--out", str(out)) == 0
    err = capsys.readouterr().err
    assert "wrote 1 images" in err and "(2 skipped)" in err and "b_truncated.jpg" in err
    assert sorted(p.name for p in out.iterdir()) == [".latentbench.json", "a_good.png"]


def test_strict_open_names_the_first_ten_and_counts_the_rest(tmp_path: Path) -> None:
    save_rgb(tmp_path / "good.png", 8)
    for i in range(13):
        (tmp_path / f"bad{i:02d}.png").write_bytes(b"")
    with pytest.raises(UserError) as info:
        open_images(str(tmp_path), 8, strict=True)
    message = str(info.value)
    assert "\n" not in message and message.startswith("13 unreadable images")
    assert "bad09.png" in message and "bad10.png" not in message and "and 3 more" in message
    assert len(open_images(str(tmp_path), 8)) == 14  # not strict: nothing is read up front


def test_strict_check_reads_each_file_once_and_only_under_strict(
    bad_folder: Path, decoded_sizes: list
) -> None:
    open_images(str(bad_folder), 16)
    assert decoded_sizes == []
    with pytest.raises(UserError):
        open_images(str(bad_folder), 16, strict=True)
    assert decoded_sizes == [(20, 20), (64, 64)]  # the good PNG, the truncated JPEG's attempt


# ------------------------------------------------------------------ --max-pixels


def test_an_image_over_max_pixels_is_skipped_without_decoding_or_warning(
    big_folder: Path, tmp_path: Path, cli, capsys, decoded_sizes: list
) -> None:
    out = tmp_path / "export"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = cli("data", "export", "--data", str(big_folder), "--out",
                       str(out), "--image-size", "16")  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert [w.message for w in caught] == []
    assert BIG not in decoded_sizes and (20, 20) in decoded_sizes
    assert "skipped big.png: 12000x12000 = 144 MP > --max-pixels 64 MP" in err
    assert "wrote 1 images" in err and "(1 skipped)" in err
    assert "DecompressionBomb" not in err


def test_strict_names_an_image_over_max_pixels(
    big_folder: Path, tmp_path: Path, cli, capsys, decoded_sizes: list
) -> None:
    code = cli("data", "export", "--data", str(big_folder), "--out",
                   str(tmp_path / "x"), "--strict")  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "big.png" in err and "144 MP > --max-pixels 64 MP" in err
    assert BIG not in decoded_sizes


def test_recon_records_images_over_max_pixels(tmp_path: Path, cli, capsys) -> None:
    import json

    root = tmp_path / "imgs"
    root.mkdir()
    save_rgb(root / "a_small.png", 16)  # 256 pixels
    save_rgb(root / "b_large.png", 20, seed=1)  # 400 pixels
    out = tmp_path / "run"
    code = cli(
        "recon", "--space", "pixel", "--data", str(root), "--image-size", "16",
        "--fd", "none", "--lpips", "none", "--diagnostics", "0", "--max-pixels", "300",
        "--quiet", "--json", "--out", str(out),
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    metrics = json.loads(captured.out)["pixel"]
    assert metrics["num_images"] == 1 and metrics["skipped_images"] == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["skipped_files"] == [
        {"key": "b_large.png", "error": "20x20 = 400 pixels > --max-pixels 300 pixels"}
    ]
    assert manifest["config"]["max_pixels"] == 300


def test_allowed_images_over_pillows_warning_limit_read_silently(
    tmp_path: Path, monkeypatch
) -> None:
    """Between Pillow's warning (MAX_IMAGE_PIXELS) and error (twice that) limits: an image
    within --max-pixels is read without a warning; one past Pillow's error is skipped."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)
    save_rgb(tmp_path / "a_warns.png", 20)  # 400 pixels: Pillow warns
    save_rgb(tmp_path / "b_refused.png", 25)  # 625 pixels: Pillow refuses (> 600)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = open_images(str(tmp_path), 8, max_pixels=600)
        items = [ds[0], ds[1]]
    assert [w.message for w in caught] == []
    assert items[0]["error"] is None and items[0]["image"].shape == (3, 8, 8)
    assert items[1]["image"] is None and "decompression-bomb" in items[1]["error"]


@pytest.mark.parametrize("value", ["0", "-5", "200000000"])
def test_bad_max_pixels_is_one_line_error(value: str, tmp_path: Path, cli, capsys) -> None:
    (tmp_path / "data").mkdir()
    save_rgb(tmp_path / "data" / "a.png", 8)
    code = cli("data", "export", "--data", str(tmp_path / "data"), "--out",
                   str(tmp_path / "x"), "--max-pixels", value)  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--max-pixels" in err and value in err
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------ every command takes it


class Stop(UserError):
    """Raised by a stand-in for a command's API function, once it has seen the config."""


@pytest.mark.parametrize(
    "args, target",
    [
        (["train-tokenizer", "--space", "svae", "--data", "shapes:8"],
         "latentbench.bench.tokenizer:train_tokenizer"),
        (["train-gen", "--space", "pixel", "--data", "shapes:8"],
         "latentbench.bench.generation:train_generators"),
        (["eval-gen", "--suite", "geneval-shapes", "--images", "."],
         "latentbench.bench.eval_gen:run_eval_gen"),
        (["eval-edit", "--images", "."], "latentbench.bench.eval_edit:run_eval_edit"),
    ],
)  # fmt: skip
def test_every_image_reading_command_passes_max_pixels(
    args: list[str], target: str, cli, monkeypatch, capsys
) -> None:
    import importlib

    seen: list[int | None] = []

    def stand_in(*a, **kw):
        cfg = next(x for x in a if hasattr(x, "max_pixels")) if "max_pixels" not in kw else kw
        seen.append(kw["max_pixels"] if cfg is kw else cfg.max_pixels)
        raise Stop("stop")

    module, name = target.split(":")
    monkeypatch.setattr(importlib.import_module(module), name, stand_in)
    assert cli(*args, "--max-pixels", "1234") == 2
    assert seen == [1234], capsys.readouterr().err


def test_eval_gen_images_over_max_pixels_are_skipped(tmp_path: Path) -> None:
    from latentbench.bench.eval_gen import EvalGenConfig, run_eval_gen
    from latentbench.data.shapes import write_oracle_layout

    write_oracle_layout(tmp_path, prompts_per_task=1, samples_per_prompt=1, image_size=64, seed=0)
    save_rgb(tmp_path / "00000" / "samples" / "0000.png", 128)  # 16384 pixels
    cfg = EvalGenConfig(suite="geneval-shapes", max_pixels=5000)  # type: ignore[arg-type]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = run_eval_gen(cfg, images=tmp_path).results
    assert r["num_images"] == 5 and r["skipped_images"] == 1
    reason = "128x128 = 16384 pixels > --max-pixels 5000 pixels"
    assert any(reason in s for s in r["skipped_reasons"])
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_eval_edit_outputs_over_max_pixels_are_skipped(tmp_path: Path) -> None:
    import json
    import shutil

    from latentbench.bench.eval_edit import EvalEditConfig, run_eval_edit
    from latentbench.data.shapes import write_dataset

    data = tmp_path / "shapes"
    write_dataset(data, n=1, image_size=64, n_edits=3, prompts_per_task=1)
    rows = [json.loads(line) for line in (data / "edits.jsonl").read_text().splitlines()]
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    for i, row in enumerate(rows):
        shutil.copy(data / row["target"], outputs / f"{i:05d}.png")
    save_rgb(outputs / "00001.png", 128)
    cfg = EvalEditConfig(edits=str(data / "edits.jsonl"), lpips="none", max_pixels=5000)
    r = run_eval_edit(cfg, images=outputs).results
    assert r["num_edits"] == 2 and r["skipped"] == 1
    reason = "128x128 = 16384 pixels > --max-pixels 5000 pixels"
    assert any(reason in s for s in r["skipped_reasons"])


def test_hf_images_over_max_pixels_are_skipped_from_the_header(
    tmp_path: Path, decoded_sizes: list
) -> None:
    datasets = pytest.importorskip("datasets", reason="optional 'datasets' package not installed")
    sides = [8, 20, 8]
    images = [Image.fromarray(np.full((s, s, 3), 7, np.uint8)) for s in sides]
    features = datasets.Features({"img": datasets.Image()})
    table = datasets.Dataset.from_dict({"img": [*images, None]}, features=features)
    table.save_to_disk(str(tmp_path / "saved"))
    ds = open_images(f"hf:{tmp_path / 'saved'}", 8, max_pixels=300)
    items = [ds[i] for i in range(len(ds))]
    assert [it["error"] for it in items] == [
        None, "20x20 = 400 pixels > --max-pixels 300 pixels", None, "no image in this row"
    ]  # fmt: skip
    assert (20, 20) not in decoded_sizes and decoded_sizes.count((8, 8)) == 2
    with pytest.raises(UserError, match=r"2 unreadable images .*'000001' \(20x20"):
        open_images(f"hf:{tmp_path / 'saved'}", 8, max_pixels=300, strict=True)
