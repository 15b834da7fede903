"""SwarmUI and RuinedFooocus: a JSON object in the PNG ``parameters`` text -> syntax.

* SwarmUI writes ``{"sui_image_params": {prompt, negativeprompt, model, seed, steps,
  cfgscale, width, height, sampler, scheduler, ...}, "sui_extra_data": {...},
  "sui_models": [{"name", "param", "hash": "0x<sha256>"}]}``. Samplers and schedulers are
  ComfyUI's (SwarmUI runs ComfyUI), older versions call them ``comfyuisampler`` /
  ``comfyuischeduler``.
* RuinedFooocus writes ``{"Prompt", "Negative", "steps", "cfg", "width", "height", "seed",
  "sampler_name", "scheduler", "base_model_name", "base_model_hash", "loras":
  [[hash, "weight - name"]], "start_step", "denoise", "clip_skip", "software": "RuinedFooocus"}``.

Every key is kept in ``source.extra``; keys that change the image and that the syntax
cannot express make the syntax partial (``result.Builder.partial``).
"""
from __future__ import annotations

import json
from typing import Any

from ..syntax.elements import Lora
from . import samplers
from .result import Builder, Imported, stem, to_float, to_int, valid_hash

SWARM_NEUTRAL = {"swarm_version", "date", "generation_time", "aspectratio", "automaticvae", "images", "batchsize",
                 "model", "sampler", "scheduler", "comfyuisampler", "comfyuischeduler", "prompt", "negativeprompt",
                 "seed", "steps", "cfgscale", "width", "height", "loras", "loraweights", "clipstopatlayer",
                 "sidelength", "rawresolution", "internalbackendtype", "originalprompt", "originalnegativeprompt"}

# (key in the tool's JSON, conversion, generation field)
SWARM_NUMBERS = (("seed", to_int, "seed"), ("steps", to_int, "num_inference_steps"), ("cfgscale", to_float, "guidance_scale"),
                 ("width", to_int, "width"), ("height", to_int, "height"))
RUINED_NUMBERS = (("seed", to_int, "seed"), ("steps", to_int, "num_inference_steps"), ("cfg", to_float, "guidance_scale"),
                  ("width", to_int, "width"), ("height", to_int, "height"))


def parameters_json(fields: dict[str, str]) -> dict | None:
    raw = fields.get("parameters", "")
    if not isinstance(raw, str) or not raw.lstrip().startswith("{"):
        return None
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def is_swarmui(fields: dict[str, str]) -> bool:
    obj = parameters_json(fields)
    return obj is not None and isinstance(obj.get("sui_image_params"), dict)


def is_ruinedfooocus(fields: dict[str, str]) -> bool:
    obj = parameters_json(fields)
    return obj is not None and obj.get("software") == "RuinedFooocus"


def _take(b: Builder, src: dict, key: str, conv, dest: str) -> None:
    if src.get(key) is not None:
        try:
            b.gen[dest] = conv(src[key])
        except ValueError:
            b.block(f"{key} {src[key]!r} is not a valid number")


def _comfy_sampler(b: Builder, sampler: Any, scheduler: Any) -> None:
    if sampler is None:
        b.block("the metadata does not name the sampler")
        return
    mapped = samplers.from_comfy(str(sampler), str(scheduler or "normal"))
    if mapped is None:
        b.block(f"sampler {sampler!r} with scheduler {scheduler!r} has no equivalent in the scheduler registry")
    else:
        b.gen["scheduler"], cfg = mapped
        if cfg:
            b.gen["scheduler_config"] = cfg


