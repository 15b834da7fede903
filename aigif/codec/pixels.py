"""The pixels segment's codecs: a table from the payload's first four bytes (its codec id) to a decoder.

The encoder codes an image with NVTC at the requested quality, then with AVIF
at the lowest quality that reaches the same PSNR, and keeps the smaller
payload (spec/pixel-codecs.md). Residuals stay NVTC: they are added to
regenerated pixels, which AVIF's encoder never saw.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import ConfigError, TruncatedError, UnknownCodecError
from . import avif, payload
from .zoo import DEFAULT_MAX_PIXELS


def _nvtc_decode(data: bytes, *, max_pixels: int) -> np.ndarray:
    from .api import decompress_image

    return decompress_image(data, max_pixels=max_pixels)


def _nvtc_size(data: bytes, *, max_pixels: int) -> tuple[int, int]:
    p = payload.read_header(data, max_pixels)
    return p.width, p.height


def _avif_size(data: bytes, *, max_pixels: int) -> tuple[int, int]:
    h, w = avif.header(data, max_pixels)
    return w, h


@dataclass(frozen=True)
class PixelCodec:
    name: str
    decode: Callable[..., np.ndarray]     # (payload, *, max_pixels) -> (H, W, 3) uint8
    describe: Callable[[bytes], str]
    size: Callable[..., tuple]            # (payload, *, max_pixels) -> (width, height), from the header only


CODECS = {
    payload.MAGIC: PixelCodec("nvtc", _nvtc_decode, payload.describe, _nvtc_size),
    avif.MAGIC: PixelCodec("avif", avif.decompress, avif.describe, _avif_size),
}
CODEC_NAMES = ("nvtc", "avif")


def codec_of(data: bytes) -> PixelCodec:
    if len(data) < 4:
        raise TruncatedError(f"pixels payload: {len(data)} bytes, a codec id needs 4")
    codec = CODECS.get(bytes(data[:4]))
    if codec is None:
        raise UnknownCodecError(f"pixels payload: unknown codec id {bytes(data[:4])!r}; known: "
                                f"{', '.join(repr(k) for k in CODECS)}")
    return codec


def decompress_pixels(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a pixels-segment payload of any known codec to (H, W, 3) uint8."""
    return codec_of(data).decode(bytes(data), max_pixels=max_pixels)


def pixels_size(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of a pixels-segment payload of any known codec, from its header (nothing decoded)."""
    return codec_of(data).size(bytes(data), max_pixels=max_pixels)


def describe_pixels(data: bytes) -> str:
    try:
        return codec_of(data).describe(bytes(data))
    except (TruncatedError, UnknownCodecError) as exc:
        return f"<{len(data)} bytes, invalid: {exc}>"


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    from ..fidelity import psnr

    return psnr(a, b)


def avif_reaching(rgb: np.ndarray, target_psnr: float) -> bytes | None:
    """The AVIF payload of the lowest quality whose PSNR reaches *target_psnr* (binary search), or None."""
    if not avif.available():
        return None
    lo, hi, best = 0, 100, None
    while lo <= hi:
        q = (lo + hi) // 2
        payload = avif.compress(rgb, q)
        if _psnr(rgb, avif.decompress(payload, max_pixels=rgb.shape[0] * rgb.shape[1])) >= target_psnr:
            best, hi = payload, q - 1
        else:
            lo = q + 1
    return best


def smaller_of(rgb: np.ndarray, nvtc: bytes, codecs: tuple[str, ...] = CODEC_NAMES) -> bytes:
    """*nvtc*, or the AVIF payload reaching its PSNR when that is smaller (*codecs* limits the choice)."""
    unknown = sorted(set(codecs) - set(CODEC_NAMES))
    if unknown or not codecs:
        raise ConfigError(f"unknown pixel codec(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(CODEC_NAMES)}")
    if "avif" not in codecs or not avif.available():
        return nvtc
    from .api import decompress_image

    target = _psnr(rgb, decompress_image(nvtc, max_pixels=rgb.shape[0] * rgb.shape[1]))
    other = avif_reaching(rgb, target)
    if "nvtc" not in codecs and other is None:
        other = avif.compress(rgb, max(avif.QUALITY_RANGE))
    return other if other is not None and ("nvtc" not in codecs or len(other) < len(nvtc)) else nvtc


def compress_pixels(rgb: np.ndarray, quality: int, *, codecs: tuple[str, ...] = CODEC_NAMES, **nvtc_options) -> bytes:
    """The smaller of NVTC at *quality* and AVIF at the same PSNR (*codecs* limits the choice)."""
    from .api import compress_image

    return smaller_of(rgb, compress_image(rgb, quality, **nvtc_options), codecs)
