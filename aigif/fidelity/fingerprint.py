"""Fingerprints of generated pixels (spec/engine.md "Fingerprint").

* ``pixel_sha256``: sha256 of the image as RGB uint8 bytes in row-major order
  (row 0 first, each pixel R, G, B; no header), first 8 bytes as 16 lower-case
  hex digits (64 bits: an accidental match is out of reach; this is a check of
  regeneration, not a signature).
* ``perceptual``: the image cut into a 4x4 grid (row ``i`` spans
  ``floor(i*H/4) .. floor((i+1)*H/4)``, columns alike), each cell's mean of the
  integer luma ``Y = (299 R + 587 G + 114 B + 500) // 1000``, rounded half up
  (``(sum + n//2) // n``). Writers store "luma4x4q2": each cell's top 2 bits
  (``mean >> 6``), 4 cells per byte, first cell in the highest bits: 4 bytes,
  8 hex digits. Older files hold "luma4x4": one byte per cell, 32 hex digits.
  Integer arithmetic only, so every implementation agrees bit for bit. Images
  smaller than 4x4 have no perceptual hash. Both are small because they sit in
  every generated file beside a ~50-byte syntax.
"""
from __future__ import annotations

import hashlib

import numpy as np

from ..errors import ConfigError
from ..syntax.elements import Fingerprint
from .metrics import psnr_of_mse

PIXEL_HASH_HEX = 16
GRID = 4
LUMA4X4_HEX = GRID * GRID * 2          # one byte per cell (older files)
Q2_SHIFT = 6                           # luma4x4q2: a cell keeps its top 2 bits
PERCEPTUAL_HEX = GRID * GRID * (8 - Q2_SHIFT) // 4


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
    """The luma4x4q2 hash (8 hex digits), or None for images under 4x4."""
    g = luma_grid(image)
    if g is None:
        return None
    q = (g.reshape(-1) >> Q2_SHIFT).reshape(-1, 4).astype(np.uint32)
    return bytes((q[:, 0] << 6 | q[:, 1] << 4 | q[:, 2] << 2 | q[:, 3]).astype(np.uint8)).hex()


def _intervals(hexstr: str) -> tuple[np.ndarray, np.ndarray]:
    """Per cell the range [lo, hi] of luma means a recorded hash allows (one value for luma4x4)."""
    try:
        raw = np.frombuffer(bytes.fromhex(hexstr), dtype=np.uint8)
    except ValueError:
        raise ConfigError("perceptual hash is not hex") from None
    if len(hexstr) == LUMA4X4_HEX:
        return raw.astype(np.int64), raw.astype(np.int64)
    if len(hexstr) == PERCEPTUAL_HEX:
        q = np.stack([raw >> 6, raw >> 4 & 3, raw >> 2 & 3, raw & 3], axis=1).reshape(-1).astype(np.int64)
        return q << Q2_SHIFT, (q << Q2_SHIFT) + (1 << Q2_SHIFT) - 1
    raise ConfigError(f"perceptual hash must be {PERCEPTUAL_HEX} (luma4x4q2) or {LUMA4X4_HEX} (luma4x4) hex digits, got {len(hexstr)}")


def perceptual_psnr(image_or_grid, recorded: str) -> float:
    """PSNR (dB) of how far an image's 4x4 luma means lie outside what *recorded* allows; ``inf`` inside.

    A cheap no-reference proxy: a close regeneration keeps every cell in its
    range (or just outside it); another image misses most of them.
    """
    g = np.asarray(image_or_grid)
    g = g if g.shape == (GRID, GRID) else luma_grid(g)
    if g is None:
        raise ConfigError("image is smaller than 4x4: no perceptual hash")
    lo, hi = _intervals(recorded)
    v = g.reshape(-1).astype(np.int64)
    d = np.maximum(0, np.maximum(lo - v, v - hi)).astype(np.float64)
    return psnr_of_mse(float(np.mean(d**2)))


def fingerprint(image) -> Fingerprint:
    """The Fingerprint element recorded by ``generate`` for *image*."""
    a = as_rgb8(image)
    return Fingerprint(pixel_sha256=pixel_sha256(a), width=a.shape[1], height=a.shape[0], perceptual=perceptual_hash(a))
