"""Input images of an image-to-image pass: pixel digests, reading them within the limits, their references.

An init image is identified by the SHA-256 of its RGB8 pixels, a mask by that
of its 8-bit grayscale pixels (spec/aigif-v1.md section 4.9), so a PNG, a
lossless WebP or a decoded .aigif of the same pixels all match. A stored copy
is PNG (a mask that holds only 0 and 255 as a 1-bit PNG).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from typing import Any

from .errors import CorruptError, ImageReadError, InputImageError, LimitError
from .imageio import open_image, read_bytes
from .limits import DEFAULT_LIMITS, Limits
from .syntax.img2img import ImageRef

MODES = {"init image": "RGB", "mask": "L"}     # the pixels each kind of input is compared and used as


@dataclass(frozen=True)
class InputImages:
    """Images a caller gives for a file that references them without storing them: HxWx3 (init) and HxW (mask)
    uint8 arrays, PIL images or paths."""

    init: Any = None
    mask: Any = None

    def get(self, what: str):
        return self.init if what == "init image" else self.mask


def pixel_sha256(pixels) -> str:
    """SHA-256 of uint8 pixels (HxWx3 RGB or HxW grayscale), row-major."""
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()).hexdigest()


def as_pixels(src, what: str, limits: Limits = DEFAULT_LIMITS, decode_aigif=None):
    """*src* (a path, image bytes, a PIL image or a uint8 array) as the uint8 pixels of *what* ("init image" or
    "mask"). A path ending in .aigif is decoded with *decode_aigif(path) -> HxWx3 uint8*."""
    import numpy as np
    from PIL import Image

    mode = MODES[what]
    if isinstance(src, (str, os.PathLike)) and os.fspath(src).lower().endswith(".aigif"):
        if decode_aigif is None:
            raise InputImageError(f"{what} {os.fspath(src)}: an .aigif input needs an engine to decode it")
        src = decode_aigif(src)
    if isinstance(src, Image.Image):
        limits.check(f"the {what} size (pixels)", src.width * src.height, "max_image_pixels")
        src = src.convert(mode)
    elif isinstance(src, np.ndarray):
        if src.dtype != np.uint8 or src.ndim not in (2, 3) or (src.ndim == 3 and src.shape[2] not in (1, 3, 4)):
            raise InputImageError(f"{what} must be uint8 HxW or HxWx3 pixels, got {src.dtype} {src.shape}")
        limits.check(f"the {what} size (pixels)", src.shape[0] * src.shape[1], "max_image_pixels")
        src = Image.fromarray(src[..., 0] if src.ndim == 3 and src.shape[2] == 1 else src).convert(mode)
    else:
        try:
            src = open_image(read_bytes(src, limits), limits).convert(mode)
        except ImageReadError as exc:
            name = "image bytes" if isinstance(src, (bytes, bytearray, memoryview)) else os.fspath(src)
            raise InputImageError(f"{what} {name}: {exc}") from None
    return np.ascontiguousarray(np.asarray(src, dtype=np.uint8))


def png_of(pixels) -> bytes:
    """Lossless PNG bytes of uint8 pixels; a 0/255 mask as a 1-bit PNG."""
    import numpy as np
    from PIL import Image

    from .provenance.export import image_bytes

    img = Image.fromarray(pixels)
    if pixels.ndim == 2 and np.isin(pixels, (0, 255)).all():
        img = img.convert("1")
    return image_bytes(img, "PNG", ai_label=False)       # an input, maybe a photo: no AI mark


def image_ref(pixels, *, store: bool = False, name: str | None = None, aigif: str | None = None) -> ImageRef:
    """The reference a file records for *pixels*: their digest, and the PNG itself with *store*."""
    return ImageRef(sha256=pixel_sha256(pixels), png=png_of(pixels) if store else None, name=name, aigif=aigif)


def ref_names(src) -> dict:
    """``name`` / ``aigif`` of a reference to the file *src* (its base name), nothing for in-memory images."""
    if not isinstance(src, (str, os.PathLike)):
        return {}
    base = os.path.basename(os.fspath(src))
    return {"aigif": base} if base.lower().endswith(".aigif") else {"name": base}


def resolve(ref: ImageRef, what: str, size: tuple[int, int], given=None, limits: Limits = DEFAULT_LIMITS, decode_aigif=None):
    """The pixels *ref* stands for: its stored PNG, else the image the caller *given*; checked against the recorded
    digest and the generation's *size* (width, height). :class:`InputImageError` when missing or not matching."""
    if ref.png is not None:
        pixels = _stored(ref.png, what, size, limits)
        origin = "the stored"
    elif given is None:
        hint = "--init-image" if what == "init image" else "--mask"
        raise InputImageError(f"the {what} {ref.label} is not stored in the file; give it ({hint} FILE, or "
                              f"{'init_image' if what == 'init image' else 'mask'}= in the Python API)")
    else:
        pixels = as_pixels(given, what, limits, decode_aigif)
        origin = "the given"
    h, w = pixels.shape[:2]
    if (w, h) != tuple(size):
        raise InputImageError(f"{origin} {what} is {w}x{h}; the generation is {size[0]}x{size[1]} (give it at that size)")
    if ref.sha256 is not None and pixel_sha256(pixels) != ref.sha256:
        raise InputImageError(f"{origin} {what} does not match the file's digest of {ref.label} "
                              f"(sha256 {pixel_sha256(pixels)[:16]}... instead of {ref.sha256[:16]}...)")
    return pixels


