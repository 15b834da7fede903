"""Other tools' hires fix and refiner -> the ``hires`` and ``refiner`` elements (spec/importers.md).

A1111 (and Forge, reForge, SD.Next, Civitai) write ``Hires upscale`` / ``Hires resize``,
``Hires upscaler``, ``Hires steps``, ``Denoising strength`` and optionally a second-pass
sampler, CFG and prompts. ComfyUI's two-pass graph is KSampler -> LatentUpscale(By) ->
KSampler (denoise < 1), or KSampler -> VAEDecode -> an upscale model and/or a resize ->
VAEEncode -> KSampler (:mod:`.comfy_upscale`). Only what the element says exactly is mapped; anything else
(another checkpoint for the second pass, cropping, an unknown sampler) is left as it was,
so the importer keeps the main pass as a partial syntax with the reason.
"""
from __future__ import annotations

import json
import re
from typing import Any

from ..syntax.elements import Generation
from ..syntax.passes import HiresFix
from ..syntax.registry import UPSCALERS, code_of, upscaler_from_tool
from . import samplers
from .comfy_upscale import PixelNotMapped, find_pixel_pass, pixel_upscale
from .result import fmt_num, registry_model_for, to_float, to_int, valid_hash

LATENT_FACTOR = 8      # SD / SDXL latents: A1111 and ComfyUI size them as pixels // 8

# A1111 keys of a hires pass and the values that mean "as in the first pass"
A1111_KEYS = ("Hires upscale", "Hires resize", "Hires upscaler", "Hires steps", "Hires sampler", "Hires schedule type",
              "Hires CFG Scale", "Hires prompt", "Hires negative prompt", "Hires checkpoint", "Denoising strength",
              "Hires seed", "Hires scheduler config", "Hires upscaler hash")   # the last three: aigif's own
A1111_SAME = {"Hires checkpoint": "Use same checkpoint", "Hires sampler": "Use same sampler",
              "Hires schedule type": "Use same scheduler"}


class NotMapped(ValueError):
    """The hires pass uses something the element cannot say (the message says what)."""


def _size(width: int, height: int, scale: float | None, target: tuple[int, int] | None) -> dict:
    """scale / explicit size fields: the tools size latents as floor(pixels / 8), so does the element."""
    w, h = target if target else (int(width * scale), int(height * scale))
    w8, h8 = w // LATENT_FACTOR * LATENT_FACTOR, h // LATENT_FACTOR * LATENT_FACTOR
    if scale is not None and (w8, h8) == (int(width * scale), int(height * scale)):
        return {"scale": scale}
    return {**({"scale": scale} if scale is not None else {}), "width": w8, "height": h8}


