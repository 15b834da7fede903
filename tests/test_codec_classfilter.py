"""Post filter shape 2 (spec/codec-nvtc.md section 5a): activity classes, symmetric filters, exp-Golomb block."""
from __future__ import annotations

import numpy as np
import pytest

from aigif.codec import classfilter, postfilter
from aigif.codec.classfilter import ClassifiedFilter
from aigif.errors import CorruptError

from .test_codec import photo


def random_filter(seed: int, n_filters: int = 3, scale: int = 40, shift: int = 8, order: int = 3,
                  bands: int = 0, band_order: int = 1, block_log2: int = 0, shape=(16, 16)) -> ClassifiedFilter:
    rng = np.random.default_rng(seed)
    starts = (0,) + tuple(sorted(rng.choice(np.arange(1, classfilter.N_CLASSES), n_filters - 1, replace=False)))
    weights = rng.integers(-scale, scale + 1, (n_filters, 3, classfilter.WEIGHTS_PER_CHANNEL)).astype(np.int64)
    offsets = rng.integers(-classfilter.MAX_OFFSET, classfilter.MAX_OFFSET + 1, (3, bands)) if bands else None
    blocks = None
    if block_log2:
        grid = classfilter.block_grid(*shape, block_log2)
        blocks = rng.integers(-classfilter.MAX_OFFSET, classfilter.MAX_OFFSET + 1, (3,) + grid)
    return ClassifiedFilter(shift, tuple(int(s) for s in starts), weights, order, offsets, band_order, block_log2,
                            blocks, seed % 4)


def reference_class(img: np.ndarray, y: int, x: int) -> int:
    """Section 5a's activity class written out with plain Python integers."""
    h, w = img.shape[:2]

    def luma(yy, xx):
        p = img[min(max(yy, 0), h - 1), min(max(xx, 0), w - 1)]
        return int(p[0]) + 2 * int(p[1]) + int(p[2])

    def lap(yy, xx):
        yy, xx = min(max(yy, 0), h - 1), min(max(xx, 0), w - 1)  # the Laplacian is edge-replicated itself
        c = luma(yy, xx)
        return abs(2 * c - luma(yy - 1, xx) - luma(yy + 1, xx)) + abs(2 * c - luma(yy, xx - 1) - luma(yy, xx + 1))

    act = sum(lap(y + i, x + j) for i in range(-2, 3) for j in range(-2, 3))
    return sum(act >= t for t in classfilter.THRESHOLDS)


