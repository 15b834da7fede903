"""Forge FLUX.1 infotext (Distilled CFG Scale, Module files, Diffusion in Low Bits) -> syntax the engine regenerates."""
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from aigif.engine import Engine
from aigif.engine.digest import file_sha256
from aigif.importers import EXACT, encode_image, import_bytes, import_image
from aigif.importers.a1111 import map_a1111
from aigif.importers.a1111_write import a1111_parameters
from aigif.importers.decide import Options, decide
from aigif.syntax import ComponentRef, Generation, ModelRef

from .comfy_layout import lay_out_tiny_flux

FIX = Path(__file__).parent / "fixtures" / "importers"
pytestmark = pytest.mark.usefixtures("aigif_home")
TAIL = "Version: f2.0.1v1.10.1-previous-635-gf5330788, Diffusion in Low Bits: {bits}, Module 1: ae, Module 2: clip_l, Module 3: {t5}"


def forge(head: str, bits: str = "Automatic", t5: str = "t5xxl_fp16", prompt: str = "a fox") -> str:
    return f"{prompt}\n{head}, " + TAIL.format(bits=bits, t5=t5)


def test_forge_flux_dev_maps_guidance_true_cfg_schedule_and_files():
    imp = import_image(next((FIX / "images").glob("forge_flux_dev.*")))
    g, m = imp.generation, imp.model
    assert imp.tool == "Forge" and imp.regenerable, imp.reason
    assert (g.guidance_scale, g.true_cfg_scale, g.negative_prompt) == (3.0, 2.0, "blurry, lowres")
    assert (g.seed, g.scheduler, g.min_sequence_length) == (1234567890123, "flow-euler-beta", 256)
    assert g.scheduler_config == {"base_shift": 1.15, "max_shift": 1.15}       # Forge's constant FLUX time shift
    assert m == ModelRef(name="flux1-dev", sha256="4610115bb0", local="diffusion_models/flux1-dev.safetensors",
                         text_encoders=(ComponentRef(local="text_encoders/clip_l.safetensors", subfolder="text_encoder"),
                                        ComponentRef(local="text_encoders/t5xxl_fp16.safetensors", subfolder="text_encoder_2")),
                         vae=ComponentRef(local="vae/ae.safetensors"))


def test_the_real_fp8_sample_says_what_changes_its_pixels():
    imp = import_image(next((FIX / "images").glob("forge_flux_fp8_tiling.*")))
    assert imp.has_syntax and not imp.regenerable
    for words in ("Diffusion in Low Bits: float8-e5m2 (fp16 LoRA)", "STOIQOAfroditeFLUXXL_F1DAlpha is not a file of a registry",
                  "Tiling: True"):
        assert words in imp.reason, imp.reason


@pytest.mark.parametrize("text, words", [
    (forge("Steps: 4, Sampler: Euler, Schedule type: Simple, CFG scale: 1, Distilled CFG Scale: 3.5, Seed: 1, "
           "Size: 512x512, Model: flux1-schnell"), None),
    (forge("Steps: 20, Sampler: Euler a, Schedule type: Simple, CFG scale: 1, Distilled CFG Scale: 3.5, Seed: 1, "
           "Size: 512x512, Model: flux1-dev"), "euler_a"),
    (forge("Steps: 20, Sampler: Heun, Schedule type: Simple, CFG scale: 1, Distilled CFG Scale: 3.5, Seed: 1, "
           "Size: 512x512, Model: flux1-dev"), "its own sigma list"),
    (forge("Steps: 20, Sampler: Euler, Schedule type: Simple, CFG scale: 3, Distilled CFG Scale: 3.5, Seed: 1, "
           "Size: 512x512, Model: flux1-dev"), "empty negative prompt"),
    (forge("Steps: 20, Sampler: Euler, Schedule type: Simple, CFG scale: 1, Distilled CFG Scale: 3.5, Seed: 1, "
           "Size: 512x512, Model: flux1-dev", bits="bnb-nf4"), "Diffusion in Low Bits: bnb-nf4"),
    (forge("Steps: 20, Sampler: Euler, Schedule type: Simple, CFG scale: 1, Distilled CFG Scale: 3.5, Seed: 1, "
           "Size: 512x512, Model: flux1-dev", t5="text_encoder_x"), "Module 3: text_encoder_x"),
    (forge("Steps: 20, Sampler: Euler, Schedule type: Simple, CFG scale: 1, Distilled CFG Scale: 3.5, Seed: 1, "
           "Size: 512x512, Model: flux1-dev", prompt="x" * 600), "600 characters"),
    ("a fox\nSteps: 20, Sampler: Euler, Schedule type: Simple, CFG scale: 1, Distilled CFG Scale: 3.5, Seed: 1, "
     "Size: 512x512, Model: flux1-dev, Version: f2.0.1v1.10.1", "all-in-one FLUX.1 checkpoint"),
])
def test_what_forge_did_that_the_engine_cannot_is_named(text, words):
    imp = map_a1111(text)
    assert imp.has_syntax and imp.tool == "Forge"
    if words is None:
        assert imp.regenerable, imp.reason
        assert imp.generation.scheduler_config == {"use_dynamic_shifting": True, "base_shift": 1.0, "max_shift": 1.0}
    else:
        assert not imp.regenerable and words in imp.reason, imp.reason


