"""Pretrained NVTC-lite rate points: a plain dict ``quality -> (asset name, config)``.

Quality 1 is the lowest rate. The full model config (a plain dict) is stored
in each file's safetensors metadata; the entries here only pin what a payload
may rely on. ``SHA256`` pins the exact bytes of every shipped file
(``spec/codec-nvtc.md`` repeats them); a mismatch raises ``ModelMismatchError``.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os

from ..errors import ModelError, ModelMismatchError, RegistryError

ASSET_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "nvtc")

#: payload model id -> architecture name
MODEL_IDS = {1: "nvtc-lite-v1"}

#: quality -> (asset file name, fixed config entries)
# Decoding needs ~150 bytes of working memory per pixel (float activations of the
# synthesis transforms), so a 30-byte header may not demand more than ~1.2 GiB:
# 8 Mi pixels (e.g. 4096x2048). Pass max_pixels to decode larger trusted images.
DEFAULT_MAX_PIXELS = 8 * 2**20

MODELS = {
    1: ("nvtc_q1.safetensors", {"arch": "nvtc-lite", "model_id": 1}),
    2: ("nvtc_q2.safetensors", {"arch": "nvtc-lite", "model_id": 1}),
    3: ("nvtc_q3.safetensors", {"arch": "nvtc-lite", "model_id": 1}),
    4: ("nvtc_q4.safetensors", {"arch": "nvtc-lite", "model_id": 1}),
}

#: sha256 of each shipped file (filled by the export step; see spec/codec-nvtc.md)
SHA256: dict = {
    "nvtc_q1.safetensors": "8b16e8e47aea408856f43b7f676e99fdd3fed565e08bfa32e4b4506ac44d1a86",
    "nvtc_q2.safetensors": "7a9b716c62a00fea437428939c3cfa141f291a6bbfb85b1f2fdfe5df889ec821",
    "nvtc_q3.safetensors": "0b13d7209476a0c3f6c2f3408660434c9b8014d351d25f14d3a6a26700d11e9e",
    "nvtc_q4.safetensors": "40fd0a6706f311f95f63a99a57d6b4836753d53856663f329e5a73038f4e4669",
}

QUALITIES = tuple(sorted(MODELS))


def check_quality(quality: int) -> tuple:
    """Registry entry of ``quality``; an unknown one fails naming the valid ones."""
    if isinstance(quality, bool) or not isinstance(quality, int) or quality not in MODELS:
        raise RegistryError(f"unknown NVTC quality {quality!r}; valid qualities: {', '.join(map(str, QUALITIES))}")
    return MODELS[quality]


def asset_path(quality: int) -> str:
    return os.path.join(ASSET_DIR, check_quality(quality)[0])


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@functools.lru_cache(maxsize=8)
def load_model(quality: int):
    """The ready-to-code model of ``quality`` (transforms + integer tables), cached."""
    import numpy as np
    import torch
    from safetensors import safe_open
    from safetensors.numpy import load_file

    from .entropy import IntegerTables
    from .model import NVTC, context_plan

    name, fixed = check_quality(quality)
    path = asset_path(quality)
    if not os.path.exists(path):
        raise ModelError(f"NVTC weights for quality {quality} missing: {path}")
    want = SHA256.get(name)
    if want is not None and file_sha256(path) != want:
        raise ModelMismatchError(f"{name}: sha256 differs from the registry ({want})")
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata() or {}
    cfg = json.loads(meta.get("config", "{}"))
    if cfg.get("arch") != fixed["arch"]:
        raise ModelError(f"{name}: arch {cfg.get('arch')!r}, expected {fixed['arch']!r}")
    arrays = load_file(path)
    model = NVTC(cfg, n_qualities=0)
    state = {k[4:]: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items() if k.startswith("net.")}
    model.load_state_dict(state, strict=True)
    tables = {}
    for s, l, rows in context_plan(cfg):
        t = arrays[f"table.s{s}_l{l}"]
        if t.shape != (rows, cfg["codebook"]) or t.dtype != np.uint16:
            raise ModelError(f"{name}: table s{s}_l{l} has shape {t.shape} {t.dtype}")
        tables[(s, l)] = t
    model.tables = IntegerTables(tables)
    model.gamma = float(cfg["gamma"])
    model.eval()
    return model
