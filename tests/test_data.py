"""Data: folders, bad files, preprocessing, skimage, Fashion-MNIST, captions, HF, export."""

from __future__ import annotations

import gzip
import io
import json
import struct
import sys
import types
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from latentbench.data import (
    DataKind,
    collate_images,
    iter_batches,
    open_images,
    parse_spec,
)
from latentbench.data.decode import center_crop_resize
from latentbench.data.export import export_images, export_name
from latentbench.data.images import ImageFolder
from latentbench.data.named import FASHION_MNIST_CLASSES, SKIMAGE_PHOTOS, FashionMNIST
from latentbench.errors import UserError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def rng_pixels(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8, exact for images that came from uint8."""
    return ((image + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def png_rgb16(path: Path, pixels: np.ndarray) -> None:
    """Write a 16-bit RGB PNG by hand (Pillow cannot write one)."""
    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def jpeg_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def bad_folder(tmp_path: Path) -> Path:
    """2 good images and 3 bad files: zero bytes, truncated JPEG, text named .png."""
    Image.fromarray(rng_pixels((20, 20, 3), 1)).save(tmp_path / "a_good.png")
    Image.fromarray(rng_pixels((20, 20, 3), 2)).save(tmp_path / "e_good.png")
    (tmp_path / "b_empty.jpg").write_bytes(b"")
    data = jpeg_bytes(rng_pixels((64, 64, 3), 3))
    (tmp_path / "c_truncated.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "d_text.png").write_text("this is not an image\n")
    return tmp_path


# ------------------------------------------------------------------ conversions


def test_sixteen_bit_grayscale_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    levels = np.array([[0, 257, 128 * 257, 65535]], dtype=np.uint16)  # (1, 4)
    Image.fromarray(levels).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    item = open_images(str(tmp_path), None)[0]
    pixels = to_uint8(item["image"])  # (1, 4, 3)
    assert pixels[0, :, 0].tolist() == [0, 1, 128, 255]
    assert (pixels == pixels[..., :1]).all()


def test_sixteen_bit_rgb_png_keeps_the_high_byte(tmp_path: Path) -> None:
    pixels16 = rng_pixels((5, 7, 3)).astype(np.uint16) * 257 + 3  # (5, 7, 3)
    png_rgb16(tmp_path / "rgb16.png", pixels16)
    item = open_images(str(tmp_path), None)[0]
    np.testing.assert_array_equal(to_uint8(item["image"]), (pixels16 >> 8).astype(np.uint8))


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.array([[[255, 0, 0, 255], [0, 0, 255, 0], [0, 0, 0, 128]]], dtype=np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "alpha.png")
    pixels = to_uint8(open_images(str(tmp_path), None)[0]["image"])  # (1, 3, 3)
    assert pixels[0, 0].tolist() == [255, 0, 0]  # opaque red stays red
    assert pixels[0, 1].tolist() == [255, 255, 255]  # transparent -> white
    assert all(abs(v - 127) <= 1 for v in pixels[0, 2])  # half-transparent black -> grey


@pytest.mark.parametrize("mode", ["L", "P", "1", "LA", "CMYK"])
def test_other_modes_become_rgb(tmp_path: Path, mode: str) -> None:
    rgb = Image.fromarray(rng_pixels((9, 13, 3)))
    img = rgb.convert(mode)
    suffix = ".tif" if mode == "CMYK" else ".png"
    img.save(tmp_path / f"x{suffix}")
    item = open_images(str(tmp_path), 8)[0]
    assert item["error"] is None and item["image"].shape == (3, 8, 8)
    if mode in ("L", "CMYK"):
        expected = center_crop_resize(img.convert("RGB"), 8)
        np.testing.assert_array_equal(to_uint8(item["image"]), np.array(expected))


@pytest.mark.parametrize("suffix", [".bmp", ".gif", ".jpeg", ".ppm", ".pgm", ".tiff", ".webp"])
def test_every_listed_extension_reads(tmp_path: Path, suffix: str) -> None:
    img = Image.fromarray(rng_pixels((11, 17, 3)))
    (img.convert("L") if suffix == ".pgm" else img).save(tmp_path / f"x{suffix.upper()}")
    item = open_images(str(tmp_path), None)[0]
    assert item["error"] is None and item["image"].shape == (3, 11, 17)
    if suffix in (".bmp", ".ppm", ".tiff"):  # lossless RGB
        np.testing.assert_array_equal(to_uint8(item["image"]), np.array(img))


def test_values_map_uint8_to_minus_one_one(tmp_path: Path) -> None:
    Image.fromarray(np.array([[[0, 255, 51]]], dtype=np.uint8)).save(tmp_path / "x.png")
    image = open_images(str(tmp_path), None)[0]["image"]
    assert image.dtype == torch.float32
    torch.testing.assert_close(image[:, 0, 0], torch.tensor([-1.0, 1.0, 51 / 127.5 - 1]))


# ------------------------------------------------------------------ ADM crop + resize


def test_center_crop_box_halves_then_crops_exactly() -> None:
    # 32 x 48 made of constant 4x4 blocks; S = 8: two BOX halvings give the block values
    # (8 x 12), bicubic to the same size is a no-op, the crop keeps columns 2..9.
    blocks = rng_pixels((8, 12, 3))
    source = np.kron(blocks, np.ones((4, 4, 1), dtype=np.uint8))  # (32, 48, 3)
    out = center_crop_resize(Image.fromarray(source), 8)
    np.testing.assert_array_equal(np.array(out), blocks[:, 2:10])


def test_center_crop_without_resize_is_the_middle() -> None:
    source = rng_pixels((16, 40, 3))  # short side == S: no resize at all
    out = center_crop_resize(Image.fromarray(source), 16)
    np.testing.assert_array_equal(np.array(out), source[:, 12:28])
    tall = rng_pixels((41, 16, 3))
    out = center_crop_resize(Image.fromarray(tall), 16)
    np.testing.assert_array_equal(np.array(out), tall[12:28])


def test_center_crop_bicubic_on_odd_sizes(tmp_path: Path) -> None:
    source = Image.fromarray(rng_pixels((11, 17, 3)))
    # 11 < 2 * 8: no halving; short side 11 -> 8, long side round(17 * 8 / 11) = 12; crop x = 2
    resized = source.resize((12, 8), resample=Image.Resampling.BICUBIC)
    expected = np.array(resized)[:, 2:10]
    np.testing.assert_array_equal(np.array(center_crop_resize(source, 8)), expected)
    source.save(tmp_path / "odd.png")
    np.testing.assert_array_equal(to_uint8(open_images(str(tmp_path), 8)[0]["image"]), expected)


# ------------------------------------------------------------------ folders and bad files


def test_folder_is_recursive_sorted_and_labels_subfolders(tmp_path: Path) -> None:
    for rel in ["dog/b.png", "cat/z.jpg", "dog/a/deep.PNG", "cat/a.webp", "dog/.hidden.png"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng_pixels((6, 6, 3))).save(tmp_path / rel, format="PNG")
    (tmp_path / "cat" / "notes.txt").write_text("ignored")
    (tmp_path / ".git").mkdir()
    Image.fromarray(rng_pixels((6, 6, 3))).save(tmp_path / ".git" / "x.png")
    ds = open_images(str(tmp_path), 4)
    keys = [ds[i]["key"] for i in range(len(ds))]
    assert keys == ["cat/a.webp", "cat/z.jpg", "dog/a/deep.PNG", "dog/b.png"]
    assert ds.label_names == ["cat", "dog"]
    assert [ds[i]["label"] for i in range(len(ds))] == [0, 0, 1, 1]
    assert ds.spec == str(tmp_path.resolve()) and ds.image_size == 4
    limited = open_images(str(tmp_path), 4, limit=3)
    assert len(limited) == 3 and limited[2]["key"] == "dog/a/deep.PNG"
    assert limited[2]["label"] == 1


def test_flat_folder_has_no_labels(tmp_path: Path) -> None:
    Image.fromarray(rng_pixels((6, 6, 3))).save(tmp_path / "x.png")
    (tmp_path / "sub").mkdir()
    Image.fromarray(rng_pixels((6, 6, 3))).save(tmp_path / "sub" / "y.png")
    ds = open_images(str(tmp_path), 4)
    assert ds.label_names is None and ds[1]["label"] == -1 and ds[0]["caption"] == ""


def test_bad_files_are_skipped_and_counted(bad_folder: Path) -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    ds = open_images(str(bad_folder), 16)
    assert len(ds) == 5
    batches = list(iter_batches(ds, batch_size=2))
    kept = [k for b in batches for k in b.keys]
    skipped = dict(s for b in batches for s in b.skipped)
    assert kept == ["a_good.png", "e_good.png"]
    assert sorted(skipped) == ["b_empty.jpg", "c_truncated.jpg", "d_text.png"]
    assert "empty" in skipped["b_empty.jpg"]
    assert "truncated" in skipped["c_truncated.jpg"]
    assert "not an image" in skipped["d_text.png"]
    assert sum(len(b) for b in batches) == 2 and batches[1].images.shape == (0, 3, 16, 16)


def test_bad_files_are_counted_with_workers(bad_folder: Path) -> None:
    ds = open_images(str(bad_folder), 16)
    batches = list(iter_batches(ds, batch_size=5, num_workers=2))
    assert len(batches) == 1 and len(batches[0].skipped) == 3
    assert batches[0].images.shape == (2, 3, 16, 16)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_strict_names_every_bad_file_of_the_batch(bad_folder: Path, num_workers: int) -> None:
    # open_images(strict=True) names them all up front (tests/test_images_limits.py); a strict
    # dataset still names them when read, for a file that changed after that check.
    ds = ImageFolder(bad_folder, 16, strict=True)
    with pytest.raises(UserError) as info:
        list(iter_batches(ds, batch_size=8, num_workers=num_workers))
    message = str(info.value)
    assert "\n" not in message and "3 unreadable images" in message
    for name in ("b_empty.jpg", "c_truncated.jpg", "d_text.png"):
        assert name in message
    with pytest.raises(UserError, match="c_truncated.jpg"):
        ds[2]
    assert ds[0]["error"] is None


def test_strict_cli_exits_2_naming_the_file(
    bad_folder: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch, capsys
) -> None:
    from latentbench.cli import main
    from latentbench.runs import MARKER

    out = tmp_path_factory.mktemp("out")
    argv = ["latentbench", "data", "export", "--data", str(bad_folder), "--out", str(out)]
    monkeypatch.setattr(sys, "argv", [*argv, "--strict"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2 and "b_empty.jpg" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", argv)
    main()
    assert "wrote 2 images" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "a_good.png", "e_good.png"]


def test_empty_folder_and_bad_path_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(UserError, match="no image files under") as info:
        open_images(str(tmp_path), 16)
    assert ".jpg" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UserError, match="does not exist") as info:
        open_images(str(tmp_path / "missing"), 16)
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="not a .jsonl"):
        open_images(str(tmp_path / "readme.txt"), 16)
    with pytest.raises(UserError, match="did you mean 'fashion-mnist'"):
        open_images("fashon-mnist", 16)


def test_cli_bad_path_exits_2(tmp_path: Path, monkeypatch, capsys) -> None:
    from latentbench.cli import main

    argv = ["latentbench", "data", "export", "--data", str(tmp_path / "nope"), "--out", "x"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as info:
        main()
    err = capsys.readouterr().err
    assert info.value.code == 2 and "does not exist" in err


def test_builtin_names_win_over_folders(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "skimage").mkdir()
    Image.fromarray(rng_pixels((6, 6, 3))).save(tmp_path / "skimage" / "x.png")
    assert parse_spec("skimage").kind is DataKind.SKIMAGE
    assert parse_spec("./skimage").kind is DataKind.FOLDER
    assert parse_spec("hf:org/name:test").arg == "org/name:test"


def test_collate_all_bad_batch() -> None:
    items = [{"image": None, "key": "k", "label": -1, "caption": "", "error": "broken"}]
    batch = collate_images(items, image_size=8)
    assert batch.images.shape == (0, 3, 8, 8) and batch.labels.shape == (0,)
    assert batch.skipped == [("k", "broken")]


def test_bad_limits_and_sizes(tmp_path: Path) -> None:
    Image.fromarray(rng_pixels((6, 6, 3))).save(tmp_path / "x.png")
    with pytest.raises(UserError, match="limit"):
        open_images(str(tmp_path), 8, limit=0)
    with pytest.raises(UserError, match="image size"):
        open_images(str(tmp_path), 0)
    with pytest.raises(UserError, match="batch size"):
        next(iter_batches(open_images(str(tmp_path), 8), 0))


# ------------------------------------------------------------------ scikit-image photos


def test_skimage_photos_load_offline() -> None:
    ds = open_images("skimage", 16)
    assert len(ds) == len(SKIMAGE_PHOTOS) and ds.spec == "skimage"
    batch = next(iter_batches(ds, batch_size=len(ds)))
    assert batch.skipped == [] and batch.keys == list(SKIMAGE_PHOTOS)
    assert batch.images.shape == (len(SKIMAGE_PHOTOS), 3, 16, 16)
    assert batch.images.min() >= -1 and batch.images.max() <= 1


def test_skimage_selection_is_native_and_exact() -> None:
    import skimage.data

    ds = open_images("skimage:camera,astronaut", None)
    assert ds.spec == "skimage:camera,astronaut" and [ds[0]["key"], ds[1]["key"]] == [
        "camera",
        "astronaut",
    ]
    np.testing.assert_array_equal(to_uint8(ds[1]["image"]), skimage.data.astronaut())
    camera = to_uint8(ds[0]["image"])  # grayscale repeated to RGB
    np.testing.assert_array_equal(camera[..., 1], skimage.data.camera())
    with pytest.raises(UserError, match="did you mean 'astronaut'"):
        open_images("skimage:astronot", 16)


# ------------------------------------------------------------------ Fashion-MNIST


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reader_on_synthetic_idx(tmp_path: Path, monkeypatch) -> None:
    images = rng_pixels((5, 28, 28))
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([3, 1, 4, 1, 5]))
    monkeypatch.setenv("LATENTBENCH_FASHION_MNIST_DIR", str(tmp_path))
    ds = open_images("fashion-mnist:test", 28, limit=4)
    assert len(ds) == 4 and ds.spec == "fashion-mnist:test"
    assert ds.label_names == list(FASHION_MNIST_CLASSES)
    batch = next(iter_batches(ds, 4))
    assert batch.labels.tolist() == [3, 1, 4, 1] and batch.keys[0] == "test/00000"
    np.testing.assert_array_equal(to_uint8(batch.images[2])[..., 0], images[2])
    resized = open_images("fashion-mnist:test", 32)[0]["image"]  # bicubic, RGB
    expected = Image.fromarray(images[0]).resize((32, 32), resample=Image.Resampling.BICUBIC)
    np.testing.assert_array_equal(to_uint8(resized)[..., 2], np.array(expected))
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
        open_images("fashion-mnist:train", 28)
    with pytest.raises(UserError, match="did you mean 'train'"):
        open_images("fashion-mnist:trian", 28)


def test_fashion_mnist_truncated_idx_is_an_error(tmp_path: Path) -> None:
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng_pixels((3, 28, 28)))
    data = gzip.decompress((tmp_path / "train-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(data[:-100]))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([0, 1, 2]))
    with pytest.raises(UserError, match="truncated"):
        FashionMNIST("train", 28, root=tmp_path)


@pytest.mark.skipif(
    not (DEBIAN_FASHION / "t10k-images-idx3-ubyte.gz").is_file(),
    reason=f"{DEBIAN_FASHION}/t10k-images-idx3-ubyte.gz absent: "
    "apt-get install dataset-fashion-mnist",
)
def test_fashion_mnist_debian_files(monkeypatch) -> None:
    monkeypatch.delenv("LATENTBENCH_FASHION_MNIST_DIR", raising=False)
    ds = open_images("fashion-mnist:test", 16)
    assert len(ds) == 10_000
    batch = next(iter_batches(ds, 10))
    assert batch.labels.tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]  # the published test labels
    assert batch.images.shape == (10, 3, 16, 16)
    assert len(open_images("fashion-mnist", 16, limit=7)) == 7


# ------------------------------------------------------------------ captions .jsonl


def test_captions_jsonl(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    Image.fromarray(rng_pixels((10, 12, 3))).save(tmp_path / "img" / "a.png")
    lines = [
        {"image": "img/a.png", "text": "a red square", "extra": 1},
        {"image": "img/missing.png", "text": "gone"},
    ]
    path = tmp_path / "caps.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    ds = open_images(str(path), 8)
    assert len(ds) == 2 and ds.spec == str(path.resolve())
    batch = next(iter_batches(ds, 2))
    assert batch.captions == ["a red square"] and batch.keys == ["img/a.png"]
    assert batch.skipped == [("img/missing.png", "file not found")]


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("{not json", "caps.jsonl:2: not valid JSON"),
        ('["a", "b"]', "caps.jsonl:2: expected an object"),
        ('{"image": "a.png"}', "caps.jsonl:2: 'text'"),
        ('{"image": "", "text": "x"}', "caps.jsonl:2: 'image'"),
    ],
)
def test_captions_bad_line_names_its_number(tmp_path: Path, line: str, match: str) -> None:
    path = tmp_path / "caps.jsonl"
    path.write_text(json.dumps({"image": "a.png", "text": "ok"}) + "\n" + line + "\n")
    with pytest.raises(UserError, match=match):
        open_images(str(path), 8)


# ------------------------------------------------------------------ HF datasets


def test_hf_saved_dataset(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets", reason="optional 'datasets' package not installed")
    pixels = [rng_pixels((12, 10, 3), seed) for seed in range(3)]
    features = datasets.Features(
        {
            "caption": datasets.Value("string"),
            "img": datasets.Image(),
            "kind": datasets.ClassLabel(names=["x", "y"]),
        }
    )
    table = datasets.Dataset.from_dict(
        {"caption": list("abc"), "img": [Image.fromarray(p) for p in pixels], "kind": [1, 0, 1]},
        features=features,
    )
    table.save_to_disk(str(tmp_path / "saved"))
    ds = open_images(f"hf:{tmp_path / 'saved'}", None, limit=2)
    assert len(ds) == 2 and ds.label_names == ["x", "y"]
    batch = next(iter_batches(ds, 2))
    assert batch.labels.tolist() == [1, 0] and batch.captions == ["a", "b"]
    np.testing.assert_array_equal(to_uint8(batch.images[1]), pixels[1])


def test_hf_offline_hub_id_is_one_line_error() -> None:
    pytest.importorskip("datasets", reason="optional 'datasets' package not installed")
    with pytest.raises(UserError, match="hf: cannot load 'no-such-org/no-such-set'") as info:
        open_images("hf:no-such-org/no-such-set:test", 16)
    assert "\n" not in str(info.value)


def test_hf_without_the_package_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(UserError, match=r"pip install 'latentbench\[datasets\]'"):
        open_images("hf:cifar10", 16)


# ------------------------------------------------------------------ shapes dispatch


class FakeShapes(torch.utils.data.Dataset):
    def __init__(self, n: int, image_size: int, seed: int) -> None:
        self.n, self.image_size, self.seed = n, image_size, seed
        self.spec, self.label_names = f"shapes:{n}", ["circle"]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        image = torch.full((3, self.image_size, self.image_size), i / self.n)
        return {"image": image, "key": f"{i}", "label": 0, "caption": "", "error": None}


def test_shapes_dispatch_is_lazy_and_limited(monkeypatch) -> None:
    module = types.ModuleType("latentbench.data.shapes")
    module.ShapesDataset = FakeShapes
    monkeypatch.setitem(sys.modules, "latentbench.data.shapes", module)
    ds = open_images("shapes", 8, seed=3)
    assert (len(ds), ds.image_size, ds.seed) == (1000, 8, 3)
    limited = open_images("shapes:50", 8, limit=4)
    assert len(limited) == 4 and limited.spec == "shapes:50"
    assert [b.keys for b in iter_batches(limited, 3)] == [["0", "1", "2"], ["3"]]
    with pytest.raises(UserError, match="whole number"):
        open_images("shapes:many", 8)


def test_shapes_single_has_one_object_labelled_by_its_shape() -> None:
    ds = open_images("shapes-single:12", 32)
    many = open_images("shapes:12", 32)
    assert ds.spec == "shapes-single:12" and len(ds) == 12  # its own cache key
    for i in range(len(ds)):
        scene = ds.scene(i)
        assert len(scene.objects) == 1
        assert ds[i]["label"] == ds.label_names.index(scene.objects[0].shape.value)
    assert any(len(many.scene(i).objects) > 1 for i in range(len(many)))
    with pytest.raises(UserError, match="shapes-single:N needs N >= 1"):
        open_images("shapes-single:0", 8)


# ------------------------------------------------------------------ export


def test_export_names_and_native_size(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    a = rng_pixels((9, 14, 3), 1)
    Image.fromarray(a).save(src / "sub" / "a.png")
    Image.fromarray(rng_pixels((5, 5, 3), 2)).save(src / "sub" / "a.bmp")
    written, skipped = export_images(open_images(str(src), None), tmp_path / "out")
    assert (written, skipped) == (2, [])
    assert sorted(p.name for p in (tmp_path / "out" / "sub").iterdir()) == ["a.png", "a.png.png"]
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "out/sub/a.png.png")), a)
    assert str(export_name("../../etc/x.jpg")) == "etc/x.png"
    assert str(export_name("astronaut")) == "astronaut.png"
