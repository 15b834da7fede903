"""The per-image post filter of NVTC payloads (spec/codec-nvtc.md section 5a): exact integers, hostile blocks."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from aigif.codec import QUALITIES, api, compress_image, payload, compress_residual, decompress_image, decompress_residual
from aigif.codec import postfilter
from aigif.codec.postfilter import PostFilter
from aigif.errors import CorruptError, TruncatedError

from .test_codec import photo


def random_filter(seed: int, scale: int = 40, shift: int = 8) -> PostFilter:
    rng = np.random.default_rng(seed)
    return PostFilter(shift, rng.integers(-scale, scale + 1, (3, postfilter.WEIGHTS_PER_CHANNEL)).astype(np.int64))


def reference_apply(img: np.ndarray, pf: PostFilter) -> np.ndarray:
    """Section 5a written out pixel by pixel in plain Python integers."""
    h, w = img.shape[:2]
    out = np.zeros_like(img)
    at = lambda y, x, c: int(img[min(max(y, 0), h - 1), min(max(x, 0), w - 1), c])  # noqa: E731
    for c in range(3):
        wts = [int(v) for v in pf.weights[c]]
        others = [o for o in range(3) if o != c]
        for y in range(h):
            for x in range(w):
                acc = sum(wt * at(y + dy, x + dx, c) for wt, (dy, dx) in zip(wts, postfilter.TAPS))
                acc += wts[21] * at(y, x, others[0]) + wts[22] * at(y, x, others[1]) + wts[23]
                out[y, x, c] = min(max(at(y, x, c) + ((acc + (1 << (pf.shift - 1))) >> pf.shift), 0), 255)
    return out


def test_taps_are_the_5x5_square_without_corners():
    assert len(postfilter.TAPS) == 21 and (0, 0) in postfilter.TAPS
    assert not {(-2, -2), (-2, 2), (2, -2), (2, 2)} & set(postfilter.TAPS)
    assert list(postfilter.TAPS) == sorted(postfilter.TAPS)  # raster order


@pytest.mark.parametrize("seed,shape", [(0, (7, 9)), (1, (1, 1)), (2, (3, 13)), (3, (12, 2))])
def test_apply_is_the_normative_integer_formula(seed, shape):
    img = np.random.default_rng(seed).integers(0, 256, shape + (3,)).astype(np.uint8)
    pf = random_filter(seed, scale=300)
    assert np.array_equal(postfilter.apply(img, pf), reference_apply(img, pf))


def test_strips_do_not_change_the_result(monkeypatch):
    img = photo(37, 21, seed=4)
    target = photo(37, 21, seed=5)
    whole_fit, whole = postfilter.fit(img, target), postfilter.apply(img, random_filter(6))
    monkeypatch.setattr(postfilter, "STRIP_PIXELS", 5 * 21)  # strips of 5 rows
    assert np.array_equal(postfilter.apply(img, random_filter(6)), whole)
    assert np.array_equal(postfilter.fit(img, target).weights, whole_fit.weights)


def test_fit_recovers_a_known_filter():
    """The decoded image is the target seen through a blur: the fitted filter undoes most of it."""
    target = photo(96, 80, seed=7)
    t = target.astype(np.float64)
    blurred = (2 * t + np.roll(t, 1, 1) + np.roll(t, -1, 1)) / 4 + 3.0  # blur plus an offset
    decoded = np.clip(np.round(blurred), 0, 255).astype(np.uint8)
    pf = postfilter.fit(decoded, target)
    before = np.mean((decoded.astype(float) - target) ** 2)
    after = np.mean((postfilter.apply(decoded, pf).astype(float) - target) ** 2)
    assert after < 0.5 * before


@pytest.mark.parametrize("seed", range(4))
def test_block_round_trip(seed):
    pf = random_filter(seed, scale=(1 << 20) - 1, shift=1 + seed * 4)
    block = postfilter.pack(pf)
    assert len(block) <= postfilter.MAX_BLOCK_BYTES
    back = postfilter.unpack(block, 8, 8)
    assert back.shift == pf.shift and np.array_equal(back.weights, pf.weights)


@pytest.mark.parametrize("block", [
    b"", b"\x01", b"\x02\x08" + bytes(72), b"\x01\x00" + bytes(72), b"\x01\x10" + bytes(72),
    b"\x01\x08" + bytes(71), b"\x01\x08" + bytes(73), b"\x01\x08" + b"\xff\xff\xff\x01" + bytes(71),
    b"\x01\x08" + bytes(71) + b"\x80",
])
def test_hostile_blocks_are_corrupt(block):
    with pytest.raises(CorruptError):
        postfilter.unpack(block, 8, 8)


def test_a_weight_not_in_shortest_form_is_corrupt():
    """Shape 1's varints have one byte form each (spec 5a): zero written as 0x80 0x00 is refused."""
    assert postfilter.unpack(b"\x01\x08" + bytes(72), 8, 8).weights.sum() == 0
    with pytest.raises(CorruptError, match="shortest"):
        postfilter.unpack(b"\x01\x08" + b"\x80\x00" + bytes(71), 8, 8)


