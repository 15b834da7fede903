"""The embedded default models: tiny SD-1.x and SDXL pipelines built by the package itself.

No download: configs are tables here, weights come from numpy's PCG64 integer
stream (``integers`` -> exact float arithmetic), so the ``.safetensors`` bytes
are the same on every machine and library version; the build is checked
against the digest recorded in :data:`aigif.syntax.registry.MODELS`. The
weights are random, yet cross-attention is scaled up so the prompt visibly
changes the image. Tokenizer: the real CLIP BPE (:mod:`aigif.text.clip_bpe`).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelError, ModelMismatchError
from ..syntax import registry
from .digest import folder_digest
from .paths import models_home
from .quiet import quiet

_CLIP = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             vocab_size=49408, max_position_embeddings=77, projection_dim=32, hidden_act="quick_gelu",
             bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[16, 16, 32, 32],
            down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
            layers_per_block=1, norm_num_groups=8, sample_size=64, scaling_factor=0.18215)
_SD_SCHED = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                 steps_offset=1, set_alpha_to_one=False, skip_prk_steps=True)


@dataclass(frozen=True)
class TinySpec:
    name: str
    revision: str
    pipeline: str
    unet: dict
    text_encoders: tuple[tuple[str, str], ...]     # (component, transformers class)
    scheduler: tuple[str, dict]
    extra_index: dict = field(default_factory=dict)


TINY = {
    "aigif-tiny-sd": TinySpec(
        "aigif-tiny-sd", "v1", "StableDiffusionPipeline",
        unet=dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=[32, 64],
                  down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"], up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
                  cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8),
        text_encoders=(("text_encoder", "CLIPTextModel"),),
        scheduler=("PNDMScheduler", _SD_SCHED),
        extra_index={"safety_checker": [None, None], "feature_extractor": [None, None], "image_encoder": [None, None],
                     "requires_safety_checker": False},
    ),
    "aigif-tiny-sdxl": TinySpec(
        "aigif-tiny-sdxl", "v1", "StableDiffusionXLPipeline",
        unet=dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=[32, 64],
                  down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"], up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
                  cross_attention_dim=64, attention_head_dim=8, norm_num_groups=8, transformer_layers_per_block=1,
                  addition_embed_type="text_time", addition_time_embed_dim=8, projection_class_embeddings_input_dim=80,
                  use_linear_projection=True),
        text_encoders=(("text_encoder", "CLIPTextModel"), ("text_encoder_2", "CLIPTextModelWithProjection")),
        scheduler=("EulerDiscreteScheduler", {k: v for k, v in _SD_SCHED.items() if k not in ("skip_prk_steps", "set_alpha_to_one")}),
        extra_index={"image_encoder": [None, None], "feature_extractor": [None, None], "force_zeros_for_empty_prompt": True},
    ),
}


def is_tiny(name: str | None) -> bool:
    return name in TINY


# --- deterministic weights ------------------------------------------------------
def _seed(model: str, component: str, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{model}/{component}/{key}".encode()).digest()[:8], "little")


def _uniform(seed: int, shape: tuple[int, ...], bound: float) -> np.ndarray:
    """Uniform in [-bound, bound) on a 2**-23 grid: integers, one exact scale, one rounding -> same bits everywhere."""
    n = int(np.prod(shape)) if shape else 1
    ints = np.random.Generator(np.random.PCG64(seed)).integers(-(2**23), 2**23, size=n, dtype=np.int64)
    return (ints.astype(np.float64) * (bound / 2**23)).astype(np.float32).reshape(shape)


def _gain(component: str, key: str) -> float:
    """Scales chosen (by looking) so random weights give prompt-dependent images: text enters through
    cross-attention (``attn2``), so it is sharpened (q/k) and amplified (v/out), and the UNet output is loud."""
    if "token_embedding" in key or "position_embedding" in key:
        return 1.7
    if component == "unet" and ("attn2.to_q" in key or "attn2.to_k" in key):
        return 4.0
    if component == "unet" and ("attn2.to_v" in key or "attn2.to_out" in key):
        return 10.0
    if component == "unet" and key.startswith("conv_out"):
        return 4.0
    if component == "vae" and key.startswith("decoder.conv_out"):
        return 0.5
    return 1.0


def _state_dict(spec_name: str, component: str, module) -> dict[str, np.ndarray]:
    import torch

    norm_params = set()
    for mname, m in module.named_modules():
        if isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
            norm_params.update({f"{mname}.weight", f"{mname}.bias"})
    out = {}
    for key, t in module.state_dict().items():
        if not t.is_floating_point():
            out[key] = t.numpy().copy()
            continue
        shape = tuple(t.shape)
        if key in norm_params:
            out[key] = np.full(shape, 1.0 if key.endswith("weight") else 0.0, np.float32)
        elif len(shape) >= 2:
            fan_in = int(np.prod(shape[1:]))
            if "embedding" in key:
                fan_in = 1
            out[key] = _uniform(_seed(spec_name, component, key), shape, _gain(component, key) * (3.0 / fan_in) ** 0.5)
        else:
            out[key] = np.zeros(shape, np.float32)
    return out


# --- build ---------------------------------------------------------------------------
def _modules(spec: TinySpec):
    import diffusers
    import transformers

    mods = {"unet": diffusers.UNet2DConditionModel(**spec.unet), "vae": diffusers.AutoencoderKL(**_VAE)}
    for comp, cls in spec.text_encoders:
        mods[comp] = getattr(transformers, cls)(transformers.CLIPTextConfig(**_CLIP))
    return mods


def build_tiny(name: str, folder: str | os.PathLike) -> Path:
    """Write the tiny pipeline *name* into *folder* (diffusers layout, safetensors only)."""
    import diffusers
    from safetensors.numpy import save_file

    from ..text.clip_bpe import clip_tokenizer

    spec = TINY[name]
    folder = Path(folder)
    mods = _modules(spec)
    weights = {}
    for comp, module in mods.items():   # the modules only supply key names, shapes and configs
        weights[comp] = _state_dict(spec.name, comp, module)
    with tempfile.TemporaryDirectory(prefix="aigif-tok-") as tmp:
        tok = clip_tokenizer(Path(tmp))
    sched_cls, sched_cfg = spec.scheduler
    parts = dict(mods, scheduler=getattr(diffusers, sched_cls)(**sched_cfg), tokenizer=tok)
    if "text_encoder_2" in mods:
        parts["tokenizer_2"] = tok
    pipe_cls = getattr(diffusers, spec.pipeline)
    extra = {k: None for k, v in spec.extra_index.items() if isinstance(v, list)}
    if spec.pipeline == "StableDiffusionPipeline":
        extra["requires_safety_checker"] = False
    pipe = pipe_cls(**parts, **extra)
    with quiet(False):
        pipe.save_pretrained(folder, safe_serialization=True)
    # Canonical weight files: our arrays, sorted keys, fixed metadata -> bytes independent of library versions.
    for comp, sd in weights.items():
        sub = folder / comp
        for f in sub.glob("*.safetensors"):
            f.unlink()
        fname = "diffusion_pytorch_model.safetensors" if comp in ("unet", "vae") else "model.safetensors"
        save_file({k: np.ascontiguousarray(v) for k, v in sorted(sd.items())}, str(sub / fname), metadata={"format": "pt"})
    return folder


def _build_into(name: str, target: Path) -> None:
    """Build in a temp folder beside *target*, then rename: concurrent first uses never see half a model."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build_tiny(name, tmp / "p")
        try:
            os.replace(tmp / "p", target)
        except OSError:
            if not (target / "model_index.json").exists():  # lost a race: someone else's build is there
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def tiny_folder(name: str) -> Path:
    spec = TINY[name]
    return models_home() / f"{spec.name}-{spec.revision}"


def ensure_tiny(name: str, *, verify: bool = True) -> Path:
    """Folder of the embedded model *name*, built on first use (~1 s) and checked against the registry digest."""
    if name not in TINY:
        raise ModelError(f"{name!r} is not an embedded model; embedded: {', '.join(TINY)}")
    target = tiny_folder(name)
    if not (target / "model_index.json").exists():
        try:
            _build_into(name, target)
        except OSError as exc:
            raise ModelError(f"cannot build the embedded model {name} in {target}: {exc}; "
                             "set AIGIF_HOME to a writable folder") from None
    if verify:
        recorded = registry.model_entry(name).sha256
        actual = folder_digest(target)
        if recorded and actual != recorded:
            raise ModelMismatchError(
                f"embedded model {name} built at {target} has digest {actual}, expected {recorded}; "
                f"delete {target} to rebuild it (if that persists, this platform computes the weights differently: report it)")
    return target


