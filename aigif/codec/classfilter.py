"""Post filter shape 2: symmetric Wiener filters chosen per pixel by local activity (``spec/codec-nvtc.md`` §5a).

Shape 1 (:mod:`.postfilter`) fits one filter to the whole image. Flat areas
want smoothing and edges want sharpening, so, like the adaptive loop filter
of VVC, shape 2 sorts every pixel into one of ``N_CLASSES`` activity classes
(a box sum of Laplacians of the decoded image, so the decoder knows the class
for free), and the encoder merges runs of adjacent classes into as many
filters as pay for their bits. Each filter is point-symmetric (one weight per
pair of opposite taps of the radius-3 diamond), reads a 5-sample cross of the
two other channels and has an offset. Then offsets by intensity band (the
decoded sample's value, 8-32 bands per channel, like HEVC's sample adaptive
offset) undo the shared decoder's intensity-dependent bias, and offsets per
16-64 pixel square what is left of its low-frequency error. Values are
exp-Golomb coded. On Kodak 24 this takes the BD-rate against WebP from -6.1 %
(shape 1) to -8.9 %.

Everything the decoder does is integer arithmetic on the 8-bit image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from ..errors import CorruptError

SHAPE_CLASSIFIED = 2
#: the radius-3 diamond's taps (dy, dx) > (0, 0) in raster order; each weight multiplies P(+t) + P(-t)
PAIRS = tuple((dy, dx) for dy in range(0, 4) for dx in range(-3, 4) if abs(dy) + abs(dx) <= 3 and (dy, dx) > (0, 0))
#: samples of each other channel, raster order
CROSS = ((-1, 0), (0, -1), (0, 0), (0, 1), (1, 0))
#: per filter and output channel: centre, the pairs, 2 x the cross, offset
WEIGHTS_PER_CHANNEL = 1 + len(PAIRS) + 2 * len(CROSS) + 1
#: class c = number of thresholds the activity reaches (activity: 5x5 box sum of |Laplacians| of R + 2G + B)
THRESHOLDS = (70, 120, 180, 250, 350, 500, 700, 1000, 1400, 2000, 3000)
N_CLASSES = len(THRESHOLDS) + 1
MARGIN = 3  # rows / columns of edge replication the taps and the classes read
DEFAULT_SHIFT = 8
MAX_SHIFT = 15
MAX_EG_ORDER = 15
#: |weight| < 2**20: a zigzag value has at most 21 bits, so its exp-Golomb prefix at most 21 zeros
MAX_WEIGHT = (1 << 20) - 1
MAX_PREFIX = 21
#: pixels filtered (or fitted) at once, in whole rows
STRIP_PIXELS = 1 << 16
#: band offsets: a sample of value v in channel c gets offsets[c][v * B >> 8]; B is one of these (0: none)
BAND_COUNTS = (0, 8, 16, 32)
MAX_OFFSET = 255
#: block offsets: side 2**log2 of the square blocks (0: none)
BLOCK_LOG2 = (0, 4, 5, 6)
#: a post-filter block's length is a u16 (spec section 1)
MAX_BLOCK_BYTES = 0xFFFF


@dataclass(frozen=True)
class ClassifiedFilter:
    """``starts``: the first class of every filter (starts[0] == 0, increasing); ``weights`` (F, 3,
    WEIGHTS_PER_CHANNEL) int64 in units of 2**-shift of a level; ``order``: the exp-Golomb order of
    the weights; ``offsets`` (3, B) int64 levels added by intensity band (B in ``BAND_COUNTS``, or
    None), coded as differences with exp-Golomb order ``band_order``; ``blocks`` (3, ceil(H / 2**block_log2),
    ceil(W / 2**block_log2)) int64 levels added by square block of side 2**block_log2 (or None), exp-Golomb
    order ``block_order``."""

    shift: int
    starts: tuple
    weights: np.ndarray
    order: int = 3
    offsets: np.ndarray | None = None
    band_order: int = 0
    block_log2: int = 0
    blocks: np.ndarray | None = None
    block_order: int = 0

    @property
    def bands(self) -> int:
        return 0 if self.offsets is None else self.offsets.shape[1]

    def class_to_filter(self) -> np.ndarray:
        lut = np.zeros(N_CLASSES, dtype=np.int64)
        for j, s in enumerate(self.starts):
            lut[s:] = j
        return lut


# ---- features and classes ------------------------------------------------
def _padded(img: np.ndarray, dtype=np.int64) -> np.ndarray:
    return np.pad(img, ((MARGIN, MARGIN), (MARGIN, MARGIN), (0, 0)), mode="edge").astype(dtype)


def strips(h: int, w: int, pixels: int):
    """(first, end) rows of the strips of about ``pixels`` pixels, in whole rows, that filters work on."""
    rows = max(1, pixels // max(w, 1))
    for a in range(0, h, rows):
        yield a, min(a + rows, h)


def _at(padded: np.ndarray, c: int, a: int, b: int, w: int, dy: int, dx: int) -> np.ndarray:
    """Channel c of output rows a..b-1 shifted by (dy, dx), edge-replicated."""
    return padded[a + MARGIN + dy : b + MARGIN + dy, MARGIN + dx : MARGIN + dx + w, c]


def columns(padded: np.ndarray, c: int, a: int, b: int, w: int):
    """(rows, w) arrays of ``padded``'s integer type, one per weight of channel c's filters, in weight order
    (the last is all ones)."""
    yield _at(padded, c, a, b, w, 0, 0)
    for dy, dx in PAIRS:
        yield _at(padded, c, a, b, w, dy, dx) + _at(padded, c, a, b, w, -dy, -dx)
    for o in range(3):
        if o != c:
            for dy, dx in CROSS:
                yield _at(padded, o, a, b, w, dy, dx)
    yield np.ones((b - a, w), padded.dtype)


def features(padded: np.ndarray, c: int, a: int, b: int, w: int) -> np.ndarray:
    """(rows*w, WEIGHTS_PER_CHANNEL) int64: what channel c's filters weigh, in weight order."""
    cols = list(columns(padded, c, a, b, w))
    return np.stack(cols, -1).reshape(-1, len(cols))