def _forced(monkeypatch, keep: bool) -> None:
    monkeypatch.setattr(api, "POST_FILTER_DB_PER_NEPER", 0.0 if keep else 1e9)


def test_payload_with_post_filter_is_the_filtered_decode(monkeypatch):
    img = photo(70, 90, seed=8)
    q = QUALITIES[0]
    plain = compress_image(img, q, post_filter=False, transpose=False)
    _forced(monkeypatch, keep=True)
    data = compress_image(img, q, transpose=False)
    _, _, flags, _, _, stream, post = payload.read_header(data)
    _, _, plain_flags, _, _, plain_stream, plain_post = payload.read_header(plain)
    assert flags & payload.FLAG_POST and not plain_flags & payload.FLAG_POST and plain_post == b""
    assert stream == plain_stream  # the filter never changes the symbols
    base = decompress_image(plain)
    out = decompress_image(data)
    assert np.array_equal(out, api._post_filtered(base, q, postfilter.unpack(post, *base.shape[:2])))
    assert np.mean((out.astype(float) - img) ** 2) < np.mean((base.astype(float) - img) ** 2)
    assert "post filter" in payload.describe(data)
    _forced(monkeypatch, keep=False)
    assert compress_image(img, q, transpose=False) == plain  # a filter that does not pay is left out


def test_residual_payload_can_carry_a_post_filter(monkeypatch):
    original = photo(64, 64, seed=9)
    reference = np.clip(original.astype(np.int16) + 20, 0, 255).astype(np.uint8)
    _forced(monkeypatch, keep=True)
    data = compress_residual(original, reference, QUALITIES[-1])
    flags = payload.read_header(data).flags
    if not flags & payload.FLAG_EMPTY:
        assert flags & payload.FLAG_POST
    out = decompress_residual(data, reference)
    assert np.mean((out.astype(float) - original) ** 2) < np.mean((reference.astype(float) - original) ** 2)


def _with_post(monkeypatch) -> bytes:
    _forced(monkeypatch, keep=True)
    data = compress_image(photo(40, 40, seed=10), QUALITIES[0])
    assert payload.read_header(data).flags & payload.FLAG_POST
    return data


def recrc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def test_post_filter_payload_errors(monkeypatch):
    data = _with_post(monkeypatch)
    body = data[:-4]
    (length,) = struct.unpack_from("<I", data, 12)
    at = payload.HEADER.size + length  # the post-filter length field
    for n in range(len(data)):
        with pytest.raises(TruncatedError):
            decompress_image(data[:n])
    with pytest.raises(TruncatedError):  # flag set, nothing after the stream
        decompress_image(recrc(body[:at]))
    with pytest.raises(CorruptError):  # unknown filter shape
        decompress_image(recrc(body[: at + 2] + b"\x07" + body[at + 3 :]))
    with pytest.raises(CorruptError):  # a byte more than the weights need
        decompress_image(recrc(body[:at] + struct.pack("<H", len(body) - at - 1) + body[at + 2 :] + b"\x00"))
    with pytest.raises(CorruptError):  # the empty-residual flag with a filter
        decompress_image(recrc(body[:7] + bytes([body[7] | payload.FLAG_EMPTY | payload.FLAG_RESIDUAL]) + body[8:]))
