"""Fidelity decisions: is a regenerated image exact, close, or a mismatch? (spec/engine.md "Fidelity")."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..syntax.elements import Fingerprint
from .fingerprint import as_rgb8, luma_grid, perceptual_psnr, pixel_sha256
from .metrics import ms_ssim, psnr, ssim

EXACT, CLOSE, MISMATCH, UNVERIFIED = "exact", "close", "mismatch", "unverified"
EXIT_CODES = {EXACT: 0, CLOSE: 3, MISMATCH: 4, UNVERIFIED: 0}


@dataclass(frozen=True)
class Thresholds:
    """Where 'close' ends. Full reference: PSNR and SSIM; no reference: PSNR of the luma4x4 grids."""

    min_psnr: float = 30.0
    min_ssim: float = 0.90
    min_perceptual_psnr: float = 30.0


@dataclass(frozen=True)
class FidelityReport:
    status: str                      # exact | close | mismatch | unverified
    psnr: float | None = None        # full-reference PSNR (dB), when a reference image was given
    ssim: float | None = None
    ms_ssim: float | None = None
    perceptual_psnr: float | None = None   # PSNR of the 4x4 luma grids (no-reference check)
    reference: str = "fingerprint"   # 'fingerprint' or 'image'
    platform_diffs: tuple[str, ...] = field(default_factory=tuple)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def summary(self) -> str:
        if self.status == EXACT:
            s = "exact"
        elif self.status == UNVERIFIED:
            s = "unverified (the file has no fingerprint)"
        elif self.psnr is not None:
            s = f"{self.status} (PSNR {_db(self.psnr)}, SSIM {self.ssim:.4f})"
        else:
            s = f"{self.status} (4x4 luma PSNR {_db(self.perceptual_psnr)}; pass the original image to `aigif verify` for PSNR/SSIM)"
        if self.platform_diffs and self.status != EXACT:
            s += "; platform differs: " + ", ".join(self.platform_diffs)
        return s

    def to_dict(self) -> dict:
        return {"status": self.status, "psnr": self.psnr, "ssim": self.ssim, "ms_ssim": self.ms_ssim,
                "perceptual_psnr": self.perceptual_psnr, "reference": self.reference,
                "platform_diffs": list(self.platform_diffs)}


def _db(v: float | None) -> str:
    return "n/a" if v is None else ("inf dB" if math.isinf(v) else f"{v:.2f} dB")


def check_fingerprint(image, fp: Fingerprint | None, thresholds: Thresholds = Thresholds(),
                      platform_diffs: tuple[str, ...] = ()) -> FidelityReport:
    """No-reference check of a regenerated *image* against the recorded fingerprint."""
    a = as_rgb8(image)
    if fp is None:
        return FidelityReport(UNVERIFIED, platform_diffs=platform_diffs)
    if (fp.width, fp.height) != (a.shape[1], a.shape[0]):
        return FidelityReport(MISMATCH, perceptual_psnr=None, platform_diffs=platform_diffs + (f"size {a.shape[1]}x{a.shape[0]} vs recorded {fp.width}x{fp.height}",))
    if pixel_sha256(a, len(fp.pixel_sha256)) == fp.pixel_sha256:
        return FidelityReport(EXACT, perceptual_psnr=math.inf, platform_diffs=platform_diffs)
    grid = luma_grid(a)
    if fp.perceptual is None or grid is None:
        return FidelityReport(MISMATCH, platform_diffs=platform_diffs)
    try:
        p = perceptual_psnr(grid, fp.perceptual)
    except ConfigError:  # a perceptual hash of a kind this version does not know
        return FidelityReport(MISMATCH, platform_diffs=platform_diffs)
    return FidelityReport(CLOSE if p >= thresholds.min_perceptual_psnr else MISMATCH, perceptual_psnr=p, platform_diffs=platform_diffs)


def compare_images(reference, image, thresholds: Thresholds = Thresholds(),
                   platform_diffs: tuple[str, ...] = ()) -> FidelityReport:
    """Full-reference comparison of *image* with the real *reference* image."""
    ref, img = as_rgb8(reference), as_rgb8(image)
    if ref.shape != img.shape:
        return FidelityReport(MISMATCH, reference="image",
                              platform_diffs=platform_diffs + (f"size {img.shape[1]}x{img.shape[0]} vs image {ref.shape[1]}x{ref.shape[0]}",))
    if np.array_equal(ref, img):
        return FidelityReport(EXACT, psnr=math.inf, ssim=1.0, ms_ssim=1.0, reference="image", platform_diffs=platform_diffs)
    p, s, m = psnr(ref, img), ssim(ref, img), ms_ssim(ref, img)
    ok = p >= thresholds.min_psnr and s >= thresholds.min_ssim
    return FidelityReport(CLOSE if ok else MISMATCH, psnr=p, ssim=s, ms_ssim=m, reference="image", platform_diffs=platform_diffs)
