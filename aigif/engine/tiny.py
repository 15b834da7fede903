"""The embedded models: tiny SD-1.x, SDXL, FLUX.1, SD 3.5, Chroma, Qwen-Image, Z-Image, FLUX.2 and FLUX.2-klein pipelines built
by the package itself.

No download: configs are tables here, weights come from numpy's PCG64 integer
stream (``integers`` -> exact float arithmetic), so the ``.safetensors`` bytes
are the same on every machine and library version; the build is checked
against the digest recorded in :data:`aigif.syntax.registry.MODELS`. The
weights are random, yet cross-attention is scaled up so the prompt visibly
changes the image. Tokenizers: the real CLIP BPE (:mod:`aigif.text.clip_bpe`), a
small shipped T5 unigram vocabulary (:mod:`aigif.text.t5_vocab`) and a small shipped byte-level BPE for
the Qwen tokenizers (:mod:`aigif.text.qwen_vocab`).
"""
from __future__ import annotations

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
from .tiny_weights import state_dict

_CLIP = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             vocab_size=49408, max_position_embeddings=77, projection_dim=32, hidden_act="quick_gelu",
             bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[16, 16, 32, 32],
            down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
            layers_per_block=1, norm_num_groups=8, sample_size=64, scaling_factor=0.18215)
_SD_SCHED = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                 steps_offset=1, set_alpha_to_one=False, skip_prk_steps=True)


_FLOW_VAE = dict(_VAE, use_quant_conv=False, use_post_quant_conv=False)
_T5 = dict(vocab_size=2000, d_kv=8, d_ff=64, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
           relative_attention_max_distance=32, feed_forward_proj="gated-gelu", dropout_rate=0.0,
           decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, use_cache=False, tie_word_embeddings=False)
_FLOW_SCHED = dict(num_train_timesteps=1000, shift=3.0)
# Qwen2.5-VL / Qwen3 text encoders over the shipped 2,000-token BPE (ids 2000-2003: chat markers)
_QWEN = dict(vocab_size=2048, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
             num_key_value_heads=1, head_dim=16, max_position_embeddings=2048, bos_token_id=0, eos_token_id=0, pad_token_id=0,
             tie_word_embeddings=False)
_QWEN_VL = dict(vocab_size=2048, image_token_id=2047, video_token_id=2046, vision_start_token_id=2045, bos_token_id=0,
                eos_token_id=0, pad_token_id=0, tie_word_embeddings=False,
                text_config=dict(_QWEN, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}),
                vision_config=dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=32, patch_size=2,
                                   spatial_merge_size=1, temporal_patch_size=1, fullatt_block_indexes=[0], window_size=4))
# FLUX.2: one double and one single block, 2x16-d heads over 3 stacked 16-d text layers; 8 latent channels, batch norm
_FLUX2 = dict(patch_size=1, in_channels=32, num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
              joint_attention_dim=48, timestep_guidance_channels=32, axes_dims_rope=[4, 4, 4, 4])
_FLUX2_VAE = dict(block_out_channels=[16, 16, 32, 32], layers_per_block=1, latent_channels=8, norm_num_groups=8, sample_size=64)
_CONFIG_CLASSES = {"CLIPTextModel": "CLIPTextConfig", "CLIPTextModelWithProjection": "CLIPTextConfig", "T5EncoderModel": "T5Config",
                   "Qwen2_5_VLForConditionalGeneration": "Qwen2_5_VLConfig", "Qwen3Model": "Qwen3Config",
                   "Qwen3ForCausalLM": "Qwen3Config", "Mistral3ForConditionalGeneration": "Mistral3Config"}


@dataclass(frozen=True)
class TinySpec:
    name: str
    revision: str
    pipeline: str
    modules: tuple[tuple[str, str, dict], ...]     # (component, diffusers/transformers class, config)
    tokenizers: tuple[tuple[str, str], ...]        # (component, "clip" | "t5" | "qwen" | "qwen-parts")
    scheduler: tuple[str, dict]
    extra_index: dict = field(default_factory=dict)
    gains: dict = field(default_factory=dict)      # component -> {key fragment: weight scale} (aigif.engine.tiny_weights)

    def config(self, component: str) -> dict:
        """The constructor configuration of one component (e.g. ``"unet"``)."""
        return next(cfg for comp, _, cfg in self.modules if comp == component)


