"""Sampler / scheduler names of other tools -> aigif scheduler registry names.

Plain tables, mirrored in ``spec/importers.md``. A name that is not here is
*not* guessed: the importer keeps it in ``Source.extra`` and reports the image
as unsupported, because a wrong scheduler gives a different image.

Each result is ``(registry name, scheduler_config overrides or None)``.
"""
from __future__ import annotations

from ..syntax.flow import check_schedule, flow_scheduler, is_flow_family
from ..syntax.registry import SCHEDULERS, code_of, is_flow_scheduler, scheduler_from_sampler
from ..syntax.timesteps import KEY as TIMESTEP_SCHEDULE, SCHEDULES as TIMESTEP_SCHEDULES, TIMESTEP_CAPABLE

Mapped = tuple[str, dict | None]

# A1111 >= 1.9 writes "Sampler: DPM++ 2M, Schedule type: Karras". "Automatic" means the
# sampler's own default sigma schedule, which is uniform ("normal") only for the samplers
# below; for the others (DPM++ 2M -> karras, DPM++ 2M SDE -> exponential, ...) A1111 picks
# a different default and we do not guess.
A1111_AUTOMATIC_IS_UNIFORM = {"Euler", "Euler a", "LMS", "Heun", "DDIM", "PLMS", "UniPC", "DDPM", "LCM"}
A1111_SCHEDULE_SUFFIX = {"Karras": " Karras", "Uniform": "", "Automatic": ""}

# ComfyUI (and Fooocus, which runs ComfyUI's samplers): sampler_name, scheduler -> registry.
COMFY_SAMPLERS = {
    "euler": "euler", "euler_ancestral": "euler-a", "heun": "heun", "lms": "lms",
    "dpm_2": "dpm2", "dpm_2_ancestral": "dpm2-a", "dpmpp_2s_ancestral": "dpmpp-2s-a",
    "dpmpp_sde": "dpmpp-sde", "dpmpp_2m": "dpmpp-2m", "dpmpp_2m_sde": "dpmpp-2m-sde",
    "dpmpp_3m_sde": "dpmpp-3m-sde", "uni_pc": "unipc", "lcm": "lcm", "ddpm": "ddpm",
}
COMFY_SCHEDULES = {"normal": "", "karras": "-karras"}
# ComfyUI schedules of training timesteps the engine passes to the scheduler (aigif.syntax.timesteps)
COMFY_TIMESTEP_SCHEDULES = {"simple": "simple"}

# InvokeAI >= 3 names its diffusers scheduler directly (invokeai/backend/stable_diffusion/schedulers).
INVOKEAI_SCHEDULERS: dict[str, Mapped] = {
    "ddim": ("ddim", None), "ddpm": ("ddpm", None), "deis": ("deis", None),
    "deis_k": ("deis", {"use_karras_sigmas": True}),
    "lms": ("lms", None), "lms_k": ("lms-karras", None), "pndm": ("pndm", None),
    "heun": ("heun", None), "heun_k": ("heun", {"use_karras_sigmas": True}),
    "euler": ("euler", None), "euler_k": ("euler-karras", None), "euler_a": ("euler-a", None),
    "kdpm_2": ("dpm2", None), "kdpm_2_k": ("dpm2-karras", None),
    "kdpm_2_a": ("dpm2-a", None), "kdpm_2_a_k": ("dpm2-a-karras", None),
    "dpmpp_2s": ("dpmpp-2s-a", None), "dpmpp_2s_k": ("dpmpp-2s-a-karras", None),
    "dpmpp_sde": ("dpmpp-sde", {"noise_sampler_seed": 0}),
    "dpmpp_sde_k": ("dpmpp-sde-karras", {"noise_sampler_seed": 0}),
    "dpmpp_2m": ("dpmpp-2m", None), "dpmpp_2m_k": ("dpmpp-2m-karras", None),
    "dpmpp_2m_sde": ("dpmpp-2m-sde", None), "dpmpp_2m_sde_k": ("dpmpp-2m-sde-karras", None),
    "dpmpp_3m": ("dpmpp-2m", {"solver_order": 3}), "dpmpp_3m_k": ("dpmpp-2m-karras", {"solver_order": 3}),
    "unipc": ("unipc", None), "unipc_k": ("unipc", {"use_karras_sigmas": True}),
    "lcm": ("lcm", None),
}
# InvokeAI 2.x (Dream / sd-metadata) k-diffusion names.
INVOKEAI_LEGACY = {
    "ddim": "ddim", "plms": "pndm", "k_lms": "lms", "k_euler": "euler", "k_euler_a": "euler-a",
    "k_heun": "heun", "k_dpm_2": "dpm2", "k_dpm_2_a": "dpm2-a", "k_dpmpp_2": "dpmpp-2s-a",
}

