"""Named timestep schedules of other tools that diffusers schedulers do not compute themselves.

A syntax names one through the ``scheduler_config`` key ``timestep_schedule``; the engine passes the
schedule's training timesteps to the scheduler (``set_timesteps(timesteps=...)``), which then samples the
model's own training sigmas at exactly those timesteps. Mirrored in ``spec/registry.md`` "Schedulers".
"""
from __future__ import annotations

from ..errors import ConfigError

KEY = "timestep_schedule"

# diffusers scheduler classes whose set_timesteps takes a custom timestep list (checked by the tests)
TIMESTEP_CAPABLE = frozenset({"EulerDiscreteScheduler", "DPMSolverMultistepScheduler", "HeunDiscreteScheduler",
                              "DPMSolverSinglestepScheduler"})


def comfy_simple(steps: int, num_train_timesteps: int) -> list[int]:
    """ComfyUI's ``simple``: step i uses training timestep N-1 - floor(i * (N / steps)), in double precision."""
    stride = num_train_timesteps / steps
    return [num_train_timesteps - 1 - int(i * stride) for i in range(steps)]


SCHEDULES = {"simple": comfy_simple}


def check(name, cls_name: str | None = None, scheduler: str | None = None, *, flow: bool = False) -> None:
    """Refuse an unknown schedule name, and a scheduler class that cannot take a timestep list (a flow scheduler
    never can); *cls_name* None checks the name alone. *scheduler*: how the message names it (default the class)."""
    if not isinstance(name, str) or name not in SCHEDULES:
        raise ConfigError(f"unknown {KEY} {name!r}; known: {', '.join(sorted(SCHEDULES))}")
    if cls_name is not None and (flow or cls_name not in TIMESTEP_CAPABLE):
        raise ConfigError(f"{KEY} {name!r} needs a scheduler that takes custom timesteps "
                          f"({', '.join(sorted(TIMESTEP_CAPABLE))}), not {scheduler or cls_name}")


def schedule_timesteps(name: str, steps: int, num_train_timesteps: int) -> list[int]:
    """The descending training timesteps of schedule *name* for *steps* steps."""
    check(name)
    make = SCHEDULES[name]
    if not isinstance(steps, int) or not 0 < steps <= num_train_timesteps:
        raise ConfigError(f"{KEY} {name!r} needs 1 to {num_train_timesteps} steps, got {steps!r}")
    return make(steps, num_train_timesteps)
