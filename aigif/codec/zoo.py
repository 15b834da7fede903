"""Pretrained NVTC rate points: a plain dict ``quality -> (asset name, config)``.

Quality 1 is the lowest rate. The full model config (a plain dict) is stored
in each file's safetensors metadata; the entries here only pin what a payload
may rely on. ``SHA256`` pins the exact bytes of every shipped file
(``spec/codec-nvtc.md`` repeats them); a mismatch raises ``ModelMismatchError``.
"""
from __future__ import annotations

import functools
import json
import os

from ..errors import ModelError, ModelMismatchError, RegistryError
from ..fileio import sha256_of_file
from ..limits import DEFAULT_LIMITS

ASSET_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "nvtc")

#: payload model id -> architecture name. Id 6 decodes id 5's symbols with the synthesis and the restoration
#: network in integers (the same pixels on every machine); id 5 is their float version (platform-dependent)
MODEL_IDS = {5: "nvtc-v2", 6: "nvtc-v2-int"}

#: the model id the encoder writes
DEFAULT_MODEL_ID = 6

#: model ids of development versions whose payloads are refused (their weights are not shipped)
RETIRED_MODEL_IDS = {
    1: "nvtc-lite-v1 (aigif 0.1 development codec)",
    2: "nvtc-v2 with greedy-ECVQ tables (replaced by model id 3: same transforms, tables for the row-trellis encoder)",
    3: "nvtc-v2 trained for 7,900 GPU steps (replaced by model id 4: the same architecture trained 5,100 steps longer)",
    4: "nvtc-v2 with tables designed for rows-only coding (replaced by model id 5: same transforms, tables designed "
       "for layer directions)",
}

#: file of each model id: shared transforms + one integer table set per quality (id 6 codes the same symbols)
MODEL_FILES = {5: "nvtc_id5.safetensors", 6: "nvtc_id5.safetensors"}

#: restoration network of each model id (post-filter shape 3, :mod:`.restore`)
RESTORE_FILES = {5: "nvtc_id5_restore.safetensors"}

#: integer synthesis and restoration network of each integer model id (:mod:`.intsynth`)
INT_FILES = {6: "nvtc_id6_int.safetensors"}

# Decoding runs the finest stage in strips and needs ~64 bytes of working memory per pixel
# (indices, the coarse stages, the output), so a 24-byte header may not demand more than
# ~1 GiB: aigif.Limits.max_render_pixels (16 Mi, e.g. 4096x4096). Pass max_pixels to decode larger trusted images.
DEFAULT_MAX_PIXELS = DEFAULT_LIMITS.max_render_pixels

#: quality -> (asset file name, fixed config entries); quality q uses table set ``table.q{q}.*``
MODELS = {q: (MODEL_FILES[DEFAULT_MODEL_ID], {"arch": "nvtc-v2", "model_id": DEFAULT_MODEL_ID}) for q in (1, 2, 3, 4)}

#: model id -> the qualities a payload of that id may carry
MODEL_QUALITIES = {5: (1, 2, 3, 4), 6: (1, 2, 3, 4)}

#: sha256 of each shipped file (written by the export step; see spec/codec-nvtc.md)
SHA256: dict = {
    "nvtc_id5.safetensors": "651385af96be0aac687a1ee777ca8f5a10d50af531f3dce49bdd73d982c7f219",
    "nvtc_id5_restore.safetensors": "137887169937b4316eabdaca081ccaf55cf4de979ec54bdeb5ffb6154543eed6",
    "nvtc_id6_int.safetensors": "1492a02e005bdc2e8a21b81b4a37155ab3e6832cc0278da98a9cbbf13b36213a",
}

QUALITIES = tuple(sorted(MODELS))


def check_quality(quality: int) -> tuple:
    """Registry entry of ``quality``; an unknown one fails naming the valid ones."""
    if isinstance(quality, bool) or not isinstance(quality, int) or quality not in MODELS:
        raise RegistryError(f"unknown NVTC quality {quality!r}; valid qualities: {', '.join(map(str, QUALITIES))}")
    return MODELS[quality]


def asset_path(quality: int) -> str:
    return os.path.join(ASSET_DIR, check_quality(quality)[0])


