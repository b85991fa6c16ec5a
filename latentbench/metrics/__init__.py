"""Reconstruction metrics (PSNR, SSIM, LPIPS) and Frechet distances over registered extractors.

Every metric function or object has a ``variant`` dict (``psnr.variant`` = ``PSNR_VARIANT``,
``ssim.variant``, ``LPIPSMetric.variant``, ``FeatureExtractor.variant``,
``frechet_distance.variant``) that runners write next to its value.
Heavy libraries (lpips, torch-fidelity, timm, transformers) are imported only when an object that
needs them is built.
"""

from latentbench.metrics.features import (
    FEATURE_EXTRACTORS,
    FeatureExtractor,
    build_extractor,
)
from latentbench.metrics.fid import (
    FRECHET_VARIANT,
    FeatureStats,
    cached_reference_stats,
    default_cache_dir,
    frechet_distance,
)
from latentbench.metrics.pixel import (
    MAX_PSNR_DB,
    PSNR_VARIANT,
    SSIM_VARIANT,
    LPIPSMetric,
    LPIPSNet,
    psnr,
    ssim,
)
from latentbench.metrics.quantize import from_uint8, to_uint8

__all__ = [
    "FEATURE_EXTRACTORS",
    "FRECHET_VARIANT",
    "MAX_PSNR_DB",
    "PSNR_VARIANT",
    "SSIM_VARIANT",
    "FeatureExtractor",
    "FeatureStats",
    "LPIPSMetric",
    "LPIPSNet",
    "build_extractor",
    "cached_reference_stats",
    "default_cache_dir",
    "frechet_distance",
    "from_uint8",
    "psnr",
    "ssim",
    "to_uint8",
]
