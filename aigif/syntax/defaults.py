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

from ..errors import ConfigError
from . import registry
from .elements import Generation, ModelRef
from .flow import check_schedule

DEFAULT_MODEL = "aigif-tiny-sd"     # what a request without a model renders with
EMBEDDED_SIZE = 64
EMBEDDED_STEPS = 10
DEFAULT_STEPS = 50                  # diffusers' own default
DEFAULT_GUIDANCE = 7.5
FALLBACK_SIZE = 512                 # a model whose family is unknown


# Families outside the registry: defaults their registration brought (aigif.engine.families.register_family).
_REGISTERED_DEFAULTS: dict[str, tuple[int, int | None, str | None]] = {}


def register_family_defaults(family: str, size: int, steps: int | None = None, scheduler: str | None = None) -> None:
    """Defaults of a generator family the registry does not list (called when the family registers)."""
    if not (isinstance(size, int) and 8 <= size <= 16384) or not (steps is None or (isinstance(steps, int) and steps >= 1)):
        raise ConfigError(f"family {family!r}: default size must be 8..16384 and steps at least 1, got {size!r}, {steps!r}")
    _REGISTERED_DEFAULTS[family] = (size, steps, scheduler)


def _family_defaults(family: str | None) -> tuple[int, int | None] | None:
    """(size, steps or None) of a family: its registry row, else its registration (packages are looked up once)."""
    if not family:
        return None
    if registry.code_of("family", family) is not None:
        entry = registry.family_entry(family)
        return entry.default_size, entry.default_steps
    if family not in _REGISTERED_DEFAULTS:
        from .extensions import load_entry_points

        load_entry_points()
    found = _REGISTERED_DEFAULTS.get(family)
    return (found[0], found[1]) if found else None


def check_family_name(family: str | None) -> None:
    """Refuse, when a file is written, a family name that is neither in the registry, nor registered, nor of the
    ``<package>.<family>`` form of an extension package's family (a misspelling would be stored silently)."""
    if family is None or _family_defaults(family) is not None:
        return
    package, dot, name = family.partition(".")
    if dot and package and name:
        return
    known = sorted({f.name for f in registry.FAMILIES.values()} | set(_REGISTERED_DEFAULTS))
    raise ConfigError(f"unknown generator family {family!r}; known: {', '.join(known)} "
                      "(a family an extension package adds is named <package>.<family>)")


def _registry_name(model: ModelRef | str | None) -> str | None:
    if model is None:
        return DEFAULT_MODEL
    name = model if isinstance(model, str) else model.name
    return name if name and registry.code_of("model", name) is not None else None


def is_embedded(model: ModelRef | str | None) -> bool:
    """True for the embedded tiny models (a registry name, or None: the default model)."""
    name = _registry_name(model)
    return bool(name and registry.model_entry(name).embedded)


def model_family(model: ModelRef | None) -> str | None:
    """The family of *model*: its registry entry's, else the one it records (None when it records none)."""
    name = _registry_name(model)
    return registry.model_entry(name).family if name else getattr(model, "family", None)


def default_size(model: ModelRef | None) -> int:
    if is_embedded(model):
        return EMBEDDED_SIZE
    found = _family_defaults(model_family(model))
    return found[0] if found else FALLBACK_SIZE


def default_steps(model: ModelRef | None) -> int:
    if is_embedded(model):
        return EMBEDDED_STEPS
    found = _family_defaults(model_family(model))
    return (found[1] if found else None) or DEFAULT_STEPS


def default_guidance(model: ModelRef | None) -> float:
    """The family's pipeline default (SD 7.5, FLUX.1's distilled guidance 3.5, SD 3.5 7.0)."""
    family = model_family(model)
    if family and registry.code_of("family", family) is not None:
        return registry.family_entry(family).default_guidance
    return DEFAULT_GUIDANCE


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
    out.setdefault("guidance_scale", default_guidance(model))
    if isinstance(out.get("scheduler"), str):
        out["scheduler"] = scheduler_name(out["scheduler"])
    check_schedule(model_family(model), out.get("scheduler"), out.get("scheduler_config"))
    return out


def resolve_generation(model: ModelRef | None, **fields: Any) -> Generation:
    """A complete :class:`Generation` for a request (keyword arguments, None = left out):
    :func:`with_defaults`, and a drawn seed when none is given."""
    out = with_defaults({k: v for k, v in fields.items() if v is not None}, model)
    out.setdefault("seed", secrets.randbits(32))
    return Generation(**out)
