"""Capture the platform element and pin the numerics it describes while an image is computed."""
from __future__ import annotations

import contextlib
import os
import platform as _pyplatform
from functools import lru_cache

from ..syntax.elements import Platform

# Fields whose difference can change the pixels (compared at decode to explain a non-exact result).
NUMERIC_FIELDS = ("device", "gpu", "compute_capability", "cuda", "cudnn", "torch", "diffusers", "transformers",
                  "dtype", "attention", "threads", "deterministic", "cpu", "onednn")
CUBLAS_WORKSPACE = ":4096:8"


@lru_cache(maxsize=1)
def cpu_description() -> str:
    """``<arch> <torch CPU capability>[ <model name>]``, e.g. ``x86_64 AVX512 Intel(R) Xeon(R) ...`` (for reports)."""
    import torch

    parts = [_pyplatform.machine() or "unknown"]
    try:
        parts.append(torch.backends.cpu.get_cpu_capability())
    except Exception:  # pragma: no cover - very old torch
        pass
    model = _cpuinfo().get("model name") or _cpuinfo().get("hardware") or _cpuinfo().get("cpu model")
    if model:
        parts.append(" ".join(model.split())[:64])
    return " ".join(p for p in parts if p)


@lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    """The first processor's /proc/cpuinfo entries (lower-case keys); empty where there is none."""
    out: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                out.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    return out


def cpu_isa() -> str:
    """``<machine>-<torch CPU capability>`` (registry table CPU_ISAS), e.g. ``x86_64-avx2``: which ATen kernels run."""
    import torch

    try:
        cap = torch.backends.cpu.get_cpu_capability().lower()
    except Exception:  # pragma: no cover - very old torch
        cap = "default"
    return f"{(_pyplatform.machine() or 'unknown').lower()}-{cap.replace(' ', '_')}"


# oneDNN ISA levels (registry table ONEDNN_ISAS, ascending) and the /proc/cpuinfo flags each needs
_ONEDNN_FLAGS = (("sse41", {"sse4_1"}), ("avx", {"avx"}), ("avx2", {"avx2"}), ("avx2_vnni", {"avx_vnni"}),
                 ("avx2_vnni_2", {"avx_vnni_int8", "avx_ne_convert"}),
                 ("avx512_core", {"avx512f", "avx512bw", "avx512vl", "avx512dq"}), ("avx512_core_vnni", {"avx512_vnni"}),
                 ("avx512_core_bf16", {"avx512_bf16"}), ("avx512_core_fp16", {"avx512_fp16"}),
                 ("avx512_core_amx", {"amx_tile", "amx_int8", "amx_bf16"}), ("avx512_core_amx_fp16", {"amx_fp16"}))


def onednn_isa(env=os.environ) -> str | None:
    """The highest oneDNN ISA this x86 CPU offers, capped by ``ONEDNN_MAX_CPU_ISA``; None off x86 or when unknown."""
    flags = set(_cpuinfo().get("flags", "").split())
    if not flags:
        return None
    names = [name for name, _ in _ONEDNN_FLAGS]
    level = None
    for name, need in _ONEDNN_FLAGS:
        if not need <= flags and name != "avx2_vnni" and name != "avx2_vnni_2":
            break
        if need <= flags:
            level = name
    cap = (env.get("ONEDNN_MAX_CPU_ISA") or env.get("DNNL_MAX_CPU_ISA") or "").strip().lower()
    if level is not None and cap in names and names.index(cap) < names.index(level):
        level = cap
    return level


def capture_platform(device: str, dtype: str, attention: str, threads: int, deterministic: bool = True) -> Platform:
    """The platform element for an image computed now with these settings: only what changes the pixels."""
    import diffusers
    import torch
    import transformers

    kind = device.split(":")[0]
    kw = dict(device=kind, torch=torch.__version__, diffusers=diffusers.__version__,
              transformers=transformers.__version__, dtype=dtype, attention=attention,
              threads=threads if kind == "cpu" else None, deterministic=deterministic, cpu=cpu_isa(),
              onednn=onednn_isa() if kind == "cpu" else None, cuda=torch.version.cuda)
    if kind == "cuda" and torch.cuda.is_available():
        idx = torch.device(device).index or 0
        cc = torch.cuda.get_device_capability(idx)
        kw.update(gpu=torch.cuda.get_device_name(idx), compute_capability=f"{cc[0]}.{cc[1]}", cudnn=_cudnn_version())
    return Platform(**kw)


def _cudnn_version() -> str | None:
    import torch

    v = torch.backends.cudnn.version()
    return None if not v else f"{v // 10000}.{v // 100 % 100}.{v % 100}" if v >= 10000 else f"{v // 1000}.{v // 100 % 10}.{v % 100}"


def _comparable(name: str, value):
    """Older files spell ``cpu`` as ``<arch> <CAPABILITY> <model>``: compare its ``<arch>-<capability>``."""
    if name == "cpu" and isinstance(value, str) and " " in value:
        parts = value.split()
        return f"{parts[0].lower()}-{parts[1].lower()}"
    return value


def differing_fields(recorded: Platform | None, current: Platform) -> tuple[str, ...]:
    """Numeric fields the record holds whose value differs on *current*."""
    if recorded is None:
        return ()
    return tuple(n for n in NUMERIC_FIELDS if getattr(recorded, n) is not None
                 and _comparable(n, getattr(recorded, n)) != _comparable(n, getattr(current, n)))


def platform_diffs(recorded: Platform | None, current: Platform) -> tuple[str, ...]:
    """Human-readable list of numeric platform fields that differ (``dtype float16 -> float32``)."""
    return tuple(f"{n} {getattr(recorded, n)} -> {getattr(current, n)}" for n in differing_fields(recorded, current))


@contextlib.contextmanager
def pinned(device: str, threads: int | None, deterministic: bool = True):
    """Pin thread count and deterministic kernels (TF32 off, cuBLAS workspace) for one image; restore afterwards."""
    import torch

    saved_threads = torch.get_num_threads()
    saved_det = torch.are_deterministic_algorithms_enabled()
    saved_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    try:
        if threads:
            torch.set_num_threads(threads)
        if deterministic:
            if device.startswith("cuda"):
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
            torch.use_deterministic_algorithms(True)
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        yield
    finally:
        torch.set_num_threads(saved_threads)
        torch.use_deterministic_algorithms(saved_det, warn_only=saved_warn)
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic) = saved
