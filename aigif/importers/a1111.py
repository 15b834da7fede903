"""AUTOMATIC1111 webui (and Forge, reForge, SD.Next, Civitai, Fooocus "a1111" scheme) infotext -> syntax.

The infotext is ``PROMPT[\\nNegative prompt: NEG]\\nKey: value, Key: "quoted, value", ...``.
sd-parsers detects it, but splits the settings line on every comma and colon,
which breaks quoted values (``Lora hashes: "a: 1234, b: 5678"``); the settings
line is therefore parsed here with A1111's own grammar (quoted values are JSON
strings; unquoted JSON values such as ``Hashes: {...}`` or ``Civitai resources: [...]``
are taken whole). The prompt head is split exactly as A1111 wrote it, whitespace kept.
The writing tool is told apart by its keys: ``Version: f2.0...`` (Forge), ``App: SD.Next``,
``Civitai resources`` without a ``Version`` (Civitai's generator).
"""
from __future__ import annotations

import dataclasses

import json
import re
from typing import Any

from ..errors import ConfigError
from ..syntax.elements import ComponentRef, Lora
from ..syntax.registry import code_of
from . import forge_flow, identity, samplers
from .img2img import a1111_img2img
from .detail import a1111_detail
from .passes import NotMapped, a1111_hires, a1111_refiner
from .result import Builder, Imported, to_float, to_int, valid_hash

RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
RE_SIZE = re.compile(r"^(\d+)x(\d+)$")
RE_JSON_KEY = re.compile(r"(?:^|,)\s*(\w[\w \-/]+):\s*(?=[\[{])")
RE_FORGE = re.compile(r"^f\d")
RE_EXTRA_NET = re.compile(r"<(\w+):([^>]+)>")
NEG = "\nNegative prompt: "

# Keys whose presence (with a non-neutral value) means the pixels are not a plain
# txt2img result of the recorded settings.
BLOCKING_PREFIXES = (
    "Hires", "Denoising strength", "Face restoration", "Mask blur", "Inpaint", "Masked content",
    "ControlNet", "ADetailer", "Refiner", "Seed resize from", "Image CFG scale", "Tiled Diffusion",
    "Ultimate SD upscale", "SD upscale", "Postprocess", "Extras", "Distilled CFG Scale", "Module ",
    "Soft inpainting", "Mask mode", "Masked area", "Noise multiplier", "VAE Encoder",
)
NEUTRAL = {"Variation seed strength": {"0", "0.0"}, "Sharpness": {"0", "0.0"}, "Refiner": {"None", ""},
           "Styles": {"[]", ""}, "ADM Guidance": {"(1.0, 1.0, 0.0)", "(1, 1, 0)"}, "Prompt Expansion": {""},
           "Fooocus V2 Expansion": {""}, "Tiling": {"False", ""}}
FOOOCUS_BLOCKING = {"Prompt Expansion", "Fooocus V2 Expansion", "Styles", "Sharpness", "ADM Guidance", "Refiner"}


def split_infotext(text: str) -> tuple[str, str, str]:
    """(prompt, negative prompt, settings line), inverting A1111's ``create_infotext``."""
    text = text.replace("\r\n", "\n")
    head, sep, last = text.rstrip("\n").rpartition("\n")
    if not sep or len(RE_PARAM.findall(last)) < 3:
        head, last = text, ""
    if head.startswith("Negative prompt: "):
        return "", head[len("Negative prompt: "):], last
    prompt, sep, neg = head.partition(NEG)
    return prompt, neg if sep else "", last


def parse_settings(line: str) -> dict[str, str]:
    """``Key: value, ...`` -> dict, in order; quoted values unquoted; unquoted JSON values kept as their text."""
    out: dict[str, Any] = {}
    line = _take_json_values(line, out)
    for key, value in RE_PARAM.findall(line):
        value = value.strip()
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        out[key.strip()] = value
    return out


def _take_json_values(line: str, out: dict) -> str:
    """Move ``Key: {...}`` / ``Key: [...]`` (brackets balanced outside JSON strings) from *line* into *out*."""
    pos, rest = 0, []
    while (m := RE_JSON_KEY.search(line, pos)) is not None:
        end = _json_end(line, m.end())
        if end is None:
            break
        rest.append(line[pos:m.start()])
        out[m.group(1).strip()] = line[m.end():end]
        pos = end
    return "".join(rest) + line[pos:]


def _json_end(s: str, i: int) -> int | None:
    depth, in_str, esc = 0, False, False
    for j in range(i, len(s)):
        c = s[j]
        if in_str:
            esc, in_str = (not esc and c == "\\"), in_str if (esc or c != '"') else False
        elif c == '"':
            in_str = True
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
            if depth == 0:
                return j + 1
    return None


def tool_of(p: dict, tool: str) -> str:
    """A1111 infotext is written by several tools; their own keys tell which."""
    if tool != "A1111":
        return tool
    if RE_FORGE.match(str(p.get("Version", ""))):
        return "Forge"
    if p.get("App") == "SD.Next":
        return "SD.Next"
    if "Civitai resources" in p and "Version" not in p:
        return "Civitai"
    return tool


