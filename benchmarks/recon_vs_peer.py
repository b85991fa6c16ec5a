"""Reconstruction benchmark speed: `latentbench recon` vs the chain researchers use today.

Both sides reconstruct the same images with the same 4 spaces and compute PSNR, SSIM, LPIPS
(alex) and FID (torch-fidelity's Inception). The peer chain, per space, as it is usually run:
reconstruct and save PNGs, `torch_fidelity.calculate_metrics` on the two folders (Inception on
both), scikit-image PSNR/SSIM per image pair, `lpips` per image pair. latentbench: one
`run_recon` over all spaces (reference statistics computed once, one decode, batched metrics).

Offline the real Inception and AlexNet weights are absent, so both sides use the same He-
initialised Inception stand-in and LPIPS heads on a random AlexNet: the work per image is the
same as with the real weights, so the speed ratio holds; the metric values are not meaningful.

    python benchmarks/recon_vs_peer.py [--images 16] [--image-size 256] [--repeats 1]

writes benchmarks/results/recon_vs_peer.json (images/s of both and their ratio).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from latentbench.runs import device_info, git_hash, package_versions

RESULTS = Path(__file__).resolve().parent / "results"
SPACES = ("taef2", "taesd", "pixel", "pixel@64")  # taesd: random weights unless present


def prepare(work: Path, n: int, size: int) -> tuple[Path, list[str]]:
    """Source PNGs (the preprocessed uint8 images both sides read) and the space folders."""
    from PIL import Image

    from latentbench.data import iter_batches, open_images
    from latentbench.metrics.pixel import to_uint8
    from latentbench.spaces import build_space

    photos = open_images("skimage", size)
    shapes = open_images(f"shapes:{n}", size)
    src = work / "src"
    src.mkdir()
    count = 0
    for ds in (photos, shapes):
        for batch in iter_batches(ds, 8):
            for key, img in zip(batch.keys, to_uint8(batch.images)):
                if count < n:
                    name = f"{count:04d}_{Path(key).stem}.png"
                    Image.fromarray(img.permute(1, 2, 0).numpy()).save(src / name)
                    count += 1
    spaces = []
    for name in SPACES:
        if name == "pixel@64":
            build_space("pixel", image_size=64).save(work / "pixel64")
            spaces.append(str(work / "pixel64"))
        elif name == "taesd" and not _has_weights("taesd"):
            build_space("taesd", pretrained=False, image_size=size).save(work / "taesd-random")
            spaces.append(str(work / "taesd-random"))
        else:
            spaces.append(name)
    return src, spaces


def _has_weights(name: str) -> bool:
    from latentbench.errors import UserError
    from latentbench.spaces import build_space

    try:
        build_space(name)
        return True
    except UserError:
        return False


def run_latentbench(src: Path, spaces: list[str], size: int, out: Path) -> tuple[float, float]:
    """(total seconds, seconds of which spent in the spaces' encode + decode)."""
    from latentbench.bench.recon import ReconConfig, run_recon
    from latentbench.metrics.pixel import LPIPSNet

    cfg = ReconConfig(
        spaces=spaces,
        data=str(src),
        image_size=size,
        batch_size=8,
        fd=["inception"],
        lpips=[LPIPSNet.ALEX],
        lpips_random_backbone=True,
    )
    t0 = time.perf_counter()
    results = run_recon(cfg, out, quiet=True, echo=lambda m: None)
    total = time.perf_counter() - t0
    in_spaces = sum(
        m["num_images"] / m["encode_images_per_s"] + m["num_images"] / m["decode_images_per_s"]
        for m in results.values()
    )
    return total, in_spaces


def run_peer(
    src: Path, spaces: list[str], size: int, work: Path, inception: Path
) -> tuple[float, float]:
    """Per space: save reconstructions, torch-fidelity FID, skimage PSNR/SSIM, lpips per pair.

    Returns (total seconds, seconds of which spent in the spaces' encode + decode)."""
    import lpips
    import torch_fidelity
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from latentbench.spaces import build_space

    files = sorted(src.glob("*.png"))
    in_spaces = 0.0
    t0 = time.perf_counter()
    lpips_net = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    for s, name in enumerate(spaces):
        space = build_space(name, **({} if Path(name).is_dir() else {"image_size": size})).eval()
        rec = work / f"peer_rec{s}"
        rec.mkdir()
        with torch.inference_mode():
            for i in range(0, len(files), 8):
                chunk = files[i : i + 8]
                x = torch.stack(
                    [torch.from_numpy(np.asarray(Image.open(f))).permute(2, 0, 1) for f in chunk]
                )
                x = x.float() / 127.5 - 1
                xin = torch.nn.functional.interpolate(
                    x, size=space.spec.image_size, mode="bicubic", antialias=True
                )
                t_space = time.perf_counter()
                y = space.decode(space.encode(xin))
                in_spaces += time.perf_counter() - t_space
                if y.shape[-1] != size:
                    y = torch.nn.functional.interpolate(
                        y, size=size, mode="bicubic", antialias=True
                    )
                y = ((y.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
                for f, img in zip(chunk, y):
                    Image.fromarray(img.permute(1, 2, 0).numpy()).save(rec / f.name)
        torch_fidelity.calculate_metrics(
            input1=str(src),
            input2=str(rec),
            fid=True,
            cuda=False,
            verbose=False,
            cache=False,
            feature_extractor_weights_path=str(inception),
            batch_size=8,
        )
        for f in files:
            a = np.asarray(Image.open(f))
            b = np.asarray(Image.open(rec / f.name))
            peak_signal_noise_ratio(a, b, data_range=255)
            structural_similarity(
                a,
                b,
                channel_axis=-1,
                data_range=255,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
            )
            ta = torch.from_numpy(a).permute(2, 0, 1)[None].float() / 127.5 - 1
            tb = torch.from_numpy(b).permute(2, 0, 1)[None].float() / 127.5 - 1
            with torch.no_grad():
                lpips_net(ta, tb)
    return time.perf_counter() - t0, in_spaces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "recon_vs_peer.json")
    args = parser.parse_args()

    from latentbench.testing.standins import write_inception_standin

    commit = git_hash()  # at the start: the code measured, whatever changes meanwhile
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # One weights folder for both sides: the stand-in Inception under its real file name,
        # and taef2's real weights linked from $LATENTBENCH_WEIGHTS or ../shared/weights.
        inception = write_inception_standin(work / "weights")
        shared = os.environ.get("LATENTBENCH_WEIGHTS") or str(
            Path(__file__).resolve().parents[2] / "shared" / "weights"
        )
        if (Path(shared) / "taesd").is_dir():
            (work / "weights" / "taesd").symlink_to(Path(shared) / "taesd")
        os.environ["LATENTBENCH_WEIGHTS"] = str(work / "weights")
        src, spaces = prepare(work, args.images, args.image_size)
        for r in range(args.repeats):
            os.environ["LATENTBENCH_CACHE"] = str(work / f"cache{r}")  # cold: reference pass counts
            load_ours = os.getloadavg()[0]  # a shared machine: the load each side started at
            ours, ours_spaces = run_latentbench(src, spaces, args.image_size, work / f"ours{r}")
            peer_work = work / f"peer{r}"
            peer_work.mkdir()
            load_peer = os.getloadavg()[0]
            peer, peer_spaces = run_peer(src, spaces, args.image_size, peer_work, inception)
            pairs = args.images * len(spaces)
            runs.append(
                {
                    "latentbench_seconds": ours,
                    "peer_seconds": peer,
                    "latentbench_pairs_per_s": pairs / ours,
                    "peer_pairs_per_s": pairs / peer,
                    "ratio": peer / ours,
                    # the same encode/decode runs on both sides; without it, the metric chains:
                    "latentbench_space_seconds": ours_spaces,
                    "peer_space_seconds": peer_spaces,
                    "metrics_only_ratio": (peer - peer_spaces) / (ours - ours_spaces),
                    "load_average_1min_at_start": {"latentbench": load_ours, "peer": load_peer},
                }
            )
            print(json.dumps(runs[-1]))
    ratios = sorted(r["ratio"] for r in runs)
    metric_ratios = sorted(r["metrics_only_ratio"] for r in runs)
    result = {
        "benchmark": "recon_vs_peer",
        "what": "image pairs/s for PSNR+SSIM+LPIPS(alex)+FID(Inception) over 4 spaces",
        "spaces": list(SPACES),
        "images": args.images,
        "image_size": args.image_size,
        "runs": runs,
        "median_ratio": ratios[len(ratios) // 2],
        "median_metrics_only_ratio": metric_ratios[len(metric_ratios) // 2],
        "note": "offline: He-init Inception stand-in and random-backbone LPIPS on both sides",
        "load_average": os.getloadavg(),
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "git": commit,  # the commit measured ('+dirty': with uncommitted changes)
        "device": device_info(),
        "versions": package_versions(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"latentbench vs peer: {result['median_ratio']:.2f}x whole chain, "
        f"{result['median_metrics_only_ratio']:.2f}x metrics only -> {args.out}"
    )


if __name__ == "__main__":
    main()