def classes(img: np.ndarray, a: int, b: int) -> np.ndarray:
    """(b-a, W) activity classes 0..N_CLASSES-1 of output rows a..b-1 of ``img`` (uint8 (H, W, 3))."""
    w = img.shape[1]
    lap = np.pad(_lap_rows(img, a, b), ((0, 0), (2, 2)), mode="edge")
    act = sum(lap[i : i + b - a, j : j + w] for i in range(5) for j in range(5))
    return np.searchsorted(np.asarray(THRESHOLDS), act, side="right")


def _lap_rows(img: np.ndarray, a: int, b: int) -> np.ndarray:
    """(b-a+4, W) Laplacian magnitudes of the clamped rows a-2..b+1 of the luma R + 2G + B."""
    h = img.shape[0]
    lrows = np.clip(np.arange(a - 2, b + 2), 0, h - 1)

    def luma(r):
        p = img[np.clip(r, 0, h - 1)].astype(np.int64)
        return np.pad(p[..., 0] + 2 * p[..., 1] + p[..., 2], ((0, 0), (1, 1)), mode="edge")

    up, mid, down = luma(lrows - 1), luma(lrows), luma(lrows + 1)
    c = mid[:, 1:-1]
    return np.abs(2 * c - up[:, 1:-1] - down[:, 1:-1]) + np.abs(2 * c - mid[:, :-2] - mid[:, 2:])


