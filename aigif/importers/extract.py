"""Read the generation metadata other tools embed in PNG / JPEG / WebP files.

Three carriers exist in the wild:

* PNG text chunks (tEXt / zTXt / iTXt): A1111 ``parameters``, ComfyUI
  ``prompt``/``workflow``, InvokeAI ``invokeai_metadata``/``sd-metadata``/``Dream``,
  NovelAI ``Description``/``Comment``/``Source``..., Fooocus ``parameters``.
* EXIF UserComment (JPEG, WebP): A1111 and Fooocus write the same text there,
  as ``UNICODE\\0`` + UTF-16 (A1111 uses big-endian via piexif).
* "Stealth" LSB data (A1111 stealth-pnginfo extension, NovelAI): a signature,
  a 32-bit bit count and the payload in the least significant bits of the
  alpha channel (``stealth_pnginfo`` / ``stealth_pngcomp`` = gzip) or of the
  R, G, B channels (``stealth_rgbinfo`` / ``stealth_rgbcomp``), read column by
  column. sd-parsers reads only the compressed alpha form and can loop forever
  on a corrupt length; this reader is numpy-based and bounded.
"""
from __future__ import annotations

import json
import warnings
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..errors import CorruptError, ImportMetadataError
from ..limits import DEFAULT_LIMITS, Limits, inflate_limited

IMAGE_FORMATS = {"PNG", "JPEG", "WEBP"}
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp"}

STEALTH_ALPHA = {b"stealth_pnginfo": False, b"stealth_pngcomp": True}
STEALTH_RGB = {b"stealth_rgbinfo": False, b"stealth_rgbcomp": True}
_SIG_BITS = 15 * 8


@dataclass
class Embedded:
    """Metadata found in one image: text fields as the tool wrote them, and where they were."""

    fields: dict[str, str]
    carrier: str                     # png-text | exif-usercomment | stealth-alpha | stealth-rgb | none
    nbytes: int                      # UTF-8 size of the metadata as stored (what .aigif replaces)
    image_format: str = ""
    size: tuple[int, int] = (0, 0)   # width, height
    notes: list[str] = field(default_factory=list)


def read_embedded(im, limits: Limits = DEFAULT_LIMITS) -> Embedded:
    """Every generation-metadata field of a loaded PIL image (empty ``fields`` when none)."""
    fmt = im.format or ""
    out = Embedded({}, "none", 0, fmt, im.size)
    if fmt == "PNG":
        text = {k: v for k, v in dict(getattr(im, "text", {}) or {}).items() if isinstance(v, str)}
        for k, v in im.info.items():
            if isinstance(v, str) and k not in text:
                text[k] = v
        if text:
            out.fields, out.carrier = text, "png-text"
    if not out.fields:
        comment = exif_user_comment(im)
        if comment:
            out.fields, out.carrier = {"parameters": comment}, "exif-usercomment"
    if not out.fields and fmt in ("PNG", "WEBP"):
        try:
            found = read_stealth(im, limits.max_metadata_bytes)
        except ImportMetadataError as exc:
            out.notes.append(str(exc))
            found = None
        if found:
            out.carrier, text = found
            out.fields = _stealth_fields(text)
    out.nbytes = sum(len(v.encode("utf-8", "surrogatepass")) for v in out.fields.values())
    limits.check("embedded metadata (bytes of text)", out.nbytes, "max_metadata_bytes")
    return out


