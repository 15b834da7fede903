"""Forge's FLUX.1 infotext keys -> syntax: Distilled CFG Scale, Module files, Diffusion in Low Bits.

Forge (webui-forge f2) writes for FLUX.1: ``CFG scale`` (true classifier-free guidance,
1 = off), ``Distilled CFG Scale`` (FLUX's guidance), ``Module 1..N`` (the VAE and text
encoder files it loaded besides the checkpoint, named without extension) and
``Diffusion in Low Bits`` (how it stores the transformer weights). Its FLUX sampling
equals ComfyUI's: a constant time shift (:func:`.flow_files.constant_flux_shift`) and
T5 prompts padded to 256 tokens. The checkpoint with its modules is ComfyUI's split
layout (Forge keeps them in ``Stable-diffusion/``, ``text_encoder/``, ``VAE/``, which
the engine finds as aliases of ``diffusion_models/``, ``text_encoders/``, ``vae/``).
"""
from __future__ import annotations

import re

from ..syntax.elements import ComponentRef
from . import flow_files
from .result import Builder, to_float, valid_hash

KEYS = ("Distilled CFG Scale", "Diffusion in Low Bits")
LOW_BITS_AS_STORED = {"Automatic", "Automatic (fp16 LoRA)"}     # the checkpoint's own weights, not cast
QUANTIZED = re.compile(r"nf4|fp4|gguf|(^|[-_])q\d", re.I)       # checkpoints whose weights are stored quantized
RE_MODULE = re.compile(r"^Module \d+$")
# the flow schedulers Forge's FLUX sampler + schedule pairs map to (through the flow table), for the way back
FORGE_SAMPLERS = {"flow-euler": ("Euler", "Simple"), "flow-euler-karras": ("Euler", "Karras"),
                  "flow-euler-beta": ("Euler", "Beta"), "flow-euler-exponential": ("Euler", "Exponential")}


def rebuilt(key: str) -> bool:
    """Keys the way back writes from the syntax (:func:`forge_params`), so they are not kept twice."""
    return key == "Distilled CFG Scale" or bool(RE_MODULE.match(key))


def forge_params(gen, model) -> dict[str, str]:
    """Forge's own FLUX.1 keys for a syntax imported from Forge: CFG scale (true CFG), Distilled CFG Scale, Modules."""
    from .result import fmt_num, stem

    p = {}
    sampler = FORGE_SAMPLERS.get(gen.scheduler or "")
    if sampler and gen.scheduler_config == flow_files.constant_flux_shift(model.name):
        p["Sampler"], p["Schedule type"] = sampler
    p.update({"CFG scale": fmt_num(gen.true_cfg_scale or 1), "Distilled CFG Scale": fmt_num(gen.guidance_scale)})
    files = ([model.vae.local] if model.vae is not None and model.vae.local else []) + \
        [t.local for t in model.text_encoders if t.local]
    for i, local in enumerate(files, 1):
        p[f"Module {i}"] = stem(local)
    return p


def is_forge_flux(p: dict) -> bool:
    """Forge writes ``Distilled CFG Scale`` only for FLUX.1's distilled guidance."""
    return "Distilled CFG Scale" in p


def map_model(p: dict, b: Builder, model_name: str | None, model_hash: str | None) -> set[str]:
    """The FLUX model reference, guidance and T5 length (before the sampler is mapped); returns the keys handled."""
    handled = set(KEYS)
    try:
        guidance = to_float(p["Distilled CFG Scale"])
    except ValueError:
        b.block(f"Distilled CFG Scale {p['Distilled CFG Scale']!r} is not a number")
        return handled
    cfg = b.gen.get("guidance_scale", 1.0)
    b.gen["guidance_scale"] = guidance
    if cfg != 1.0:               # true classifier-free guidance on top of the distilled guidance
        if cfg < 1.0 or not b.gen.get("negative_prompt"):
            b.partial(f"CFG scale {cfg:g} on FLUX.1 " + ("below 1" if cfg < 1.0 else "with an empty negative prompt: "
                      "diffusers' FLUX pipeline runs true CFG only on a negative prompt"))
        b.gen["true_cfg_scale"] = cfg
    elif b.gen.get("negative_prompt"):
        b.extra["unused_negative_prompt"] = b.gen.pop("negative_prompt")     # CFG 1: Forge does not sample it
    b.gen["min_sequence_length"] = flow_files.T5_PADDING["flux1"]
    why = flow_files.long_prompt(b.gen, "flux1")
    if why:
        b.partial(why)

    encoders, vae = {}, None
    for key in sorted((k for k in p if RE_MODULE.match(k)), key=lambda k: int(k.split()[1])):
        handled.add(key)
        name = str(p[key])
        comp = flow_files.encoder_component(name, "flux1")
        if comp is not None and comp not in encoders:
            encoders[comp] = name
        elif comp is None and vae is None and (name.lower() == "ae" or "vae" in name.lower()):
            vae = name
        else:
            b.block(f"{key}: {name} is neither the VAE nor a FLUX.1 text encoder (by its name)")
    low_bits = p.get("Diffusion in Low Bits", "Automatic")
    if low_bits not in LOW_BITS_AS_STORED:
        b.partial(f"Diffusion in Low Bits: {low_bits}: Forge casts the transformer's weights, the engine runs the file's own")
    if not model_name:
        b.block("the model is not named in the metadata")
        return handled
    if QUANTIZED.search(model_name):
        b.partial(f"the checkpoint {model_name} holds quantized weights, which the engine does not load")
    reg = flow_files.registry_model(model_name, "flux1")
    if reg is None:
        b.partial(f"the checkpoint {model_name} is not a file of a registry model ({flow_files.registry_files('flux1')}): "
                  "the engine takes its configs and tokenizers from the registry model it is")
    if set(encoders) != {c for c, _ in flow_files.ENCODERS["flux1"]} or vae is None:
        b.partial(f"the checkpoint {model_name} is used without separate VAE and text encoder modules (clip_l, t5xxl, ae): "
                  "an all-in-one FLUX.1 checkpoint, which the engine does not load")
    sha = model_hash.lower() if model_hash and valid_hash(model_hash.lower()) else None
    b.model = {"name": reg or model_name, "family": None if reg else "flux1", "sha256": sha,
               "local": f"diffusion_models/{model_name}.safetensors",
               "text_encoders": tuple(ComponentRef(local=f"text_encoders/{encoders[c]}.safetensors", subfolder=c)
                                      for c, _ in flow_files.ENCODERS["flux1"] if c in encoders)}
    if reg and reg != model_name:
        b.extra["model_name"] = model_name
    b.vae = ComponentRef(local=f"vae/{vae}.safetensors") if vae else None
    return handled


def map_shift(b: Builder) -> None:
    """Forge's constant FLUX time shift, once the sampler is mapped."""
    if b.gen.get("scheduler"):
        b.gen["scheduler_config"] = {**b.gen.get("scheduler_config", {}),
                                     **flow_files.constant_flux_shift(b.model.get("name"))}