# ---- decoding ---------------------------------------------------------------
def apply(img: np.ndarray, pf: ClassifiedFilter) -> np.ndarray:
    """The filtered image (uint8 (H, W, 3)); integer arithmetic, identical on every machine.

    Sums run in int32 when the filters' weights bound every one below 2**31 (the usual case: a sum is at
    most ``sum |w| * 510 + 2**(shift-1)``), in int64 otherwise: both are exact, so the bytes are the same."""
    h, w = img.shape[:2]
    bound = int(np.abs(pf.weights).sum(-1).max()) * 2 * 255 + (1 << (pf.shift - 1)) + 2 * MAX_OFFSET + 255
    dtype = np.int32 if bound < 1 << 31 else np.int64
    padded = _padded(img, dtype)
    weights = pf.weights.astype(dtype)
    out = np.empty_like(img)
    lut = pf.class_to_filter()
    for a, b in strips(h, w, STRIP_PIXELS):
        which = lut[classes(img, a, b)]                      # (rows, w): each pixel's filter
        product = np.empty((b - a, w), dtype)
        for c in range(3):
            acc = np.full((b - a, w), 1 << (pf.shift - 1), dtype)
            for col, wk in zip(columns(padded, c, a, b, w), weights[:, c].T):
                acc += np.multiply(col, wk[which], out=product)  # exact integer sums: the order does not matter
            centre = padded[a + MARGIN : b + MARGIN, MARGIN : MARGIN + w, c]
            corr = acc >> pf.shift
            if pf.bands:
                corr += pf.offsets[c].astype(dtype)[(centre * pf.bands) >> 8]
            if pf.block_log2:
                z = pf.block_log2
                corr += pf.blocks[c].astype(dtype)[(np.arange(a, b) >> z)[:, None], (np.arange(w) >> z)[None, :]]
            out[a:b, :, c] = np.clip(centre + corr, 0, 255)
    return out


class _Bits:
    """MSB-first bit reader over a block; every overrun is a CorruptError."""

    def __init__(self, data: bytes, pos: int):
        self.data, self.bit = data, 8 * pos

    def read(self, n: int) -> int:
        if self.bit + n > 8 * len(self.data):
            raise CorruptError("NVTC post filter: block ends inside a weight")
        v = 0
        for _ in range(n):
            v = (v << 1) | (self.data[self.bit >> 3] >> (7 - (self.bit & 7))) & 1
            self.bit += 1
        return v

    def exp_golomb(self, k: int) -> int:
        zeros = 0
        while not self.read(1):
            zeros += 1
            if zeros > MAX_PREFIX:
                raise CorruptError(f"NVTC post filter: exp-Golomb prefix longer than {MAX_PREFIX} bits")
        z = (((1 << zeros) | self.read(zeros)) - 1 << k) | self.read(k)
        v = (z >> 1) ^ -(z & 1)
        if abs(v) > MAX_WEIGHT:
            raise CorruptError(f"NVTC post filter: weight {v} outside +-{MAX_WEIGHT}")
        return v


