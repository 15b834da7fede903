"""Importers: the generation metadata other tools embed in images -> .aigif documents.

    from aigif.importers import import_image, encode_image
    imp = import_image("00001-1234.png")       # Imported: tool, generation, model, extra, unsupported
    out = encode_image("00001-1234.png", engine=None, options=Options(syntax_only=True))
    out.kind, out.document                      # syntax-only | exact | residual | pixels

Supported: AUTOMATIC1111 and the tools writing its infotext (Forge, SD.Next, Civitai;
PNG text, JPEG/WebP EXIF, stealth LSB), ComfyUI (any graph, kept losslessly), SwarmUI,
InvokeAI (2.x Dream / sd-metadata, 3+ invokeai_metadata), NovelAI, Fooocus, RuinedFooocus. The way back is :func:`a1111_parameters` / :func:`png_info_for`.
Imports neither torch nor diffusers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..limits import DEFAULT_LIMITS, Limits
from .a1111_write import a1111_parameters, png_info_for
from .decide import EXACT, KINDS, PIXELS, RESIDUAL, SYNTAX_ONLY, Options, Outcome, decide
from .detect import TOOLS, map_embedded
from ..imageio import open_image, read_bytes
from .extract import IMAGE_EXTENSIONS, IMAGE_FORMATS, Embedded, read_embedded
from .localmodels import LocalModels
from .result import Imported

__all__ = [
    "Imported", "Options", "Outcome", "Embedded", "TOOLS", "KINDS", "EXACT", "RESIDUAL", "PIXELS", "SYNTAX_ONLY",
    "IMAGE_EXTENSIONS", "read_image_and_metadata", "import_image", "import_bytes", "encode_image", "decide",
    "a1111_parameters", "png_info_for", "Encoded", "LocalModels",
]


@dataclass(frozen=True)
class Encoded:
    """One image converted: the imported metadata, the decision and the file bytes."""

    imported: Imported
    outcome: Outcome
    data: bytes
    notes: tuple[str, ...] = ()      # e.g. what happened to the image's C2PA manifest

    @property
    def kind(self) -> str:
        return self.outcome.kind

    @property
    def document(self):
        return self.outcome.document


def read_image_and_metadata(src, limits: Limits = DEFAULT_LIMITS) -> tuple[Embedded, np.ndarray]:
    """(embedded metadata, RGB uint8 pixels) of an image path or bytes."""
    return _decoded(read_bytes(src, limits), limits)


def _decoded(data: bytes, limits: Limits) -> tuple[Embedded, np.ndarray]:
    im = open_image(data, limits, IMAGE_FORMATS)
    emb = read_embedded(im, limits)
    rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return emb, rgb


def import_bytes(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Imported:
    emb, _ = read_image_and_metadata(data, limits)
    return map_embedded(emb, limits)


def import_image(src, limits: Limits = DEFAULT_LIMITS) -> Imported:
    """Map the metadata of one image file (or bytes) onto the syntax; pixels are not kept."""
    emb, _ = read_image_and_metadata(src, limits)
    return map_embedded(emb, limits)


def encode_image(src, *, engine=None, codec=None, options: Options = Options(), limits: Limits = DEFAULT_LIMITS,
                 resolver=None) -> Encoded:
    """Import one image and decide syntax-only / exact / residual / pixels; returns the .aigif bytes.

    *resolver* (:class:`~aigif.importers.localmodels.LocalModels`) finds named checkpoints in model dirs.
    A C2PA manifest store in the image is kept verbatim (``Document.c2pa``); what was wrong with it is in ``notes``.
    """
    import dataclasses

    from ..provenance.c2pa_import import kept_manifest_store
    from ..syntax.document import dumps

    data = read_bytes(src, limits)
    emb, rgb = _decoded(data, limits)
    imp = map_embedded(emb, limits)
    outcome = decide(imp, rgb, engine=engine, codec=codec, options=options, resolver=resolver)
    store, notes = kept_manifest_store(data, limits)
    if store is not None:
        outcome = dataclasses.replace(outcome, document=outcome.document.replace(c2pa=store))
    return Encoded(imp, outcome, dumps(outcome.document), notes)
