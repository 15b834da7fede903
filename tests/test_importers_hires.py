"""Hires fixes of A1111 / Forge infotext and ComfyUI two-pass graphs import as the hires element."""
import copy
import json
from pathlib import Path

import numpy as np
import pytest

import aigif
from aigif import Document, HiresFix, dumps, loads
from aigif.importers import Options, a1111_parameters, encode_image, import_image
from aigif.importers.a1111 import map_a1111
from aigif.importers.comfyui import map_comfyui

FIX = Path(__file__).parent / "fixtures" / "importers"
SAMPLES = json.loads((FIX / "samples.json").read_text("utf-8"))
HEAD = "a castle on a hill\nNegative prompt: blurry\n"
BASE = "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly"


def fx(name: str) -> Path:
    return next((FIX / "images").glob(name + ".*"))


def a1111(settings: str):
    return map_a1111(HEAD + BASE + ", " + settings)


def test_a1111_hires_fixture_is_regenerable_syntax(tmp_path):
    imp = import_image(fx("a1111_hires"))
    assert imp.regenerable and imp.hires == HiresFix(upscaler="latent-bilinear", strength=0.45, scale=2.0)
    assert "params" not in imp.extra            # every hires key went into the element
    enc = encode_image(fx("a1111_hires"), options=Options(syntax_only=True))
    doc = loads(dumps(enc.outcome.document))
    assert doc.hires == imp.hires and doc.extensions == () and doc.image_size == (1024, 1024)
    assert "regenerable: yes" in enc.outcome.reason


def test_every_a1111_hires_key():
    imp = a1111('Denoising strength: 0.55, Hires upscale: 1.5, Hires steps: 12, Hires upscaler: "Latent (bicubic antialiased)", '
                'Hires sampler: DPM++ 2M, Hires schedule type: Karras, Hires CFG Scale: 5, Hires checkpoint: Use same checkpoint, '
                'Hires prompt: "a castle on a hill, intricate", Hires negative prompt: lowres, Version: v1.10.1')
    assert imp.regenerable, imp.reason
    assert imp.hires == HiresFix(upscaler="latent-bicubic-antialiased", strength=0.55, scale=1.5, steps=12,
                                 scheduler="dpmpp-2m-karras", guidance_scale=5.0, prompt="a castle on a hill, intricate",
                                 negative_prompt="lowres")
    same = a1111("Denoising strength: 0.5, Hires upscale: 2, Hires steps: 20, Hires upscaler: Latent (nearest-exact), "
                 "Hires sampler: Use same sampler, Hires schedule type: Use same scheduler, Hires CFG Scale: 7")
    assert same.hires == HiresFix(upscaler="latent-nearest-exact", strength=0.5, scale=2.0)   # "same as the first pass"
    karras = a1111("Denoising strength: 0.5, Hires upscale: 2, Hires upscaler: Latent, Hires sampler: Euler, "
                   "Hires schedule type: Karras")
    assert karras.hires.scheduler == "euler-karras"          # the first pass's sampler is Euler a, no schedule type
    nokarras = a1111("Denoising strength: 0.5, Hires upscale: 2, Hires upscaler: Latent, Hires schedule type: Karras")
    assert not nokarras.regenerable and "hires sampler" in nokarras.reason     # Euler a has no Karras variant


def test_a1111_resize_and_sizes_that_are_not_multiples_of_8():
    imp = a1111("Denoising strength: 0.4, Hires resize: 768x1152, Hires upscaler: Latent")
    assert (imp.hires.width, imp.hires.height, imp.hires.scale) == (768, 1152, None)
    odd = a1111("Denoising strength: 0.4, Hires upscale: 1.3, Hires upscaler: Latent")   # 665.6 x 998.4 -> latents 83 x 124
    assert (odd.hires.scale, odd.hires.width, odd.hires.height) == (1.3, 664, 992)