def parse_infotext(text: str) -> dict[str, Any]:
    """The infotext as a dict: ``prompt``, ``negative_prompt`` and each settings key."""
    prompt, neg, last = split_infotext(text)
    return {"prompt": prompt, "negative_prompt": neg, **parse_settings(last)}


def lora_hashes(value: str) -> dict[str, str]:
    """``"name: 0123456789ab, other: ..."`` -> {name: hash}."""
    out = {}
    for part in value.split(","):
        name, sep, h = part.rpartition(":")
        if sep and name.strip():
            out[name.strip()] = h.strip().lower()
    return out


def extra_networks(prompt: str, b: Builder) -> tuple[str, list[Lora], list[int]]:
    """Strip ``<lora:name[:te[:unet]]>`` tags as A1111 does (the UNet multiplier defaults to the text encoder's);
    return (prompt, loras without hashes, tag offsets in the stripped prompt)."""
    loras, offsets, pieces, pos, out_len = [], [], [], 0, 0
    for m in RE_EXTRA_NET.finditer(prompt):
        kind, args = m.group(1), m.group(2).split(":")
        pieces.append(prompt[pos:m.start()])
        out_len += m.start() - pos
        pos = m.end()
        if kind != "lora":
            b.block(f"extra network <{kind}:...> cannot be expressed in the syntax")
            continue
        if len(args) > 3 or any("=" in a for a in args):
            b.block(f"LoRA tag {m.group(0)} has named or dynamic-rank arguments")
            continue
        if not args[0].strip():
            b.block(f"LoRA tag {m.group(0)} has no name")
            continue
        try:
            te = to_float(args[1]) if len(args) > 1 else 1.0
            unet = to_float(args[2]) if len(args) > 2 else te
        except ValueError:
            b.block(f"LoRA tag {m.group(0)} has a weight that is not a number")
            continue
        loras.append(Lora(name=args[0], weight=unet, text_weight=None if te == unet else te))
        offsets.append(out_len)
    pieces.append(prompt[pos:])
    return "".join(pieces), loras, offsets


def _map_sampler(b: Builder, p: dict, sampler: str | None, schedule: str | None, take) -> None:
    """``Sampler`` / ``Schedule type`` (and the values that depend on them) -> the scheduler, for the model's family
    (a flow-matching family maps through :func:`aigif.syntax.flow.flow_scheduler`)."""
    if sampler is None:
        b.block("no Sampler in the metadata")
    elif sampler == "Default" and schedule is None:
        pass                                        # aigif's exporter: the pipeline's own scheduler
    else:
        try:
            mapped = samplers.from_a1111(sampler, schedule, b.family())
        except ConfigError as exc:
            b.block(str(exc))
            return
        if mapped is None:
            b.block(f"sampler {sampler!r}" + (f" with schedule {schedule!r}" if schedule else "") + " has no equivalent in the scheduler registry")
        else:
            b.gen["scheduler"], cfg = mapped
            if cfg:
                b.gen["scheduler_config"] = cfg
    if b.gen.get("scheduler") == "ddim" and "Eta DDIM" in p:
        take("Eta DDIM", to_float, "eta")
    if "Scheduler config" in p and ("scheduler" in b.gen or sampler == "Default"):
        try:
            cfg = json.loads(p.pop("Scheduler config"))
            if not isinstance(cfg, dict):
                raise ValueError
            b.gen["scheduler_config"] = {**b.gen.get("scheduler_config", {}), **cfg}
        except ValueError:
            b.block("Scheduler config is not a JSON object")


