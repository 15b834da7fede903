"""AVIF pixel payloads: Pillow's AVIF codec behind the limits every image payload gets (spec/pixel-codecs.md).

Payload::

    magic  4s   b"AVIF"
    height u16, width u16   (little-endian; checked against the limits before Pillow sees a byte)
    file        an AVIF file (ISO-BMFF, one still image, 8-bit RGB after decoding)

The header lets a decoder refuse an oversized image before decoding, and the
AVIF file's own size must equal it, so Pillow never allocates more than the
header allowed.
"""
from __future__ import annotations

import io
import struct

import numpy as np

from ..errors import AigifError, ConfigError, CorruptError, FormatError, LimitError, TruncatedError, UnknownCodecError

MAGIC = b"AVIF"
HEADER = struct.Struct("<4sHH")
QUALITY_RANGE = range(0, 101)
SPEED = 6                                # libavif/aom speed: Pillow's default; payloads do not depend on it when decoding


def available() -> bool:
    """Whether the installed Pillow reads and writes AVIF (Pillow >= 11.3 wheels do)."""
    try:
        from PIL import features

        return bool(features.check("avif"))
    except Exception:  # pragma: no cover - a Pillow without the features module
        return False


def _require() -> None:
    if not available():
        raise UnknownCodecError("AVIF pixel payload, but this Pillow has no AVIF support; install pillow>=11.3")


def compress(rgb: np.ndarray, quality: int) -> bytes:
    """An AVIF payload of an (H, W, 3) uint8 image at Pillow quality 0..100 (4:4:4, no metadata)."""
    from PIL import Image

    _require()
    if quality not in QUALITY_RANGE:
        raise ConfigError(f"AVIF quality {quality!r}, should be between 0 and 100")
    h, w = rgb.shape[:2]
    if not (1 <= h <= 0xFFFF and 1 <= w <= 0xFFFF):
        raise ConfigError(f"image size {w}x{h} outside 1..65535")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(buf, format="AVIF", quality=quality, speed=SPEED,
                                                            subsampling="4:4:4")
    return HEADER.pack(MAGIC, h, w) + buf.getvalue()


def header(data: bytes, max_pixels: int) -> tuple[int, int]:
    """(height, width) from a payload's header, limits applied; nothing decoded."""
    if len(data) < HEADER.size:
        raise TruncatedError(f"AVIF payload: {len(data)} bytes, the header needs {HEADER.size}")
    magic, h, w = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise FormatError(f"AVIF payload: bad magic {magic!r} at offset 0, expected {MAGIC!r}")
    if h == 0 or w == 0:
        raise CorruptError(f"AVIF payload: empty image {w}x{h} at offset 4")
    if h * w > max_pixels:
        raise LimitError(f"AVIF payload: {w}x{h} = {w * h} pixels exceeds max_pixels={max_pixels}")
    if len(data) == HEADER.size:
        raise TruncatedError("AVIF payload: no AVIF file after the 8-byte header")
    return h, w


def decompress(data: bytes, *, max_pixels: int) -> np.ndarray:
    """Decode an AVIF payload to (H, W, 3) uint8; the size is checked before Pillow decodes anything."""
    from PIL import Image

    h, w = header(data, max_pixels)
    _require()
    try:
        with Image.open(io.BytesIO(bytes(data[HEADER.size:])), formats=["AVIF"]) as im:
            if im.size != (w, h):   # Pillow has parsed the container only: refuse before it allocates pixels
                raise CorruptError(f"AVIF payload: the AVIF file is {im.size[0]}x{im.size[1]}, the header says {w}x{h}")
            if getattr(im, "n_frames", 1) != 1:
                raise CorruptError(f"AVIF payload: {im.n_frames} frames, expected one still image")
            im.load()
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except AigifError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError) as exc:
        raise CorruptError(f"AVIF payload: Pillow cannot decode the AVIF file ({exc})") from None
    return np.ascontiguousarray(rgb)


def describe(data: bytes) -> str:
    try:
        h, w = header(data, 0xFFFF * 0xFFFF)
    except (FormatError, LimitError) as exc:
        return f"<{len(data)} bytes, invalid: {exc}>"
    return f"AVIF image {w}x{h}, {len(data)} bytes ({len(data) * 8 / (w * h):.3f} bpp)"
