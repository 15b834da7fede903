"""A tiny random-weight StableDiffusionPipeline built offline (no hub), for tests only.

Deterministic: every component is initialised under a fixed torch seed, so two
builds give the same weights and the same images.
"""
from __future__ import annotations

import json
import string
from pathlib import Path


def _tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["<|startoftext|>", "<|endoftext|>"]
    chars = string.ascii_lowercase + string.digits + ",.!"
    tokens += list(chars) + [c + "</w>" for c in chars]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}), "utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", "utf-8")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=16)


def tiny_sd_pipeline(tmp: Path):
    """StableDiffusionPipeline, 32x32 latents-friendly, ~100k parameters, CPU float32."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tok = _tokenizer(Path(tmp) / "tokenizer")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, norm_num_groups=4, attention_head_dim=2,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
    )
    text = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=16, intermediate_size=32,
        num_attention_heads=2, num_hidden_layers=2, vocab_size=len(tok), max_position_embeddings=16,
    ))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=tok, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def call_kwargs(generation) -> dict:
    """The diffusers call of an aigif Generation (what the engine does, minus platform handling)."""
    import torch

    return {
        "prompt": generation.prompt, "negative_prompt": generation.negative_prompt or None,
        "num_inference_steps": generation.num_inference_steps, "guidance_scale": generation.guidance_scale,
        "width": generation.width, "height": generation.height,
        "generator": torch.Generator("cpu").manual_seed(generation.seed), "output_type": "np",
    }


def run(pipe, generation, extensions=()):
    """Generate with the adapters of *extensions* applied; returns uint8 HxWx3 and the adapted call."""
    import numpy as np
    from aigif.engine.adapters import apply_adapters

    call = apply_adapters(extensions, pipe, call_kwargs(generation))
    out = call.pipe(**call.call_kwargs).images[0]
    return (np.clip(out, 0, 1) * 255).round().astype(np.uint8), call