def _stored(png: bytes, what: str, size: tuple[int, int], limits: Limits):
    """A stored PNG's pixels; one larger than the generation is refused from its header, before any pixel is decoded."""
    import numpy as np

    try:
        img = open_image(png, dataclasses.replace(limits, max_image_pixels=size[0] * size[1]), formats={"PNG"})
    except (ImageReadError, LimitError) as exc:
        raise CorruptError(f"img2img: the stored {what} is not a PNG of the generation's size ({exc})") from None
    if img.size != tuple(size):
        raise CorruptError(f"img2img: the stored {what} is {img.width}x{img.height}; the generation is {size[0]}x{size[1]}")
    return np.ascontiguousarray(np.asarray(img.convert(MODES[what]), dtype=np.uint8))


def img2img_request(init_image, mask=None, *, strength: float | None = None, options=None, store: bool = False,
                    limits: Limits = DEFAULT_LIMITS, decode_aigif=None):
    """(the :class:`Img2Img` element, the :class:`InputImages`, (width, height)) of a request to start from
    *init_image* (and inpaint where *mask* is white). *options*: the element's other fields as a dict (its JSON form:
    ``mask_blur``, ``mask_invert``, ``masked_padding``, ``inpaint_model``) or an :class:`Img2Img` whose image
    references are replaced. *store*: keep the images in the file as PNG, else only their digests and file names."""
    from .syntax.elements import from_dict
    from .syntax.img2img import Img2Img

    if init_image is None:
        raise InputImageError("an image-to-image request needs an init image")
    if isinstance(options, Img2Img):
        options = {k: v for k, v in dataclasses.asdict(options).items() if k not in ("image", "mask")}
    options = dict(options or {})
    if strength is not None:
        options["strength"] = strength
    options.setdefault("strength", 0.8)                  # diffusers' default
    init = as_pixels(init_image, "init image", limits, decode_aigif)
    fields = {**options, "image": None, "mask": None}
    if mask is not None:
        fields["inpaint"] = True
    element = from_dict(Img2Img, {k: v for k, v in fields.items() if k not in ("image", "mask")}, "img2img")
    refs = {"image": image_ref(init, store=store, **ref_names(init_image))}
    mask_pixels = None
    if mask is not None:
        mask_pixels = as_pixels(mask, "mask", limits, decode_aigif)
        if mask_pixels.shape != init.shape[:2]:
            raise InputImageError(f"the mask is {mask_pixels.shape[1]}x{mask_pixels.shape[0]}, the init image "
                                  f"{init.shape[1]}x{init.shape[0]}; give them at one size")
        refs["mask"] = image_ref(mask_pixels, store=store, **ref_names(mask))
    elif element.inpaint:
        raise InputImageError("inpainting needs a mask")
    element = dataclasses.replace(element, **refs)
    return element, InputImages(init, mask_pixels), (init.shape[1], init.shape[0])