@pytest.mark.parametrize("settings, words", [
    ("Denoising strength: 0.4, Hires upscale: 2, Hires upscaler: Latent, Hires checkpoint: other.safetensors", "second checkpoint"),
    ("Denoising strength: 0.4, Hires resize: 1024x1024, Hires upscaler: Latent", "crops"),
    ("Denoising strength: 0.4, Hires upscale: 2, Hires upscaler: Latent, Hires sampler: DPM adaptive", "hires sampler"),
    ("Denoising strength: 0.4, Hires upscale: 2, Hires upscaler: Latent, Hires Module 1: ae.safetensors", "Hires Module 1"),
    ("Hires upscale: 2, Hires upscaler: Latent", "incomplete"),
    ("Denoising strength: 0, Hires upscale: 2, Hires upscaler: Latent", "strength"),
    ("Denoising strength: 0.4, Hires upscale: 2, Hires upscaler: Latent, Hires prompt: <lora:x:1> a", "extra-network"),
])
def test_a1111_hires_the_element_cannot_say_stays_partial(settings, words):
    imp = a1111(settings)
    assert imp.has_syntax and not imp.regenerable and words in imp.reason, imp.reason
    assert "Hires upscale" in imp.extra["raw"]["parameters"]


def test_a1111_pixel_upscalers():
    from aigif.syntax.builtin import regenerable

    for name, ours in (("R-ESRGAN 4x+", "R-ESRGAN 4x+"), ("4x_NMKD-Siax_200k", "4x_NMKD-Siax_200k"), ("Lanczos", "lanczos"),
                       ("Nearest", "nearest"), ("4x-UltraSharp", "4x-UltraSharp"), ("None", "lanczos")):
        imp = a1111(f"Denoising strength: 0.3, Hires upscale: 2, Hires upscaler: {name}")
        assert imp.hires.upscaler == ours and imp.regenerable, name
    imp = a1111("Denoising strength: 0.3, Hires upscale: 2, Hires upscaler: SwinIR 4x")
    assert imp.hires.upscaler == "SwinIR_4x" and not imp.regenerable and "(swinir) is not supported" in imp.reason
    doc = Document(generation=imp.generation, model=imp.model, hires=imp.hires)
    assert regenerable(doc).startswith("no: hires fix with the upscaler 'SwinIR_4x'")


def test_the_way_back_gives_the_same_hires():
    for settings in ("Denoising strength: 0.55, Hires upscale: 1.5, Hires steps: 12, Hires upscaler: Latent (bicubic), "
                     "Hires sampler: DPM++ 2M, Hires schedule type: Karras, Hires CFG Scale: 5, Hires prompt: sharper",
                     "Denoising strength: 0.4, Hires resize: 768x1152, Hires upscaler: 4x-UltraSharp"):
        imp = a1111(settings)
        doc = Document(generation=imp.generation, model=imp.model, hires=imp.hires, source=imp.source)
        back = map_a1111(a1111_parameters(doc))
        assert (back.generation, back.hires) == (imp.generation, imp.hires)
    odd = HiresFix(upscaler="latent-area", strength=0.5, scale=2.0, seed=5, scheduler="ddim", scheduler_config={"eta": 0.5})
    doc = Document(generation=imp.generation, model=imp.model, hires=odd)
    assert map_a1111(a1111_parameters(doc)).hires == odd      # what A1111 cannot say goes in aigif's own keys


# --- ComfyUI ---------------------------------------------------------------------------------
def comfy_hires_graph() -> dict:
    """The ComfyUI two-pass example (comfyui_hires_latent) with a second-pass scheduler the registry has."""
    g = json.loads(SAMPLES["comfyui_hires_latent"]["fields"]["prompt"])
    g["11"]["inputs"]["scheduler"] = "karras"
    return g


def comfy(g, size=(64, 64)):
    return map_comfyui({"prompt": json.dumps(g)}, g, image_size=size)


def test_comfyui_two_pass_graph_maps_to_hires():
    imp = comfy(comfy_hires_graph())
    assert imp.regenerable, imp.reason
    # 14 steps at denoise 0.5: the tail of a 28-step schedule; its own seed and sampler
    assert imp.hires == HiresFix(upscaler="latent-nearest-exact", strength=0.5, width=1152, height=1152, steps=28,
                                 seed=469771404043268, scheduler="dpmpp-2m-karras")
    assert (imp.generation.width, imp.generation.num_inference_steps) == (768, 12)
    assert imp.segments                        # the graph itself is kept too
    first = comfy(comfy_hires_graph(), size=(768, 768))   # the saved image is the first pass's (both are saved)
    assert first.regenerable and first.hires is None


