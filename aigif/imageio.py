"""Plain images in and out (PNG bytes of a result, pixels of a reference image): one helper each."""
from __future__ import annotations

import io
import os
import warnings

from .errors import ImageReadError, LimitError
from .fileio import read_limited
from .limits import DEFAULT_LIMITS, Limits


def png_bytes(image, pnginfo=None, *, ai_label: bool = True) -> bytes:
    """PNG bytes of a PIL image or HxWx3 uint8 array, marked as AI-generated (IPTC, XMP) unless *ai_label* is False;
    *pnginfo*: PIL ``PngInfo`` text chunks to embed."""
    from .provenance import image_bytes

    return image_bytes(image, "PNG", ai_label=ai_label, pnginfo=pnginfo)


def open_image(data: bytes, limits: Limits = DEFAULT_LIMITS, formats: set | None = None):
    """A fully loaded PIL image from bytes: the pixel count is checked before any pixel is decoded, and
    *formats* (Pillow format names) limits what is accepted. ``ImageReadError`` / ``LimitError`` otherwise."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")        # Pillow warns on odd EXIF / large images; the limits are checked here
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise LimitError(f"image refused: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"not a readable image ({exc})") from None
    if formats is not None and im.format not in formats:
        raise ImageReadError(f"image format {im.format} is not supported; expected {', '.join(sorted(formats))}")
    w, h = im.size
    if w * h > limits.max_image_pixels:
        raise LimitError(f"image of {w}x{h} pixels is above the limit of {limits.max_image_pixels} pixels")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im.load()
    except Image.DecompressionBombError as exc:
        raise LimitError(f"image refused: {exc}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageReadError(f"image data is damaged ({exc})") from None
    return im


def read_bytes(src, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """The bytes of an image given as a path or as bytes, refused above ``limits.max_file_bytes``."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        if len(src) > limits.max_file_bytes:
            raise LimitError(f"image of {len(src)} bytes is above the limit of {limits.max_file_bytes}")
        return bytes(src)
    return read_limited(os.fspath(src), limits.max_file_bytes)


def read_image(src, limits: Limits = DEFAULT_LIMITS, formats: set | None = None):
    """An image (path or bytes) as HxWx3 uint8 RGB; size and pixel count checked before it is decoded."""
    import numpy as np

    try:
        return np.asarray(open_image(read_bytes(src, limits), limits, formats).convert("RGB"), dtype=np.uint8)
    except ImageReadError as exc:
        name = "image" if isinstance(src, (bytes, bytearray, memoryview)) else os.fspath(src)
        raise ImageReadError(f"{name}: {exc}") from None
