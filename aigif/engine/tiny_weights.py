"""Deterministic weights of the embedded tiny models: the same float32 bits on every machine.

Values come from numpy's PCG64 integer stream (``integers`` -> exact float
arithmetic), seeded by sha256 of ``model/component/key``; the modules only
supply key names and shapes. Norm scales are one, biases zero.
"""
from __future__ import annotations

import hashlib

import numpy as np


def _seed(model: str, component: str, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{model}/{component}/{key}".encode()).digest()[:8], "little")


def _uniform(seed: int, shape: tuple[int, ...], bound: float) -> np.ndarray:
    """Uniform in [-bound, bound) on a 2**-23 grid: integers, one exact scale, one rounding -> same bits everywhere."""
    n = int(np.prod(shape)) if shape else 1
    ints = np.random.Generator(np.random.PCG64(seed)).integers(-(2**23), 2**23, size=n, dtype=np.int64)
    return (ints.astype(np.float64) * (bound / 2**23)).astype(np.float32).reshape(shape)


def _gain(component: str, key: str) -> float:
    """Scales chosen (by looking) so random weights give prompt-dependent images: text enters the UNet through
    cross-attention (``attn2``), so it is sharpened (q/k) and amplified (v/out), and the UNet output is loud."""
    if "token_embedding" in key or "position_embedding" in key:
        return 1.7
    if component == "unet" and ("attn2.to_q" in key or "attn2.to_k" in key):
        return 4.0
    if component == "unet" and ("attn2.to_v" in key or "attn2.to_out" in key):
        return 10.0
    if component == "unet" and key.startswith("conv_out"):
        return 4.0
    if component == "transformer" and ("context_embedder" in key or "add_v_proj" in key or "pooled" in key):
        return 4.0
    if component == "vae" and key.startswith("decoder.conv_out"):
        return 0.5
    return 1.0


def _norm_scales(module) -> set[str]:
    """Keys of the scale/shift parameters of normalisation layers (torch's and the libraries' own RMS/T5 norms, also
    those shaped (C, 1, 1) to broadcast over images) and of batch-norm variances (one, so batch norm is the identity)."""
    import torch

    out = set()
    for mname, m in module.named_modules():
        if isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm)) or "norm" in type(m).__name__.lower():
            named = [*m.named_parameters(recurse=False), *(kv for kv in m.named_buffers(recurse=False) if kv[0] == "running_var")]
            for pname, p in named:
                if p.dim() >= 1 and p.numel() == p.shape[0]:
                    out.add(f"{mname}.{pname}" if mname else pname)
    return out


def state_dict(model: str, component: str, module, gains: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """The component's weights by key; a tied parameter (T5's shared embedding) is stored once. *gains*: the model's own
    scales by key fragment, before the common ones (a transformer whose text enters only through joint attention)."""
    norm_params = _norm_scales(module)
    out, seen = {}, set()
    for key, t in module.state_dict(keep_vars=True).items():
        if t.is_floating_point() and t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        t = t.detach()
        if not t.is_floating_point():
            out[key] = t.numpy().copy()
            continue
        shape = tuple(t.shape)
        if key in norm_params:
            out[key] = np.full(shape, 0.0 if key.endswith("bias") else 1.0, np.float32)
        elif len(shape) >= 2:
            fan_in = int(np.prod(shape[1:]))
            if "embedding" in key or key.endswith("shared.weight"):
                fan_in = 1
            gain = next((g for frag, g in (gains or {}).items() if frag in key), None) or _gain(component, key)
            out[key] = _uniform(_seed(model, component, key), shape, gain * (3.0 / fan_in) ** 0.5)
        else:
            out[key] = np.zeros(shape, np.float32)
    return out
