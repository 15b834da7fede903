"""aigif extension ``img2img``: regenerate an image-to-image generation.

Segment type ``0x41`` (critical: without the init image the picture cannot be
regenerated). Payload: a msgpack map checked by the schema below::

    strength      number, required, 0..1     how far diffusion moves away from the init image
    width, height int, required, 1..16384    size of the init image
    image_sha256  hex, required, 32 bytes    sha256 of the init image's RGB8 pixels (row-major); bin on the wire
    png           bytes, optional            the init image itself, PNG (lossless, so regeneration is exact)

Without ``png`` the file only references the init image by its pixel hash;
the caller then supplies it with :func:`provide_image` before regenerating.
The adapter turns a text-to-image pipeline into its image-to-image sibling
(``StableDiffusionPipeline`` -> ``StableDiffusionImg2ImgPipeline``, same for
SDXL) with ``from_pipe`` (shared weights, nothing reloaded) and passes
``image`` and ``strength``.
"""
from __future__ import annotations

import hashlib
import io
from typing import Any

from aigif.errors import ConfigError, CorruptError, LimitError, ModelError
from aigif.syntax.extensions import Field, msgpack_extension

__all__ = ["TYPE_CODE", "EXTENSION", "extensions", "register", "init_image_data", "provide_image", "Img2ImgAdapter"]
__version__ = "0.1.0"

TYPE_CODE = 0x41                  # assigned in aigif spec/registry.md; odd = critical
MAX_SIDE = 16384
MAX_PIXELS = 64 * 2**20
MAX_PNG_BYTES = 32 * 2**20

SCHEMA = {
    "strength": Field("number", required=True, min=0.0, max=1.0, doc="img2img strength"),
    "width": Field("int", required=True, min=1, max=MAX_SIDE),
    "height": Field("int", required=True, min=1, max=MAX_SIDE),
    "image_sha256": Field("hex", required=True, min_len=32, max_len=32, doc="sha256 of the RGB8 pixels"),
    "png": Field("bytes", max_len=MAX_PNG_BYTES, doc="the init image, PNG"),
}

_PROVIDED: dict[str, Any] = {}     # image_sha256 -> PIL image supplied by the caller


def pixel_sha256(image: Any) -> str:
    """sha256 of an image's RGB8 pixels, row-major (the same for any lossless container)."""
    return hashlib.sha256(_rgb(image).tobytes()).hexdigest()


def _rgb(image: Any):
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    import numpy as np

    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ConfigError(f"init image must be a PIL image or a uint8 HxWx3 array, got {arr.dtype} {arr.shape}")
    return Image.fromarray(arr, "RGB")


def init_image_data(image: Any, strength: float, *, embed: bool = True) -> dict:
    """The extension data for *image* (PIL or uint8 HxWx3) at *strength*; embeds it as PNG unless ``embed=False``."""
    img = _rgb(image)
    data: dict[str, Any] = {"strength": strength, "width": img.width, "height": img.height, "image_sha256": pixel_sha256(img)}
    if embed:
        buf = io.BytesIO()
        img.save(buf, "PNG")
        data["png"] = buf.getvalue()
    return data


def provide_image(image: Any) -> str:
    """Supply an init image that a file references without embedding it; returns its pixel hash."""
    img = _rgb(image)
    sha = pixel_sha256(img)
    _PROVIDED[sha] = img
    return sha


def _decode_png(png: bytes, width: int, height: int):
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(png), formats=["PNG"])
        if (img.width, img.height) != (width, height):
            raise CorruptError(f"img2img: embedded PNG is {img.width}x{img.height}, the segment says {width}x{height}")
        if img.width * img.height > MAX_PIXELS:
            raise LimitError(f"img2img: init image of {img.width * img.height} pixels, limit {MAX_PIXELS}")
        img.load()
        return img.convert("RGB")
    except (CorruptError, LimitError):
        raise
    except Exception as exc:  # Pillow raises many types on broken data
        raise CorruptError(f"img2img: embedded PNG cannot be decoded ({type(exc).__name__}: {exc})") from None


def _check(data: dict) -> None:
    """Cross-field checks, on encode and decode: hex digest, embedded PNG matches size and hash."""
    sha = data["image_sha256"]
    if "png" in data:
        try:
            img = _decode_png(data["png"], data["width"], data["height"])
        except CorruptError as exc:
            raise ValueError(str(exc)) from None
        if pixel_sha256(img) != sha:
            raise ValueError("embedded PNG does not match image_sha256")


class Img2ImgAdapter:
    """Engine hook: the payload becomes aigif's core image-to-image element, run by the core's code
    (:func:`aigif.engine.img2img.img2img_call`) with the engine's generator."""

    pipeline = ("StableDiffusionImg2ImgPipeline", "StableDiffusionXLImg2ImgPipeline")

    def adapt(self, pipe: Any, call_kwargs: dict, data: dict) -> tuple[Any, dict]:
        from aigif.engine.families import family_for_pipeline
        from aigif.engine.img2img import img2img_call
        from aigif.syntax.img2img import ImageRef, Img2Img

        family = family_for_pipeline(type(pipe).__name__)
        if family is None or family.img2img not in self.pipeline:
            raise ConfigError(f"img2img: no image-to-image pipeline for {type(pipe).__name__}; supported: "
                              f"{', '.join(self.pipeline)}")
        if "png" in data:
            image = _decode_png(data["png"], data["width"], data["height"])
        elif data["image_sha256"] in _PROVIDED:
            image = _PROVIDED[data["image_sha256"]]
        else:
            raise ModelError(f"img2img: the init image (pixel sha256 {data['image_sha256'][:16]}...) is not embedded; "
                             "supply it with aigif_img2img.provide_image(image)")
        w, h = call_kwargs.get("width"), call_kwargs.get("height")
        if (w, h) != (None, None) and (w, h) != (image.width, image.height):
            raise ConfigError(f"img2img: generation size {w}x{h} differs from the init image {image.width}x{image.height}")
        element = Img2Img(strength=data["strength"], image=ImageRef(sha256=data["image_sha256"]))
        return img2img_call(pipe, family, call_kwargs, element, (image, None), call_kwargs.get("generator"))


EXTENSION = msgpack_extension(
    "img2img", TYPE_CODE, SCHEMA, critical=True, adapter=Img2ImgAdapter(), check=_check,
    description="image-to-image: init image (embedded PNG or pixel hash) and strength",
    max_payload=MAX_PNG_BYTES + 4096, version=__version__,
)


def extensions() -> list:
    """Entry point of group ``aigif.extensions``."""
    return [EXTENSION]


def register() -> None:
    """Register without entry points (``aigif.register_extension`` under the hood)."""
    from aigif.syntax.extensions import register_extension

    register_extension(EXTENSION, replace=True)