def test_cfg_one_keeps_the_unused_negative_prompt_and_the_way_back_is_forges():
    text = forge("Steps: 20, Sampler: Euler, Schedule type: Karras, CFG scale: 1, Distilled CFG Scale: 2.5, Seed: 9, "
                 "Size: 512x512, Model hash: 4610115bb0, Model: flux1-dev", prompt="a fox\nNegative prompt: ugly")
    imp = map_a1111(text)
    assert imp.generation.negative_prompt == "" and imp.generation.guidance_scale == 2.5
    back = a1111_parameters(decide(imp, None, options=Options(syntax_only=True)).document)
    for words in ("Negative prompt: ugly", "Sampler: Euler, Schedule type: Karras, CFG scale: 1, Distilled CFG Scale: 2.5",
                  "Module 1: ae, Module 2: clip_l, Module 3: t5xxl_fp16", "Diffusion in Low Bits: Automatic",
                  "Version: f2.0.1"):
        assert words in back, back
    assert "VAE:" not in back and "Scheduler config" not in back
    again = map_a1111(back)
    assert again.generation == imp.generation and again.model == imp.model


def test_a_forge_flux_image_of_the_tiny_model_regenerates_bit_exactly(tmp_path):
    """Forge's folders (Stable-diffusion/, text_encoder/, VAE/) and its infotext: the full import is exact."""
    root = lay_out_tiny_flux(tmp_path, ("Stable-diffusion/aigif-tiny-flux.safetensors", "text_encoder/clip_l.safetensors",
                                        "text_encoder/t5xxl_tiny.safetensors", "VAE/ae.safetensors"))
    short = file_sha256(root / "Stable-diffusion/aigif-tiny-flux.safetensors")[:10]
    engine = Engine(model_dirs=[root])
    ref = ModelRef(name="aigif-tiny-flux", sha256=short, local="diffusion_models/aigif-tiny-flux.safetensors",
                   text_encoders=(ComponentRef(local="text_encoders/clip_l.safetensors", subfolder="text_encoder"),
                                  ComponentRef(local="text_encoders/t5xxl_tiny.safetensors", subfolder="text_encoder_2")),
                   vae=ComponentRef(local="vae/ae.safetensors"))
    gen = Generation(prompt="a red fox in the snow", seed=77, num_inference_steps=3, guidance_scale=4.0, width=64,
                     height=64, scheduler="flow-euler-karras", min_sequence_length=256,
                     scheduler_config={"base_shift": 1.15, "max_shift": 1.15})
    made = engine.generate(gen, ref).image
    text = forge(f"Steps: 3, Sampler: Euler, Schedule type: Karras, CFG scale: 1, Distilled CFG Scale: 4, Seed: 77, "
                 f"Size: 64x64, Model hash: {short}, Model: aigif-tiny-flux", t5="t5xxl_tiny", prompt="a red fox in the snow")
    info = PngInfo()
    info.add_text("parameters", text)
    buf = io.BytesIO()
    Image.fromarray(made).save(buf, "PNG", pnginfo=info)
    imp = import_bytes(buf.getvalue())
    assert imp.regenerable and imp.generation == gen and imp.model == ref, imp.reason
    enc = encode_image(buf.getvalue(), engine=engine)
    assert enc.outcome.kind == EXACT, enc.outcome.reason
    json.dumps(imp.extra)            # the kept keys stay plain data
    assert np.array_equal(engine.regenerate(enc.outcome.document), made)


def test_a_forge_flux_image_with_a_lora_regenerates_bit_exactly(tmp_path):
    """``<lora:name:w>`` + ``Lora hashes`` (AutoV3) on a FLUX.1 infotext: the LoRA is found in Lora/ and applied."""
    from aigif.engine.digest import safetensors_data_sha256
    from aigif.syntax.elements import Lora

    from .test_engine_flow_lora import make_flow_lora

    root = lay_out_tiny_flux(tmp_path, ("Stable-diffusion/aigif-tiny-flux.safetensors", "text_encoder/clip_l.safetensors",
                                        "text_encoder/t5xxl_tiny.safetensors", "VAE/ae.safetensors"))
    (root / "Lora").mkdir()
    autov3 = safetensors_data_sha256(make_flow_lora(root / "Lora", "aigif-tiny-flux", "fox-style.safetensors", 6))[:12]
    text = forge(f"Steps: 3, Sampler: Euler, Schedule type: Karras, CFG scale: 1, Distilled CFG Scale: 4, Seed: 78, "
                 f"Size: 64x64, Model: aigif-tiny-flux, Lora hashes: \"fox-style: {autov3}\"", t5="t5xxl_tiny",
                 prompt="a red fox in the snow <lora:fox-style:0.4:0.9>")
    imp = map_a1111(text)
    assert imp.generation.prompt == "a red fox in the snow "
    assert imp.model.loras == (Lora(name="fox-style", weight=0.9, text_weight=0.4, sha256=autov3),)
    engine = Engine(model_dirs=[root])
    made = engine.generate(imp.generation, imp.model).image
    info = PngInfo()
    info.add_text("parameters", text)
    buf = io.BytesIO()
    Image.fromarray(made).save(buf, "PNG", pnginfo=info)
    enc = encode_image(buf.getvalue(), engine=engine)
    assert enc.outcome.kind == EXACT, enc.outcome.reason
    assert "<lora:fox-style:0.4:0.9>" in a1111_parameters(enc.outcome.document)