def _checked(name: str) -> str:
    """Path of a shipped asset whose bytes match ``SHA256``; ModelError / ModelMismatchError otherwise."""
    path = os.path.join(ASSET_DIR, name)
    if not os.path.exists(path):
        raise ModelError(f"NVTC weights file missing: {path} (it ships with the aigif package; reinstall it)")
    want = SHA256.get(name)
    if want and sha256_of_file(path) != want:
        raise ModelMismatchError(f"{name}: sha256 differs from the registry ({want})")
    return path


def net_state(arrays: dict) -> dict:
    """The transforms' and codebooks' state dict (torch tensors) from a weights file's ``net.*`` arrays."""
    import numpy as np
    import torch

    return {k[4:]: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items() if k.startswith("net.")}


@functools.lru_cache(maxsize=8)
def load_model(quality: int):
    """The ready-to-code model of ``quality`` (transforms + that quality's integer tables), cached."""
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import load_file

    from .entropy import FLAG_CONTEXTS, IntegerTables
    from .model import NVTC, context_plan

    name, fixed = check_quality(quality)
    path = _checked(name)
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata() or {}
    cfg = json.loads(meta.get("config", "{}"))
    if cfg.get("arch") != fixed["arch"]:
        raise ModelError(f"{name}: arch {cfg.get('arch')!r}, expected {fixed['arch']!r}")
    arrays = load_file(path)
    model = NVTC(cfg, n_qualities=0)
    model.load_state_dict(net_state(arrays), strict=True)

    def table(key: str, shape: tuple, what: str):
        t = arrays.get(key)
        if t is None or t.shape != shape or t.dtype != np.uint16:
            raise ModelError(f"{name}: {what} {key} missing or not uint16 {shape}")
        return t

    plan = context_plan(cfg)
    model.tables = IntegerTables(
        {(s, l): table(f"table.q{quality}.s{s}_l{l}", (rows, k), "table") for s, l, rows, k in plan},
        {(s, l): table(f"flag.q{quality}.s{s}_l{l}", (FLAG_CONTEXTS, 2), "copy-flag table") for s, l, _r, _k in plan})
    model.lmbda = float(cfg["lambdas"][quality - 1])
    model.eval()
    return model


def encoder_model_id(quality: int) -> int:
    """The model id the encoder writes at ``quality``."""
    return check_quality(quality)[1]["model_id"]


def has_restorer(quality: int) -> bool:
    """Whether the encoder's model for ``quality`` ships a restoration network (it may write shape 3)."""
    model_id = encoder_model_id(quality)
    return model_id in RESTORE_FILES or model_id in INT_FILES


@functools.lru_cache(maxsize=2)
def load_integer(model_id: int) -> tuple:
    """(synthesis ops, restoration network) of an integer model id (:mod:`.intsynth`), cached; every layer's
    bound (exact float32 arithmetic) is checked on loading."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    from .intsynth import IntRestore, IntSynthesis, verify

    name = INT_FILES.get(model_id)
    if name is None:
        raise ModelError(f"NVTC model id {model_id} has no integer decoder")
    path = _checked(name)
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata() or {}
    try:
        if meta.get("format") != "aigif-nvtc-int-1":
            raise ValueError(f"format {meta.get('format')!r}, expected 'aigif-nvtc-int-1'")
        arrays = load_file(path)
        cfg = json.loads(meta["config"])
        verify(arrays, meta, cfg)
        return IntSynthesis(arrays, cfg, meta), IntRestore(arrays, meta)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{name}: not an integer NVTC decoder ({exc})") from exc


@functools.lru_cache(maxsize=4)
def load_restorer(model_id: int):
    """The restoration network of ``model_id`` (post-filter shape 3), cached."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from .restore import RestoreNet

    name = RESTORE_FILES.get(model_id)
    if name is None:
        raise ModelError(f"NVTC model id {model_id} has no restoration network")
    path = _checked(name)
    with safe_open(path, framework="pt") as f:
        cfg = json.loads((f.metadata() or {}).get("config", "{}"))
    if cfg.get("arch") != "restore-v1":
        raise ModelError(f"{name}: arch {cfg.get('arch')!r}, expected 'restore-v1'")
    try:
        net = RestoreNet(cfg)
        net.load_state_dict(load_file(path), strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # config or tensors do not fit the network
        raise ModelError(f"{name}: not a restore-v1 network ({exc})") from exc
    if net.qualities < max(MODEL_QUALITIES[model_id]):
        raise ModelError(f"{name}: conditioned on {net.qualities} qualities, model id {model_id} has more")
    return net.eval()