def _sd_unet(**cfg) -> dict:
    return dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=[32, 64],
                down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"], up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
                attention_head_dim=8, norm_num_groups=8, **cfg)


TINY = {
    "aigif-tiny-sd": TinySpec(
        "aigif-tiny-sd", "v1", "StableDiffusionPipeline",
        modules=(("unet", "UNet2DConditionModel", _sd_unet(cross_attention_dim=32)), ("vae", "AutoencoderKL", _VAE),
                 ("text_encoder", "CLIPTextModel", _CLIP)),
        tokenizers=(("tokenizer", "clip"),),
        scheduler=("PNDMScheduler", _SD_SCHED),
        extra_index={"safety_checker": [None, None], "feature_extractor": [None, None], "image_encoder": [None, None],
                     "requires_safety_checker": False},
    ),
    "aigif-tiny-sdxl": TinySpec(
        "aigif-tiny-sdxl", "v1", "StableDiffusionXLPipeline",
        modules=(("unet", "UNet2DConditionModel", _sd_unet(
                     cross_attention_dim=64, transformer_layers_per_block=1, addition_embed_type="text_time",
                     addition_time_embed_dim=8, projection_class_embeddings_input_dim=80, use_linear_projection=True)),
                 ("vae", "AutoencoderKL", _VAE), ("text_encoder", "CLIPTextModel", _CLIP),
                 ("text_encoder_2", "CLIPTextModelWithProjection", _CLIP)),
        tokenizers=(("tokenizer", "clip"), ("tokenizer_2", "clip")),
        scheduler=("EulerDiscreteScheduler", {k: v for k, v in _SD_SCHED.items() if k not in ("skip_prk_steps", "set_alpha_to_one")}),
        extra_index={"image_encoder": [None, None], "feature_extractor": [None, None], "force_zeros_for_empty_prompt": True},
    ),
    "aigif-tiny-flux": TinySpec(   # FLUX.1-dev layout: CLIP pooled + T5 sequence, distilled guidance, packed 2x2 latents
        "aigif-tiny-flux", "v1", "FluxPipeline",
        modules=(("transformer", "FluxTransformer2DModel", dict(
                     patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
                     num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True,
                     axes_dims_rope=[4, 6, 6])),
                 ("vae", "AutoencoderKL", dict(_FLOW_VAE, shift_factor=0.1159, scaling_factor=0.3611)),
                 ("text_encoder", "CLIPTextModel", _CLIP), ("text_encoder_2", "T5EncoderModel", dict(_T5, d_model=32))),
        tokenizers=(("tokenizer", "clip"), ("tokenizer_2", "t5")),
        scheduler=("FlowMatchEulerDiscreteScheduler", dict(_FLOW_SCHED, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                           base_image_seq_len=256, max_image_seq_len=4096)),
        extra_index={"image_encoder": [None, None], "feature_extractor": [None, None]},
    ),
    "aigif-tiny-sd3": TinySpec(   # SD 3.5 layout: two CLIPs with projection + T5, patch-2 MMDiT
        "aigif-tiny-sd3", "v1", "StableDiffusion3Pipeline",
        modules=(("transformer", "SD3Transformer2DModel", dict(
                     sample_size=8, patch_size=2, in_channels=4, out_channels=4, num_layers=2, attention_head_dim=8,
                     num_attention_heads=4, joint_attention_dim=64, caption_projection_dim=32, pooled_projection_dim=64,
                     pos_embed_max_size=32)),
                 ("vae", "AutoencoderKL", dict(_FLOW_VAE, shift_factor=0.0609, scaling_factor=1.5305)),
                 ("text_encoder", "CLIPTextModelWithProjection", _CLIP), ("text_encoder_2", "CLIPTextModelWithProjection", _CLIP),
                 ("text_encoder_3", "T5EncoderModel", dict(_T5, d_model=64))),
        tokenizers=(("tokenizer", "clip"), ("tokenizer_2", "clip"), ("tokenizer_3", "t5")),
        scheduler=("FlowMatchEulerDiscreteScheduler", _FLOW_SCHED),
        extra_index={"image_encoder": [None, None], "feature_extractor": [None, None]},
    ),
    "aigif-tiny-chroma": TinySpec(   # Chroma layout: T5 only, real CFG, guidance approximator, packed 2x2 latents
        "aigif-tiny-chroma", "v1", "ChromaPipeline",
        modules=(("transformer", "ChromaTransformer2DModel", dict(
                     patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
                     num_attention_heads=2, joint_attention_dim=32, axes_dims_rope=[4, 6, 6],
                     approximator_num_channels=16, approximator_hidden_dim=32, approximator_layers=1)),
                 ("vae", "AutoencoderKL", dict(_FLOW_VAE, shift_factor=0.1159, scaling_factor=0.3611)),
                 ("text_encoder", "T5EncoderModel", dict(_T5, d_model=32))),
        tokenizers=(("tokenizer", "t5"),),
        scheduler=("FlowMatchEulerDiscreteScheduler", dict(_FLOW_SCHED, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                           base_image_seq_len=256, max_image_seq_len=4096)),
        extra_index={"image_encoder": [None, None], "feature_extractor": [None, None]},
    ),
    "aigif-tiny-qwen-image": TinySpec(   # Qwen-Image layout: Qwen2.5-VL text encoder, 3-D causal VAE, packed 2x2 latents
        "aigif-tiny-qwen-image", "v1", "QwenImagePipeline",
        modules=(("transformer", "QwenImageTransformer2DModel", dict(
                     patch_size=2, in_channels=64, out_channels=16, num_layers=1, attention_head_dim=16, num_attention_heads=2,
                     joint_attention_dim=32, axes_dims_rope=[4, 6, 6])),
                 ("vae", "AutoencoderKLQwenImage", dict(base_dim=8, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
                                                        temperal_downsample=[False, True, True])),
                 ("text_encoder", "Qwen2_5_VLForConditionalGeneration", _QWEN_VL)),
        tokenizers=(("tokenizer", "qwen"),),
        scheduler=("FlowMatchEulerDiscreteScheduler", dict(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=True,
                                                           base_shift=0.5, max_shift=0.9, base_image_seq_len=256,
                                                           max_image_seq_len=8192, shift_terminal=0.02,
                                                           time_shift_type="exponential")),
        gains={"transformer": {"attn.to_out": 4.0, "img_mod": 3.0}},   # the prompt enters only through joint attention
    ),
    "aigif-tiny-z-image": TinySpec(   # Z-Image layout: Qwen3 text encoder (second-to-last layer), FLUX.1-style VAE, float32 latents
        "aigif-tiny-z-image", "v1", "ZImagePipeline",
        modules=(("transformer", "ZImageTransformer2DModel", dict(
                     in_channels=16, dim=32, n_layers=1, n_refiner_layers=1, n_heads=2, n_kv_heads=2, cap_feat_dim=32,
                     axes_dims=[4, 6, 6], axes_lens=[256, 64, 64])),
                 ("vae", "AutoencoderKL", dict(_FLOW_VAE, latent_channels=16, shift_factor=0.1159, scaling_factor=0.3611)),
                 ("text_encoder", "Qwen3Model", _QWEN)),
        tokenizers=(("tokenizer", "qwen"),),
        scheduler=("FlowMatchEulerDiscreteScheduler", _FLOW_SCHED),
    ),
    "aigif-tiny-flux2-klein": TinySpec(   # FLUX.2-klein layout: Qwen3 (layers 9, 18, 27 stacked), 32-channel batch-norm VAE
        "aigif-tiny-flux2-klein", "v1", "Flux2KleinPipeline",
        modules=(("transformer", "Flux2Transformer2DModel", dict(_FLUX2, guidance_embeds=False)),
                 ("vae", "AutoencoderKLFlux2", _FLUX2_VAE),
                 ("text_encoder", "Qwen3ForCausalLM", dict(_QWEN, hidden_size=16, intermediate_size=32, head_dim=8,
                                                           num_hidden_layers=27))),
        tokenizers=(("tokenizer", "qwen"),),
        scheduler=("FlowMatchEulerDiscreteScheduler", dict(_FLOW_SCHED, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                           base_image_seq_len=256, max_image_seq_len=4096)),
    ),
    "aigif-tiny-flux2": TinySpec(   # FLUX.2 dev layout: Mistral 3 (layers 10, 20, 30 stacked), guidance embedding
        "aigif-tiny-flux2", "v1", "Flux2Pipeline",
        modules=(("transformer", "Flux2Transformer2DModel", dict(_FLUX2, guidance_embeds=True)),
                 ("vae", "AutoencoderKLFlux2", _FLUX2_VAE),
                 ("text_encoder", "Mistral3ForConditionalGeneration", dict(
                     text_config=dict(_QWEN, hidden_size=16, intermediate_size=32, head_dim=8, num_hidden_layers=30),
                     vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                        head_dim=8, patch_size=2, image_size=32),
                     image_token_index=2047, spatial_merge_size=1, vision_feature_layer=-1, tie_word_embeddings=False))),
        tokenizers=(("tokenizer", "qwen-parts"),),
        scheduler=("FlowMatchEulerDiscreteScheduler", dict(_FLOW_SCHED, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                           base_image_seq_len=256, max_image_seq_len=4096)),
    ),
}


