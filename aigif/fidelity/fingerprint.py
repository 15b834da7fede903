"""Fingerprints of generated pixels (spec/engine.md "Fingerprint").

* ``pixel_sha256``: sha256 of the image as RGB uint8 bytes in row-major order
  (row 0 first, each pixel R, G, B; no header), first 8 bytes as 16 lower-case
  hex digits (64 bits: an accidental match is out of reach; this is a check of
  regeneration, not a signature).
* ``perceptual`` ("luma4x4"): the image cut into a 4x4 grid (row ``i`` spans
  ``floor(i*H/8) .. floor((i+1)*H/8)``, columns alike), each cell's mean of the
  integer luma ``Y = (299 R + 587 G + 114 B + 500) // 1000``, rounded half up
  (``(sum + n//2) // n``), one byte per cell, cells row-major: 16 bytes, 32 hex
  digits. Integer arithmetic only, so every implementation agrees bit for bit.
  Images smaller than 4x4 have no perceptual hash. Both are kept small because
  they sit in every generated file beside a ~50-byte syntax.
"""
from __future__ import annotations

import hashlib

import numpy as np

from ..errors import ConfigError
from ..syntax.elements import Fingerprint
from .metrics import psnr_of_mse

PIXEL_HASH_HEX = 16
GRID = 4
PERCEPTUAL_HEX = GRID * GRID * 2


def as_rgb8(image) -> np.ndarray:
    """Check and return an HxWx3 uint8 C-contiguous array."""
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ConfigError(f"expected an HxWx3 uint8 RGB image, got {a.dtype} {a.shape}")
    return np.ascontiguousarray(a)


def pixel_sha256(image, nhex: int = PIXEL_HASH_HEX) -> str:
    """sha256 hex of the RGB uint8 row-major bytes, truncated to *nhex* digits."""
    return hashlib.sha256(as_rgb8(image).tobytes()).hexdigest()[:nhex]


def luma(image) -> np.ndarray:
    a = as_rgb8(image).astype(np.int64)
    return (299 * a[..., 0] + 587 * a[..., 1] + 114 * a[..., 2] + 500) // 1000


def luma_grid(image) -> np.ndarray | None:
    """The 4x4 block-mean luma grid (uint8), or None for images under 4x4."""
    y = luma(image)
    h, w = y.shape
    if h < GRID or w < GRID:
        return None
    rows = [(i * h) // GRID for i in range(GRID + 1)]
    cols = [(j * w) // GRID for j in range(GRID + 1)]
    s = np.add.reduceat(np.add.reduceat(y, rows[:-1], axis=0), cols[:-1], axis=1)
    n = np.outer(np.diff(rows), np.diff(cols))
    return ((s + n // 2) // n).astype(np.uint8)


def perceptual_hash(image) -> str | None:
    g = luma_grid(image)
    return None if g is None else g.tobytes().hex()


def _grid_of(hexstr: str) -> np.ndarray:
    if len(hexstr) != PERCEPTUAL_HEX:
        raise ConfigError(f"perceptual hash must be {PERCEPTUAL_HEX} hex digits (luma4x4), got {len(hexstr)}")
    try:
        return np.frombuffer(bytes.fromhex(hexstr), dtype=np.uint8).reshape(GRID, GRID)
    except ValueError:
        raise ConfigError("perceptual hash is not hex") from None


def perceptual_psnr(h1: str, h2: str) -> float:
    """PSNR (dB) between two luma4x4 grids: a cheap no-reference proxy; ``inf`` when equal."""
    a, b = _grid_of(h1).astype(np.float64), _grid_of(h2).astype(np.float64)
    return psnr_of_mse(float(np.mean((a - b) ** 2)))


def fingerprint(image) -> Fingerprint:
    """The Fingerprint element recorded by ``generate`` for *image*."""
    a = as_rgb8(image)
    return Fingerprint(pixel_sha256=pixel_sha256(a), width=a.shape[1], height=a.shape[0], perceptual=perceptual_hash(a))