def map_a1111(text: str, *, tool: str = "A1111", image_size=None, metadata_bytes: int = 0, carrier: str = "") -> Imported:
    """Map an A1111 infotext; unmapped keys land in ``extra["params"]`` (in order), so the way back is complete."""
    p = parse_infotext(text)
    b = Builder(tool_of(p, tool), {"parameters": text})
    prompt, loras, offsets = extra_networks(p.pop("prompt"), b)
    neg = p.pop("negative_prompt")
    if RE_EXTRA_NET.search(neg):
        b.block("extra-network tags in the negative prompt cannot be expressed in the syntax")
    b.gen["prompt"], b.gen["negative_prompt"] = prompt, neg
    if offsets:
        b.extra["lora_at"] = offsets
    if re.search(r"\bAND\b", prompt):
        b.block("composable diffusion (AND in the prompt) cannot be expressed in the syntax")
    params: dict[str, Any] = {}

    def take(key: str, conv, dest: str):
        if key in p:
            value = p.pop(key)
            try:
                b.gen[dest] = conv(value)
            except ValueError:
                b.block(f"{key} {value!r} is not a valid number")

    take("Steps", to_int, "num_inference_steps")
    take("CFG scale", to_float, "guidance_scale")
    take("Seed", to_int, "seed")
    if "Size" in p:
        m = RE_SIZE.match(p.pop("Size"))
        if m:
            b.gen["width"], b.gen["height"] = int(m.group(1)), int(m.group(2))
        else:
            b.block("Size is not WIDTHxHEIGHT")
    sampler, schedule = p.pop("Sampler", None), p.pop("Schedule type", None)
    if "Clip skip" in p:
        try:
            b.clip_layer = to_int(p.pop("Clip skip"))     # A1111 counts the last layer as 1
        except ValueError:
            b.block("Clip skip is not a number")
    take("CFG Rescale", to_float, "guidance_rescale")
    b.version = p.pop("Version", None)
    model_name, model_hash = p.pop("Model", None), p.pop("Model hash", None)
    resources = identity.civitai_resources(p.get("Civitai resources"))
    ck = identity.checkpoint(resources)
    if ck:
        b.extra["civitai_checkpoint"] = ck
        model_name = model_name or ck.get("name")
    tagged = {lo.name for lo in loras}
    untagged = [r.get("modelName") for r in resources if r.get("type") in ("lora", "lycoris", "locon")
                and r.get("modelName") not in tagged]
    if untagged:
        b.block("LoRAs named only in Civitai resources (" + ", ".join(map(str, untagged[:4])) + "), without their files")
    if "Civitai resources" in p:
        p["Civitai resources"] = resources or p["Civitai resources"]
    aigif_model = p.pop("AIGIF model", None)       # written by aigif's own exporter for registry models
    if aigif_model and code_of("model", aigif_model) is not None and model_hash is None:
        b.set_model(aigif_model, None, trusted_registry=True)
        if model_name and model_name != aigif_model:
            b.extra["model_name"] = model_name
    else:
        if aigif_model:
            params["AIGIF model"] = aigif_model
        b.set_model(model_name, model_hash.lower() if model_hash else None)
    forge_keys = forge_flow.map_model(p, b, model_name, model_hash) if forge_flow.is_forge_flux(p) else set()
    _map_sampler(b, p, sampler, schedule, take)     # once the model (and so its family) is known
    if forge_keys:
        forge_flow.map_shift(b)
    vae_name, vae_hash = p.pop("VAE", None), p.pop("VAE hash", None)
    if vae_name or vae_hash:
        vh = vae_hash.lower() if vae_hash and valid_hash(vae_hash.lower()) else None
        if vae_hash and not vh:
            params["VAE hash"] = vae_hash
        if vae_name or vh:
            b.vae = ComponentRef(name=vae_name or f"sha256:{vh}", sha256=vh)
    hashes = lora_hashes(p.pop("Lora hashes")) if "Lora hashes" in p else {}
    for lo in loras:
        h = hashes.pop(lo.name, None)
        b.loras.append(dataclasses.replace(lo, sha256=h) if valid_hash(h) else lo)
        if h and not valid_hash(h):
            params.setdefault("Lora hashes", {})[lo.name] = h
    if hashes:
        params.setdefault("Lora hashes", {}).update(hashes)
    if "width" in b.gen:
        try:
            b.hires = a1111_hires(p, b.gen, (sampler, schedule))
        except NotMapped as exc:
            b.block(f"hires fix: {exc}")
    try:
        b.refiner = a1111_refiner(p)
    except NotMapped as exc:
        b.block(f"refiner: {exc}")
    try:
        b.img2img = a1111_img2img(p)
    except NotMapped as exc:
        b.block(f"image-to-image: {exc}")
    try:
        b.detail = a1111_detail(p)
    except NotMapped as exc:
        b.block(f"ADetailer: {exc}")
    for name, h in (lora_hashes(p.pop("TI hashes")) if "TI hashes" in p else {}).items():
        b.embedding(name, h)          # 12 hex of the file's sha256; the prompt uses the name as a word
    blocking = []
    no_refiner = p.get("Refiner", "None") in NEUTRAL["Refiner"]
    for key, value in p.items():
        if key in forge_keys:
            if forge_flow.rebuilt(key):
                continue                            # the way back writes it from the syntax
            blocks = False
        elif key in NEUTRAL:
            blocks = value not in NEUTRAL[key]
        elif key.lower().startswith("refiner switch"):
            blocks = not no_refiner
        elif key.startswith("ADetailer") and b.detail is not None:
            blocks = False                          # kept; the detail element already makes the syntax partial
        else:
            blocks = key.startswith(BLOCKING_PREFIXES) or (tool == "Fooocus" and key in FOOOCUS_BLOCKING)
        if blocks:
            blocking.append(f"{key}: {value}")
        params[key] = value
    if blocking:
        b.block("not a plain text-to-image result (" + ", ".join(blocking) + ")")
    params = {k: v for k, v in params.items() if v is not None}
    if params:
        b.extra["params"] = params
    b.prompt_syntax("a1111")
    return b.build(image_size, metadata_bytes, carrier)