# --- EXIF UserComment -------------------------------------------------------------
def exif_user_comment(im) -> str | None:
    """The EXIF UserComment (tag 0x9286 in the Exif IFD) decoded, or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = im.getexif().get_ifd(0x8769).get(0x9286)
    except Exception:  # Pillow raises many types on broken EXIF; a broken EXIF has no comment for us
        return None
    if raw is None:
        return None
    if isinstance(raw, str):
        return raw or None
    return decode_user_comment(bytes(raw))


def decode_user_comment(raw: bytes) -> str | None:
    """8-byte charset prefix then text (EXIF 2.3 §4.6.5). UNICODE is UTF-16 of either byte order."""
    prefix, body = raw[:8], raw[8:]
    if prefix == b"UNICODE\0":
        if len(body) % 2:
            body = body[:-1]
        be = body.decode("utf-16-be", "replace")
        le = body.decode("utf-16-le", "replace")
        # the right byte order gives mostly ASCII; the wrong one gives CJK-range garbage
        text = be if _ascii_share(be) >= _ascii_share(le) else le
    elif prefix in (b"ASCII\0\0\0", b"\0" * 8):
        text = body.decode("utf-8", "replace")
    else:
        text = raw.decode("utf-8", "replace")
    text = text.rstrip("\0")
    return text or None


def _ascii_share(s: str) -> float:
    return sum(c < "\x80" for c in s) / max(1, len(s))


# --- stealth LSB ---------------------------------------------------------------------
def read_stealth(im, max_bytes: int = DEFAULT_LIMITS.max_metadata_bytes) -> tuple[str, str] | None:
    """(carrier, text) of stealth LSB metadata, or None when the signature is absent."""
    if im.mode not in ("RGB", "RGBA"):
        return None
    arr = np.asarray(im)
    h = arr.shape[0]
    streams = []
    if im.mode == "RGBA":
        streams.append(("stealth-alpha", STEALTH_ALPHA, 1, lambda cols: (arr[:, :cols, 3] & 1).T.reshape(-1)))
    streams.append(("stealth-rgb", STEALTH_RGB, 3, lambda cols: (arr[:, :cols, :3] & 1).transpose(1, 0, 2).reshape(-1)))
    for carrier, signatures, per_pixel, bits_of in streams:
        # read the first columns only for the signature; the whole plane only when it matches
        head = bits_of(-(-(_SIG_BITS + 32) // (h * per_pixel)))
        if head.size < _SIG_BITS + 32 or np.packbits(head[:_SIG_BITS]).tobytes() not in signatures:
            continue
        bits = bits_of(arr.shape[1])
        sig = np.packbits(bits[:_SIG_BITS]).tobytes()
        nbits = int.from_bytes(np.packbits(bits[_SIG_BITS:_SIG_BITS + 32]).tobytes(), "big")
        start = _SIG_BITS + 32
        if nbits > bits.size - start:
            raise ImportMetadataError(f"{carrier} metadata declares {nbits} bits but the image holds only {bits.size - start}")
        payload = np.packbits(bits[start:start + nbits - nbits % 8]).tobytes()
        if signatures[sig]:
            payload = gunzip_limited(payload, max_bytes)
        try:
            return carrier, payload.decode("utf-8")
        except UnicodeDecodeError:
            raise ImportMetadataError(f"{carrier} metadata is not UTF-8 text") from None
    return None


def gunzip_limited(data: bytes, limit: int) -> bytes:
    """gzip-decompress at most *limit* bytes (a decompression-bomb guard)."""
    try:
        return inflate_limited(data, limit, wbits=16 + zlib.MAX_WBITS, what="stealth metadata", complete=False)
    except CorruptError as exc:
        raise ImportMetadataError(f"stealth metadata is not valid gzip ({exc})") from None


def _stealth_fields(text: str) -> dict[str, str]:
    """NovelAI stores a JSON object of PNG-style fields; A1111 stores the infotext itself."""
    if text.lstrip().startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and obj:
            return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in obj.items()}
    return {"parameters": text}


def write_stealth(rgba: np.ndarray, text: str, *, compressed: bool = True, channel: str = "alpha") -> np.ndarray:
    """Embed *text* the way the A1111 stealth-pnginfo extension does (used by tests and fixtures)."""
    import gzip

    payload = gzip.compress(text.encode("utf-8"), mtime=0) if compressed else text.encode("utf-8")
    if channel == "alpha":
        sig = b"stealth_pngcomp" if compressed else b"stealth_pnginfo"
    else:
        sig = b"stealth_rgbcomp" if compressed else b"stealth_rgbinfo"
    bits = np.unpackbits(np.frombuffer(sig + (len(payload) * 8).to_bytes(4, "big") + payload, np.uint8))
    out = np.array(rgba, dtype=np.uint8, copy=True)
    h, w = out.shape[:2]
    if channel == "alpha":
        plane = out[:, :, 3].T.copy()            # column-major order
        flat = plane.reshape(-1)
        if bits.size > flat.size:
            raise ValueError("image too small for this text")
        flat[: bits.size] = (flat[: bits.size] & 0xFE) | bits
        out[:, :, 3] = flat.reshape(w, h).T
    else:
        plane = out[:, :, :3].transpose(1, 0, 2).copy()
        flat = plane.reshape(-1)
        if bits.size > flat.size:
            raise ValueError("image too small for this text")
        flat[: bits.size] = (flat[: bits.size] & 0xFE) | bits
        out[:, :, :3] = flat.reshape(w, h, 3).transpose(1, 0, 2)
    return out
