"""Pillow plugin: ``Image.open("x.aigif")`` and ``img.save("x.aigif", syntax=...)``.

Shaped like Pillow's own plugins: an :class:`~PIL.ImageFile.ImageFile`
subclass, ``_accept`` checking the magic, a ``_save`` handler and the
registration at the bottom. Opening parses the syntax only (size, mode,
``info["aigif"]``); the pixels are regenerated through the engine on first
pixel access (``load()``), because rendering costs a diffusion run and most
callers of ``Image.open`` only want the size or the metadata.

Limits (also in ``docs/api.md``):

* pixels need the model: a syntax-only file whose model is missing (or whose
  weights do not match the recorded digest) opens fine and raises
  :class:`aigif.ModelError` on ``load()`` -- never on ``open()``;
* ``load()`` costs one diffusion run (the embedded tiny model: under a second
  on CPU; SD 1.5 at 512x512: seconds on a GPU, minutes on a CPU);
* decode failures surface as :class:`aigif.AigifError` subclasses, not
  ``OSError``; Pillow's ``UnidentifiedImageError`` only for non-.aigif bytes;
* mode is always ``RGB`` (alpha is dropped when saving pixels);
* ``im.save("x.png")`` (or .jpg/.webp) of a regenerated image writes the IPTC
  "AI-generated" mark in XMP; pass ``ai_label=False`` to leave it out. Images
  derived from it (``convert``, ``crop``) are plain Pillow images and are not marked.

Only Pillow and the light syntax layer are imported here; numpy, the engine
(torch, diffusers) and the codec are imported when pixels are needed.
"""
from __future__ import annotations

import json
import os
import threading
from typing import IO, Any

from PIL import Image, ImageFile

from .container import sniff
from .errors import AigifError, ConfigError, LimitError
from .limits import DEFAULT_LIMITS
from .syntax.document import PAYLOAD_ATTRS, Document, document_from_dict, document_to_dict, dumps, loads

FORMAT = "AIGIF"
EXTENSION = ".aigif"
MIME = "image/x-aigif"
DEFAULT_PIXEL_QUALITY = 4

_ENGINE_LOCK = threading.Lock()
_engine = None


def set_engine(engine) -> None:
    """Engine used by ``load()`` (model dirs, device, dtype); ``None`` = :func:`aigif.engine.default_engine`."""
    global _engine
    with _ENGINE_LOCK:
        _engine = engine


def get_engine():
    with _ENGINE_LOCK:
        if _engine is not None:
            return _engine
    from .engine import default_engine

    return default_engine()


def _accept(prefix: bytes) -> bool:
    return sniff(prefix)


def image_size(doc: Document) -> tuple[int, int]:
    """(width, height) without decoding: the generation, else the fingerprint, else the codec header."""
    if doc.generation is not None:
        return doc.generation.width, doc.generation.height
    if doc.fingerprint is not None:
        return doc.fingerprint.width, doc.fingerprint.height
    from .codec.pixels import pixels_size

    try:
        return pixels_size(doc.pixels or b"", max_pixels=0xFFFF * 0xFFFF)
    except AigifError as exc:
        raise AigifError(f"the file records no image size (no generation, no fingerprint; pixels: {exc})") from exc


def describe(doc: Document) -> str:
    """The JSON description put in ``info["aigif"]``: the syntax; payloads only by size (no base64 blobs)."""
    try:
        d = document_to_dict(doc)
    except AigifError:  # an extension that cannot describe its payload must not make the image unopenable
        d = document_to_dict(doc.replace(extensions=()))
        d["extensions"] = [{"type": s.type, "critical": s.critical, "bytes": len(s.payload)} for s in doc.extensions]
    for attr in PAYLOAD_ATTRS:
        if attr in d:
            d[attr] = {"bytes": len(getattr(doc, attr))}
    return json.dumps(d, ensure_ascii=False, sort_keys=True)


