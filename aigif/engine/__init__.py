"""Regeneration engine: syntax -> diffusers pipeline -> pixels, deterministically.

    from aigif.engine import Engine
    from aigif import Generation
    res = Engine().generate(Generation(prompt="a cat", seed=1, num_inference_steps=4,
                                       guidance_scale=7.5, width=64, height=64))
    res.image        # HxWx3 uint8
    res.document     # platform + fingerprint filled, ready for aigif.dumps

LoRAs and a VAE override come with the model reference (files in the model dirs,
safetensors only, digests recorded and verified; spec/engine.md 1.4-1.5):

    ModelRef(name="aigif-tiny-sd", vae=ComponentRef(name="myvae"),
             loras=(Lora(name="style", weight=0.8),))

torch/diffusers are imported when an engine first renders, not on import.
"""
from __future__ import annotations

from .engine import DecodeResult, Engine, GenerateResult, default_engine, prepare_pipeline, to_uint8
from .loader import DEFAULT_MODEL

__all__ = ["DEFAULT_MODEL", "DecodeResult", "Engine", "GenerateResult", "default_engine", "prepare_pipeline", "to_uint8"]
