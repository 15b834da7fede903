"""How ComfyUI and Forge users name FLUX.1 / SD 3.5 single files, and what those tools do that diffusers must be told.

Shared by the ComfyUI graph mapper (:mod:`.comfy_flow`) and the Forge infotext mapper
(:mod:`.forge_flow`): the registry model a transformer file stands for, the pipeline
component a text encoder file fills, and the two sampling defaults both tools share
(spec/importers.md, "ComfyUI FLUX.1 and SD 3.5"): FLUX's constant time shift without
ModelSamplingFlux, and T5 prompts padded to at least 256 (FLUX) / 77 (SD 3.5) tokens and
never truncated.
"""
from __future__ import annotations

from types import SimpleNamespace

from ..engine.families import T5_LIMIT, get_family
from ..syntax.registry import code_of, model_entry
from .result import stem

# The single files the registry models' repos ship (file stem -> registry model). A stem equal to a
# registry model name of the family is that model too (aigif-tiny-flux).
REGISTRY_FILES = {"flux1-dev": "flux1-dev", "flux1-schnell": "flux1-schnell", "flux1-krea-dev": "flux1-krea-dev",
                  "sd3.5_large": "sd35-large", "sd3.5_large_turbo": "sd35-large-turbo", "sd3.5_medium": "sd35-medium"}
# (pipeline component, what the tools' file names contain) per family, in the pipeline's order
ENCODERS = {"flux1": (("text_encoder", "clip_l"), ("text_encoder_2", "t5")),
            "sd3": (("text_encoder", "clip_l"), ("text_encoder_2", "clip_g"), ("text_encoder_3", "t5"))}
FAMILY_NAMES = {"flux1": "FLUX.1", "sd3": "SD 3.5"}
T5_PADDING = {"flux1": 256, "sd3": 77}    # T5 tokens are padded to at least this many (min_length), never truncated
FLUX_MU = {"flux1-schnell": 1.0}          # the constant FLUX time shift (mu) of ComfyUI and Forge; 1.15 for the others


def registry_model(file_name: str, family: str) -> str | None:
    """The registry model a model file name stands for, or None."""
    s = stem(file_name)
    name = REGISTRY_FILES.get(s, s)
    return name if code_of("model", name) is not None and model_entry(name).family == family else None


def encoder_component(file_name: str, family: str) -> str | None:
    """The pipeline component a text encoder file fills, told by its name (clip_l, clip_g, t5...), or None."""
    s = stem(file_name).lower().replace("-", "_")
    kinds = [k for k in ("clip_l", "clip_g", "t5") if k in s]
    if len(kinds) != 1:
        return None
    return next((comp for comp, kind in ENCODERS[family] if kind == kinds[0]), None)


def registry_files(family: str) -> str:
    return ", ".join(f"{s}.safetensors" for s, m in REGISTRY_FILES.items() if model_entry(m).family == family)


def constant_flux_shift(reg: str | None, mu: float | None = None) -> dict:
    """scheduler_config for a constant FLUX time shift *mu* (default: the tools' 1.15, schnell 1.0): diffusers
    computes mu on the line from (256 tokens, base_shift) to (4096, max_shift), flat when both are mu."""
    mu = FLUX_MU.get(reg or "", 1.15) if mu is None else mu
    dynamic = {"use_dynamic_shifting": True} if reg == "flux1-schnell" else {}   # diffusers' schnell does not shift
    return {**dynamic, "base_shift": mu, "max_shift": mu}


def long_prompt(gen: dict, family: str) -> str | None:
    """Why the T5 padding of a ``min_sequence_length`` may not be reproduced (spec/engine.md 2), or None. A T5 token
    spans at least one character, so a text shorter than N characters has fewer than N tokens: a text of
    ``T5_LIMIT`` characters or more may be longer than the pipeline takes, and when the call encodes a negative
    prompt too, a text as long as the padding may pad to another length than the other one (the tools pad each
    text on its own, diffusers both alike); the engine counts the tokens and tells."""
    n = T5_PADDING[family]
    fam = get_family(family)
    texts = {"prompt": gen.get(fam.t5[1]) or gen.get("prompt", "")}
    call = SimpleNamespace(negative_prompt=gen.get("negative_prompt", ""), true_cfg_scale=gen.get("true_cfg_scale"),
                           guidance_scale=gen.get("guidance_scale", 1.0))
    if fam.encodes_negative(call):
        texts["negative prompt"] = call.negative_prompt
    for key, text in texts.items():
        if len(text) >= T5_LIMIT:
            return f"the {key} has {len(text)} characters and may be longer than the {T5_LIMIT} T5 tokens diffusers takes"
    if len(texts) > 1 and max(map(len, texts.values())) >= n:
        return (f"the prompt or the negative prompt may be longer than {n} T5 tokens: the tool pads each to its own "
                "length, diffusers pads both alike")
    return None