# NovelAI: sampler + noise_schedule ("native" = the model's own schedule).
NOVELAI_SAMPLERS = {
    "k_euler": "euler", "k_euler_ancestral": "euler-a", "k_lms": "lms", "k_heun": "heun",
    "k_dpm_2": "dpm2", "k_dpm_2_ancestral": "dpm2-a", "k_dpmpp_2s_ancestral": "dpmpp-2s-a",
    "k_dpmpp_2m": "dpmpp-2m", "k_dpmpp_sde": "dpmpp-sde",
}
NOVELAI_SCHEDULES = {None: "", "native": "", "karras": "-karras"}


# diffusers scheduler classes that take ``use_karras_sigmas``: a "<sampler> + Karras" pair without its own
# registry entry maps to the base entry plus that override (e.g. Heun Karras -> heun + use_karras_sigmas).
KARRAS_CAPABLE = {"HeunDiscreteScheduler", "UniPCMultistepScheduler", "DEISMultistepScheduler"}
KARRAS = {"use_karras_sigmas": True}


def _known(name: str) -> str | None:
    return name if code_of("scheduler", name) is not None else None


def _karras_override(base: str | None) -> Mapped | None:
    from ..syntax.registry import scheduler_entry

    if base is None or _known(base) is None:
        return None
    entry = scheduler_entry(base)
    if entry.cls in KARRAS_CAPABLE and not entry.config.get("use_karras_sigmas"):
        return base, dict(KARRAS)
    return None


def _snake(name: str) -> str:
    """``SGM Uniform`` / ``dpmpp-2m`` -> ComfyUI's spelling ``sgm_uniform`` / ``dpmpp_2m``."""
    return str(name).strip().lower().replace("-", "_").replace(" ", "_")


def from_flow(sampler: str, schedule: str | None, family: str, *, shift: float | None = None) -> Mapped:
    """A flow model's sampler and sigma schedule as A1111 / Forge (``Euler``, ``SGM Uniform``) or ComfyUI
    (``euler``, ``sgm_uniform``) write them, through :func:`aigif.syntax.flow.flow_scheduler`, the one mapping
    of flow schedules (*shift*: a time shift the tool set, e.g. ComfyUI's ModelSamplingSD3); a pair *family*'s
    pipeline cannot reproduce raises ``ConfigError`` saying why."""
    reg = scheduler_from_sampler(str(sampler))      # A1111 'DPM++ 2M' -> dpmpp-2m; aigif's own 'flow-euler' as is
    if reg is not None and is_flow_scheduler(SCHEDULERS[code_of("scheduler", reg)]) and not schedule and shift is None:
        name, overrides = reg, None
    else:
        name, overrides = flow_scheduler(_snake(reg or sampler), _snake(schedule or "simple"), shift=shift)
    check_schedule(family, name, overrides)
    return name, overrides or None


