"""Plain images in and out (PNG bytes of a result, pixels of a reference image): one helper each."""
from __future__ import annotations

import io
import os

from .errors import AigifError, LimitError
from .fileio import read_limited
from .limits import DEFAULT_LIMITS, Limits


def png_bytes(image, pnginfo=None, *, ai_label: bool = True) -> bytes:
    """PNG bytes of a PIL image or HxWx3 uint8 array, marked as AI-generated (IPTC, XMP) unless *ai_label* is False;
    *pnginfo*: PIL ``PngInfo`` text chunks to embed."""
    from .provenance import image_bytes

    return image_bytes(image, "PNG", ai_label=ai_label, pnginfo=pnginfo)


def read_image(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS):
    """An image file as HxWx3 uint8; its size and pixel count are checked before it is decoded."""
    import numpy as np
    from PIL import Image

    data = read_limited(path, limits.max_file_bytes)
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > limits.max_image_pixels:
                raise LimitError(f"{path}: {im.width}x{im.height} is above the limit of {limits.max_image_pixels} pixels")
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise AigifError(f"{path}: not a readable image ({exc})") from None
