"""Recompute a recon run's PSNR and SSIM with scikit-image alone, from the PNGs it saved.

    latentbench recon --space taef2 --data photos --image-size 256 --save-images --out runs/check
    python scripts/verify_recon_with_skimage.py runs/check

Reads images/original/*.png and images/recon/<space>/*.png (the exact uint8 images the metrics
saw), computes skimage's peak_signal_noise_ratio and structural_similarity (Gaussian window,
sigma 1.5, population covariance, data range 255) per image, and prints them beside the values in
per_image.csv. Exits 1 if any differs by more than 1e-3. Uses no latentbench code.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

TOLERANCE = 1e-3
MAX_PSNR_DB = 100.0  # latentbench caps identical images (skimage: +inf)


def load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def main(run: Path) -> int:
    with open(run / "per_image.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    worst = 0.0
    print(f"{'space':<12} {'image':<24} {'psnr':>9} {'skimage':>9} {'ssim':>8} {'skimage':>8}")
    for row in rows:
        name = Path(row["key"]).with_suffix("").as_posix().replace("/", "__") + ".png"
        a = load(run / "images" / "original" / name)
        b = load(run / "images" / "recon" / row["space"] / name)
        p = min(peak_signal_noise_ratio(a, b, data_range=255), MAX_PSNR_DB)
        s = structural_similarity(
            a,
            b,
            channel_axis=-1,
            data_range=255,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        ours_p, ours_s = float(row["psnr"]), float(row["ssim"])
        worst = max(worst, abs(ours_p - p), abs(ours_s - s))
        print(f"{row['space']:<12} {row['key']:<24} {ours_p:9.4f} {p:9.4f} {ours_s:8.5f} {s:8.5f}")
    print(f"largest difference: {worst:.2e} (tolerance {TOLERANCE})")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1])))
