"""Per-image post filter of NVTC payloads: least-squares (Wiener) filters sent with the image.

The block's first byte is its *shape*: 1 is the single filter below, 2 the
activity-classified filters of :mod:`.classfilter`, 3 "run the model's
restoration network (:mod:`.restore`) first", followed by an optional shape-1
or shape-2 block (a :class:`Restored`). The encoder writes 3 or 2; shape 1
still decodes. :func:`unpack` and :func:`pack` take every shape, :func:`apply`
the integer ones (the caller runs the network, it needs the model).

The shared decoder is trained for every image at once; a few dozen integer
weights fitted by the encoder to *this* image remove part of what is left
(on Kodak about +0.08 dB for ~0.0013 bpp of weights, BD-rate about 1.5
points lower). Like the adaptive loop filter of VVC it works on the decoded
8-bit image with integer arithmetic only, so it is exact on every machine.

Per output channel c (``spec/codec-nvtc.md`` section 5a)::

    acc = sum_t w[c, t] * P[c, y+dy_t, x+dx_t]  +  sum_{o != c} v[c, o] * P[o, y, x]  +  b[c]
    out = clip(P[c, y, x] + ((acc + 2**(S-1)) >> S), 0, 255)

P is the decoded image with edge replication; the taps ``TAPS`` are the 5x5
square without its corners. Block: ``shape u8 | shift u8 | 3 x 24 zigzag
LEB128 varints`` (per channel: 21 tap weights, 2 cross-channel weights in
channel order, the offset).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import CorruptError
from . import classfilter

#: shape id 1: offsets (dy, dx) of the 5x5 square without its 4 corners, raster order
SHAPE_DIAMOND5 = 1
TAPS = tuple((dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if abs(dy) + abs(dx) <= 3)
MARGIN = 2
WEIGHTS_PER_CHANNEL = len(TAPS) + 3  # taps, two cross-channel centres, offset
DEFAULT_SHIFT = 8
MAX_SHIFT = 15
#: a weight's varint has at most 3 bytes (|w| < 2**20), so a block is at most 2 + 3 * 24 * 3 bytes
MAX_VARINT_BYTES = 3
MAX_BLOCK_BYTES = 2 + 3 * WEIGHTS_PER_CHANNEL * MAX_VARINT_BYTES
#: pixels filtered (or fitted) at once, in whole rows: working memory stays ~25 MB whatever the image size
STRIP_PIXELS = 1 << 16


#: shape id 3: the restoration network, then the rest of the block (empty, shape 1 or shape 2)
SHAPE_RESTORED = 3


@dataclass(frozen=True)
class Restored:
    """Shape 3: the model's restoration network, then ``inner`` (a shape-1 / shape-2 filter, or None)."""

    inner: object = None


@dataclass(frozen=True)
class PostFilter:
    """``weights`` (3, 24) int64 in units of 2**-shift of a level."""

    shift: int
    weights: np.ndarray


def _features(padded: np.ndarray, c: int, a: int, b: int, w: int) -> np.ndarray:
    """(rows*w, 23) int64: channel c's taps and the other channels' centres of output rows a..b-1."""
    cols = [padded[a + MARGIN + dy : b + MARGIN + dy, MARGIN + dx : MARGIN + dx + w, c] for dy, dx in TAPS]
    cols += [padded[a + MARGIN : b + MARGIN, MARGIN : MARGIN + w, o] for o in range(3) if o != c]
    return np.stack(cols, -1).reshape(-1, len(cols)).astype(np.int64)


def _pad(img: np.ndarray) -> np.ndarray:
    return np.pad(img, ((MARGIN, MARGIN), (MARGIN, MARGIN), (0, 0)), mode="edge")




def apply(img: np.ndarray, pf) -> np.ndarray:
    """The filtered image (uint8 (H, W, 3)); integer arithmetic, identical on every machine."""
    if isinstance(pf, classfilter.ClassifiedFilter):
        return classfilter.apply(img, pf)
    h, w = img.shape[:2]
    padded = _pad(img)
    out = np.empty_like(img)
    half = 1 << (pf.shift - 1)
    for a, b in classfilter.strips(h, w, STRIP_PIXELS):
        for c in range(3):
            f = _features(padded, c, a, b, w)
            acc = f @ pf.weights[c, :-1] + pf.weights[c, -1] + half
            centre = img[a:b, :, c].astype(np.int64).ravel()
            out[a:b, :, c] = np.clip(centre + (acc >> pf.shift), 0, 255).reshape(b - a, w)
    return out


