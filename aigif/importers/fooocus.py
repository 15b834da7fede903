"""Fooocus JSON metadata (``fooocus_scheme: fooocus``) -> syntax.

Fooocus conditions on ``full_prompt`` (the prompt plus styles and the GPT-2
"Fooocus V2" expansion, each encoded separately and concatenated), sharpens
with its own guidance filter (``sharpness``) and rescales ADM guidance. None
of that is in the syntax, so an image is mapped only when those features were
neutral; otherwise the whole JSON is kept in ``Source.extra``. The "a1111"
scheme is A1111 text and goes through :mod:`.a1111`.
"""
from __future__ import annotations

import ast
import json

from ..syntax.elements import ComponentRef, Lora
from . import samplers
from .result import Builder, Imported, stem, to_float, to_int, valid_hash

MAPPED = {"prompt", "negative_prompt", "seed", "steps", "guidance_scale", "resolution", "sampler", "scheduler",
          "base_model", "base_model_hash", "clip_skip", "loras", "vae", "version", "full_prompt",
          "full_negative_prompt", "metadata_scheme"}


def map_fooocus(fields: dict[str, str], *, image_size=None, metadata_bytes: int = 0, carrier: str = "") -> Imported:
    b = Builder("Fooocus", fields)
    try:
        meta = json.loads(fields.get("parameters", ""))
    except (json.JSONDecodeError, RecursionError, TypeError):
        meta = None
    if not isinstance(meta, dict):
        b.block("Fooocus parameters are not a JSON object")
        return b.build(image_size, metadata_bytes, carrier)
    version = str(meta.get("version", ""))
    b.version = version.removeprefix("Fooocus ").removeprefix("v") or None
    prompt, neg = str(meta.get("prompt", "")), str(meta.get("negative_prompt", ""))
    full, full_neg = meta.get("full_prompt", [prompt]), meta.get("full_negative_prompt", [neg] if neg else [])
    if full not in ([prompt], [prompt] if prompt else []):
        b.block("styles / Fooocus V2 prompt expansion changed the prompt (full_prompt is a list of separately encoded prompts)")
    if full_neg not in ([neg], [] if not neg else [neg]):
        b.block("styles changed the negative prompt")
    if to_float_or(meta.get("sharpness", 0)) != 0:
        b.block(f"sharpness {meta.get('sharpness')} (Fooocus' own guidance filter) is not in the syntax")
    if str(meta.get("adm_guidance", "(1.0, 1.0, 0.0)")).replace(" ", "") not in ("(1.0,1.0,0.0)", "(1,1,0)"):
        b.block(f"adm_guidance {meta.get('adm_guidance')} is not in the syntax")
    if str(meta.get("refiner_model", "None")) != "None":
        b.block(f"refiner {meta.get('refiner_model')} is not in the syntax")
    for key in ("inpaint_method", "image_prompts", "uov_method", "enhance_mask", "input_image"):
        if meta.get(key) not in (None, "", "Disabled", []):
            b.block(f"{key} is used")
    b.gen["prompt"], b.gen["negative_prompt"] = prompt, neg
    try:
        b.gen["seed"] = to_int(meta["seed"])
        b.gen["num_inference_steps"] = to_int(meta["steps"])
        b.gen["guidance_scale"] = to_float(meta["guidance_scale"])
        if "resolution" in meta:
            w, h = ast.literal_eval(str(meta["resolution"]))
            b.gen["width"], b.gen["height"] = to_int(w), to_int(h)
        if "clip_skip" in meta:
            b.clip_layer = to_int(meta["clip_skip"])          # Fooocus counts like A1111, applies like ComfyUI
    except (KeyError, ValueError, TypeError, SyntaxError) as exc:
        b.block(f"Fooocus metadata lacks or has an invalid field ({exc})")
    mapped = samplers.from_comfy(str(meta.get("sampler")), str(meta.get("scheduler")))
    if mapped is None:
        b.block(f"sampler {meta.get('sampler')!r} with scheduler {meta.get('scheduler')!r} has no equivalent in the scheduler registry")
    else:
        b.gen["scheduler"], _ = mapped
    mhash = meta.get("base_model_hash")
    b.set_model(meta.get("base_model"), str(mhash).lower() if mhash else None)
    vae = meta.get("vae")
    if vae and vae != "Default (model)":
        b.vae = ComponentRef(name=str(vae))
    for i, entry in enumerate(meta.get("loras") or []):
        try:
            name, weight = str(entry[0]), to_float(entry[1])
            h = str(entry[2]).lower() if len(entry) > 2 else None
        except (IndexError, TypeError, ValueError):
            b.block(f"LoRA entry {i} is malformed")
            continue
        b.loras.append(Lora(name=stem(name), weight=weight, weight_name=name, sha256=h if valid_hash(h) else None))
    # values checked to be neutral above are implied by the mapping itself
    implied = {"sharpness": (0, 0.0, "0"), "adm_guidance": ("(1.0, 1.0, 0.0)", "(1, 1, 0)"), "refiner_model": ("None",),
               "styles": ("[]", "", []), "prompt_expansion": ("",)}
    rest = {k: v for k, v in meta.items() if k not in MAPPED and not (k in implied and v in implied[k])}
    if rest:
        b.extra["meta"] = rest
    b.prompt_syntax("comfyui")
    return b.build(image_size, metadata_bytes, carrier)


def to_float_or(v, default: float = 1.0) -> float:
    try:
        return to_float(v)
    except (ValueError, TypeError):
        return default
