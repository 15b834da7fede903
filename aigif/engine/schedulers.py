"""Registry scheduler names -> fresh diffusers scheduler instances (stateful, so one per image)."""
from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..syntax import registry, timesteps

ALLOWED_SCHEDULERS = frozenset(e.cls for e in registry.SCHEDULERS.values()) | {"PNDMScheduler", "EulerDiscreteScheduler"}
_SCALARS = (str, int, float, bool, type(None))
MAX_OVERRIDES = 64
MAX_OVERRIDE_MAGNITUDE = 100_000   # a file's {"num_train_timesteps": 10**9} or {"solver_order": 10**9} would allocate gigabytes


def _check_overrides(cfg: dict | None) -> dict[str, Any]:
    if not cfg:
        return {}
    if len(cfg) > MAX_OVERRIDES:
        raise ConfigError(f"scheduler_config has {len(cfg)} keys, at most {MAX_OVERRIDES}")
    out = {}
    for k, v in cfg.items():
        if not isinstance(k, str) or k.startswith("_"):
            raise ConfigError(f"scheduler_config key {k!r} is not allowed")
        ok = isinstance(v, _SCALARS) or (isinstance(v, list) and len(v) <= 1000 and all(isinstance(x, (int, float)) for x in v))
        if not ok:
            raise ConfigError(f"scheduler_config[{k!r}] must be a scalar or a list of numbers, got {type(v).__name__}")
        for x in (v if isinstance(v, list) else [v]):
            if isinstance(x, (int, float)) and not isinstance(x, bool) and not abs(x) <= MAX_OVERRIDE_MAGNITUDE:
                raise ConfigError(f"scheduler_config[{k!r}] = {x!r} is outside +-{MAX_OVERRIDE_MAGNITUDE}")
        out[k] = v
    return out


def make_scheduler(default_cls: str, default_config: dict, name: str | None, overrides: dict | None):
    """The scheduler for one image: the pipeline's own (``name=None``) or a registry one built on its config."""
    import diffusers

    extra = _check_overrides(overrides)
    if name is None:
        cls_name, cfg = default_cls, {}
    else:
        entry = registry.scheduler_entry(name)
        cls_name, cfg = entry.cls, dict(entry.config)
    if cls_name not in ALLOWED_SCHEDULERS:
        raise ConfigError(f"scheduler class {cls_name} is not allowed")
    cls = getattr(diffusers, cls_name, None)
    if cls is None:
        raise ConfigError(f"this diffusers has no {cls_name}; upgrade diffusers")
    if cfg.get("use_flow_sigmas") and "shift" in default_config:   # DPM-Solver names the flow model's shift flow_shift
        cfg.setdefault("flow_shift", default_config["shift"])
    cfg.update(extra)
    schedule = cfg.pop(timesteps.KEY, None)
    if schedule is not None:
        timesteps.check(schedule, cls_name)           # before any work: an unknown name, a class without timestep lists
    try:
        sched = cls.from_config(dict(default_config), **cfg)
    except ImportError as exc:  # e.g. DPMSolverSDEScheduler needs torchsde
        raise ConfigError(f"scheduler {name or cls_name} needs an optional package: {exc}") from None
    except Exception as exc:
        raise ConfigError(f"scheduler {name or cls_name} rejects its configuration: {type(exc).__name__}: {exc}") from None
    if schedule is not None:
        _follow(sched, schedule)
    return sched


def _follow(sched, schedule: str) -> None:
    """Make the pipeline's ``set_timesteps(steps)`` call use the named schedule's timesteps for that step count."""
    own = sched.set_timesteps
    train = sched.config.num_train_timesteps

    def set_timesteps(num_inference_steps=None, device=None, **_):
        own(device=device, timesteps=timesteps.schedule_timesteps(schedule, num_inference_steps, train))

    sched.set_timesteps = set_timesteps
