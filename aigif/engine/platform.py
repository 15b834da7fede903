"""Capture the platform element and pin the numerics it describes while an image is computed."""
from __future__ import annotations

import contextlib
import os
import platform as _pyplatform
from functools import lru_cache

from ..syntax.elements import Platform

# Fields whose difference can change the pixels (compared at decode to explain a non-exact result).
NUMERIC_FIELDS = ("device", "gpu", "compute_capability", "cuda", "cudnn", "torch", "diffusers", "transformers",
                  "dtype", "attention", "threads", "deterministic", "cpu")
CUBLAS_WORKSPACE = ":4096:8"


@lru_cache(maxsize=1)
def cpu_description() -> str:
    """``<arch> <torch CPU capability>[ <model name>]``, e.g. ``x86_64 AVX512 Intel(R) Xeon(R) ...``."""
    import torch

    parts = [_pyplatform.machine() or "unknown"]
    try:
        parts.append(torch.backends.cpu.get_cpu_capability())
    except Exception:  # pragma: no cover - very old torch
        pass
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    parts.append(" ".join(line.split(":", 1)[1].split())[:64])
                    break
    except OSError:
        pass
    return " ".join(p for p in parts if p)


def capture_platform(device: str, dtype: str, attention: str, threads: int, deterministic: bool = True) -> Platform:
    """The platform element for an image computed now with these settings."""
    import diffusers
    import torch
    import transformers

    kw = dict(device=device.split(":")[0], torch=torch.__version__, diffusers=diffusers.__version__,
              transformers=transformers.__version__, dtype=dtype, attention=attention, threads=threads,
              deterministic=deterministic, cpu=cpu_description())
    if kw["device"] == "cuda" and torch.cuda.is_available():
        idx = torch.device(device).index or 0
        cc = torch.cuda.get_device_capability(idx)
        kw.update(gpu=torch.cuda.get_device_name(idx), compute_capability=f"{cc[0]}.{cc[1]}", cuda=torch.version.cuda,
                  cudnn=_cudnn_version(), driver=_driver_version())
    return Platform(**kw)


def _cudnn_version() -> str | None:
    import torch

    v = torch.backends.cudnn.version()
    return None if not v else f"{v // 10000}.{v // 100 % 100}.{v % 100}" if v >= 10000 else f"{v // 1000}.{v // 100 % 10}.{v % 100}"


def _driver_version() -> str | None:
    try:
        import subprocess

        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] or None
    except Exception:
        return None


def platform_diffs(recorded: Platform | None, current: Platform) -> tuple[str, ...]:
    """Human-readable list of numeric platform fields that differ (``dtype float16 -> float32``)."""
    if recorded is None:
        return ()
    out = []
    for name in NUMERIC_FIELDS:
        a, b = getattr(recorded, name), getattr(current, name)
        if a is not None and a != b:
            out.append(f"{name} {a} -> {b}")
    return tuple(out)


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
