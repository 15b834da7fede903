"""Flow-matching schedules (FLUX, SD 3.5, ...): which ones the syntax can name and the engine can reproduce.

A flow model's schedule is a registry scheduler (``flow-euler``,
``flow-euler-karras``, ``flow-heun``, ``flow-dpmpp-2m``, ...) plus diffusers
config overrides in ``scheduler_config`` (``shift``, ``use_dynamic_shifting``).
:func:`flow_scheduler` maps ComfyUI's sampler x scheduler names onto them;
:func:`check_schedule` refuses, with the reason, what diffusers would not
compute (so a file never names a schedule its decoder replaces silently).
"""
from __future__ import annotations

from ..errors import ConfigError
from . import registry, timesteps

# ComfyUI sigma schedule -> registry suffix. simple, normal and sgm_uniform all space the shifted flow
# sigmas linearly from 1 to 1/steps, which is what FlowMatchEulerDiscreteScheduler computes.
SIGMA_SCHEDULES = {"simple": "", "normal": "", "sgm_uniform": "", "karras": "-karras", "beta": "-beta",
                   "exponential": "-exponential"}
SAMPLERS = {"euler": "flow-euler", "heun": "flow-heun", "dpmpp_2m": "flow-dpmpp-2m"}
_SIGMA_FLAGS = ("use_karras_sigmas", "use_beta_sigmas", "use_exponential_sigmas")


def flow_scheduler(sampler: str, schedule: str = "simple", *, shift: float | None = None,
                   dynamic_shifting: bool | None = None) -> tuple[str, dict]:
    """(registry scheduler name, scheduler_config overrides) computing ComfyUI's *sampler* / *schedule* on a flow model."""
    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler {sampler!r} on a flow-matching model cannot be reproduced: diffusers has no flow "
                          f"scheduler for it; reproducible samplers: {', '.join(SAMPLERS)}")
    if schedule not in SIGMA_SCHEDULES:
        raise ConfigError(f"schedule {schedule!r} on a flow-matching model cannot be reproduced: no diffusers flow "
                          f"scheduler computes its sigmas; reproducible schedules: {', '.join(SIGMA_SCHEDULES)}")
    suffix = SIGMA_SCHEDULES[schedule]
    if suffix and sampler != "euler":
        raise ConfigError(f"{sampler} with the {schedule} schedule cannot be reproduced on a flow-matching model: "
                          f"diffusers computes {schedule} flow sigmas only in FlowMatchEulerDiscreteScheduler (sampler euler)")
    name = SAMPLERS[sampler] + suffix
    overrides: dict = {}
    if shift is not None:
        overrides["flow_shift" if sampler == "dpmpp_2m" else "shift"] = float(shift)
    if dynamic_shifting is not None:
        overrides["use_dynamic_shifting"] = bool(dynamic_shifting)
    return name, overrides


def is_flow_family(family: str | None) -> bool:
    """A registry family whose models are flow-matching (only flow schedulers apply)."""
    return bool(family) and registry.code_of("family", family) is not None and registry.family_entry(family).flow


def _flow_names() -> str:
    return ", ".join(e.name for e in registry.SCHEDULERS.values() if registry.is_flow_scheduler(e))


def check_schedule(family: str | None, scheduler: str | None, config: dict | None) -> None:
    """Refuse a schedule the family's pipeline would not compute as named (checked when a syntax is made)."""
    schedule = (config or {}).get(timesteps.KEY)
    if schedule is not None:
        timesteps.check(schedule)                              # an unknown name fails whatever the family
    if config:
        flags = [k for k in _SIGMA_FLAGS if config.get(k)]
        if len(flags) > 1:
            raise ConfigError(f"scheduler_config sets {' and '.join(flags)}: diffusers computes one sigma schedule at a time")
    if not family or registry.code_of("family", family) is None or scheduler is None:
        return
    fam = registry.family_entry(family)
    code = registry.code_of("scheduler", scheduler)
    if code is not None:
        entry = registry.SCHEDULERS[code]
        flow, cls = registry.is_flow_scheduler(entry), entry.cls
    else:   # a diffusers class name stored as a string
        flow, cls = scheduler in registry.FLOW_SCHEDULER_CLASSES, scheduler
    if schedule is not None:
        timesteps.check(schedule, cls, scheduler, flow=flow)
    if fam.flow and not flow:
        raise ConfigError(f"scheduler {scheduler} samples noise-prediction models; {family} is a flow-matching model "
                          f"and would be sampled wrongly; flow schedulers: {_flow_names()}")
    if flow and not fam.flow:
        raise ConfigError(f"scheduler {scheduler} is for flow-matching models; {family} is not one")
    if fam.own_sigmas and cls != "FlowMatchEulerDiscreteScheduler":
        raise ConfigError(f"scheduler {scheduler} cannot be reproduced on {family}: its diffusers pipeline passes its own "
                          "sigma list, which only FlowMatchEulerDiscreteScheduler accepts (use flow-euler, flow-euler-karras, "
                          "flow-euler-beta or flow-euler-exponential)")
