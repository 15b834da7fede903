"""NovelAI (PNG text or stealth alpha JSON) -> syntax.

NovelAI's models are not public, so these images never regenerate; the syntax
is still the searchable, exact record of the request. ``Source`` holds the
model name and NovelAI's 8-hex model id (not a sha256, kept in extra).
"""
from __future__ import annotations

import json
import re

from . import samplers
from .result import Builder, Imported, to_float, to_int

MAPPED = {"steps", "sampler", "seed", "scale", "uc", "width", "height", "noise_schedule", "cfg_rescale"}
NEUTRAL = {"uncond_scale": (1, 1.0, None), "sm": (False, None), "sm_dyn": (False, None),
           "dynamic_thresholding": (False, None), "controlnet_model": (None,),
           "reference_information_extracted_multiple": ([], None), "reference_image_multiple": ([], None),
           "skip_cfg_below_sigma": (0, 0.0, None), "skip_cfg_above_sigma": (None,), "n_samples": (1, None)}


def map_novelai(fields: dict[str, str], *, image_size=None, metadata_bytes: int = 0, carrier: str = "") -> Imported:
    b = Builder("NovelAI", fields)
    try:
        meta = json.loads(fields.get("Comment", ""))
    except (json.JSONDecodeError, RecursionError, TypeError):
        meta = None
    if not isinstance(meta, dict):
        b.block("NovelAI Comment is not a JSON object")
        return b.build(image_size, metadata_bytes, carrier)
    b.gen["prompt"] = fields.get("Description", meta.get("prompt", ""))
    b.gen["negative_prompt"] = str(meta.get("uc", ""))
    try:
        b.gen["seed"] = to_int(meta["seed"])
        b.gen["num_inference_steps"] = to_int(meta["steps"])
        b.gen["guidance_scale"] = to_float(meta["scale"])
        if "width" in meta and "height" in meta:
            b.gen["width"], b.gen["height"] = to_int(meta["width"]), to_int(meta["height"])
        if meta.get("cfg_rescale"):
            b.gen["guidance_rescale"] = to_float(meta["cfg_rescale"])
    except (KeyError, ValueError, TypeError) as exc:
        b.block(f"NovelAI metadata lacks or has an invalid field ({exc})")
    req = meta.get("request_type")
    if req not in (None, "PromptGenerateRequest"):
        b.block(f"request_type {req!r} is not text-to-image")
    for key, ok in NEUTRAL.items():
        if key in meta and meta[key] not in ok:
            b.block(f"{key} = {meta[key]!r} is not expressible in the syntax")
    mapped = samplers.from_novelai(str(meta.get("sampler")), meta.get("noise_schedule"))
    if mapped is None:
        b.block(f"sampler {meta.get('sampler')!r} with noise schedule {meta.get('noise_schedule')!r} has no equivalent in the scheduler registry")
    else:
        b.gen["scheduler"], _ = mapped
    source = fields.get("Source", "")
    m = re.fullmatch(r"(.*?)\s+([0-9A-Fa-f]{8})", source)
    name, model_id = (m.group(1), m.group(2)) if m else (source or None, None)
    b.set_model(f"NovelAI {name}" if name and "NovelAI" not in name else name)
    b.keep("model_id", model_id)
    b.version = None
    rest = {k: v for k, v in meta.items() if k not in MAPPED}
    if rest:
        b.extra["meta"] = rest
    for key in ("Software", "Title", "Generation time"):
        if key in fields and not (key == "Software" and fields[key] == "NovelAI"):
            b.keep(key, fields[key])
    b.prompt_syntax("novelai")
    return b.build(image_size, metadata_bytes, carrier)
