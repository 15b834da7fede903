"""What a generation request means when the caller leaves values out.

One place for the defaults that ``aigif generate`` and ``aigif.generate()`` share:
the embedded tiny model renders 64x64 in 10 steps; other models use their
family's size and diffusers' 50 steps; a missing seed is drawn (and recorded).
"""
from __future__ import annotations

import secrets

from ..syntax import registry
from ..syntax.elements import Generation, ModelRef
from .loader import DEFAULT_MODEL

EMBEDDED_SIZE = 64
EMBEDDED_STEPS = 10


def is_embedded(model: ModelRef | None) -> bool:
    name = model.name if model is not None else DEFAULT_MODEL
    return bool(name and registry.code_of("model", name) is not None and registry.model_entry(name).embedded)


def default_size(model: ModelRef | None) -> int:
    if is_embedded(model):
        return EMBEDDED_SIZE
    name = model.name if model is not None else None
    if name and registry.code_of("model", name) is not None:
        return registry.family_entry(registry.model_entry(name).family).default_size
    if model is not None and model.family and registry.code_of("family", model.family) is not None:
        return registry.family_entry(model.family).default_size
    return 512


def build_generation(prompt: str, model: ModelRef | None, *, negative_prompt: str = "", seed: int | None = None,
                     steps: int | None = None, guidance: float = 7.5, width: int | None = None, height: int | None = None,
                     scheduler: str | None = None, **extra) -> Generation:
    """A complete :class:`Generation`: scheduler names (ours or A1111's) resolved, defaults filled."""
    if scheduler is not None:
        from .schedulers import resolve_scheduler_name

        scheduler = resolve_scheduler_name(scheduler)
    size = default_size(model)
    return Generation(prompt=prompt, negative_prompt=negative_prompt, seed=secrets.randbits(32) if seed is None else seed,
                      num_inference_steps=steps or (EMBEDDED_STEPS if is_embedded(model) else 50), guidance_scale=guidance,
                      width=width or size, height=height or size, scheduler=scheduler, **extra)