def from_a1111(sampler: str, schedule: str | None, family: str | None = None) -> Mapped | None:
    """A1111 ``Sampler`` (+ ``Schedule type``) -> registry name; None when not mappable.
    On a flow-matching *family*: :func:`from_flow` (``ConfigError`` with the reason when not reproducible)."""
    if is_flow_family(family):
        return from_flow(sampler, schedule, family)
    sampler = sampler.strip()
    if schedule is None or schedule == "":
        name = scheduler_from_sampler(sampler)
        return (name, None) if name else None
    schedule = schedule.strip()
    if schedule == "Automatic" and sampler not in A1111_AUTOMATIC_IS_UNIFORM:
        return None
    suffix = A1111_SCHEDULE_SUFFIX.get(schedule)
    if suffix is None:
        return None
    if suffix and sampler.endswith(suffix):  # "DPM++ 2M Karras" + "Karras" (old name, new field)
        suffix = ""
    name = scheduler_from_sampler(sampler + suffix)
    if name is None and suffix == " Karras":
        return _karras_override(scheduler_from_sampler(sampler))
    return (name, None) if name else None


def from_comfy(sampler_name: str, scheduler: str, family: str | None = None, *, shift: float | None = None) -> Mapped | None:
    """ComfyUI ``sampler_name`` + ``scheduler`` (e.g. dpmpp_2m + karras) -> registry name.
    On a flow-matching *family*: :func:`from_flow` (``ConfigError`` with the reason when not reproducible)."""
    s = str(sampler_name)
    if s.startswith("sample_"):          # very old ComfyUI spelled the k-diffusion function name
        s = s[len("sample_"):]
    if s.endswith("_gpu"):               # same algorithm, brownian noise drawn on the GPU
        s = s[: -len("_gpu")]
    if is_flow_family(family):
        return from_flow(s, scheduler, family, shift=shift)
    base = COMFY_SAMPLERS.get(s)
    if str(scheduler) in COMFY_TIMESTEP_SCHEDULES:
        return _with_timesteps(base, COMFY_TIMESTEP_SCHEDULES[str(scheduler)])
    suffix = COMFY_SCHEDULES.get(str(scheduler))
    return _combine(base, suffix)


def _with_timesteps(base: str | None, schedule: str) -> Mapped | None:
    """A sampler family on a named timestep schedule, when its diffusers class takes custom timesteps."""
    from ..syntax.registry import scheduler_entry

    if base is None or _known(base) is None or schedule not in TIMESTEP_SCHEDULES:
        return None
    entry = scheduler_entry(base)
    if entry.cls not in TIMESTEP_CAPABLE or entry.config.get("use_karras_sigmas"):
        return None
    return base, {TIMESTEP_SCHEDULE: schedule}


def _combine(base: str | None, suffix: str | None) -> Mapped | None:
    """A sampler family plus a sigma schedule -> our scheduler (Karras via an override when not a registry name)."""
    if base is None or suffix is None:
        return None
    name = _known(base + suffix)
    if name is None and suffix == "-karras":
        return _karras_override(base)
    return (name, None) if name else None


def from_invokeai(name: str) -> Mapped | None:
    if name in INVOKEAI_SCHEDULERS:
        reg, cfg = INVOKEAI_SCHEDULERS[name]
        return (reg, dict(cfg) if cfg else None)
    if name in INVOKEAI_LEGACY:
        return (INVOKEAI_LEGACY[name], None)
    return None


def from_novelai(sampler: str, schedule: str | None) -> Mapped | None:
    base = NOVELAI_SAMPLERS.get(sampler)
    suffix = NOVELAI_SCHEDULES.get(schedule)
    return _combine(base, suffix)


def to_a1111(scheduler: str | None, config: dict | None) -> tuple[str, str | None] | None:
    """Registry name -> (A1111 ``Sampler``, ``Schedule type`` or None) for the way back."""
    from ..syntax.registry import scheduler_entry

    if scheduler is None:
        return None
    entry = scheduler_entry(scheduler)
    if not entry.a1111:
        return None
    if config:
        if config == {"use_karras_sigmas": True}:
            return entry.a1111[0], "Karras"
        return None
    return entry.a1111[0], None
