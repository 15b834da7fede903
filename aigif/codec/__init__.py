"""Learned pixel / residual codec of aigif: NVTC (model nvtc-v2).

After Feng et al., "NVTC: Nonlinear Vector Transform Coding" (CVPR 2023):
multi-stage residual vector quantisation with vector transforms and
entropy-constrained VQ, written with a real range coder (constriction) and
integer probability tables, so payloads decode identically everywhere.

    from aigif.codec import compress_image, decompress_image, QUALITIES
    data = compress_image(rgb, quality=2)
    rgb_hat = decompress_image(data)

A ``pixels`` segment may also hold AVIF: ``compress_pixels`` keeps the smaller
of NVTC and AVIF at the same PSNR, ``decompress_pixels`` reads either
(``pixels`` holds the codec-id table, ``avif`` the AVIF payload).

Modules: ``payload`` (the payload's bytes: header, flags, validation),
``api`` (compress / decompress), ``model`` (transforms, codebooks, the one
coding loop), ``intsynth`` (the integer decoder of model id 6), ``entropy``
(integer tables, copy flags, range coding), ``rdo`` (the encoder's row-trellis
index search), ``postfilter`` / ``classfilter`` (the per-image integer
filters), ``restore`` (the restoration network), ``zoo`` (shipped weights).
Training and quantisation live outside the package (``tools/train_nvtc.py``,
``tools/train_nvtc_restore.py``, ``tools/quantise_nvtc.py``). torch is
imported only when a function here is first called.
"""
from __future__ import annotations

from .zoo import DEFAULT_MAX_PIXELS, QUALITIES

__all__ = ["DEFAULT_MAX_PIXELS", "QUALITIES", "compress_to_target", "compress_image", "decompress_image", "compress_residual",
           "decompress_residual", "compress_pixels", "decompress_pixels"]


def compress_pixels(rgb, quality: int, *, codecs: tuple[str, ...] = ("nvtc", "avif"), **nvtc_options) -> bytes:
    """See :func:`aigif.codec.pixels.compress_pixels`: the smaller of NVTC and AVIF at the same PSNR."""
    from .pixels import compress_pixels as f

    return f(rgb, quality, codecs=codecs, **nvtc_options)


def decompress_pixels(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS):
    """See :func:`aigif.codec.pixels.decompress_pixels`: a pixels payload of any known codec."""
    from .pixels import decompress_pixels as f

    return f(data, max_pixels=max_pixels)


def compress_image(rgb, quality: int, *, post_filter: bool = True, adaptive: bool = True,
                   transpose: bool | None = False, layer_directions: bool = True, restoration: bool = True) -> bytes:
    """See :func:`aigif.codec.api.compress_image`."""
    from .api import compress_image as f

    return f(rgb, quality, post_filter=post_filter, adaptive=adaptive, transpose=transpose,
             layer_directions=layer_directions, restoration=restoration)


def decompress_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS):
    """See :func:`aigif.codec.api.decompress_image`."""
    from .api import decompress_image as f

    return f(data, max_pixels=max_pixels)


def compress_residual(original, reference, quality: int, *, post_filter: bool = True, adaptive: bool = True,
                      transpose: bool | None = False, layer_directions: bool = True, restoration: bool = True) -> bytes:
    """See :func:`aigif.codec.api.compress_residual`."""
    from .api import compress_residual as f

    return f(original, reference, quality, post_filter=post_filter, adaptive=adaptive, transpose=transpose,
             layer_directions=layer_directions, restoration=restoration)


def decompress_residual(data: bytes, reference, *, max_pixels: int = DEFAULT_MAX_PIXELS):
    """See :func:`aigif.codec.api.decompress_residual`."""
    from .api import decompress_residual as f

    return f(data, reference, max_pixels=max_pixels)


def compress_to_target(rgb, target_psnr: float, qualities=None, *, transpose: bool | None = False,
                       layer_directions: bool = True) -> tuple[int, bytes, float]:
    """The lowest quality whose decoded PSNR reaches *target_psnr* (else the highest): ``(quality, payload, psnr)``."""
    from ..fidelity import psnr

    best = None
    for q in sorted(qualities or QUALITIES):
        payload = compress_image(rgb, q, transpose=transpose, layer_directions=layer_directions)
        p = psnr(rgb, decompress_image(payload, max_pixels=rgb.shape[0] * rgb.shape[1]))
        best = (q, payload, p)
        if p >= target_psnr:
            break
    return best
