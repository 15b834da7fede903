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
from typing import Callable

import numpy as np

from ..container.varint import decode_uvarint, encode_uvarint, unzigzag
from ..errors import CorruptError, TruncatedError
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
    """The image filtered by an integer shape (uint8 (H, W, 3)); identical on every machine."""
    return SHAPES[SHAPE_OF[type(pf)]].apply(img, pf)


def _apply_diamond(img: np.ndarray, pf: PostFilter) -> np.ndarray:
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


def _pack_diamond(pf: PostFilter) -> bytes:
    return bytes([SHAPE_DIAMOND5, pf.shift]) + b"".join(encode_uvarint(z) for z in classfilter.zigzag(pf.weights).ravel().tolist())


def _unpack_diamond(block: bytes, _height: int, _width: int) -> PostFilter:
    shift = block[1]
    if not 1 <= shift <= MAX_SHIFT:
        raise CorruptError(f"NVTC post filter: shift {shift} outside 1..{MAX_SHIFT}")
    values, pos = [], 2
    for i in range(3 * WEIGHTS_PER_CHANNEL):
        start = pos
        try:
            z, pos = decode_uvarint(block, pos, what=f"NVTC post filter: weight {i}")
        except TruncatedError as exc:
            raise CorruptError(f"NVTC post filter: block ends inside weight {i}") from exc
        if pos - start > MAX_VARINT_BYTES:
            raise CorruptError(f"NVTC post filter: weight {i} longer than {MAX_VARINT_BYTES} bytes")
        values.append(unzigzag(z))
    if pos != len(block):
        raise CorruptError(f"NVTC post filter: {len(block) - pos} bytes after the last weight")
    return PostFilter(shift, np.array(values, dtype=np.int64).reshape(3, WEIGHTS_PER_CHANNEL))


def _pack_restored(pf: Restored) -> bytes:
    return bytes([SHAPE_RESTORED]) + (pack(pf.inner) if pf.inner is not None else b"")


def _unpack_restored(block: bytes, height: int, width: int) -> Restored:
    if block[1:2] == bytes([SHAPE_RESTORED]):
        raise CorruptError("NVTC post filter: shape 3 inside shape 3 (the network runs once)")
    return Restored(unpack(block[1:], height, width) if len(block) > 1 else None)


def _needs_the_model(img: np.ndarray, pf: Restored) -> np.ndarray:
    raise TypeError("post-filter shape 3 runs the model's restoration network: the codec's decoder applies it")


@dataclass(frozen=True)
class Shape:
    """One post-filter shape: its block syntax both ways and what it does to the decoded image."""

    pack: Callable[[object], bytes]
    unpack: Callable[[bytes, int, int], object]   # (block, coded height, coded width); CorruptError when invalid
    apply: Callable[[np.ndarray, object], np.ndarray]
    min_bytes: int


#: shape id (the block's first byte) -> its handlers (spec/codec-nvtc.md §5a)
SHAPES = {
    SHAPE_DIAMOND5: Shape(_pack_diamond, _unpack_diamond, _apply_diamond, 2),
    classfilter.SHAPE_CLASSIFIED: Shape(classfilter.pack, classfilter.unpack, classfilter.apply, 2),
    SHAPE_RESTORED: Shape(_pack_restored, _unpack_restored, _needs_the_model, 1),
}
#: the parsed form of each shape
SHAPE_OF = {PostFilter: SHAPE_DIAMOND5, classfilter.ClassifiedFilter: classfilter.SHAPE_CLASSIFIED, Restored: SHAPE_RESTORED}


def pack(pf) -> bytes:
    """The payload's post-filter block."""
    return SHAPES[SHAPE_OF[type(pf)]].pack(pf)


def unpack(block: bytes, height: int, width: int):
    """Parse the post-filter block of a coded image of ``height`` x ``width`` (a :class:`PostFilter` or a
    :class:`.classfilter.ClassifiedFilter`, or a :class:`Restored` holding one or None); any deviation from
    section 5a raises ``CorruptError``."""
    shape = SHAPES.get(block[0]) if block else None
    if shape is None:
        known = ", ".join(str(k) for k in SHAPES)
        raise CorruptError(f"NVTC post filter: unknown shape {block[0]} (known: {known})" if block
                           else "NVTC post filter: empty block")
    if len(block) < shape.min_bytes:
        raise CorruptError(f"NVTC post filter: block of {len(block)} bytes, needs at least {shape.min_bytes}")
    return shape.unpack(block, height, width)
