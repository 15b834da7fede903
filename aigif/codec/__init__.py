"""Learned pixel / residual codec of aigif: NVTC-lite.

After Feng et al., "NVTC: Nonlinear Vector Transform Coding" (CVPR 2023):
multi-stage residual vector quantisation with vector transforms and
entropy-constrained VQ, written with a real range coder (constriction) and
integer probability tables, so payloads decode identically everywhere.

    from aigif.codec import compress_image, decompress_image, QUALITIES
    data = compress_image(rgb, quality=2)
    rgb_hat = decompress_image(data)

torch is imported only when a function here is first called.
"""
from __future__ import annotations

from .zoo import QUALITIES

__all__ = ["QUALITIES", "compress_image", "decompress_image", "compress_residual", "decompress_residual"]


def compress_image(rgb, quality: int) -> bytes:
    """See :func:`aigif.codec.api.compress_image`."""
    from .api import compress_image as f

    return f(rgb, quality)


def decompress_image(data: bytes, *, max_pixels: int = 64 * 2**20):
    """See :func:`aigif.codec.api.decompress_image`."""
    from .api import decompress_image as f

    return f(data, max_pixels=max_pixels)


def compress_residual(original, reference, quality: int) -> bytes:
    """See :func:`aigif.codec.api.compress_residual`."""
    from .api import compress_residual as f

    return f(original, reference, quality)


def decompress_residual(data: bytes, reference, *, max_pixels: int = 64 * 2**20):
    """See :func:`aigif.codec.api.decompress_residual`."""
    from .api import decompress_residual as f

    return f(data, reference, max_pixels=max_pixels)
