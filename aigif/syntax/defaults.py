"""What a generation request means when it leaves values out: one function for every front door.

``aigif generate``, ``aigif.generate()``, ``aigif pack`` and the Pillow plugin's
save all fill a request through :func:`with_defaults`, so the same model gets
the same size, steps, guidance and scheduler everywhere: the embedded tiny
models render 64x64 in 10 steps; other models use their family's size and
diffusers' 50 steps; guidance 7.5. Scheduler names are resolved here once
(registry names and other tools' sampler names; a diffusers class name
escapes as a string), and a missing seed is drawn by :func:`resolve_generation`.
The engine trusts the :class:`Generation` it gets.
"""
from __future__ import annotations

import secrets
from typing import Any, Mapping

from . import registry
from .elements import Generation, ModelRef

DEFAULT_MODEL = "aigif-tiny-sd"     # what a request without a model renders with
EMBEDDED_SIZE = 64
EMBEDDED_STEPS = 10
DEFAULT_STEPS = 50                  # diffusers' own default
DEFAULT_GUIDANCE = 7.5
FALLBACK_SIZE = 512                 # a model whose family is unknown


def _registry_name(model: ModelRef | str | None) -> str | None:
    if model is None:
        return DEFAULT_MODEL
    name = model if isinstance(model, str) else model.name
    return name if name and registry.code_of("model", name) is not None else None


def is_embedded(model: ModelRef | str | None) -> bool:
    """True for the embedded tiny models (a registry name, or None: the default model)."""
    name = _registry_name(model)
    return bool(name and registry.model_entry(name).embedded)


def default_size(model: ModelRef | None) -> int:
    if is_embedded(model):
        return EMBEDDED_SIZE
    name = _registry_name(model)
    family = registry.model_entry(name).family if name else getattr(model, "family", None)
    if family and registry.code_of("family", family) is not None:
        return registry.family_entry(family).default_size
    return FALLBACK_SIZE


def default_steps(model: ModelRef | None) -> int:
    return EMBEDDED_STEPS if is_embedded(model) else DEFAULT_STEPS


def scheduler_name(name: str) -> str:
    """A registry scheduler name for ours ('dpmpp-2m-karras') or another tool's ('DPM++ 2M Karras');
    a diffusers class name ('FooScheduler') escapes unchanged; anything else fails listing the known names."""
    mapped = registry.scheduler_from_sampler(name)
    if mapped is not None:
        return mapped
    if name.isidentifier() and name.endswith("Scheduler"):
        return name
    registry.scheduler_entry(name)  # raises, listing the known names
    raise AssertionError  # pragma: no cover


def with_defaults(fields: Mapping[str, Any], model: ModelRef | None) -> dict:
    """*fields* (Generation keys) with what the request left out filled for *model*, its scheduler resolved."""
    out = dict(fields)
    size = default_size(model)
    out.setdefault("width", size)
    out.setdefault("height", size)
    out.setdefault("num_inference_steps", default_steps(model))
    out.setdefault("guidance_scale", DEFAULT_GUIDANCE)
    if isinstance(out.get("scheduler"), str):
        out["scheduler"] = scheduler_name(out["scheduler"])
    return out


def resolve_generation(model: ModelRef | None, **fields: Any) -> Generation:
    """A complete :class:`Generation` for a request (keyword arguments, None = left out):
    :func:`with_defaults`, and a drawn seed when none is given."""
    out = with_defaults({k: v for k, v in fields.items() if v is not None}, model)
    out.setdefault("seed", secrets.randbits(32))
    return Generation(**out)