def map_swarmui(fields: dict[str, str], *, image_size=None, metadata_bytes: int = 0, carrier: str = "") -> Imported:
    obj = parameters_json(fields) or {}
    p = obj.get("sui_image_params") or {}
    b = Builder("SwarmUI", fields)
    b.version = str(p["swarm_version"]) if p.get("swarm_version") is not None else None
    b.gen["prompt"] = str(p.get("prompt", ""))
    b.gen["negative_prompt"] = str(p.get("negativeprompt", ""))
    for key, conv, dest in SWARM_NUMBERS:
        _take(b, p, key, conv, dest)
    _comfy_sampler(b, p.get("sampler", p.get("comfyuisampler", "euler")), p.get("scheduler", p.get("comfyuischeduler")))
    model = str(p["model"]) if p.get("model") is not None else None
    hashes = {m.get("param"): str(m.get("hash", "")).lower().removeprefix("0x")
              for m in obj.get("sui_models") or [] if isinstance(m, dict)}
    sha = hashes.get("model") if valid_hash(hashes.get("model")) else None
    b.set_model(stem(model) if model else None, sha, weights_file=model)
    loras, weights = p.get("loras") or [], p.get("loraweights") or []
    for i, name in enumerate(loras if isinstance(loras, list) else []):
        try:
            w = to_float(weights[i]) if i < len(weights) else 1.0
        except ValueError:
            b.block(f"LoRA weight {weights[i]!r} is not a number")
            continue
        b.loras.append(Lora(name=stem(str(name)), weight=w, weight_name=str(name)))
    if p.get("clipstopatlayer") is not None:
        try:
            b.clip_layer = -to_int(p["clipstopatlayer"])
        except ValueError:
            b.block("clipstopatlayer is not a number")
    other = {k: v for k, v in p.items() if k not in SWARM_NEUTRAL}
    if other:
        b.partial("SwarmUI parameters beyond a plain text-to-image pass (" + ", ".join(sorted(other)[:8]) + ")")
    if "<" in b.gen["prompt"]:
        b.partial("SwarmUI prompt tags (<lora:...>, <segment:...>, ...) are not in the syntax")
    b.keep("swarmui", {k: v for k, v in obj.items() if k != "sui_image_params"} or None)
    b.keep("params", other or None)
    b.prompt_syntax("swarmui")
    return b.build(image_size, metadata_bytes, carrier)


def map_ruinedfooocus(fields: dict[str, str], *, image_size=None, metadata_bytes: int = 0, carrier: str = "") -> Imported:
    p = parameters_json(fields) or {}
    b = Builder("RuinedFooocus", fields)
    b.gen["prompt"] = str(p.get("Prompt", p.get("prompt", "")))
    b.gen["negative_prompt"] = str(p.get("Negative", ""))
    for key, conv, dest in RUINED_NUMBERS:
        _take(b, p, key, conv, dest)
    _comfy_sampler(b, p.get("sampler_name"), p.get("scheduler"))
    name = str(p["base_model_name"]) if p.get("base_model_name") else None
    h = str(p.get("base_model_hash") or "").lower()
    b.set_model(stem(name) if name else None, h if valid_hash(h) else None, weights_file=name)
    if h and not valid_hash(h):
        b.keep("model_hash", h)
    for entry in p.get("loras") or []:
        if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], str) and " - " in entry[1]:
            w, _, lname = entry[1].partition(" - ")
            try:
                lh = str(entry[0]).lower()
                b.loras.append(Lora(name=stem(lname), weight=to_float(w), weight_name=lname,
                                    sha256=lh if valid_hash(lh) else None))
            except ValueError:
                b.block(f"LoRA entry {entry!r} has a weight that is not a number")
        else:
            b.block(f"LoRA entry {entry!r} is not [hash, 'weight - name']")
    if p.get("clip_skip") not in (None, 1):
        try:
            b.clip_layer = to_int(p["clip_skip"])
        except ValueError:
            b.block("clip_skip is not a number")
    if p.get("denoise") not in (None, 1, 1.0) or p.get("start_step") not in (None, 0):
        b.partial(f"image-to-image pass (start_step {p.get('start_step')}, denoise {p.get('denoise')})")
    known = {"Prompt", "prompt", "Negative", "seed", "steps", "cfg", "width", "height", "sampler_name", "scheduler",
             "base_model_name", "base_model_hash", "loras", "clip_skip", "denoise", "start_step", "software"}
    b.keep("params", {k: v for k, v in p.items() if k not in known} or None)
    b.prompt_syntax("comfyui")
    return b.build(image_size, metadata_bytes, carrier)