class AigifImageFile(ImageFile.ImageFile):
    """An .aigif file: syntax parsed on open, pixels regenerated on first ``load()``."""

    format = FORMAT
    format_description = "AI-Generated Image Format (generation syntax)"

    aigif_document: Document
    aigif_report = None          # FidelityReport after load()
    aigif_source = None          # regenerated | residual | pixels, after load()

    def _open(self) -> None:
        assert self.fp is not None
        limit = DEFAULT_LIMITS.max_file_bytes
        data = self.fp.read(limit + 1)
        if not sniff(data[:4]):
            raise SyntaxError("not an .aigif file")
        if len(data) > limit:
            raise LimitError(f"file is larger than the limit of {limit} bytes")
        doc = loads(data)
        self.aigif_document = doc
        self._aigif_bytes = data
        self._size = image_size(doc)
        self._mode = "RGB"
        self.info["aigif"] = describe(doc)
        self.info["aigif_kind"] = "pixels" if doc.pixels is not None else ("residual" if doc.residual is not None else "syntax")
        self.tile = []

    def load(self):
        if self._im is not None:
            return Image.Image.load(self)
        result = get_engine().decode(self.aigif_document)
        import numpy as np

        rgb = np.ascontiguousarray(result.image, dtype=np.uint8)
        if rgb.shape[:2] != (self.size[1], self.size[0]):
            raise AigifError(f"decoded image is {rgb.shape[1]}x{rgb.shape[0]}, the file says {self.size[0]}x{self.size[1]}")
        im = Image.fromarray(rgb, "RGB")
        self.im = im.im
        self.aigif_report = result.report
        self.aigif_source = result.source
        if result.report is not None:
            self.info["aigif_fidelity"] = result.report.status
        if getattr(self, "_exclusive_fp", False) and self.fp is not None:
            self.fp.close()
        self.fp = None
        return Image.Image.load(self)

    def save(self, fp, format=None, **params):
        """Regenerated pixels saved as PNG/JPEG/WebP carry the IPTC AI mark in XMP; ``ai_label=False`` leaves it out.
        ``c2pa_cert=`` and ``c2pa_key=`` (PEM paths) also sign them with a C2PA manifest."""
        from .provenance import IMAGE_FORMATS, save_params

        ai_label = params.pop("ai_label", True)
        cert, key = params.pop("c2pa_cert", None), params.pop("c2pa_key", None)
        fmt = (format or _format_of_name(fp) or "").upper()
        if fmt in set(IMAGE_FORMATS.values()) and (cert or key):
            return self._save_signed(fp, fmt, ai_label, cert, key)
        if fmt in set(IMAGE_FORMATS.values()):
            params = save_params(fmt, params, ai_label=ai_label and self.aigif_document.generation is not None)
        return super().save(fp, format, **params)

    def _save_signed(self, fp, fmt: str, ai_label: bool, cert, key) -> None:
        from .fileio import atomic_write
        from .provenance import document_image_bytes
        from .provenance.c2pa_credentials import load_credentials

        self.load()
        data = document_image_bytes(Image.Image.copy(self), fmt, self.aigif_document, ai_label=ai_label,
                                    credentials=load_credentials(cert, key))
        if isinstance(fp, (str, bytes, os.PathLike)):
            atomic_write(os.fsdecode(fp), data)
        else:
            fp.write(data)


def _format_of_name(fp) -> str | None:
    if isinstance(fp, (str, bytes, os.PathLike)):
        return Image.registered_extensions().get(os.path.splitext(os.fsdecode(fp))[1].lower())
    return None


# --- saving ----------------------------------------------------------------------------
def _as_document(syntax: Any) -> Document:
    if isinstance(syntax, Document):
        return syntax
    if isinstance(syntax, (str, bytes)):
        try:
            syntax = json.loads(syntax)
        except ValueError as exc:
            raise ConfigError(f"syntax= is not valid JSON: {exc}") from None
    if isinstance(syntax, dict):
        return document_from_dict(syntax)
    raise ConfigError(f"syntax= must be an aigif.Document, a dict or JSON text, got {type(syntax).__name__}")


def _rgb(im: Image.Image):
    import numpy as np

    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8)


def document_for(im: Image.Image, *, syntax: Any = None, quality: int | None = None, fingerprint: bool = True) -> Document:
    """The document ``im.save(..., format="AIGIF", **options)`` writes (also usable without Pillow's save)."""
    from .fidelity import fingerprint as fingerprint_of

    if syntax is not None:
        if quality is not None:
            raise ConfigError("give syntax= (a syntax file) or quality= (a pixel file), not both")
        doc = _as_document(syntax)
        if doc.generation is not None and (doc.generation.width, doc.generation.height) != im.size:
            raise ConfigError(f"the image is {im.size[0]}x{im.size[1]} but the syntax generates "
                              f"{doc.generation.width}x{doc.generation.height}")
        return doc.replace(fingerprint=fingerprint_of(_rgb(im))) if fingerprint else doc
    from . import codec

    q = DEFAULT_PIXEL_QUALITY if quality is None else quality
    payload = codec.compress_pixels(_rgb(im), q)
    # The fingerprint of what a decoder will show (the codec is lossy but deterministic): load() then says "exact".
    fp = fingerprint_of(codec.decompress_pixels(payload)) if fingerprint else None
    return Document(pixels=payload, fingerprint=fp)


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    opts = getattr(im, "encoderinfo", {}) or {}
    syntax, quality = opts.get("syntax"), opts.get("quality")
    if syntax is None and quality is None and isinstance(im, AigifImageFile):
        fp.write(im._aigif_bytes)     # re-saving an opened .aigif: the same bytes, no generation loss
        return
    fp.write(dumps(document_for(im, syntax=syntax, quality=quality, fingerprint=opts.get("fingerprint", True))))


def register() -> None:
    """(Re-)register the plugin with Pillow; idempotent."""
    Image.register_open(FORMAT, AigifImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)


Image.register_open(AigifImageFile.format, AigifImageFile, _accept)
Image.register_save(AigifImageFile.format, _save)
Image.register_extension(AigifImageFile.format, EXTENSION)
Image.register_mime(AigifImageFile.format, MIME)
