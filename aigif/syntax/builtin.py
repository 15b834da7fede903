"""Extensions shipped with aigif itself, registered on the first registry lookup (before plugins).

* ``comfyui-graph`` (0x42, ancillary): a ComfyUI API graph and UI workflow, lossless
  (:mod:`aigif.syntax.graph_segment`).
* ``partial-syntax`` (0x43, critical): the core syntax describes only part of how the
  image was made (a hires-fix pass, a detailer, a custom node...); the payload says
  what is missing. A decoder must not regenerate such a file as if the syntax were
  complete, so the segment is critical and its adapter refuses with the reason.
"""
from __future__ import annotations

from .extensions import Extension, ExtensionError, msgpack_extension
from .msgpack_schema import Field
from .graph_segment import NAME as GRAPH_NAME, TYPE_CODE as GRAPH_TYPE, decode_graph, encode_graph

PARTIAL_NAME = "partial-syntax"
PARTIAL_TYPE = 0x43


class _RefuseRegeneration:
    """The engine's hook for ``partial-syntax``: regenerating from part of the syntax would be a different image."""

    def adapt(self, pipe, call_kwargs, data):
        raise ExtensionError(f"not regenerable: {data.get('reason', 'the syntax is partial')}")


def _decode_graph(payload: bytes) -> dict:
    return decode_graph(payload)


GRAPH_EXTENSION = Extension(
    name=GRAPH_NAME, types=(GRAPH_TYPE,), decode=_decode_graph, encode=encode_graph,
    description="ComfyUI API graph ('prompt') and UI workflow, kept losslessly (spec/extensions.md section 8.1)",
    meta={"payload": "comfyui-graph v1"},
)

PARTIAL_EXTENSION = msgpack_extension(
    PARTIAL_NAME, PARTIAL_TYPE, {"reason": Field("str", required=True, min_len=1, max_len=4096,
                                                 doc="what the core syntax does not express")},
    critical=True, adapter=_RefuseRegeneration(),
    description="the core syntax is only part of the generation; regeneration is refused (spec/extensions.md section 8.2)",
)

BUILTIN_EXTENSIONS: tuple[Extension, ...] = (GRAPH_EXTENSION, PARTIAL_EXTENSION)


def regenerable(doc) -> str:
    """``yes`` or ``no: <why>`` for a document (``aigif info``): a ``partial-syntax`` segment or no syntax means no."""
    for seg in doc.extensions:
        if seg.type == PARTIAL_TYPE:
            try:
                return "no: " + PARTIAL_EXTENSION.decode(seg.payload)["reason"]
            except Exception:  # a damaged marker still says "not regenerable"
                return "no: the syntax is partial"
    if doc.generation is None or doc.model is None:
        return "no: no generation syntax (stored pixels only)"
    if doc.hires is not None and doc.hires.not_reproducible():
        return "no: " + doc.hires.not_reproducible()
    if doc.img2img is not None:
        why = doc.img2img.not_reproducible()
        if why is not None:
            return "no: " + why
        if doc.img2img.missing_message():
            return f"no: {doc.img2img.missing_message()} (decode it with --init-image / --mask)"
    if doc.detail is not None:
        return "no: " + doc.detail.not_reproducible()
    return "yes"


def comfyui_graph(doc) -> dict | None:
    """The ``{"prompt", "workflow"}`` a document's comfyui-graph segment holds, or None."""
    for seg in doc.extensions:
        if seg.type == GRAPH_TYPE:
            return decode_graph(seg.payload)
    return None
