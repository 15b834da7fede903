"""ComfyUI's hires fix in pixel space -> the hires element's upscaler and output size (spec/importers.md).

The graph decodes the first pass, enlarges the image with an upscale model
(``UpscaleModelLoader`` + ``ImageUpscaleWithModel``), a resize (``ImageScale`` /
``ImageScaleBy``) or both (model first), and encodes it again (``VAEEncode``) for
the second ``KSampler``. A model becomes its registry name (found by its file
stem) or its file stem; a resize alone becomes the resampling filter of its method.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..syntax.registry import UPSCALERS
from .result import to_float, to_int

IMAGE_NODES = ("ImageUpscaleWithModel", "ImageScale", "ImageScaleBy")
PASS_NODES = (*IMAGE_NODES, "UpscaleModelLoader")      # what a pixel pass adds to a graph, besides its VAEEncode
# ComfyUI image upscale_method -> the pixel resampler of the registry (ComfyUI's lanczos is PIL's)
SCALE_METHODS = {"lanczos": "lanczos", "nearest-exact": "nearest", "bilinear": "pixel-bilinear", "bicubic": "pixel-bicubic"}
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
_SCALE_IN_NAME = re.compile(r"(?i)(?:^|[^0-9a-z])(?:([1-8])x|x([1-8]))(?:[^0-9]|$)")


class PixelNotMapped(ValueError):
    """A pixel-space second pass the element cannot express (the message says what)."""


@dataclass(frozen=True)
class PixelPass:
    """The nodes between the first sampler's decoder and the second sampler."""

    decoder: str                  # the first pass's VAEDecode
    chain: tuple[str, ...]        # the image nodes, decoder side first
    encoder: str                  # the VAEEncode the second sampler starts from
    loader: str | None            # the UpscaleModelLoader, when a model enlarges


def _link(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and isinstance(v[0], str)


def find_pixel_pass(graph: dict[str, dict], sampler: str) -> PixelPass | None:
    """The pixel chain *sampler*'s ``latent_image`` comes from, or None when it is not VAEDecode -> image nodes ->
    VAEEncode (e.g. an img2img graph that encodes a loaded image)."""
    lat = graph[sampler].get("inputs", {}).get("latent_image")
    if not _link(lat) or graph.get(lat[0], {}).get("class_type") != "VAEEncode":
        return None
    encoder, chain = lat[0], []
    src = graph[encoder].get("inputs", {}).get("pixels")
    while _link(src) and graph.get(src[0], {}).get("class_type") in IMAGE_NODES and len(chain) < len(IMAGE_NODES):
        chain.insert(0, src[0])
        src = graph[src[0]].get("inputs", {}).get("image")
    if not chain or not _link(src) or graph.get(src[0], {}).get("class_type") != "VAEDecode":
        return None
    model = [k for k in chain if graph[k]["class_type"] == "ImageUpscaleWithModel"]
    loader = graph[model[0]]["inputs"].get("upscale_model") if model else None
    return PixelPass(src[0], tuple(chain), encoder, loader[0] if _link(loader) else None)


def model_upscaler(file_name: Any) -> tuple[str, int | None]:
    """(upscaler name, its scale when known) of an ``UpscaleModelLoader`` ``model_name``."""
    if not isinstance(file_name, str) or not file_name.strip():
        raise PixelNotMapped("the upscale model's file name is not a plain value")
    stem = re.split(r"[\\/]", file_name.strip())[-1]
    for suffix in WEIGHT_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    for entry in UPSCALERS.values():
        if entry.space == "pixel" and entry.mode is None and (stem == entry.name or stem in entry.files):
            return entry.name, entry.scale
    m = _SCALE_IN_NAME.search(stem)
    return stem, int(m.group(1) or m.group(2)) if m else None


def pixel_upscale(graph: dict[str, dict], pp: PixelPass, width: int, height: int,
                  image_size=None) -> tuple[str, tuple[int, int], float | None]:
    """(upscaler, (output width, output height), the factor when the chain enlarges by one) of the chain, for a first
    pass of *width* x *height*. A model of unknown scale takes the saved image's size (*image_size*) when nothing
    after it sizes the pass."""
    kinds = [graph[k]["class_type"] for k in pp.chain]
    if kinds.count("ImageUpscaleWithModel") > 1 or len(kinds) - kinds.count("ImageUpscaleWithModel") > 1 \
            or "ImageUpscaleWithModel" in kinds[1:]:
        raise PixelNotMapped(f"the first pass is enlarged by {' -> '.join(kinds)} (one upscale model, then one resize)")
    size: tuple[int, int] | None = (width, height)
    factor: float | None = 1.0
    upscaler = None
    try:
        for key, kind in zip(pp.chain, kinds):
            inp = graph[key]["inputs"]
            if kind == "ImageUpscaleWithModel":
                loader = graph.get(pp.loader or "", {})
                if loader.get("class_type") != "UpscaleModelLoader":
                    raise PixelNotMapped("the upscale model does not come from an UpscaleModelLoader")
                upscaler, scale = model_upscaler(loader["inputs"].get("model_name"))
                size, factor = ((width * scale, height * scale), float(scale)) if scale else (None, None)
                continue
            method = inp.get("upscale_method")
            if upscaler is None and method not in SCALE_METHODS:
                raise PixelNotMapped(f"the image resize method {method!r} has no resampling filter in the registry "
                                     f"({', '.join(SCALE_METHODS)} have)")
            upscaler = upscaler or SCALE_METHODS[method]
            if kind == "ImageScale":
                if inp.get("crop", "disabled") != "disabled":
                    raise PixelNotMapped(f"the image resize crops ({inp.get('crop')})")
                size, factor = (to_int(inp.get("width")), to_int(inp.get("height"))), None
                if min(size) <= 0:
                    raise PixelNotMapped("the image resize keeps the aspect ratio from one side (width or height 0)")
            elif size is not None:
                s = to_float(inp.get("scale_by"))
                size, factor = (round(size[0] * s), round(size[1] * s)), factor * s   # ComfyUI: round(side x scale_by)
            else:
                size = None
    except (TypeError, ValueError) as exc:
        if isinstance(exc, PixelNotMapped):
            raise
        raise PixelNotMapped(f"the image upscale values are not plain numbers ({exc})") from None
    if size is None and image_size is not None:
        size = tuple(image_size)
        factor = size[0] / width if size[0] * height == size[1] * width else None
    if size is None:
        raise PixelNotMapped(f"the scale of the upscale model {upscaler!r} is unknown (not in its name nor the registry)")
    return upscaler, size, factor
