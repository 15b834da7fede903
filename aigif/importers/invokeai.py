"""InvokeAI metadata -> syntax.

* v3/v4/v5 ``invokeai_metadata`` JSON: InvokeAI runs diffusers schedulers, so
  its scheduler names map one to one (``samplers.INVOKEAI_SCHEDULERS``).
* v2 ``sd-metadata`` JSON and the older ``Dream`` command line: prompts use
  ``[negative]`` brackets, which sd-parsers splits; post-processing
  (face restoration, upscaling) and variations make the image unsupported.
"""
from __future__ import annotations

import json
from typing import Any

from ..syntax.elements import ComponentRef, Lora
from . import samplers
from .result import Builder, Imported, known_family, to_float, to_int, valid_hash

BASES = {"sd-1": "sd1", "sd-2": "sd2", "sdxl": "sdxl"}
TXT2IMG_MODES = {"txt2img", "sdxl_txt2img"}
# list-valued keys that must be empty for a plain txt2img result
BLOCKING_LISTS = ("controlnets", "ipAdapters", "t2iAdapters", "regions", "ref_images", "canvas_v2_metadata")
BLOCKING_TRUE = ("hrf_enabled", "seamless_x", "seamless_y")
MAPPED = {"positive_prompt", "negative_prompt", "width", "height", "seed", "cfg_scale", "steps", "scheduler",
          "clip_skip", "model", "vae", "loras", "cfg_rescale_multiplier", "app_version", "generation_mode"}



def _set_scheduler(b, mapped, what: str) -> None:
    """Record a mapped (scheduler, overrides) pair, or block the syntax when there is none."""
    if mapped is None:
        b.block(f"{what} has no equivalent in the scheduler registry")
        return
    b.gen["scheduler"], cfg = mapped
    if cfg:
        b.gen["scheduler_config"] = cfg

def map_invokeai(fields: dict[str, str], prompt_info=None, *, image_size=None, metadata_bytes: int = 0, carrier: str = "") -> Imported:
    if "invokeai_metadata" in fields:
        return _map_meta(fields, image_size, metadata_bytes, carrier)
    return _map_legacy(fields, prompt_info, image_size, metadata_bytes, carrier)


def _json(fields: dict, key: str, b: Builder) -> dict:
    try:
        v = json.loads(fields[key])
    except (json.JSONDecodeError, RecursionError, TypeError):
        v = None
    if not isinstance(v, dict):
        b.block(f"InvokeAI {key} is not a JSON object")
        return {}
    return v


def _model_name(m: Any) -> tuple[str | None, str | None, str | None]:
    """(name, base, hash) of a v3 ``{model_name, base_model}`` or v4 ``{key, hash, name, base}`` model."""
    if not isinstance(m, dict):
        return None, None, None
    return m.get("name") or m.get("model_name"), m.get("base") or m.get("base_model"), m.get("hash")