def test_comfyui_upscale_by_and_second_pass_prompt():
    g = comfy_hires_graph()
    g["10"] = {"class_type": "LatentUpscaleBy", "inputs": {"upscale_method": "bicubic", "scale_by": 1.5, "samples": ["3", 0]}}
    g["20"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "a sharper castle", "clip": ["16", 1]}}
    g["11"]["inputs"].update(positive=["20", 0], cfg=5.0, seed=g["3"]["inputs"]["seed"], steps=6, denoise=0.6)
    imp = comfy(g)
    assert imp.regenerable, imp.reason
    assert imp.hires == HiresFix(upscaler="latent-bicubic", strength=0.6, scale=1.5, steps=10, scheduler="dpmpp-2m-karras",
                                 guidance_scale=5.0, prompt="a sharper castle")


@pytest.mark.parametrize("mutate, words", [
    (lambda g: g["11"]["inputs"].update(scheduler="sgm_uniform"), "scheduler 'sgm_uniform'"),
    (lambda g: g["10"]["inputs"].update(crop="center"), "crops"),
    (lambda g: g.update({"30": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "b.safetensors"}}})
     or g["11"]["inputs"].update(model=["30", 0]), "another model"),
    (lambda g: g["10"]["inputs"].update(samples=["5", 0]), "first sampler"),
    (lambda g: g.update({"31": {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["30", 1]}},
                         "30": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "b.safetensors"}}})
     or g["11"]["inputs"].update(positive=["31", 0]), "text encoder"),
    (lambda g: g.update({"40": {"class_type": "LatentUpscale", "inputs": {"upscale_method": "bilinear", "width": 64,
                                                                           "height": 64, "crop": "disabled", "samples": ["11", 0]}}}),
     "used by other nodes"),
])
def test_comfyui_two_pass_graphs_the_element_cannot_say_stay_partial(mutate, words):
    g = comfy_hires_graph()
    mutate(g)
    imp = comfy(copy.deepcopy(g))
    assert imp.has_syntax and not imp.regenerable and words in imp.reason, imp.reason


def test_imported_hires_regenerates_with_the_engine(aigif_home):
    text = ("a castle\nSteps: 3, Sampler: Euler a, CFG scale: 7, Seed: 11, Size: 64x64, AIGIF model: aigif-tiny-sd, "
            "Denoising strength: 0.5, Hires upscale: 1.5, Hires upscaler: Latent (bicubic), Hires steps: 4")
    imp = map_a1111(text)
    assert imp.regenerable, imp.reason
    doc = Document(generation=imp.generation, model=imp.model, hires=imp.hires)
    out = aigif.decode(dumps(doc))
    assert out.image.size == (96, 96)
    again = aigif.decode(dumps(doc))
    assert np.array_equal(np.asarray(out.image), np.asarray(again.image))


def test_families_without_a_second_pass_are_not_called_regenerable():
    flux = map_a1111("a fox\nSteps: 4, Sampler: Euler, CFG scale: 3.5, Seed: 1, Size: 64x64, AIGIF model: aigif-tiny-flux, "
                     "Denoising strength: 0.5, Hires upscale: 2, Hires upscaler: Latent")
    assert flux.hires is not None and not flux.regenerable and "hires fix on flux1" in flux.reason
    sd1 = map_a1111("a fox\nSteps: 4, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 64x64, AIGIF model: aigif-tiny-sd, "
                    "Refiner: other [0123456789], Refiner switch at: 0.8")
    assert sd1.refiner is not None and not sd1.regenerable and "refiner on a sd1 base model" in sd1.reason


