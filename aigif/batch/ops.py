"""The operations a batch can run: one table entry each (inputs, output suffix, the work, the resume check).

``decode``: ``*.aigif`` -> ``*.png``, regenerated through the engine (its ``Limits`` bound every file).
``encode``: ``*.png|jpg|jpeg|webp`` with embedded A1111/ComfyUI/... metadata -> ``*.aigif``: syntax
only if the engine regenerates the image exactly, else syntax + residual, else pixels
(:mod:`aigif.importers`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import AigifError
from ..fileio import read_limited
from ..limits import DEFAULT_LIMITS, Limits

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass
class Settings:
    """What every file of a run shares (options of the operation)."""

    engine: Any = None
    limits: Limits = DEFAULT_LIMITS
    options: Any = None        # encode: aigif.importers.Options
    codec: Any = None          # encode: the residual/pixel codec (tests pass a fake)
    resolver: Any = None       # encode: aigif.importers.LocalModels for --model-dir
    ai_label: bool = True      # decode: images carry the IPTC AI mark (XMP)
    c2pa: Any = None           # decode: aigif.provenance.c2pa_credentials.C2paCredentials to sign images with


@dataclass(frozen=True)
class Converted:
    data: bytes
    kind: str
    message: str = ""
    tool: str = ""
    metadata_bytes: int = 0
    notes: str = ""


def _decode_one(src: Path, s: Settings) -> Converted:
    from ..provenance import document_image_bytes
    from ..syntax import loads

    doc = loads(read_limited(src, s.limits.max_file_bytes), s.limits)
    res = s.engine.decode(doc)
    exact = res.report is not None and res.report.status == "exact"
    data = document_image_bytes(res.image, "PNG", doc, ai_label=s.ai_label, credentials=s.c2pa,
                                title=src.with_suffix(".png").name, exact=exact)
    return Converted(data, res.report.status if res.report is not None else "unverified")


def _encode_one(src: Path, s: Settings) -> Converted:
    from ..importers import Options, encode_image

    enc = encode_image(src, engine=s.engine, codec=s.codec, options=s.options or Options(), limits=s.limits,
                       resolver=s.resolver)
    msg = enc.outcome.reason
    if enc.imported.unsupported and enc.kind != "syntax-only":
        msg = msg or enc.imported.reason
    return Converted(enc.data, enc.kind, msg, enc.imported.tool, enc.imported.metadata_bytes, "; ".join(enc.notes))


def _valid_png(dst: Path, src: Path, s: Settings) -> bool:
    """A complete PNG of the size the .aigif says (a file cut short by a crash fails verify())."""
    from PIL import Image

    from ..pillow_plugin import image_size
    from ..syntax import loads

    try:
        with Image.open(dst) as im:
            size = im.size
            im.verify()
        return size == image_size(loads(read_limited(src, s.limits.max_file_bytes), s.limits))
    except Exception:
        return False


def _valid_aigif(dst: Path, src: Path, s: Settings) -> bool:
    from ..syntax import loads

    try:
        loads(read_limited(dst, s.limits.max_file_bytes), s.limits)
        return True
    except (AigifError, OSError):
        return False


@dataclass(frozen=True)
class BatchOp:
    suffixes: tuple[str, ...]
    out_suffix: str
    run: Callable[[Path, Settings], Converted]
    valid: Callable[[Path, Path, Settings], bool]      # (existing output, its input, settings): keep it?


OPS = {
    "decode": BatchOp((".aigif",), ".png", _decode_one, _valid_png),
    "encode": BatchOp(IMAGE_SUFFIXES, ".aigif", _encode_one, _valid_aigif),
}