def _map_meta(fields, image_size, metadata_bytes, carrier) -> Imported:
    b = Builder("InvokeAI", fields)
    meta = _json(fields, "invokeai_metadata", b)
    b.version = str(meta["app_version"]) if "app_version" in meta else None
    mode = meta.get("generation_mode", "txt2img")
    if mode not in TXT2IMG_MODES:
        b.block(f"generation_mode {mode!r} is not text-to-image")
    for key in BLOCKING_LISTS:
        if meta.get(key):
            b.block(f"{key} are used (not expressible in the syntax)")
    for key in BLOCKING_TRUE:
        if meta.get(key):
            b.block(f"{key} is enabled")
    style_pos, style_neg = meta.get("positive_style_prompt") or "", meta.get("negative_style_prompt") or ""
    if style_pos and style_pos != meta.get("positive_prompt") or style_neg and style_neg != meta.get("negative_prompt"):
        b.block("SDXL style prompts differ from the prompts (a second text-encoder prompt is not in the syntax)")
    try:
        pos, neg = meta.get("positive_prompt", ""), meta.get("negative_prompt") or ""
        if not isinstance(pos, str) or not isinstance(neg, str):
            raise ValueError("a prompt is not text")
        b.gen["prompt"], b.gen["negative_prompt"] = pos, neg
        for key, dest, conv in (("seed", "seed", to_int), ("steps", "num_inference_steps", to_int),
                                ("cfg_scale", "guidance_scale", to_float), ("width", "width", to_int), ("height", "height", to_int)):
            if key in meta:
                b.gen[dest] = conv(meta[key])
        if meta.get("clip_skip"):
            b.gen["clip_skip"] = to_int(meta["clip_skip"])      # InvokeAI already counts skipped layers
        if meta.get("cfg_rescale_multiplier"):
            b.gen["guidance_rescale"] = to_float(meta["cfg_rescale_multiplier"])
    except (ValueError, TypeError) as exc:
        b.block(f"a numeric field is invalid ({exc})")
    sched = meta.get("scheduler")
    _set_scheduler(b, samplers.from_invokeai(str(sched)) if sched is not None else None, f"scheduler {sched!r}")
    name, base, mhash = _model_name(meta.get("model"))
    family = known_family(BASES.get(str(base)))
    b.set_model(name, None, family=family)
    if mhash:
        b.keep("model_hash", mhash)       # InvokeAI 4 hashes are blake3, not sha256
    if isinstance(meta.get("model"), dict) and meta["model"].get("key"):
        b.keep("model_key", meta["model"]["key"])
    vname, _, vhash = _model_name(meta.get("vae"))
    if vname:
        b.vae = ComponentRef(name=str(vname))
    for i, entry in enumerate(meta.get("loras") or []):
        if not isinstance(entry, dict):
            b.block(f"LoRA entry {i} is malformed")
            continue
        lname, _, lhash = _model_name(entry.get("model") or entry.get("lora"))
        try:
            weight = to_float(entry.get("weight", 1.0))
        except (ValueError, TypeError):
            lname = None
        if not lname:
            b.block(f"LoRA entry {i} is malformed")
            continue
        sha = lhash.split(":", 1)[1] if isinstance(lhash, str) and lhash.startswith("sha256:") else None
        b.loras.append(Lora(name=str(lname), weight=weight, sha256=sha if valid_hash(sha) else None))
    rest = {k: v for k, v in meta.items() if k not in MAPPED and v not in (None, "", [], {}, False)}
    if rest:
        b.extra["meta"] = rest
    if "invokeai_graph" in fields or "invokeai_workflow" in fields:
        b.extra["graph_dropped"] = True
    b.prompt_syntax("compel")
    return b.build(image_size, metadata_bytes, carrier)


def _map_legacy(fields, prompt_info, image_size, metadata_bytes, carrier) -> Imported:
    """InvokeAI 2.x: ``sd-metadata`` JSON (preferred) or the ``Dream`` command line."""
    b = Builder("InvokeAI", fields)
    if prompt_info is None:
        b.block("InvokeAI 2 metadata could not be parsed")
        return b.build(image_size, metadata_bytes, carrier)
    smp = prompt_info.samplers[0]
    meta = dict(prompt_info.metadata)
    b.version = str(meta.pop("app_version")) if "app_version" in meta else None
    if len(smp.prompts) > 1 or len(smp.negative_prompts) > 1:
        b.block("the prompt has several [negative] sections or weighted sub-prompts")
    b.gen["prompt"] = smp.prompts[0].value if smp.prompts else ""
    b.gen["negative_prompt"] = smp.negative_prompts[0].value if smp.negative_prompts else ""
    params = dict(smp.parameters)
    try:
        b.gen["seed"] = to_int(params.pop("seed"))
        b.gen["num_inference_steps"] = to_int(params.pop("steps"))
        b.gen["guidance_scale"] = to_float(params.pop("cfg_scale"))
        if "width" in meta and "height" in meta:
            b.gen["width"], b.gen["height"] = to_int(meta.pop("width")), to_int(meta.pop("height"))
    except (KeyError, ValueError, TypeError) as exc:
        b.block(f"InvokeAI 2 metadata lacks or has an invalid field ({exc})")
    for key in ("threshold", "perlin"):
        if params.get(key) not in (None, 0, 0.0, "0"):
            b.block(f"{key} {params[key]} is not expressible in the syntax")
        params.pop(key, None)
    for key in ("postprocessing", "variations"):
        if meta.get(key):
            b.block(f"{key} were applied to the image")
    if meta.get("type", "txt2img") != "txt2img":
        b.block(f"generation type {meta.get('type')!r} is not text-to-image")
    for flag in ("hires_fix", "seamless"):
        if meta.get(flag):
            b.block(f"{flag} is enabled")
    if "Dream" in fields and "sd-metadata" not in fields and any(f" -{o} " in fields["Dream"] for o in ("G", "U", "I", "f", "V")):
        b.block("the Dream command line applies face restoration, upscaling, img2img or variations")
    _set_scheduler(b, samplers.from_invokeai(smp.name), f"sampler {smp.name!r}")
    model = smp.model
    b.set_model(model.name if model else None, model.hash.lower() if model and model.hash else None)
    if params:
        b.extra["params"] = params
    rest = {k: v for k, v in meta.items() if v not in (None, "", [], {}, False)}
    if rest:
        b.extra["meta"] = rest
    b.prompt_syntax("invokeai2")
    return b.build(image_size, metadata_bytes, carrier)
