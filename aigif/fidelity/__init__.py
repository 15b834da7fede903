"""Fidelity checking of regenerated images (numpy only, no torch).

    from aigif.fidelity import psnr, ssim, ms_ssim, fingerprint, check_fingerprint, compare_images
"""
from __future__ import annotations

from .fingerprint import fingerprint, luma_grid, perceptual_hash, perceptual_psnr, pixel_sha256
from .metrics import ms_ssim, mse, psnr, ssim
from .report import CLOSE, EXACT, EXIT_CODES, MISMATCH, UNVERIFIED, FidelityReport, Thresholds, check_fingerprint, compare_images

__all__ = [
    "fingerprint", "luma_grid", "perceptual_hash", "perceptual_psnr", "pixel_sha256", "ms_ssim", "mse", "psnr", "ssim",
    "CLOSE", "EXACT", "EXIT_CODES", "MISMATCH", "UNVERIFIED", "FidelityReport", "Thresholds", "check_fingerprint",
    "compare_images",
]