# --- ComfyUI: the hires fix in pixel space (upscale model and/or resize) ------------------------------------
def comfy_pixel_graph(model: str | None = "4x-UltraSharp.pth", scale: dict | None = None) -> dict:
    """comfy_hires_graph with the latent upscale replaced by VAEDecode -> [model] -> [resize] -> VAEEncode."""
    g = comfy_hires_graph()
    del g["10"]
    src = ["8", 0]
    if model is not None:
        g["20"] = {"class_type": "UpscaleModelLoader", "inputs": {"model_name": model}}
        g["21"] = {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["20", 0], "image": src}}
        src = ["21", 0]
    if scale is not None:
        g["22"] = {"class_type": "ImageScaleBy" if "scale_by" in scale else "ImageScale", "inputs": {**scale, "image": src}}
        src = ["22", 0]
    g["23"] = {"class_type": "VAEEncode", "inputs": {"pixels": src, "vae": ["16", 2]}}
    g["11"]["inputs"]["latent_image"] = ["23", 0]
    return g


SECOND = dict(strength=0.5, steps=28, seed=469771404043268, scheduler="dpmpp-2m-karras")


@pytest.mark.parametrize("graph, size, hires", [
    (comfy_pixel_graph(scale={"upscale_method": "lanczos", "scale_by": 0.375}), (1152, 1152),
     HiresFix(upscaler="4x-UltraSharp", scale=1.5, **SECOND)),
    (comfy_pixel_graph("RealESRGAN_x4plus.pth"), (3072, 3072), HiresFix(upscaler="R-ESRGAN 4x+", scale=4.0, **SECOND)),
    (comfy_pixel_graph("esrgan/4x_NMKD-Siax_200k.safetensors", {"upscale_method": "bilinear", "width": 1024, "height": 1536,
                                                                 "crop": "disabled"}), (1024, 1536),
     HiresFix(upscaler="4x_NMKD-Siax_200k", width=1024, height=1536, **SECOND)),
    (comfy_pixel_graph("MyUpscaler.pth"), (1536, 1536), HiresFix(upscaler="MyUpscaler", scale=2.0, **SECOND)),
    (comfy_pixel_graph(None, {"upscale_method": "lanczos", "scale_by": 1.25}), (960, 960),
     HiresFix(upscaler="lanczos", scale=1.25, **SECOND)),
    (comfy_pixel_graph(None, {"upscale_method": "nearest-exact", "width": 1100, "height": 1100, "crop": "disabled"}),
     (1100, 1100), HiresFix(upscaler="nearest", width=1096, height=1096, **SECOND)),
])
def test_comfyui_pixel_hires_maps_to_the_upscaler(graph, size, hires):
    imp = comfy(copy.deepcopy(graph), size)
    assert imp.regenerable, imp.reason
    assert imp.hires == hires and (imp.generation.width, imp.generation.num_inference_steps) == (768, 12)
    if hires.upscaler != "MyUpscaler":     # a model of unknown scale takes the image's size: a 1x model is possible
        first = comfy(copy.deepcopy(graph), (768, 768))         # the saved image is the first pass's
        assert first.regenerable and first.hires is None


@pytest.mark.parametrize("graph, words", [
    (comfy_pixel_graph(None, {"upscale_method": "area", "scale_by": 1.5}), "resize method 'area'"),
    (comfy_pixel_graph("001_SwinIR-M_x4.pth"), None),
    (comfy_pixel_graph(scale={"upscale_method": "lanczos", "width": 1024, "height": 1024, "crop": "center"}), "crops"),
])
def test_comfyui_pixel_hires_the_element_cannot_say(graph, words):
    imp = comfy(copy.deepcopy(graph), (1152, 1152))
    if words is None:      # a model outside the registry is read as ESRGAN when it runs: kept, by its file stem
        assert imp.regenerable and imp.hires.upscaler == "001_SwinIR-M_x4"
        return
    assert imp.has_syntax and not imp.regenerable and words in imp.reason, imp.reason


def test_comfyui_upscale_after_the_last_pass_stays_partial():
    g = json.loads(SAMPLES["comfyui_hires_latent"]["fields"]["prompt"])
    del g["10"], g["11"], g["12"], g["13"]
    g["20"] = {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-UltraSharp.pth"}}
    g["21"] = {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["20", 0], "image": ["8", 0]}}
    g["9"]["inputs"]["images"] = ["21", 0]
    imp = comfy(g, (3072, 3072))
    assert imp.has_syntax and not imp.regenerable and "Upscale" in imp.reason and "outside a hires pass" in imp.reason
