"""One indexed file as a database row: the syntax fields of a :class:`Document`, read with the public reader."""
from __future__ import annotations

import json
import warnings
from typing import Any

from ..errors import AigifError
from ..limits import DEFAULT_LIMITS
from ..syntax import Document, document_to_dict, loads
from ..syntax.builtin import regenerable
from ..syntax.document import PAYLOAD_ATTRS
from ..syntax.elements import to_dict
from ..syntax.extensions import extension_for
from ..syntax.registry import code_of, model_entry

GEN_COLUMNS = ("prompt", "negative_prompt", "seed", "num_inference_steps", "guidance_scale", "width", "height",
               "scheduler", "scheduler_config", "eta", "clip_skip", "batch_index", "guidance_rescale")
MODEL_COLUMNS = ("model", "model_family", "model_repo", "model_revision", "model_sha256", "model_local",
                 "model_variant", "model_weights_file", "model_vae", "loras", "lora_names")
OTHER_COLUMNS = ("platform", "device", "gpu", "dtype", "source_tool", "source_version", "pixel_sha256", "perceptual",
                 "has_pixels", "has_residual", "regenerable", "regenerable_reason", "extensions", "signature_status",
                 "provenance", "syntax")
SYNTAX_COLUMNS = GEN_COLUMNS + MODEL_COLUMNS + OTHER_COLUMNS


def _json(value: Any) -> str | None:
    """JSON text, keys in the element's own order (the order ``aigif info`` prints)."""
    return None if value is None else json.dumps(value, ensure_ascii=False)


def model_identity(model) -> str | None:
    """What a person calls the model: its registry name, else its repo, else its local folder."""
    if model is None:
        return None
    return model.name or model.repo or model.local


def model_family(model) -> str | None:
    if model is None:
        return None
    if model.family:
        return model.family
    if model.name and code_of("model", model.name) is not None:
        return model_entry(model.name).family
    return None


def parse(data: bytes) -> Document:
    """The document in *data*; warnings about unknown ancillary segments are not the index's to print."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return loads(data, DEFAULT_LIMITS)


def signature_status(data: bytes) -> str | None:
    """``valid (...)`` / ``INVALID (...): why`` for a signed file's bytes, None when it is not signed."""
    from ..provenance.signature import check

    try:
        result = check(data)
    except AigifError as exc:
        return f"unreadable ({exc})"
    return None if result is None else result.summary()


def syntax_row(doc: Document, data: bytes) -> dict[str, Any]:
    """Column values for *doc* read from *data* (keys: :data:`SYNTAX_COLUMNS` plus ``_loras``, (name, weight) pairs)."""
    row: dict[str, Any] = dict.fromkeys(SYNTAX_COLUMNS)
    gen, model = doc.generation, doc.model
    if gen is not None:
        for name in GEN_COLUMNS:
            row[name] = getattr(gen, name)
        row["seed"] = str(gen.seed)  # up to 2**64-1: above SQLite's integer range
        row["scheduler_config"] = _json(gen.scheduler_config)
    loras = []
    if model is not None:
        row.update(model=model_identity(model), model_family=model_family(model), model_repo=model.repo,
                   model_revision=model.revision, model_sha256=model.sha256, model_local=model.local,
                   model_variant=model.variant, model_weights_file=model.weights_file,
                   model_vae=_json(to_dict(model.vae)) if model.vae else None)
        loras = [(lo.name or lo.repo or lo.local, float(lo.weight)) for lo in model.loras]
        row["loras"] = _json([to_dict(lo) for lo in model.loras]) if model.loras else None
        row["lora_names"] = " ".join(name for name, _ in loras) or None
    if doc.platform is not None:
        row.update(platform=_json(to_dict(doc.platform)), device=doc.platform.device, gpu=doc.platform.gpu,
                   dtype=doc.platform.dtype)
    if doc.source is not None:
        row.update(source_tool=doc.source.tool, source_version=doc.source.version)
    if doc.fingerprint is not None:
        row.update(pixel_sha256=doc.fingerprint.pixel_sha256, perceptual=doc.fingerprint.perceptual)
    row["has_pixels"] = int(doc.pixels is not None)
    row["has_residual"] = int(doc.residual is not None)
    reason = regenerable(doc)
    row["regenerable"] = int(reason == "yes")
    row["regenerable_reason"] = None if reason == "yes" else reason.removeprefix("no: ")
    names = [ext.name if ext else f"{seg.type:#x}" for seg in doc.extensions for ext in [extension_for(seg.type)]]
    row["extensions"] = _json(names) if names else None
    row["signature_status"] = signature_status(data)
    if doc.c2pa is not None:
        row["provenance"] = f"C2PA manifest store of the imported image, {len(doc.c2pa)} bytes, kept verbatim"
    syntax = document_to_dict(doc)
    for attr in PAYLOAD_ATTRS:
        if attr in syntax:
            syntax[attr] = {"bytes": len(getattr(doc, attr))}
    row["syntax"] = _json(syntax)
    row["_loras"] = loras
    return row