def a1111_hires(p: dict[str, Any], gen: dict[str, Any], first: tuple[str | None, str | None]) -> dict | None:
    """The hires element of an A1111 infotext *p* (its keys are popped), None when it has no hires pass.
    *gen*: the first pass's mapped fields; *first*: its ``Sampler`` and ``Schedule type``.

    Raises :class:`NotMapped` (leaving *p* untouched) when the pass cannot be expressed.
    """
    if "Hires upscaler" not in p or not ("Hires upscale" in p or "Hires resize" in p):
        return None
    others = [k for k in p if k.startswith("Hires") and k not in A1111_KEYS]
    if others:
        raise NotMapped(f"hires settings {', '.join(others)}")
    if p.get("Hires checkpoint", A1111_SAME["Hires checkpoint"]) != A1111_SAME["Hires checkpoint"]:
        raise NotMapped(f"a second checkpoint for the hires pass ({p['Hires checkpoint']})")
    try:
        strength = to_float(p["Denoising strength"])
        scale = to_float(p["Hires upscale"]) if "Hires upscale" in p else None
        target = None
        if "Hires resize" in p:
            w, _, h = str(p["Hires resize"]).partition("x")
            target = (to_int(w), to_int(h))
            if target[0] * gen["height"] != target[1] * gen["width"]:
                raise NotMapped(f"hires resize {p['Hires resize']} crops the first pass (another aspect ratio)")
        hires: dict[str, Any] = {"upscaler": upscaler_from_tool(str(p["Hires upscaler"])), "strength": strength,
                                 **_size(gen["width"], gen["height"], scale, target)}
        steps = to_int(p.get("Hires steps", 0))
        if steps and steps != gen.get("num_inference_steps"):
            hires["steps"] = steps
        sampler = p.get("Hires sampler", A1111_SAME["Hires sampler"])
        schedule = p.get("Hires schedule type", A1111_SAME["Hires schedule type"])
        sampler = first[0] if sampler == A1111_SAME["Hires sampler"] else sampler
        schedule = first[1] if schedule == A1111_SAME["Hires schedule type"] else schedule
        if (sampler, schedule) != tuple(first):
            mapped = samplers.from_a1111(str(sampler), schedule)
            if mapped is None:
                raise NotMapped(f"hires sampler {sampler!r} / schedule {schedule!r} has no equivalent in the scheduler registry")
            hires["scheduler"] = mapped[0]
            if mapped[1]:
                hires["scheduler_config"] = mapped[1]
        if "Hires scheduler config" in p:
            cfg = json.loads(p["Hires scheduler config"])
            if not isinstance(cfg, dict) or "scheduler" not in hires:
                raise NotMapped("Hires scheduler config is not a JSON object for a hires sampler")
            hires["scheduler_config"] = {**hires.get("scheduler_config", {}), **cfg}
        if "Hires seed" in p:
            hires["seed"] = to_int(p["Hires seed"])
        if "Hires upscaler hash" in p:
            hires["upscaler_sha256"] = str(p["Hires upscaler hash"]).strip().lower()
        if "Hires CFG Scale" in p and to_float(p["Hires CFG Scale"]) != gen.get("guidance_scale"):
            hires["guidance_scale"] = to_float(p["Hires CFG Scale"])
    except (KeyError, ValueError) as exc:
        if isinstance(exc, NotMapped):
            raise
        raise NotMapped(f"hires settings are incomplete or not numbers ({exc})") from None
    for key, field in (("Hires prompt", "prompt"), ("Hires negative prompt", "negative_prompt")):
        if p.get(key):                    # A1111 writes them only when they differ; empty means "the same"
            if "<" in str(p[key]) and ">" in str(p[key]):
                raise NotMapped(f"{key} holds extra-network tags")
            hires[field] = str(p[key])
    for key in A1111_KEYS:
        p.pop(key, None)
    return hires


def a1111_hires_params(hires: HiresFix, gen: Generation) -> dict[str, str]:
    """The way back: A1111 infotext keys of *hires* (read again by :func:`a1111_hires` to the same pass)."""
    code = code_of("upscaler", hires.upscaler)
    names = UPSCALERS[code].names if code is not None else ()
    p = {"Denoising strength": fmt_num(hires.strength)}
    if hires.scale is not None:
        p["Hires upscale"] = fmt_num(hires.scale)
    if hires.width is not None:
        p["Hires resize"] = f"{hires.width}x{hires.height}"
    p["Hires upscaler"] = names[0] if names else hires.upscaler
    if hires.steps:
        p["Hires steps"] = str(hires.steps)
    if hires.scheduler is not None:
        back = samplers.to_a1111(hires.scheduler, hires.scheduler_config)
        p["Hires sampler"] = back[0] if back else hires.scheduler
        if back and back[1]:
            p["Hires schedule type"] = back[1]
        if not back and hires.scheduler_config:
            p["Hires scheduler config"] = json.dumps(hires.scheduler_config, sort_keys=True)
    if hires.seed is not None:
        p["Hires seed"] = str(hires.seed)
    if hires.upscaler_sha256 is not None:
        p["Hires upscaler hash"] = hires.upscaler_sha256
    if hires.guidance_scale is not None:
        p["Hires CFG Scale"] = fmt_num(hires.guidance_scale)
    if hires.prompt:
        p["Hires prompt"] = hires.prompt
    if hires.negative_prompt:
        p["Hires negative prompt"] = hires.negative_prompt
    return p


RE_CHECKPOINT = re.compile(r"^(.*?)\s*(?:\[([0-9a-fA-F]{8,64})\])?$")


def a1111_refiner(p: dict[str, Any]) -> dict | None:
    """The refiner element of ``Refiner: NAME [hash], Refiner switch at: X`` (keys popped), None without one."""
    value = str(p.get("Refiner", "None")).strip()
    if value in ("", "None"):
        return None
    m = RE_CHECKPOINT.match(value)
    name, sha = m.group(1), (m.group(2) or "").lower() or None
    try:
        switch = to_float(p["Refiner switch at"])
    except (KeyError, ValueError):
        raise NotMapped("Refiner switch at is missing or not a number") from None
    reg = registry_model_for(sha)
    model = {"name": reg} if reg else {"name": name or f"sha256:{sha}", "sha256": sha if valid_hash(sha) else None}
    for key in ("Refiner", "Refiner switch at"):
        p.pop(key, None)
    return {"model": model, "switch_at": switch}


