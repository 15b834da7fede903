"""The image-to-image pass: an init image, and for inpainting a mask (spec/aigif-v1.md section 4.9).

Image-to-image starts from an existing picture instead of pure noise: the init
image is encoded, noised to ``strength`` and denoised with the generation's
prompt and schedule. Inpainting adds a mask that says which pixels may change.
The images are referenced by the SHA-256 of their pixels (so any lossless copy
matches), optionally stored in the file as PNG, or named by the ``.aigif`` file
that makes them. The element is a critical segment: a decoder that does not
know it must refuse the file rather than make a text-to-image picture.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import registry
from .elements import MAX_SIDE, _check, _is_int
from .schema import F

MAX_MASK_BLUR = 1024        # pixels; A1111's slider stops at 64
MAX_NAME_CHARS = 1024


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


@dataclass(frozen=True)
class ImageRef:
    """One input image: its pixel digest, the image itself (PNG) and/or what names it. At least one is present.

    ``sha256``: SHA-256 of the pixels, row-major, 8 bits per sample: RGB for an init image, grayscale (L) for a mask.
    ``name``: the file name the tool recorded (informative). ``aigif``: the .aigif file whose decoded image this is."""

    sha256: str | None = None
    png: bytes | None = None
    name: str | None = None
    aigif: str | None = None

    FIELDS = (F(1, "sha256", "hex"), F(2, "png", "bytes"), F(3, "name", "str"), F(4, "aigif", "str"))

    def __post_init__(self):
        _check(any(getattr(self, f.name) is not None for f in self.FIELDS),
               "an image reference needs a sha256, a png, a name or an aigif file name")
        if self.sha256 is not None:
            _check(isinstance(self.sha256, str) and len(self.sha256) == 64
                   and all(c in "0123456789abcdef" for c in self.sha256),
                   f"an image sha256 is 64 lower-case hex digits, got {self.sha256!r}")
        _check(self.png is None or (isinstance(self.png, (bytes, bytearray)) and self.png[:8] == b"\x89PNG\r\n\x1a\n"),
               "a stored image must be PNG bytes")
        if self.png is not None:
            object.__setattr__(self, "png", bytes(self.png))
        for name in ("name", "aigif"):
            v = getattr(self, name)
            _check(v is None or (isinstance(v, str) and 0 < len(v) <= MAX_NAME_CHARS),
                   f"an image {name} must be a string of 1..{MAX_NAME_CHARS} characters")

    def describe(self) -> str:
        """One line for ``aigif info``: name, digest, stored size."""
        parts = [self.name] if self.name else []
        if self.aigif:
            parts.append(f"the image of {self.aigif}")
        if self.sha256:
            parts.append(f"sha256 {self.sha256[:16]}...")
        parts.append(f"stored PNG, {len(self.png)} bytes" if self.png is not None else "not stored")
        return ", ".join(parts)

    @property
    def label(self) -> str:
        """How messages name the image: its file name, else its .aigif, else the start of its digest."""
        if self.name:
            return self.name
        if self.aigif:
            return self.aigif
        return f"sha256 {self.sha256[:16]}..." if self.sha256 else "stored PNG"


@dataclass(frozen=True)
class Img2Img:
    """Start from an init image (``strength``: how far from it, diffusers' meaning) and, with ``inpaint``, change only
    what a mask covers. Absent ``image`` / ``mask``: the file does not say which (an import); it cannot be regenerated."""

    strength: float
    image: ImageRef | None = None
    inpaint: bool = False
    mask: ImageRef | None = None
    mask_blur: int | None = None          # Gaussian blur radius of the mask, pixels
    mask_invert: bool = False             # change what the mask does not cover (A1111 "Inpaint not masked")
    masked_padding: int | None = None     # present: inpaint only the masked region, cropped with this margin
    fill: str = "original"                # what the masked region starts from (registry "Inpaint fill modes")
    inpaint_model: bool | None = None     # a dedicated inpainting checkpoint (mask and masked image as input)

    FIELDS = (F(1, "strength", "number", required=True), F(2, "image", "msg", ImageRef), F(3, "inpaint", "bool"),
              F(4, "mask", "msg", ImageRef), F(5, "mask_blur", "uint"), F(6, "mask_invert", "bool"),
              F(7, "masked_padding", "uint"), F(8, "fill", "enum:inpaint-fill"), F(9, "inpaint_model", "bool"))

    def __post_init__(self):
        _check(_finite(self.strength) and 0 < self.strength <= 1, f"img2img.strength must be in (0, 1], got {self.strength!r}")
        for name in ("image", "mask"):
            _check(getattr(self, name) is None or isinstance(getattr(self, name), ImageRef),
                   f"img2img.{name} must be an image reference")
        for name in ("inpaint", "mask_invert"):
            _check(isinstance(getattr(self, name), bool), f"img2img.{name} must be true or false")
        _check(self.inpaint_model is None or isinstance(self.inpaint_model, bool), "img2img.inpaint_model must be true or false")
        _check(self.mask_blur is None or (_is_int(self.mask_blur) and 0 <= self.mask_blur <= MAX_MASK_BLUR),
               f"img2img.mask_blur must be 0..{MAX_MASK_BLUR}, got {self.mask_blur!r}")
        _check(self.masked_padding is None or (_is_int(self.masked_padding) and 0 <= self.masked_padding <= MAX_SIDE),
               f"img2img.masked_padding must be 0..{MAX_SIDE}, got {self.masked_padding!r}")
        _check(isinstance(self.fill, str) and 0 < len(self.fill) <= 64, f"img2img.fill must be a name, got {self.fill!r}")
        object.__setattr__(self, "fill", registry.inpaint_fill_from_tool(self.fill))
        if not self.inpaint:
            extra = [n for n in ("mask", "mask_blur", "masked_padding", "inpaint_model") if getattr(self, n) is not None]
            extra += [n for n, default in (("mask_invert", False), ("fill", "original")) if getattr(self, n) != default]
            _check(not extra, f"img2img: {', '.join(extra)} only with inpaint (a mask)")

    @property
    def kind(self) -> str:
        return "inpainting" if self.inpaint else "image-to-image"

    def describe(self) -> str:
        """One line for ``aigif info`` (the JSON form holds the stored images as base64)."""
        out = [f"{self.kind}, strength {self.strength:g}",
               f"init image: {self.image.describe() if self.image else 'not identified'}"]
        if self.inpaint:
            out.append(f"mask: {self.mask.describe() if self.mask else 'not identified'}")
            for name, text in (("mask_blur", "mask blur {}"), ("masked_padding", "only the masked region, padding {}")):
                if getattr(self, name) is not None:
                    out.append(text.format(getattr(self, name)))
            if self.mask_invert:
                out.append("inverted mask")
            if self.fill != "original":
                out.append(f"masked content {self.fill}")
            if self.inpaint_model is not None:
                out.append("a dedicated inpainting model" if self.inpaint_model else "a model without inpainting inputs")
        return "; ".join(out)

    def not_reproducible(self) -> str | None:
        """Why no decoder can run this pass from the file alone or with the images given later, or None."""
        if self.fill != "original":
            return f"inpainting with masked content {self.fill!r} (the engine starts the masked region from the init image)"
        if self.image is None:
            return f"{self.kind}: init image not stored (the file does not identify it)"
        if self.inpaint and self.mask is None:
            return "inpainting: mask not stored (the file does not identify it)"
        return None

    def missing_inputs(self) -> list[tuple[str, ImageRef]]:
        """("init image" | "mask", reference) of the images a decoder must be given: those without a stored PNG."""
        return [(what, r) for what, r in (("init image", self.image), ("mask", self.mask)) if r is not None and r.png is None]

    def missing_message(self) -> str | None:
        """``init image a.png not stored`` (and the mask), or None when the file holds every image it needs."""
        missing = [f"{what} {r.label}" for what, r in self.missing_inputs()]
        return f"{' and '.join(missing)} not stored" if missing else None
