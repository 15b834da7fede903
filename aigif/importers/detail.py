"""ADetailer's infotext keys -> the ``detail`` element, and the way back (spec/importers.md).

ADetailer (an A1111 / Forge extension) writes one group of ``ADetailer ...`` keys per
tab that ran: the first plain, the next with the suffix `` 2nd``, `` 3rd``, ... and
``ADetailer version`` once. It always writes the detector, confidence, dilate/erode,
mask blur, denoising strength and "inpaint only masked"; the rest only when it
differs from its default or when its "use separate ..." switch is on. A pass is
mapped only when writing it back gives every one of its keys exactly as read;
otherwise its keys stay in ``extra`` as they were (and the import says why).
"""
from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..syntax.detail import MAX_PASSES, Detail, DetailPass
from . import samplers
from .passes import NotMapped

PREFIX = "ADetailer "
VERSION_KEY = "ADetailer version"
SAME_SCHEDULER = "Use same scheduler"
MERGES = {"Merge": "merge", "Merge and Invert": "merge-invert"}

# (key without the suffix, field, how the value is written); in ADetailer's writing order
KEYS = (
    ("model", "detector", "str"), ("model classes", "detector_classes", "str"), ("prompt", "prompt", "str"),
    ("negative prompt", "negative_prompt", "str"), ("confidence", "confidence", "float"),
    ("mask only top k largest", "mask_k_largest", "int"), ("mask min ratio", "mask_min_ratio", "float"),
    ("mask max ratio", "mask_max_ratio", "float"), ("x offset", "x_offset", "int"), ("y offset", "y_offset", "int"),
    ("dilate erode", "dilate_erode", "int"), ("mask merge invert", "mask_merge", "merge"), ("mask blur", "mask_blur", "int"),
    ("denoising strength", "strength", "float"), ("inpaint only masked", None, "bool"),
    ("inpaint padding", "masked_padding", "int"), ("use inpaint width height", "width", "use"),
    ("inpaint width", "width", "int"), ("inpaint height", "height", "int"), ("use separate steps", "steps", "use"),
    ("steps", "steps", "int"), ("use separate CFG scale", "guidance_scale", "use"), ("CFG scale", "guidance_scale", "float"),
    ("use separate checkpoint", "checkpoint", "use"), ("checkpoint", "checkpoint", "str"),
    ("use separate VAE", "vae", "use"), ("VAE", "vae", "str"), ("use separate sampler", "scheduler", "use"),
    ("sampler", "scheduler", "sampler"), ("scheduler", "schedule_type", "str"),
    ("use separate noise multiplier", "noise_multiplier", "use"), ("noise multiplier", "noise_multiplier", "float"),
    ("use separate CLIP skip", "clip_skip", "use"), ("CLIP skip", "clip_skip", "int"),
    ("restore face", "restore_face", "bool"), ("ControlNet model", "controlnet_model", "str"),
    ("ControlNet module", "controlnet_module", "str"), ("ControlNet weight", "controlnet_weight", "float"),
    ("ControlNet guidance start", "controlnet_start", "float"), ("ControlNet guidance end", "controlnet_end", "float"),
)
ALWAYS = ("model", "confidence", "dilate erode", "mask blur", "denoising strength", "inpaint only masked")


def suffix(n: int) -> str:
    """'' for the first pass, ' 2nd', ' 3rd', ' 4th', ... (ADetailer's tab suffixes)."""
    k = n + 1
    end = "th" if 11 <= k % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return "" if n == 0 else f" {k}{end}"


def _float(text: str) -> float:
    return float(text.strip())


def _int(text: str) -> int:
    t = text.strip()
    if not t.lstrip("-").isdigit() or len(t) > 12:
        raise ValueError(f"{text!r} is not an integer")
    return int(t)


