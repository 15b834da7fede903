"""Extension adapters on the engine side: the pipeline allowlist and running a document's adapters.

An extension (:mod:`aigif.syntax.extensions`) may carry an adapter that turns
the pipeline the engine built into another one (img2img, inpainting, ...).
The engine only ever calls a class of a registered generator family (its own
pipeline or one of its ``variants``: :func:`aigif.engine.families.adapter_pipelines`),
and only one its adapter declared (spec/extensions.md, 'Engine adapters').
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from ..container.stream import Segment
from ..errors import AigifError, CorruptError, UnknownSegmentError
from ..errors import ExtensionError
from ..syntax.extensions import Extension, extension_for
from .families import adapter_pipelines

def check_adapter(ext: Extension) -> None:
    """:class:`ExtensionError` when the adapter of *ext* declares a pipeline class outside the allowlist."""
    allowed = adapter_pipelines()
    bad = [x for x in ext.pipelines if x not in allowed]
    if bad:
        raise ExtensionError(f"extension {ext.name!r}: pipeline class(es) {', '.join(bad)} are not allowlisted; "
                             f"allowed: {', '.join(sorted(allowed))}")


@dataclass
class AdaptedCall:
    """What :func:`apply_adapters` returns: the pipeline to call, its kwargs, and which extensions ran."""

    pipe: Any
    call_kwargs: dict
    applied: list[str]


def apply_adapters(extensions: Iterable[Segment], pipe: Any, call_kwargs: dict) -> AdaptedCall:
    """Run the adapters of a document's extension segments, in file order.

    Every critical segment must have a registered extension with an adapter (else
    the engine cannot honour it: :class:`ExtensionError` / ``UnknownSegmentError``);
    ancillary segments without one are ignored. The pipeline an adapter returns
    must be an allowlisted class it declared.
    """
    kwargs = dict(call_kwargs)
    applied = []
    for seg in extensions:
        ext = extension_for(seg.type)
        if ext is None:
            if seg.critical:
                raise UnknownSegmentError(f"critical extension type {seg.type:#x} is unknown; install the extension that defines it")
            continue
        if ext.adapter is None:
            if seg.critical:
                raise ExtensionError(f"critical extension {ext.name!r} (type {seg.type:#x}) has no pipeline adapter; "
                                     "this engine cannot regenerate the image")
            continue
        check_adapter(ext)
        try:
            data = ext.data(seg.payload)
        except AigifError:
            raise
        except Exception as exc:
            raise CorruptError(f"extension {ext.name!r} (type {seg.type:#x}) cannot decode its payload: {exc}") from None
        try:
            result = ext.adapter.adapt(pipe, dict(kwargs), data)
        except AigifError:
            raise
        except Exception as exc:
            raise ExtensionError(f"adapter of extension {ext.name!r} failed: {type(exc).__name__}: {exc}") from exc
        if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict)
                and all(isinstance(k, str) for k in result[1])):
            raise ExtensionError(f"adapter of extension {ext.name!r} must return (pipe, call_kwargs: dict)")
        new_pipe, kwargs = result
        cls = type(new_pipe).__name__
        if new_pipe is not pipe:
            declared = ext.pipelines
            if cls not in adapter_pipelines() or (declared and cls not in declared):
                raise ExtensionError(f"adapter of extension {ext.name!r} returned a {cls}; it declared "
                                     f"{', '.join(declared) or 'no pipeline'} (allowlist: {', '.join(sorted(adapter_pipelines()))})")
        pipe = new_pipe
        applied.append(ext.name)
    return AdaptedCall(pipe, kwargs, applied)
