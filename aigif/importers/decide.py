"""Per image: keep only the syntax, the syntax plus a residual, or the syntax plus pixels.

The engine and the codec are reached through two small interfaces so tests can
inject fakes (and so the importer keeps working without torch when only
``--syntax-only`` is asked for):

* ``Regenerator``: ``regenerate(doc) -> HxWx3 uint8`` (``aigif.engine.Engine``);
  an ``AigifError`` (typically ``ModelError``) means "cannot regenerate here".
* ``Codec``: ``compress_pixels``, ``compress_residual``, ``decompress_residual``
  (the module ``aigif.codec``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import AigifError, ImportMetadataError
from ..fidelity.metrics import psnr
from ..syntax.document import Document
from ..syntax.elements import Source
from .result import Imported

EXACT, RESIDUAL, PIXELS, SYNTAX_ONLY = "exact", "residual", "pixels", "syntax-only"
KINDS = (EXACT, RESIDUAL, PIXELS, SYNTAX_ONLY)
DEFAULT_TARGET_PSNR = 40.0   # a residual is kept only if the decoded image reaches this PSNR
DEFAULT_CLOSE_PSNR = 30.0    # below this the regeneration is a different image: residual not tried
DEFAULT_QUALITY = 4


class Regenerator(Protocol):
    def regenerate(self, doc: Document) -> np.ndarray: ...


class Codec(Protocol):
    def compress_pixels(self, rgb: np.ndarray, quality: int) -> bytes: ...
    def compress_residual(self, original: np.ndarray, reference: np.ndarray, quality: int) -> bytes: ...
    def decompress_residual(self, data: bytes, reference: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Options:
    syntax_only: bool = False
    quality: int = DEFAULT_QUALITY
    target_psnr: float = DEFAULT_TARGET_PSNR
    close_psnr: float = DEFAULT_CLOSE_PSNR
    init_image: Any = None       # the init image (and mask) of an image-to-image import: a path, PIL image or array
    mask: Any = None


@dataclass(frozen=True)
class Outcome:
    kind: str                    # exact | residual | pixels | syntax-only
    document: Document
    psnr: float | None = None    # regenerated vs original
    final_psnr: float | None = None   # what a decoder shows vs original (residual path)
    reason: str = ""             # why this kind (e.g. why not regenerated)


def _fingerprint(rgb: np.ndarray):
    from ..fidelity import fingerprint

    return fingerprint(rgb)


def decide(imp: Imported, rgb: np.ndarray, *, engine: Regenerator | None = None, codec: Any = None,
           options: Options = Options(), resolver: Any = None) -> Outcome:
    """Build the document for one imported image (see module docstring for the rules).

    *resolver* (``LocalModels``) may rewrite the model reference to a checkpoint file in the
    model dirs; that reference is kept only if the regeneration matches.
    """
    if options.init_image is not None:
        from .img2img import with_given_images

        decode_aigif = None
        if callable(getattr(engine, "decode", None)):      # an .aigif init image: its decoded image
            from ..engine.img2img import decode_exact

            decode_aigif = lambda path: decode_exact(engine, path, engine.limits)   # noqa: E731
        imp = with_given_images(imp, options.init_image, options.mask, decode_aigif=decode_aigif)
    source, segments = imp.source, tuple(imp.segments)
    if options.syntax_only:
        if not imp.has_syntax:
            raise ImportMetadataError(f"no syntax can be kept for this image ({imp.reason or 'nothing mapped'}); "
                                      "run without --syntax-only to keep its pixels")
        if imp.partial:       # a decoder must not regenerate from part of the syntax: a critical marker says why
            segments += (partial_segment("; ".join(imp.partial)),)
        return Outcome(SYNTAX_ONLY, Document(generation=imp.generation, model=imp.model, hires=imp.hires, refiner=imp.refiner,
                                             img2img=imp.img2img, detail=imp.detail, source=source, extensions=segments),
                       reason=f"syntax only, regenerable: {imp.regenerable_reason}"
                       + (" (not verified by regeneration)" if imp.regenerable else ""))
    reason, regen = "", None
    if not imp.has_syntax:
        reason = f"not regenerable: {imp.reason}"
    elif imp.partial or imp.img2img_reason:
        reason = f"not regenerable: {imp.regenerable_reason.removeprefix('no: ')}"
    elif engine is None:
        reason = "no regeneration engine available"
    else:
        model, generation, regen_source = imp.model, imp.generation, source
        resolved = _resolve(resolver, imp.model)
        if resolved is not None:
            model, name = resolved
            extra = dict(source.extra or {})
            if name:
                extra.setdefault("model_name", name)
            generation, extra = _with_clip_layer(generation, extra, source.tool, model.family)
            regen_source = Source(tool=source.tool, version=source.version, extra=extra)
        base = Document(generation=generation, model=model, hires=imp.hires, refiner=imp.refiner, img2img=imp.img2img, detail=imp.detail,
                        source=regen_source, extensions=segments)
        try:
            regen = np.asarray(engine.regenerate(base, inputs=imp.inputs) if imp.inputs else engine.regenerate(base))
        except AigifError as exc:
            reason = f"cannot regenerate: {exc}"
        except Exception as exc:  # a failing pipeline is this file's problem, not the batch's
            reason = f"regeneration failed: {type(exc).__name__}: {exc}"
        if regen is not None and regen.shape != rgb.shape:
            reason = f"regenerated image is {regen.shape[1]}x{regen.shape[0]}, the original {rgb.shape[1]}x{rgb.shape[0]}"
            regen = None
    if regen is not None:
        platform = None
        current = getattr(engine, "current_platform", None)
        if callable(current):
            try:
                platform = current(None)
            except Exception:
                platform = None
        doc = base.replace(platform=platform, fingerprint=_fingerprint(rgb))
        if np.array_equal(regen, rgb):
            return Outcome(EXACT, doc, math.inf, math.inf, "regenerated bit-exactly")
        p = psnr(regen, rgb)
        if p >= options.close_psnr:
            codec = codec or _default_codec()
            residual = codec.compress_residual(rgb, regen, options.quality)
            final = psnr(np.asarray(codec.decompress_residual(residual, regen)), rgb)
            if final >= options.target_psnr:
                return Outcome(RESIDUAL, doc.replace(residual=residual), p, final,
                               f"regenerated at {p:.1f} dB; residual reaches {final:.1f} dB")
            reason = f"regenerated at {p:.1f} dB; residual reaches only {final:.1f} dB < target {options.target_psnr:g} dB"
        else:
            reason = f"regenerated image differs ({p:.1f} dB < {options.close_psnr:g} dB)"
    codec = codec or _default_codec()
    pixels = codec.compress_pixels(rgb, options.quality)
    doc = Document(generation=imp.generation, model=imp.model if imp.generation else None, hires=imp.hires,
                   refiner=imp.refiner, img2img=imp.img2img if imp.generation else None, detail=imp.detail, source=source, pixels=pixels,
                   extensions=segments)
    return Outcome(PIXELS, doc, None, None, reason)


def partial_segment(reason: str):
    """The critical ``partial-syntax`` segment: the syntax describes only part of the generation."""
    from ..syntax.extensions import extension_segment

    return extension_segment("partial-syntax", {"reason": reason[:4096]})


def _with_clip_layer(gen, extra: dict, tool: str, family: str | None):
    """Apply a clip-skip value that waited for the model family (``extra.clip_layer``)."""
    import dataclasses

    from .result import clip_skip_for, rule_of

    layer = extra.get("clip_layer")
    if not isinstance(layer, int) or gen.clip_skip is not None or family is None:
        return gen, extra
    res = clip_skip_for(rule_of(tool), layer, family)
    if isinstance(res, int):
        extra = {k: v for k, v in extra.items() if k != "clip_layer"}
        return dataclasses.replace(gen, clip_skip=res), extra
    return gen, extra


def _resolve(resolver, model):
    if resolver is None:
        return None
    try:
        return resolver.resolve(model)
    except (AigifError, OSError):
        return None


def _default_codec():
    from .. import codec

    return codec