def reference_apply(img: np.ndarray, pf: ClassifiedFilter) -> np.ndarray:
    h, w = img.shape[:2]
    out = np.zeros_like(img)
    at = lambda y, x, c: int(img[min(max(y, 0), h - 1), min(max(x, 0), w - 1), c])  # noqa: E731
    for y in range(h):
        for x in range(w):
            cls = reference_class(img, y, x)
            f = max(j for j, s in enumerate(pf.starts) if s <= cls)
            for c in range(3):
                wt = [int(v) for v in pf.weights[f, c]]
                acc = wt[0] * at(y, x, c)
                acc += sum(wv * (at(y + dy, x + dx, c) + at(y - dy, x - dx, c))
                           for wv, (dy, dx) in zip(wt[1:], classfilter.PAIRS))
                i = 1 + len(classfilter.PAIRS)
                for o in range(3):
                    if o != c:
                        for dy, dx in classfilter.CROSS:
                            acc += wt[i] * at(y + dy, x + dx, o)
                            i += 1
                acc += wt[i]
                offset = int(pf.offsets[c][at(y, x, c) * pf.bands // 256]) if pf.bands else 0
                if pf.block_log2:
                    offset += int(pf.blocks[c][y >> pf.block_log2][x >> pf.block_log2])
                out[y, x, c] = min(max(at(y, x, c) + ((acc + (1 << (pf.shift - 1))) >> pf.shift) + offset, 0), 255)
    return out


def test_geometry():
    assert len(classfilter.PAIRS) == 12 and classfilter.WEIGHTS_PER_CHANNEL == 24
    taps = set(classfilter.PAIRS) | {(-dy, -dx) for dy, dx in classfilter.PAIRS} | {(0, 0)}
    assert taps == {(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4) if abs(dy) + abs(dx) <= 3}
    assert list(classfilter.PAIRS) == sorted(classfilter.PAIRS)
    assert list(classfilter.THRESHOLDS) == sorted(set(classfilter.THRESHOLDS))


@pytest.mark.parametrize("seed,shape", [(0, (9, 11)), (1, (1, 1)), (2, (3, 14)), (3, (13, 2))])
def test_apply_is_the_normative_integer_formula(seed, shape):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, shape + (3,)).astype(np.uint8)
    if seed == 0:  # flat and busy halves: several classes
        img[:, :5] = 128
    pf = random_filter(seed, n_filters=1 + seed % 4, scale=300, bands=classfilter.BAND_COUNTS[seed],
                       block_log2=classfilter.BLOCK_LOG2[3 - seed], shape=shape)
    if pf.block_log2:  # small blocks, so that several occur in these small images
        pf = classfilter.ClassifiedFilter(pf.shift, pf.starts, pf.weights, pf.order, pf.offsets, pf.band_order, 1,
                                          np.random.default_rng(seed).integers(-9, 10, (3,) + classfilter.block_grid(*shape, 1)))
    assert np.array_equal(classfilter.apply(img, pf), reference_apply(img, pf))
    assert np.array_equal(postfilter.apply(img, pf), reference_apply(img, pf))


@pytest.mark.parametrize("scale", [300_000, 170_000, 300])
def test_sums_beyond_int32_keep_the_formula(scale):
    """A sum beyond 2**31 (weights of 300,000 on a white region: wrapped around in int32 it would darken
    the region), weights just within the int32 bound (170,000) and the usual small ones all give the
    normative result."""
    rng = np.random.default_rng(scale)
    img = rng.integers(0, 256, (7, 9, 3)).astype(np.uint8)
    pf = random_filter(5, n_filters=2, scale=scale, shift=classfilter.MAX_SHIFT, bands=8, shape=(7, 9))
    pf.weights[0, 0] = scale  # the worst case: every weight at the bound
    img[3:] = 255  # white: the sums of the worst case come near the bound
    assert np.array_equal(classfilter.apply(img, pf), reference_apply(img, pf))


def test_classes_span_the_range():
    img = photo(64, 64, seed=3)
    img[:20] = 90  # flat band: class 0
    cls = classfilter.classes(img, 0, 64)
    assert cls.min() == 0 and cls.max() > 3
    assert all(cls[y, x] == reference_class(img, y, x) for y, x in [(0, 0), (19, 5), (20, 30), (63, 63), (40, 2)])


def test_strips_do_not_change_the_result(monkeypatch):
    img, target = photo(37, 21, seed=4), photo(37, 21, seed=5)
    pf = random_filter(6)
    whole = classfilter.apply(img, pf)
    stats = classfilter.statistics(img, target)
    monkeypatch.setattr(classfilter, "STRIP_PIXELS", 5 * 21)  # strips of 5 rows
    assert np.array_equal(classfilter.apply(img, pf), whole)
    for a, b in zip(classfilter.statistics(img, target), stats):
        assert np.allclose(a, b)


def test_fit_recovers_a_known_filter():
    """The decoded image is the target seen through a blur: the fitted filters undo most of it."""
    target = photo(96, 80, seed=7)
    t = target.astype(np.float64)
    blurred = (2 * t + np.roll(t, 1, 1) + np.roll(t, -1, 1)) / 4 + 3.0
    decoded = np.clip(np.round(blurred), 0, 255).astype(np.uint8)
    pf = classfilter.fit(decoded, target, payload_bytes=2000, db_per_neper=3.8)
    assert pf is not None
    before = np.mean((decoded.astype(float) - target) ** 2)
    after = np.mean((classfilter.apply(decoded, pf).astype(float) - target) ** 2)
    assert after < 0.5 * before


def test_fit_sends_nothing_when_nothing_is_to_gain():
    img = photo(48, 48, seed=8)
    assert classfilter.fit(img, img, payload_bytes=500, db_per_neper=3.8) is None


def test_fit_merges_classes_by_their_cost():
    """With free bits every class gets its own filter; with dear bits fewer filters remain."""
    target = photo(80, 80, seed=9)
    noisy = np.clip(target.astype(int) + np.random.default_rng(0).integers(-6, 7, target.shape), 0, 255)
    decoded = noisy.astype(np.uint8)
    free = classfilter.fit(decoded, target, payload_bytes=10 ** 9, db_per_neper=0.0)
    dear = classfilter.fit(decoded, target, payload_bytes=100, db_per_neper=3.8)
    assert free is not None and len(free.starts) > 1
    assert dear is None or len(dear.starts) < len(free.starts)


@pytest.mark.parametrize("seed,order", [(0, 0), (1, 3), (2, 7), (3, 15)])
def test_block_round_trip(seed, order):
    bands = classfilter.BAND_COUNTS[seed]
    pf = random_filter(seed, n_filters=1 + 3 * seed, scale=classfilter.MAX_WEIGHT, shift=1 + seed * 4, order=order,
                       bands=bands, band_order=seed, block_log2=classfilter.BLOCK_LOG2[3 - seed], shape=(100, 37))
    block = classfilter.pack(pf)
    assert block[0] == classfilter.SHAPE_CLASSIFIED
    bits = classfilter.exp_golomb_bits(pf.weights, order)
    if bands:
        bits += classfilter.exp_golomb_bits(classfilter.band_differences(pf.offsets), seed)
    if pf.block_log2:
        bits += classfilter.exp_golomb_bits(pf.blocks, pf.block_order)
    assert len(block) == classfilter.block_bytes(len(pf.starts), bits)
    back = postfilter.unpack(block, 100, 37)
    assert back.shift == pf.shift and back.starts == pf.starts and back.order == order and back.bands == bands
    assert np.array_equal(back.weights, pf.weights)
    assert (back.offsets is None) == (pf.offsets is None)
    if bands:
        assert np.array_equal(back.offsets, pf.offsets) and back.band_order == seed
    assert back.block_log2 == pf.block_log2 and (back.blocks is None) == (pf.blocks is None)
    if pf.block_log2:
        assert np.array_equal(back.blocks, pf.blocks) and back.blocks.shape[1:] == classfilter.block_grid(100, 37, pf.block_log2)


def test_fit_corrects_an_intensity_bias():
    """Dark samples decoded 6 levels too dark: band offsets put them back (a filter alone cannot)."""
    target = photo(64, 64, seed=11)
    decoded = np.where(target < 64, np.clip(target.astype(int) - 6, 0, 255), target).astype(np.uint8)
    pf = classfilter.fit(decoded, target, payload_bytes=3000, db_per_neper=3.8)
    assert pf is not None and (pf.bands or pf.block_log2)
    before = np.mean((decoded.astype(float) - target) ** 2)
    assert np.mean((classfilter.apply(decoded, pf).astype(float) - target) ** 2) < 0.5 * before


def test_fit_corrects_a_shifted_region():
    """The top-left 32x32 block decoded 8 levels too bright: a block offset takes it back."""
    target = photo(64, 64, seed=12)
    decoded = target.astype(int)
    decoded[:32, :32] += 8
    decoded = np.clip(decoded, 0, 255).astype(np.uint8)
    pf = classfilter.fit(decoded, target, payload_bytes=3000, db_per_neper=3.8)
    assert pf is not None and pf.block_log2 in (4, 5)
    before = np.mean((decoded.astype(float) - target) ** 2)
    assert np.mean((classfilter.apply(decoded, pf).astype(float) - target) ** 2) < 0.2 * before


def _block(n_filters=2, starts=b"\x05", order=0, shift=8, weights=None, bands=0, band_order=0, offsets="",
           block_log2=0, blocks="") -> bytes:
    bits = "1" * (n_filters * 3 * classfilter.WEIGHTS_PER_CHANNEL) if weights is None else weights
    bits += offsets + blocks
    bits += "0" * (-len(bits) % 8)
    body = bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8))
    return bytes([2, shift, n_filters, order, bands, band_order, block_log2, 0]) + starts + body


