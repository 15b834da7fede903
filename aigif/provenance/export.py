"""The one function that writes pixels as an image file (PNG, JPEG, WebP), with the AI mark on by default.

Every image aigif writes -- ``decode``, ``generate --png``, ``batch-decode``,
:meth:`aigif.Decoded.save`, the Pillow plugin's save of regenerated pixels --
goes through :func:`save_params` (and, for bytes, :func:`image_bytes`), so
the IPTC digital source type is never forgotten on one path.
"""
from __future__ import annotations

import io
import os

from ..errors import ConfigError
from .xmp import xmp_packet

# file suffix -> Pillow format; anything else is written as PNG
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
JPEG_QUALITY = 95
XMP_PNG_KEY = "XML:com.adobe.xmp"


def format_for(path: str | os.PathLike) -> str:
    """The image format a path's suffix asks for (PNG when the suffix says nothing we write)."""
    return IMAGE_FORMATS.get(os.path.splitext(os.fspath(path))[1].lower(), "PNG")


def save_params(fmt: str, params: dict | None = None, *, ai_label: bool = True) -> dict:
    """Pillow ``save()`` keyword arguments for *fmt* carrying the IPTC mark in XMP (when *ai_label*).

    PNG: an uncompressed iTXt chunk ``XML:com.adobe.xmp`` (added to a given
    ``pnginfo``); JPEG: the APP1 XMP segment; WebP: the ``XMP `` chunk.
    """
    from PIL.PngImagePlugin import PngInfo

    fmt = fmt.upper()
    if fmt not in set(IMAGE_FORMATS.values()):
        raise ConfigError(f"cannot write {fmt} images; use one of PNG, JPEG, WEBP")
    out = dict(params or {})
    if fmt == "JPEG":
        out.setdefault("quality", JPEG_QUALITY)
    if not ai_label:
        return out
    packet = xmp_packet()
    if fmt == "PNG":
        info = PngInfo()
        given = out.get("pnginfo")
        if given is not None:
            info.chunks = list(given.chunks)
        info.add_itxt(XMP_PNG_KEY, packet.decode("utf-8"), zip=False)
        out["pnginfo"] = info
    else:
        out["xmp"] = packet
    return out


def image_bytes(image, fmt: str = "PNG", *, ai_label: bool = True, pnginfo=None) -> bytes:
    """*image* (PIL image or HxWx3 uint8) encoded as *fmt*, marked as AI-generated unless *ai_label* is False."""
    from PIL import Image

    im = image if isinstance(image, Image.Image) else Image.fromarray(image, "RGB")
    if im.mode not in ("RGB", "L") and fmt.upper() == "JPEG":
        im = im.convert("RGB")
    buf = io.BytesIO()
    Image.Image.save(im, buf, format=fmt.upper(), **save_params(fmt, {"pnginfo": pnginfo} if pnginfo else None,
                                                                 ai_label=ai_label))
    return buf.getvalue()


def reattaches_manifest(doc, fmt: str, *, exact: bool, credentials=None) -> bool:
    """Whether the imported image's C2PA store goes back in: same pixels, PNG, and no new manifest to sign."""
    return doc.c2pa is not None and exact and credentials is None and fmt.upper() == "PNG"


def document_image_bytes(image, fmt: str, doc, *, ai_label: bool = True, credentials=None, pnginfo=None,
                         title: str = "image", exact: bool = False) -> bytes:
    """The image of the .aigif document *doc* as *fmt*: with the AI mark (and a C2PA manifest signed with
    *credentials*) when *doc* records a generation; a pixels-only document's image may be a photo, so it gets neither.
    *exact*: the pixels are those of the imported original, whose kept C2PA store is then re-attached (PNG)."""
    generated = doc.generation is not None
    data = image_bytes(image, fmt, ai_label=ai_label and generated, pnginfo=pnginfo)
    if credentials is not None and generated:
        from .c2pa_sign import sign_image

        data = sign_image(data, fmt, doc, credentials, title)
    if reattaches_manifest(doc, fmt, exact=exact, credentials=credentials):
        from .c2pa_store import embed_in_png

        data = embed_in_png(data, doc.c2pa)
    return data
