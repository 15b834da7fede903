"""The pixels segment's codecs: NVTC or AVIF by codec id, AVIF limits applied before Pillow decodes."""
from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from aigif.codec import avif, compress_image, compress_pixels, decompress_pixels
from aigif.codec.pixels import avif_reaching, describe_pixels, smaller_of
from aigif.errors import AigifError, ConfigError, CorruptError, LimitError, TruncatedError, UnknownCodecError
from aigif.fidelity import psnr

pytestmark = pytest.mark.skipif(not avif.available(), reason="this Pillow has no AVIF support")


def _smooth(h=48, w=64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (h + w)], axis=2).astype(np.uint8)


@pytest.fixture(scope="module")
def payload() -> bytes:
    return avif.compress(_smooth(), 70)


def test_avif_round_trip_through_the_dispatcher(payload):
    img = _smooth()
    out = decompress_pixels(payload, max_pixels=img.shape[0] * img.shape[1])
    assert out.shape == img.shape and out.dtype == np.uint8 and psnr(img, out) > 30
    assert payload[:4] == b"AVIF" and struct.unpack_from("<HH", payload, 4) == img.shape[:2]
    assert describe_pixels(payload).startswith("AVIF image 64x48")


def test_limit_passes_and_limit_minus_one_pixel_is_refused_before_pillow(payload, monkeypatch):
    decompress_pixels(payload, max_pixels=48 * 64)
    monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("Pillow must not see an oversized payload"))
    with pytest.raises(LimitError):
        decompress_pixels(payload, max_pixels=48 * 64 - 1)


def test_header_that_lies_about_the_size_is_corrupt(payload):
    for h, w in ((49, 64), (48, 63), (1, 1)):
        with pytest.raises(CorruptError, match="header says"):
            decompress_pixels(struct.pack("<4sHH", b"AVIF", h, w) + payload[8:], max_pixels=1 << 20)
    with pytest.raises(CorruptError):
        decompress_pixels(struct.pack("<4sHH", b"AVIF", 0, 64) + payload[8:])


def test_every_truncation_is_a_clean_error(payload):
    for cut in range(len(payload)):
        with pytest.raises(AigifError) as info:
            decompress_pixels(payload[:cut], max_pixels=1 << 20)
        assert isinstance(info.value, (TruncatedError, CorruptError)), (cut, info.value)


def test_garbage_after_the_header_is_corrupt():
    with pytest.raises(CorruptError):
        decompress_pixels(struct.pack("<4sHH", b"AVIF", 8, 8) + b"\x00" * 64, max_pixels=64)


def test_an_animation_is_refused():
    frames = [Image.fromarray(_smooth(16, 16)), Image.fromarray(255 - _smooth(16, 16))]
    buf = io.BytesIO()
    frames[0].save(buf, format="AVIF", save_all=True, append_images=frames[1:])
    with pytest.raises(CorruptError, match="frames"):
        decompress_pixels(struct.pack("<4sHH", b"AVIF", 16, 16) + buf.getvalue(), max_pixels=256)


def test_unknown_codec_id_and_short_payloads():
    with pytest.raises(UnknownCodecError) as info:
        decompress_pixels(b"WXYZ" + bytes(16))
    assert info.value.kind == "unknown-codec" and "NVTC" in str(info.value)
    for short in (b"", b"AV", b"AVI"):
        with pytest.raises(TruncatedError):
            decompress_pixels(short)


def test_nvtc_payloads_still_decode_through_the_dispatcher():
    img = _smooth(24, 32)
    nvtc = compress_image(img, 1)
    assert np.array_equal(decompress_pixels(nvtc), __import__("aigif").codec.decompress_image(nvtc))


def test_the_encoder_keeps_the_smaller_payload_at_the_same_psnr():
    img = _smooth()
    nvtc = compress_image(img, 2)
    target = psnr(img, decompress_pixels(nvtc))
    other = avif_reaching(img, target)
    assert other is not None and psnr(img, decompress_pixels(other)) >= target
    chosen = compress_pixels(img, 2)
    assert len(chosen) == min(len(nvtc), len(other)) and chosen in (nvtc, other)
    assert compress_pixels(img, 2, codecs=("nvtc",)) == nvtc
    assert smaller_of(img, nvtc, ("avif",))[:4] == b"AVIF"
    with pytest.raises(ConfigError):
        smaller_of(img, nvtc, ("jpeg",))


def test_avif_quality_is_checked():
    with pytest.raises(ConfigError):
        avif.compress(_smooth(), 101)