def test_block_of_zero_weights_parses():
    pf = postfilter.unpack(_block(), 20, 20)
    assert pf.starts == (0, 5) and not pf.weights.any() and pf.offsets is None
    steps = "011" + "1" * 23  # order 0: +1 (zigzag 2 = "011"), then 23 steps of 0
    pf = postfilter.unpack(_block(bands=8, offsets=steps), 20, 20)
    assert pf.offsets.tolist() == [[1] * 8, [0] * 8, [0] * 8]


#: order-0 exp-Golomb of zigzag 2 * 128 = 256 (offset +128): 8 zeros, then 100000001
PLUS_128 = "0" * 8 + "100000001"


@pytest.mark.parametrize("block", [
    b"\x02", b"\x02\x08\x01",  # short
    _block(shift=0), _block(shift=16), _block(n_filters=0, starts=b""), _block(n_filters=13, starts=bytes(range(1, 13))),
    _block(order=16), _block(starts=b"\x00"), _block(starts=b"\x0c"), _block(n_filters=3, starts=b"\x05\x05"),
    _block(n_filters=3, starts=b"\x06\x05"), _block()[:-1], _block() + b"\x00",
    _block(weights="1" * 143 + "0" * 22),  # prefix of 22 zeros
    _block(n_filters=1, starts=b"", weights="1" * 72 + "1"),  # padding bit set
    _block(bands=7, offsets="1" * 21), _block(bands=64, offsets="1" * 192), _block(band_order=16),
    _block(bands=8, offsets="1" * 23),  # ends inside the offsets
    _block(bands=8, offsets=PLUS_128 * 2 + "1" * 22),  # offset 256 > 255
    _block(block_log2=3, blocks="1" * 48), _block(block_log2=7, blocks="1" * 3),
    _block(block_log2=4, blocks="1" * 11),  # 20x20: 2x2 blocks, 12 values; ends inside
    _block(block_log2=4, blocks="0" * 9 + "1000000001" + "1" * 11),  # block offset 256 (zigzag 512)
    _block(block_log2=4, blocks="1" * 12) + b"\x00",
])
def test_hostile_blocks_are_corrupt(block):
    with pytest.raises(CorruptError):
        postfilter.unpack(block, 20, 20)


def test_block_offsets_of_a_huge_image_are_refused_before_reading():
    """A 65535 x 65535 grid of 16-pixel blocks needs 50 M values: more than any block's bits."""
    with pytest.raises(CorruptError, match="cannot fit"):
        postfilter.unpack(_block(block_log2=4, blocks="1" * 12), 0xFFFF, 0xFFFF)


def test_block_offsets_parse():
    pf = postfilter.unpack(_block(block_log2=4, blocks="011" + "1" * 11), 20, 20)
    assert pf.blocks.shape == (3, 2, 2) and pf.blocks[0, 0, 0] == 1 and pf.blocks.sum() == 1