def fit(decoded: np.ndarray, target: np.ndarray, shift: int = DEFAULT_SHIFT) -> PostFilter:
    """Least-squares shape-1 weights that bring ``decoded`` closest to ``target`` (both uint8 (H, W, 3)),
    quantised (the encoder fits shape 2, :func:`.classfilter.fit`; this one makes shape-1 test streams)."""
    h, w = decoded.shape[:2]
    padded = _pad(decoded)
    n = WEIGHTS_PER_CHANNEL
    ata = np.zeros((3, n, n))
    atb = np.zeros((3, n))
    for a, b in classfilter.strips(h, w, STRIP_PIXELS):
        for c in range(3):
            f = _features(padded, c, a, b, w).astype(np.float64)
            m = np.concatenate([f, np.ones((len(f), 1))], 1)
            err = (target[a:b, :, c].astype(np.float64) - decoded[a:b, :, c]).ravel()
            ata[c] += m.T @ m
            atb[c] += m.T @ err
    weights = np.zeros((3, n), dtype=np.int64)
    scale = float(1 << shift)
    for c in range(3):
        ridge = 1e-6 * np.trace(ata[c]) / n  # flat images make the taps collinear
        sol = np.linalg.solve(ata[c] + ridge * np.eye(n), atb[c])
        weights[c] = np.clip(np.round(sol * scale), -(1 << 20) + 1, (1 << 20) - 1).astype(np.int64)
    return PostFilter(shift, weights)


def pack(pf) -> bytes:
    """The payload's post-filter block."""
    if isinstance(pf, Restored):
        return bytes([SHAPE_RESTORED]) + (pack(pf.inner) if pf.inner is not None else b"")
    if isinstance(pf, classfilter.ClassifiedFilter):
        return classfilter.pack(pf)
    out = bytearray([SHAPE_DIAMOND5, pf.shift])
    for z in classfilter.zigzag(pf.weights).ravel().tolist():
        while True:
            byte = z & 0x7F
            z >>= 7
            out.append(byte | (0x80 if z else 0))
            if not z:
                break
    return bytes(out)


def unpack(block: bytes, height: int, width: int):
    """Parse the post-filter block of a coded image of ``height`` x ``width`` (a :class:`PostFilter` or a
    :class:`.classfilter.ClassifiedFilter`, or a :class:`Restored` holding one or None); any deviation from
    section 5a raises ``CorruptError``."""
    if block[:1] == bytes([SHAPE_RESTORED]):
        if block[1:2] == bytes([SHAPE_RESTORED]):
            raise CorruptError("NVTC post filter: shape 3 inside shape 3 (the network runs once)")
        return Restored(unpack(block[1:], height, width) if len(block) > 1 else None)
    if len(block) < 2:
        raise CorruptError(f"NVTC post filter: block of {len(block)} bytes, needs at least 2")
    if block[0] == classfilter.SHAPE_CLASSIFIED:
        return classfilter.unpack(block, height, width)
    if block[0] != SHAPE_DIAMOND5:
        raise CorruptError(f"NVTC post filter: unknown shape {block[0]} "
                           f"(known: {SHAPE_DIAMOND5}, {classfilter.SHAPE_CLASSIFIED}, {SHAPE_RESTORED})")
    shift = block[1]
    if not 1 <= shift <= MAX_SHIFT:
        raise CorruptError(f"NVTC post filter: shift {shift} outside 1..{MAX_SHIFT}")
    values, pos = [], 2
    for _ in range(3 * WEIGHTS_PER_CHANNEL):
        z, k = 0, 0
        while True:
            if pos >= len(block):
                raise CorruptError(f"NVTC post filter: block ends inside weight {len(values)}")
            if k == MAX_VARINT_BYTES:
                raise CorruptError(f"NVTC post filter: weight {len(values)} longer than {MAX_VARINT_BYTES} bytes")
            byte = block[pos]
            pos += 1
            z |= (byte & 0x7F) << (7 * k)
            k += 1
            if not byte & 0x80:
                break
        values.append((z >> 1) ^ -(z & 1))
    if pos != len(block):
        raise CorruptError(f"NVTC post filter: {len(block) - pos} bytes after the last weight")
    return PostFilter(shift, np.array(values, dtype=np.int64).reshape(3, WEIGHTS_PER_CHANNEL))