def a1111_refiner_params(refiner) -> dict[str, str]:
    """The way back of :func:`a1111_refiner`."""
    m = refiner.model
    name = m.name or m.local or m.repo
    return {"Refiner": f"{name} [{m.sha256[:10]}]" if m.sha256 else name, "Refiner switch at": fmt_num(refiner.switch_at)}


# --- ComfyUI: KSampler -> LatentUpscale(By) -> KSampler --------------------------------------
UPSCALE_NODES = ("LatentUpscale", "LatentUpscaleBy")


def _link(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and isinstance(v[0], str)


def _users(graph: dict, node: str) -> set[str]:
    return {key for key, n in graph.items() for v in n.get("inputs", {}).values() if _link(v) and v[0] == node}


def comfy_split(graph: dict[str, dict], image_size=None) -> tuple[dict[str, dict], dict | None]:
    """(the first pass as a one-KSampler graph, the hires element) of a two-pass graph; else (graph, None).

    Raises :class:`NotMapped` for a two-pass graph the element cannot express.
    """
    ks = [k for k, n in graph.items() if n.get("class_type") == "KSampler"]
    if len(ks) != 2:
        return graph, None
    for k2 in ks:
        up = graph[k2].get("inputs", {}).get("latent_image")
        pixel = find_pixel_pass(graph, k2)
        if pixel is not None or _link(up) and graph.get(up[0], {}).get("class_type") in UPSCALE_NODES:
            break
    else:
        return graph, None
    k1 = next(k for k in ks if k != k2)
    u = pixel.decoder if pixel else up[0]
    i1, i2, iu = graph[k1]["inputs"], graph[k2]["inputs"], graph[u]["inputs"]
    if not (_link(iu.get("samples")) and iu["samples"][0] == k1):
        raise NotMapped(f"the {'decoder' if pixel else 'latent upscale'} (node {u}) does not take the first sampler's output")
    lat = i1.get("latent_image")
    empty = graph.get(lat[0], {}) if _link(lat) else {}
    if empty.get("class_type") != "EmptyLatentImage":
        raise NotMapped("the first pass does not start from an EmptyLatentImage")
    width, height = to_int(empty["inputs"].get("width")), to_int(empty["inputs"].get("height"))
    if i2.get("model") != i1.get("model"):
        raise NotMapped("the second pass samples with another model")
    try:
        enlarge = _pixel_size(graph, pixel, width, height, image_size) if pixel else _latent_size(graph, u, width, height)
    except PixelNotMapped as exc:
        raise NotMapped(str(exc)) from None
    hires = _comfy_hires(graph, i1, i2, *enlarge)
    decoders = {key for key, n in graph.items() if n.get("class_type") == "VAEDecode"}
    drop = {pixel.encoder, *pixel.chain, *([pixel.loader] if pixel.loader else [])} if pixel else {u}
    links = _chain_links(pixel, k2) if pixel else [(u, k2)]
    if not _users(graph, k2) <= decoders or not _users(graph, k1) <= decoders | drop or \
            any(_users(graph, key) != {nxt} for key, nxt in links):
        raise NotMapped("the passes' latents are used by other nodes")
    w2, h2 = (hires.get("width"), hires.get("height")) if "width" in hires else (int(width * hires["scale"]), int(height * hires["scale"]))
    if image_size is not None and tuple(image_size) == (width, height) and (w2, h2) != (width, height):
        return _drop_second_pass(graph, k1, k2, drop, keep_first=True), None     # the saved image is the first pass
    return _drop_second_pass(graph, k1, k2, drop, keep_first=False), hires


def _chain_links(pixel, k2: str) -> list[tuple[str, str]]:
    """(node, the one node that may read it) along a pixel pass: image nodes, the encoder, the model loader."""
    nodes = [*pixel.chain, pixel.encoder, k2]
    return list(zip(nodes, nodes[1:])) + ([(pixel.loader, pixel.chain[0])] if pixel.loader else [])


def _drop_second_pass(graph: dict, k1: str, k2: str, drop: set, keep_first: bool) -> dict:
    """The graph with one sampler: the nodes between the passes (*drop*), the decoders and image outputs of the
    other pass removed, the kept pass's decoder reading the first sampler."""
    drop_from, keep_from = (k2, k1) if keep_first else (k1, k2)
    out = {key: n for key, n in graph.items() if key != k2 and key not in drop}
    for key in (_users(graph, k1) | _users(graph, k2)) - drop:
        if graph[key]["inputs"]["samples"][0] == drop_from:
            out.pop(key)
            for key2 in _users(graph, key):     # the dropped pass's image outputs go with it
                out.pop(key2, None)
        else:
            out[key] = {**graph[key], "inputs": {**graph[key]["inputs"], "samples": [k1, 0]}}
    return out


def _latent_size(graph: dict, u: str, width: int, height: int) -> tuple[str, dict]:
    """(upscaler, size fields) of a LatentUpscale(By) node."""
    iu = graph[u]["inputs"]
    method = iu.get("upscale_method")
    if not isinstance(method, str):
        raise NotMapped("the latent upscale method is not a plain value")
    try:
        if graph[u]["class_type"] == "LatentUpscaleBy":
            s = to_float(iu.get("scale_by"))
            # ComfyUI: round(latent side x scale) latents
            target = (round(width // LATENT_FACTOR * s) * LATENT_FACTOR, round(height // LATENT_FACTOR * s) * LATENT_FACTOR)
            return upscaler_from_tool(method), _size(width, height, s, target)
        if iu.get("crop", "disabled") != "disabled":
            raise NotMapped(f"the latent upscale crops ({iu.get('crop')})")
        w, h = to_int(iu.get("width")), to_int(iu.get("height"))
        if w <= 0 or h <= 0:
            raise NotMapped("the latent upscale keeps the aspect ratio from one side (width or height 0)")
        return upscaler_from_tool(method), _size(width, height, None, (w, h))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, NotMapped):
            raise
        raise NotMapped(f"the latent upscale values are not plain numbers ({exc})") from None


def _pixel_size(graph: dict, pixel, width: int, height: int, image_size) -> tuple[str, dict]:
    """(upscaler, size fields) of a pixel pass; ComfyUI's VAEEncode takes multiples of 8 pixels, so does the element."""
    upscaler, size, factor = pixel_upscale(graph, pixel, width, height, image_size)
    return upscaler, _size(width, height, factor, size)


def _comfy_hires(graph: dict, i1: dict, i2: dict, upscaler: str, size: dict) -> dict:
    """The hires element of a second KSampler (*i2*) after the first (*i1*), enlarged by *upscaler* to *size*."""
    try:
        denoise = to_float(i2.get("denoise", 1.0))
        steps = to_int(i2.get("steps"))
        if not 0 < denoise <= 1:
            raise NotMapped(f"second-pass denoise {denoise}")
        hires: dict[str, Any] = {"upscaler": upscaler, "strength": denoise, **size}
        # ComfyUI runs `steps` steps at the end of a schedule of int(steps / denoise); diffusers runs
        # int(n x strength) of n: the same schedule length
        n = int(steps / denoise)
        if n != to_int(i1.get("steps")):
            hires["steps"] = n
        if to_int(i2.get("seed")) != to_int(i1.get("seed")):
            hires["seed"] = to_int(i2.get("seed"))
        if (i2.get("sampler_name"), i2.get("scheduler")) != (i1.get("sampler_name"), i1.get("scheduler")):
            mapped = samplers.from_comfy(i2.get("sampler_name"), i2.get("scheduler"))
            if mapped is None:
                raise NotMapped(f"second-pass sampler {i2.get('sampler_name')!r} with scheduler {i2.get('scheduler')!r} "
                                "has no equivalent in the scheduler registry")
            hires["scheduler"] = mapped[0]
            if mapped[1]:
                hires["scheduler_config"] = mapped[1]
        if to_float(i2.get("cfg")) != to_float(i1.get("cfg")):
            hires["guidance_scale"] = to_float(i2.get("cfg"))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, NotMapped):
            raise
        raise NotMapped(f"second-pass values are not plain numbers ({exc})") from None
    for side, field in (("positive", "prompt"), ("negative", "negative_prompt")):
        if i2.get(side) != i1.get(side):
            hires[field] = _same_encoder_text(graph, i1.get(side), i2.get(side), side)
    return hires


def _same_encoder_text(graph: dict, first: Any, second: Any, side: str) -> str:
    """The text of the second pass's *side* prompt, encoded like the first pass's (same CLIP chain)."""
    nodes = [graph.get(v[0], {}) if _link(v) else {} for v in (first, second)]
    if any(n.get("class_type") != "CLIPTextEncode" for n in nodes) or nodes[0]["inputs"].get("clip") != nodes[1]["inputs"].get("clip"):
        raise NotMapped(f"the second pass's {side} prompt is not a CLIPTextEncode on the first pass's text encoder")
    text = nodes[1]["inputs"].get("text")
    if not isinstance(text, str):
        raise NotMapped(f"the second pass's {side} prompt is not text")
    return text


# --- ComfyUI: KSamplerAdvanced (end_at_step) -> KSamplerAdvanced (start_at_step) on another checkpoint ---------------
def comfy_refiner_split(graph: dict[str, dict]) -> tuple[dict[str, dict], dict | None]:
    """(the base pass as a one-sampler graph, the refiner element) of a base + refiner graph; else (graph, None).

    Raises :class:`NotMapped` for a base + refiner graph the element cannot express.
    """
    adv = [k for k, n in graph.items() if n.get("class_type") == "KSamplerAdvanced"]
    if len(adv) != 2 or len([k for k, n in graph.items() if n.get("class_type") in ("KSampler", "KSamplerAdvanced")]) != 2:
        return graph, None
    k1, k2 = adv if _link(graph[adv[1]]["inputs"].get("latent_image")) and graph[adv[1]]["inputs"]["latent_image"][0] == adv[0] \
        else adv[::-1]
    i1, i2 = graph[k1]["inputs"], graph[k2]["inputs"]
    if not (_link(i2.get("latent_image")) and i2["latent_image"][0] == k1):
        return graph, None
    try:
        steps, end = to_int(i1.get("steps")), to_int(i1.get("end_at_step"))
        if i1.get("return_with_leftover_noise") != "enable" or i2.get("add_noise") != "disable" or not 0 < end < steps:
            raise NotMapped("the base pass does not hand its leftover noise to the refiner")
        if to_int(i2.get("start_at_step")) != end or to_int(i2.get("end_at_step")) < steps or to_int(i2.get("steps")) != steps:
            raise NotMapped("the refiner does not run the rest of the base pass's schedule")
    except (TypeError, ValueError) as exc:
        if isinstance(exc, NotMapped):
            raise
        raise NotMapped(f"refiner steps are not plain numbers ({exc})") from None
    if (i2.get("sampler_name"), i2.get("scheduler"), i2.get("cfg")) != (i1.get("sampler_name"), i1.get("scheduler"), i1.get("cfg")):
        raise NotMapped("the refiner samples with another sampler, schedule or cfg")
    ck = graph.get(i2["model"][0], {}) if _link(i2.get("model")) else {}
    if ck.get("class_type") != "CheckpointLoaderSimple" or not isinstance(ck["inputs"].get("ckpt_name"), str):
        raise NotMapped("the refiner model is not a plain CheckpointLoaderSimple")
    prompts = {}
    for side, field in (("positive", "prompt"), ("negative", "negative_prompt")):
        node = graph.get(i2[side][0], {}) if _link(i2.get(side)) else {}
        text = node.get("inputs", {}).get("text")
        if node.get("class_type") != "CLIPTextEncode" or not isinstance(text, str) or node["inputs"].get("clip") != [i2["model"][0], 1]:
            raise NotMapped(f"the refiner's {side} prompt is not a CLIPTextEncode on the refiner's text encoder")
        first = graph.get(i1[side][0], {}).get("inputs", {}).get("text") if _link(i1.get(side)) else None
        if text != first:
            prompts[field] = text
    decoders = {key for key, n in graph.items() if n.get("class_type") == "VAEDecode"}
    if _users(graph, k1) != {k2} or not _users(graph, k2) <= decoders:
        raise NotMapped("the passes' latents are used by other nodes")
    base_ckpt = i1["model"][0] if _link(i1.get("model")) else None
    out = {key: n for key, n in graph.items() if key != k2}
    out[k1] = {**graph[k1], "inputs": {**i1, "end_at_step": 10000, "return_with_leftover_noise": "disable"}}
    for key in _users(graph, k2):
        inp = dict(graph[key]["inputs"], samples=[k1, 0])
        if _link(inp.get("vae")) and inp["vae"][0] == i2["model"][0] and base_ckpt is not None:
            inp["vae"] = [base_ckpt, 2]          # the refiner pass decodes with the refiner checkpoint's VAE
        out[key] = {**graph[key], "inputs": inp}
    name = ck["inputs"]["ckpt_name"]
    stem_name = re.split(r"[\\/]", name)[-1].rsplit(".", 1)[0]
    return out, {"model": {"name": stem_name, "weights_file": name}, "switch_at": end / steps, **prompts}