def block_grid(height: int, width: int, log2: int) -> tuple:
    """(rows, columns) of the block offsets of a coded image."""
    side = 1 << log2
    return -(-height // side), -(-width // side)


def unpack(block: bytes, height: int, width: int) -> ClassifiedFilter:
    """Parse a shape-2 block (``block[0] == 2``) of a coded image of ``height`` x ``width``; any deviation
    from section 5a raises ``CorruptError``."""
    if len(block) < 8:
        raise CorruptError(f"NVTC post filter: shape-2 block of {len(block)} bytes, needs at least 8")
    shift, n_filters, order, bands, band_order, block_log2, block_order = block[1:8]
    if not 1 <= shift <= MAX_SHIFT:
        raise CorruptError(f"NVTC post filter: shift {shift} outside 1..{MAX_SHIFT}")
    if not 1 <= n_filters <= N_CLASSES:
        raise CorruptError(f"NVTC post filter: {n_filters} filters, allowed 1..{N_CLASSES}")
    if max(order, band_order, block_order) > MAX_EG_ORDER:
        raise CorruptError(f"NVTC post filter: exp-Golomb order {max(order, band_order, block_order)} above "
                           f"{MAX_EG_ORDER}")
    if block_log2 not in BLOCK_LOG2:
        raise CorruptError(f"NVTC post filter: block offsets of side 2**{block_log2}, allowed {list(BLOCK_LOG2)}")
    if bands not in BAND_COUNTS:
        raise CorruptError(f"NVTC post filter: {bands} intensity bands, allowed {list(BAND_COUNTS)}")
    head = 8 + n_filters - 1
    if len(block) < head:
        raise CorruptError("NVTC post filter: block ends inside the class starts")
    starts = (0,) + tuple(block[8:head])
    if any(not starts[i] < starts[i + 1] for i in range(len(starts) - 1)) or starts[-1] >= N_CLASSES:
        raise CorruptError(f"NVTC post filter: class starts {list(starts)} not increasing within 0..{N_CLASSES - 1}")
    bits = _Bits(block, head)
    values = [bits.exp_golomb(order) for _ in range(n_filters * 3 * WEIGHTS_PER_CHANNEL)]
    offsets = None
    if bands:
        offsets = np.cumsum(np.array([bits.exp_golomb(band_order) for _ in range(3 * bands)],
                                     dtype=np.int64).reshape(3, bands), axis=1)
        if np.abs(offsets).max() > MAX_OFFSET:
            raise CorruptError(f"NVTC post filter: a band offset outside +-{MAX_OFFSET}")
    blocks = None
    if block_log2:
        rows, cols = block_grid(height, width, block_log2)
        if 3 * rows * cols > 8 * len(block):  # every value takes at least one bit: refuse before reading
            raise CorruptError(f"NVTC post filter: {3 * rows * cols} block offsets cannot fit {len(block)} bytes")
        blocks = np.array([bits.exp_golomb(block_order) for _ in range(3 * rows * cols)],
                          dtype=np.int64).reshape(3, rows, cols)
        if np.abs(blocks).max() > MAX_OFFSET:
            raise CorruptError(f"NVTC post filter: a block offset outside +-{MAX_OFFSET}")
    end = (bits.bit + 7) >> 3
    if end != len(block) or bits.read(end * 8 - bits.bit):
        raise CorruptError("NVTC post filter: padding after the last value is not a zero-filled last byte")
    return ClassifiedFilter(shift, starts, np.array(values, dtype=np.int64).reshape(n_filters, 3, -1), order,
                            offsets, band_order, block_log2, blocks, block_order)


# ---- encoding -------------------------------------------------------------
def zigzag(v: np.ndarray) -> np.ndarray:
    """Signed integers as unsigned ones: 2v for v >= 0, -2v-1 below (int64 arrays)."""
    v = np.asarray(v, dtype=np.int64)
    return (v << 1) ^ (v >> 63)


def exp_golomb_bits(values: np.ndarray, k: int) -> int:
    """Bits of the order-k exp-Golomb codes of zigzagged ``values``."""
    z = (zigzag(values).ravel() >> k) + 1
    lengths = np.floor(np.log2(z.astype(np.float64))).astype(np.int64)  # exact: z < 2**21
    return int(np.sum(2 * lengths + 1 + k))


def pack(pf: ClassifiedFilter) -> bytes:
    """The payload's post-filter block of a shape-2 filter."""
    n = len(pf.starts)
    out = bytearray([SHAPE_CLASSIFIED, pf.shift, n, pf.order, pf.bands, pf.band_order, pf.block_log2,
                     pf.block_order]) + bytes(pf.starts[1:])
    bits: list = []
    _put_exp_golomb(bits, pf.weights, pf.order)
    if pf.bands:
        _put_exp_golomb(bits, band_differences(pf.offsets), pf.band_order)
    if pf.block_log2:
        _put_exp_golomb(bits, pf.blocks, pf.block_order)
    bits += [0] * (-len(bits) % 8)
    for i in range(0, len(bits), 8):
        out.append(int("".join(map(str, bits[i : i + 8])), 2))
    return bytes(out)


def _put_exp_golomb(bits: list, values: np.ndarray, k: int) -> None:
    for z in zigzag(values).ravel().tolist():
        m = (z >> k) + 1
        bits += [0] * (m.bit_length() - 1) + [int(ch) for ch in format(m, "b")]
        bits += [(z >> i) & 1 for i in range(k - 1, -1, -1)]


def band_differences(offsets: np.ndarray) -> np.ndarray:
    """What the block stores of (3, B) band offsets: each channel's first offset, then the steps between."""
    return np.diff(offsets, axis=1, prepend=0)


def block_bytes(n_filters: int, value_bits: int) -> int:
    return 8 + n_filters - 1 + (value_bits + 7) // 8


def statistics(decoded: np.ndarray, target: np.ndarray) -> tuple:
    """Per class and channel the least-squares sums (A^T A, A^T e, e^T e) of the correction e = target - decoded."""
    h, w = decoded.shape[:2]
    padded = _padded(decoded)
    n = WEIGHTS_PER_CHANNEL
    ata, atb, ee = np.zeros((N_CLASSES, 3, n, n)), np.zeros((N_CLASSES, 3, n)), np.zeros((N_CLASSES, 3))
    for a, b in strips(h, w, STRIP_PIXELS):
        cls = classes(decoded, a, b).ravel()
        order = np.argsort(cls, kind="stable")
        bounds = np.searchsorted(cls[order], np.arange(N_CLASSES + 1))
        for c in range(3):
            f = features(padded, c, a, b, w).astype(np.float64)[order]
            e = (target[a:b, :, c].astype(np.float64) - decoded[a:b, :, c]).ravel()[order]
            for k in range(N_CLASSES):
                i, j = bounds[k], bounds[k + 1]
                if j > i:
                    ata[k, c] += f[i:j].T @ f[i:j]
                    atb[k, c] += f[i:j].T @ e[i:j]
                    ee[k, c] += e[i:j] @ e[i:j]
    return ata, atb, ee


def _solve(ata: np.ndarray, atb: np.ndarray, shift: int) -> tuple:
    """(quantised weights (3, n), change of the squared error they bring) of one run of classes."""
    n = ata.shape[-1]
    wq = np.zeros((3, n), dtype=np.int64)
    delta = 0.0
    for c in range(3):
        if ata[c, -1, -1] < 1:  # no pixel in these classes
            continue
        ridge = 1e-6 * np.trace(ata[c]) / n  # flat images make the taps collinear
        sol = np.linalg.solve(ata[c] + ridge * np.eye(n), atb[c])
        wq[c] = np.clip(np.round(sol * (1 << shift)), -MAX_WEIGHT, MAX_WEIGHT).astype(np.int64)
        wf = wq[c] / float(1 << shift)
        delta += float(wf @ ata[c] @ wf - 2 * wf @ atb[c])
    return wq, delta


def fit(decoded: np.ndarray, target: np.ndarray, payload_bytes: int, db_per_neper: float,
        shift: int = DEFAULT_SHIFT) -> ClassifiedFilter | None:
    """The block of lowest cost ``10 log10(MSE) + db_per_neper * ln(bytes)``, or None when sending none
    costs less: filters for runs of classes (their squared error estimated from the least-squares
    sums, rounding left out), then band and block offsets (measured; :func:`_with_bands`). The caller
    measures the whole block once more, exactly.
    """
    ata, atb, ee = statistics(decoded, target)
    npx = decoded.size
    runs = {}
    for i in range(N_CLASSES):
        for j in range(i + 1, N_CLASSES + 1):
            wq, delta = _solve(ata[i:j].sum(0), atb[i:j].sum(0), shift)
            runs[(i, j)] = (wq, delta, [exp_golomb_bits(wq, k) for k in range(MAX_EG_ORDER + 1)])
    sse0 = float(ee.sum())
    best_cost, best = 10 * math.log10(max(sse0, 1e-9) / npx) + db_per_neper * math.log(payload_bytes), None
    for n_cuts in range(N_CLASSES):
        for cuts in combinations(range(1, N_CLASSES), n_cuts):
            edges = (0,) + cuts + (N_CLASSES,)
            parts = [runs[(edges[i], edges[i + 1])] for i in range(len(edges) - 1)]
            sse = sse0 + sum(p[1] for p in parts)
            bits = [sum(p[2][k] for p in parts) for k in range(MAX_EG_ORDER + 1)]
            k = int(np.argmin(bits))
            size = payload_bytes + 2 + block_bytes(len(parts), bits[k])
            cost = 10 * math.log10(max(sse, 1e-9) / npx) + db_per_neper * math.log(size)
            if cost < best_cost:
                best_cost = cost
                best = ClassifiedFilter(shift, edges[:-1], np.stack([p[0] for p in parts]), k)
    if best is None:  # band offsets alone may still pay
        best = ClassifiedFilter(shift, (0,), np.zeros((1, 3, WEIGHTS_PER_CHANNEL), dtype=np.int64), 0)
    return _with_bands(best, decoded, target, payload_bytes, db_per_neper)


def _cheapest_order(values: np.ndarray) -> tuple:
    """(bits, order) of the exp-Golomb order that codes ``values`` in the fewest bits."""
    bits = [exp_golomb_bits(values, k) for k in range(MAX_EG_ORDER + 1)]
    k = int(np.argmin(bits))
    return bits[k], k


def _value_bits(pf: ClassifiedFilter) -> int:
    bits = exp_golomb_bits(pf.weights, pf.order)
    if pf.bands:
        bits += exp_golomb_bits(band_differences(pf.offsets), pf.band_order)
    if pf.block_log2:
        bits += exp_golomb_bits(pf.blocks, pf.block_order)
    return bits


def _with_bands(pf: ClassifiedFilter, decoded: np.ndarray, target: np.ndarray, payload_bytes: int,
                db_per_neper: float) -> ClassifiedFilter | None:
    """``pf`` with the band offsets (count, values, order) of the lowest measured cost, or None when
    neither the filters nor the offsets beat sending no block."""
    filtered = apply(decoded, pf).astype(np.int64)
    err = target.astype(np.int64) - filtered
    dec = decoded.astype(np.int64)

    def cost(out, block):
        mse = float(np.mean((out - target) ** 2))
        return 10 * math.log10(max(mse, 1e-9)) + db_per_neper * math.log(payload_bytes + 2 + block)

    weight_bits = exp_golomb_bits(pf.weights, pf.order)
    none_cost = 10 * math.log10(max(float(np.mean((dec - target) ** 2)), 1e-9)) + db_per_neper * math.log(payload_bytes)
    best = (cost(filtered, block_bytes(len(pf.starts), weight_bits)), pf)
    for bands in BAND_COUNTS[1:]:
        band = (dec * bands) >> 8
        offsets = np.zeros((3, bands), dtype=np.int64)
        for c in range(3):
            n = np.bincount(band[..., c].ravel(), minlength=bands)
            total = np.bincount(band[..., c].ravel(), err[..., c].ravel(), minlength=bands)
            offsets[c] = np.clip(np.round(total / np.maximum(n, 1)), -MAX_OFFSET, MAX_OFFSET)
        out = np.clip(filtered + offsets[np.arange(3), band], 0, 255)
        bits, order = _cheapest_order(band_differences(offsets))
        c_ = cost(out, block_bytes(len(pf.starts), weight_bits + bits))
        if c_ < best[0]:
            best = (c_, ClassifiedFilter(pf.shift, pf.starts, pf.weights, pf.order, offsets, order))
    pf = best[1]
    best = _with_blocks(pf, decoded, target, cost, best[0])
    return best[1] if best[0] < none_cost else None


def _with_blocks(pf: ClassifiedFilter, decoded: np.ndarray, target: np.ndarray, cost, pf_cost: float) -> tuple:
    """(cost, ``pf`` with the block offsets of lowest measured cost, or ``pf``): the rounded mean of what
    is left per square block and channel, for each side in ``BLOCK_LOG2``."""
    out = apply(decoded, pf).astype(np.int64)
    err = target.astype(np.int64) - out
    h, w = decoded.shape[:2]
    best = (pf_cost, pf)
    for z in BLOCK_LOG2[1:]:
        rows, cols = block_grid(h, w, z)
        cell = ((np.arange(h) >> z)[:, None] * cols + (np.arange(w) >> z)[None, :]).ravel()
        n = np.bincount(cell, minlength=rows * cols)
        blocks = np.stack([np.clip(np.round(np.bincount(cell, err[..., c].ravel(), minlength=rows * cols)
                                            / np.maximum(n, 1)), -MAX_OFFSET, MAX_OFFSET) for c in range(3)])
        blocks = blocks.astype(np.int64).reshape(3, rows, cols)
        bits, order = _cheapest_order(blocks)
        candidate = ClassifiedFilter(pf.shift, pf.starts, pf.weights, pf.order, pf.offsets, pf.band_order, z,
                                     blocks, order)
        size = block_bytes(len(pf.starts), _value_bits(candidate))
        if size > MAX_BLOCK_BYTES:
            continue
        c_ = cost(np.clip(out + blocks[:, cell // cols, cell % cols].T.reshape(h, w, 3), 0, 255), size)
        if c_ < best[0]:
            best = (c_, candidate)
    return best