def is_tiny(name: str | None) -> bool:
    return name in TINY


# --- build ---------------------------------------------------------------------------
def _module(cls: str, cfg: dict):
    import diffusers
    import transformers

    if cls in _CONFIG_CLASSES:
        return getattr(transformers, cls)(getattr(transformers, _CONFIG_CLASSES[cls])(**cfg))
    return getattr(diffusers, cls)(**cfg)


def _tokenizers(spec: TinySpec) -> dict:
    from ..text.clip_bpe import clip_tokenizer
    from ..text.qwen_vocab import PARTS_CHAT_TEMPLATE, qwen_tokenizer
    from ..text.t5_vocab import t5_tokenizer

    made = {}
    with tempfile.TemporaryDirectory(prefix="aigif-tok-") as tmp:
        for comp, kind in spec.tokenizers:
            if kind not in made:
                made[kind] = {"clip": lambda: clip_tokenizer(Path(tmp)), "t5": t5_tokenizer, "qwen": qwen_tokenizer,
                              "qwen-parts": lambda: qwen_tokenizer(PARTS_CHAT_TEMPLATE)}[kind]()
    return {comp: made[kind] for comp, kind in spec.tokenizers}


def build_tiny(name: str, folder: str | os.PathLike) -> Path:
    """Write the tiny pipeline *name* into *folder* (diffusers layout, safetensors only)."""
    import diffusers
    from safetensors.numpy import save_file

    spec = TINY[name]
    folder = Path(folder)
    mods = {comp: _module(cls, cfg) for comp, cls, cfg in spec.modules}
    # the modules only supply key names, shapes and configs
    weights = {comp: state_dict(spec.name, comp, module, spec.gains.get(comp)) for comp, module in mods.items()}
    sched_cls, sched_cfg = spec.scheduler
    parts = dict(mods, scheduler=getattr(diffusers, sched_cls)(**sched_cfg), **_tokenizers(spec))
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
        fname = "diffusion_pytorch_model.safetensors" if isinstance(mods[comp], diffusers.ModelMixin) else "model.safetensors"
        save_file({k: np.ascontiguousarray(v).reshape(v.shape) for k, v in sorted(sd.items())}, str(sub / fname), metadata={"format": "pt"})   # a 0-d array (batch norm counter) keeps its shape
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