def _pass_fields(p: dict[str, Any], sfx: str) -> dict[str, Any]:
    """The DetailPass fields of the pass with keys ending in *sfx* (raises NotMapped / ValueError)."""
    get = {key: p[PREFIX + key + sfx] for key, _, _ in KEYS if PREFIX + key + sfx in p}
    missing = [PREFIX + k + sfx for k in ALWAYS if k not in get]
    if missing:
        raise NotMapped(f"{', '.join(missing)} missing")
    if any(not isinstance(v, str) for v in get.values()):
        raise NotMapped("a value is not text")
    out: dict[str, Any] = {}
    for key, field, how in KEYS:
        if key not in get or how == "use":
            continue
        v = get[key]
        if how == "str":
            out[field] = v
        elif how == "float":
            out[field] = _float(v)
        elif how == "int":
            out[field] = _int(v)
        elif how == "merge":
            if v != "None":
                out[field] = MERGES.get(v, v)
        elif how == "bool":
            if v not in ("True", "False"):
                raise NotMapped(f"{PREFIX}{key}{sfx} is {v!r}, not True or False")
            if field is not None:
                out[field] = v == "True"
        elif how == "sampler":
            mapped = samplers.from_a1111(v, None)
            exact = mapped is not None and not mapped[1] and samplers.to_a1111(mapped[0], None) == (v, None)
            out[field] = mapped[0] if exact else v
    if get["inpaint only masked"] == "False":
        out.pop("masked_padding", None)
    elif "masked_padding" not in out:
        raise NotMapped(f"{PREFIX}inpaint padding{sfx} missing")
    if "schedule_type" in out and "scheduler" not in out:
        raise NotMapped(f"{PREFIX}scheduler{sfx} without a sampler")
    return out


def a1111_detail(p: dict[str, Any]) -> Detail | None:
    """The detail element of an infotext's ADetailer keys (popped), None without them.

    Raises :class:`NotMapped` (leaving *p* untouched) when a pass cannot be written back exactly.
    """
    if PREFIX + "model" not in p:
        return None
    passes, used = [], set()
    for n in range(MAX_PASSES + 1):
        sfx = suffix(n)
        if PREFIX + "model" + sfx not in p:
            break
        if n == MAX_PASSES:
            raise NotMapped(f"more than {MAX_PASSES} passes")
        try:
            one = DetailPass(**_pass_fields(p, sfx))
        except (ValueError, ConfigError) as exc:
            if isinstance(exc, NotMapped):
                raise
            raise NotMapped(f"pass {n + 1}: a value out of range or not a number ({exc})") from None
        keys = {PREFIX + key + sfx: p[PREFIX + key + sfx] for key, _, _ in KEYS if PREFIX + key + sfx in p}
        back = pass_params(one, sfx)
        if back != keys:
            diff = sorted(set(back.items()) ^ set(keys.items()))[:2]
            raise NotMapped(f"pass {n + 1} would not be written back as read ({diff})")
        passes.append(one)
        used.update(keys)
    version = p.get(VERSION_KEY)
    try:
        detail = Detail(passes=tuple(passes), version=version if isinstance(version, str) and version else None)
    except ConfigError as exc:
        raise NotMapped(str(exc)) from None
    for key in (*used, VERSION_KEY):
        p.pop(key, None)
    return detail


def _num(x: float) -> str:
    return repr(float(x))


def pass_params(d: DetailPass, sfx: str = "") -> dict[str, str]:
    """The way back: ADetailer's keys of one pass, with suffix *sfx*, in its order and value formats."""
    out: dict[str, str] = {}
    for key, field, how in KEYS:
        v = getattr(d, field) if field else None
        if how == "use":
            if v is not None:
                out[key] = "True"
            continue
        if key == "inpaint only masked":
            out[key] = str(d.masked_padding is not None)
            continue
        default = DetailPass.__dataclass_fields__[field].default
        if v is None or (v == default and key not in ALWAYS):
            continue
        if how == "float":
            out[key] = _num(v)
        elif how == "merge":
            out[key] = {m: k for k, m in MERGES.items()}.get(v, v)
        elif how == "sampler":
            back = samplers.to_a1111(v, None)
            out[key] = back[0] if back and not back[1] else v
        else:
            out[key] = str(v)
    return {PREFIX + k + sfx: v for k, v in out.items()}


def a1111_detail_params(detail: Detail) -> dict[str, str]:
    """Every pass's keys, then ``ADetailer version``, as ADetailer writes them."""
    out: dict[str, str] = {}
    for n, one in enumerate(detail.passes):
        out.update(pass_params(one, suffix(n)))
    if detail.version:
        out[VERSION_KEY] = detail.version
    return out
