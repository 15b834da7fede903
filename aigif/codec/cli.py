"""Plain functions for the ``aigif codec`` command (wired into typer by the CLI module)."""
from __future__ import annotations

import numpy as np


def cli_codec_encode(input_path: str, output_path: str, quality: int = 2) -> dict:
    """Code an image file (PNG, JPEG, ...) into an NVTC payload file; returns size stats."""
    from PIL import Image

    from . import compress_image

    rgb = np.asarray(Image.open(input_path).convert("RGB"))
    data = compress_image(rgb, quality)
    with open(output_path, "wb") as f:
        f.write(data)
    h, w = rgb.shape[:2]
    return {"bytes": len(data), "bpp": len(data) * 8 / (h * w), "width": w, "height": h, "quality": quality}


def cli_codec_decode(input_path: str, output_path: str, max_pixels: int | None = None) -> dict:
    """Decode an NVTC payload file to an image file (format from the output extension; no AI mark: the pixels
    could be anything)."""
    from ..fileio import atomic_write
    from ..provenance import format_for, image_bytes
    from . import decompress_image

    with open(input_path, "rb") as f:
        data = f.read()
    rgb = decompress_image(data, **({"max_pixels": max_pixels} if max_pixels else {}))
    atomic_write(output_path, image_bytes(rgb, format_for(output_path), ai_label=False))
    return {"width": rgb.shape[1], "height": rgb.shape[0]}
