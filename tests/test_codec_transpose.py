"""NVTC transposed payloads (flags bit 6, spec section 5b): the stream codes the image's transpose."""
from __future__ import annotations

import numpy as np
import pytest

from aigif.codec import QUALITIES, api, compress_image, payload, compress_residual, decompress_image, decompress_residual
from aigif.errors import CorruptError

from .test_codec import photo
from .test_codec_postfilter import recrc


def _columns_image(h: int, w: int) -> np.ndarray:
    """Structure that runs down the columns (vertical stripes of varying width): cheaper coded transposed."""
    x = np.arange(w)
    stripes = (127 + 100 * np.sign(np.sin(x / (3.0 + (x % 17) / 4.0))))[None, :, None]
    noise = np.random.default_rng(0).normal(0, 3, (h, 1, 3))
    return np.clip(np.broadcast_to(stripes, (h, w, 3)) + noise, 0, 255).astype(np.uint8)


def test_transposed_payload_is_the_transpose_of_the_transposed_image():
    """A payload with bit 6 decodes to exactly the transpose of what the transposed image's payload decodes
    to: same stream, same post filter, only the flag and the header's height/width differ."""
    img = photo(72, 136, seed=11)
    q = QUALITIES[1]
    flipped = compress_image(img, q, transpose=True)
    direct = compress_image(np.ascontiguousarray(img.transpose(1, 0, 2)), q, transpose=False)
    f1, f2 = payload.read_header(flipped), payload.read_header(direct)
    assert f1.flags == f2.flags | payload.FLAG_TRANSPOSED and (f1.height, f1.width) == (72, 136)
    assert (f2.height, f2.width) == f1.coded_shape == f2.coded_shape == (136, 72)
    assert (f1.stream, f1.post) == (f2.stream, f2.post)
    out = decompress_image(flipped)
    assert out.shape == img.shape
    assert np.array_equal(out, decompress_image(direct).transpose(1, 0, 2))
    assert "transposed" in payload.describe(flipped) and "transposed" not in payload.describe(direct)


def test_encoder_keeps_the_cheaper_orientation():
    """``transpose=None`` codes both ways and keeps the lower rate-distortion cost: column structure is coded
    transposed, its transpose is not (layer directions off: they let the rows-first stream walk the columns too)."""
    img = _columns_image(64, 128)
    q = QUALITIES[0]

    def cost(data, ref):
        mse = np.mean((decompress_image(data).astype(float) - ref) ** 2)
        return 10 * np.log10(mse) + api.POST_FILTER_DB_PER_NEPER * np.log(len(data))

    for src in (img, np.ascontiguousarray(img.transpose(1, 0, 2))):
        both = [compress_image(src, q, transpose=t, layer_directions=False) for t in (False, True)]
        auto = compress_image(src, q, transpose=None, layer_directions=False)
        assert auto == min(both, key=lambda d: cost(d, src))
    costs = [cost(compress_image(img, q, transpose=t, layer_directions=False), img) for t in (False, True)]
    assert costs[1] < costs[0]  # the columns' structure made into rows is cheaper
    assert compress_image(img, q, transpose=None, layer_directions=False)[7] & payload.FLAG_TRANSPOSED
    assert not compress_image(img, q)[7] & payload.FLAG_TRANSPOSED  # the default codes one way


def test_transposed_residual_round_trip():
    original = photo(48, 80, seed=12)
    y, x = np.mgrid[0:48, 0:80]
    reference = np.clip(original.astype(np.int16) + (20 * np.sin(x / 7.0))[..., None].astype(np.int16), 0, 255
                        ).astype(np.uint8)
    data = compress_residual(original, reference, QUALITIES[-1], transpose=True)
    flags = payload.read_header(data).flags
    assert flags & payload.FLAG_RESIDUAL and flags & payload.FLAG_TRANSPOSED and not flags & payload.FLAG_EMPTY
    out = decompress_residual(data, reference)
    assert np.mean((out.astype(float) - original) ** 2) < np.mean((reference.astype(float) - original) ** 2)
    plain = compress_residual(original, reference, QUALITIES[-1], transpose=False)
    assert not payload.read_header(plain).flags & payload.FLAG_TRANSPOSED


def test_transposed_flag_on_an_empty_residual_is_corrupt():
    empty = compress_residual(photo(32, 32, seed=1), photo(32, 32, seed=1), QUALITIES[0])
    assert payload.read_header(empty).flags & payload.FLAG_EMPTY
    body = empty[:-4]
    with pytest.raises(CorruptError, match="transposed"):
        decompress_residual(recrc(body[:7] + bytes([body[7] | payload.FLAG_TRANSPOSED]) + body[8:]), photo(32, 32, seed=1))
