"""Fidelity metrics and fingerprints (numpy only)."""
import hashlib
import math
import subprocess
import sys

import numpy as np
import pytest

from aigif.errors import ConfigError
from aigif.fidelity import (
    CLOSE, EXACT, MISMATCH, UNVERIFIED, FidelityReport, Thresholds, check_fingerprint, compare_images, fingerprint,
    luma_grid, ms_ssim, perceptual_hash, perceptual_psnr, pixel_sha256, psnr, ssim,
)
from aigif.fidelity.metrics import ms_ssim_scales


def _img(seed=0, h=64, w=64):
    rng = np.random.default_rng(seed)
    # smooth-ish content so SSIM behaves like on real images
    base = rng.integers(0, 256, size=(h // 8 + 1, w // 8 + 1, 3)).astype(np.float64)
    up = np.kron(base, np.ones((8, 8, 1)))[:h, :w]
    return np.clip(up + rng.normal(0, 4, size=up.shape), 0, 255).astype(np.uint8)


def test_identical_images():
    a = _img()
    assert psnr(a, a) == math.inf
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert ms_ssim(a, a) == pytest.approx(1.0, abs=1e-12)


def test_psnr_known_noise_level():
    rng = np.random.default_rng(1)
    a = np.full((256, 256, 3), 128.0)
    b = a + rng.normal(0, 10, size=a.shape)           # sigma 10, no clipping at mid-grey
    expected = 10 * math.log10(255**2 / 100)          # 28.13 dB
    assert psnr(a, b) == pytest.approx(expected, abs=0.1)
    assert psnr(a.astype(np.uint8), np.clip(np.round(b), 0, 255).astype(np.uint8)) == pytest.approx(expected, abs=0.15)


def test_psnr_exact_value():
    a = np.zeros((4, 4), np.uint8)
    b = a.copy()
    b[0, 0] = 16                                        # mse = 256/16 = 16
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 16), abs=1e-9)


def test_ssim_of_constant_images_is_the_luminance_term():
    a, b = np.full((32, 32), 100.0), np.full((32, 32), 120.0)
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx((2 * 100 * 120 + c1) / (100**2 + 120**2 + c1), abs=1e-12)


def test_ssim_decreases_with_noise_and_is_symmetric():
    a = _img(2)
    rng = np.random.default_rng(3)
    noisy = [np.clip(a + rng.normal(0, s, a.shape), 0, 255).astype(np.uint8) for s in (2, 8, 32)]
    values = [ssim(a, n) for n in noisy]
    assert values[0] > values[1] > values[2]
    assert ssim(a, noisy[1]) == pytest.approx(ssim(noisy[1], a), abs=1e-12)
    ms = [ms_ssim(a, n) for n in noisy]
    assert 1 > ms[0] > ms[1] > ms[2] > 0


def test_ssim_small_images_and_shapes():
    a = _img(4, 8, 8)
    assert 0 < ssim(a, 255 - a) < 0.5
    assert ms_ssim_scales(64, 64) == 3 and ms_ssim_scales(512, 512) == 5 and ms_ssim_scales(8, 8) == 1
    with pytest.raises(ConfigError):
        psnr(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))


def test_pixel_hash_definition():
    a = _img(5)
    assert pixel_sha256(a) == hashlib.sha256(a.tobytes()).hexdigest()[:16]
    b = a.copy()
    b[10, 10, 1] ^= 1
    assert pixel_sha256(b) != pixel_sha256(a)
    with pytest.raises(ConfigError):
        pixel_sha256(a.astype(np.float32))


def test_luma_grid_definition():
    a = np.zeros((16, 16, 3), np.uint8)
    a[:, :8] = 255
    g = luma_grid(a)
    assert g.shape == (4, 4) and (g[:, :2] == 255).all() and (g[:, 2:] == 0).all()
    # uneven sizes: cell (i, j) spans floor(i*H/4)..floor((i+1)*H/4)
    b = _img(6, 13, 21)
    bi = b.astype(np.int64)
    y = (299 * bi[..., 0] + 587 * bi[..., 1] + 114 * bi[..., 2] + 500) // 1000
    r0, r1, c0, c1 = (2 * 13) // 4, (3 * 13) // 4, (1 * 21) // 4, (2 * 21) // 4
    cell = y[r0:r1, c0:c1]
    assert luma_grid(b)[2, 1] == (cell.sum() + cell.size // 2) // cell.size
    assert luma_grid(np.zeros((3, 30, 3), np.uint8)) is None
    # luma4x4q2: top 2 bits of each cell, 4 cells per byte, first cell highest
    q = (luma_grid(b).reshape(-1) >> 6).tolist()
    assert perceptual_hash(b) == bytes(q[i] << 6 | q[i + 1] << 4 | q[i + 2] << 2 | q[i + 3] for i in range(0, 16, 4)).hex()


def test_perceptual_distance():
    a = _img(7)
    assert perceptual_psnr(a, perceptual_hash(a)) == math.inf
    assert perceptual_psnr(a, luma_grid(a).tobytes().hex()) == math.inf       # older files: one byte per cell
    assert perceptual_psnr(a, perceptual_hash(_img(8))) < 25
    with pytest.raises(ConfigError):
        perceptual_psnr(a, "00")


def test_perceptual_q2_distance_is_the_distance_outside_each_cells_range():
    """A cell mean 3 levels past its recorded range counts 3; inside the range counts 0."""
    flat = np.full((8, 8, 3), 100, np.uint8)                    # luma 100 -> q2 code 1: range 64..127
    assert perceptual_psnr(flat, perceptual_hash(flat)) == math.inf
    brighter = np.full((8, 8, 3), 130, np.uint8)                # 130 is 3 above 127 in every cell
    assert perceptual_psnr(brighter, perceptual_hash(flat)) == pytest.approx(10 * math.log10(255**2 / 9))
    near = np.full((8, 8, 3), 127, np.uint8)                    # still inside
    assert perceptual_psnr(near, perceptual_hash(flat)) == math.inf


def test_check_fingerprint_statuses():
    a = _img(9)
    fp = fingerprint(a)
    assert check_fingerprint(a, fp).status == EXACT
    b = a.copy()
    b[0, 0] = b[0, 0] ^ 1                               # invisible change: close, not exact
    r = check_fingerprint(b, fp)
    assert r.status == CLOSE and r.exit_code == 3
    r = check_fingerprint(_img(10), fp)
    assert r.status == MISMATCH and r.exit_code == 4
    assert check_fingerprint(a, None).status == UNVERIFIED
    assert check_fingerprint(_img(9, 32, 32), fp).status == MISMATCH   # other size


def test_compare_images_thresholds():
    a = _img(11)
    rng = np.random.default_rng(12)
    small = np.clip(a + rng.normal(0, 2, a.shape), 0, 255).astype(np.uint8)
    r = compare_images(a, a)
    assert r.status == EXACT and r.psnr == math.inf and r.ssim == 1.0
    r = compare_images(a, small)
    assert r.status == CLOSE and r.psnr > 35 and 0.9 < r.ssim < 1 and r.ms_ssim is not None
    assert compare_images(a, small, Thresholds(min_psnr=60)).status == MISMATCH
    assert compare_images(a, _img(13)).status == MISMATCH
    assert "PSNR" in compare_images(a, small).summary()


def test_report_is_a_dataclass_with_exit_codes():
    r = FidelityReport("close", psnr=31.0, ssim=0.95)
    assert r.exit_code == 3 and r.to_dict()["status"] == "close"


def test_fidelity_does_not_import_torch():
    code = "import sys, aigif.fidelity, aigif.engine; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
