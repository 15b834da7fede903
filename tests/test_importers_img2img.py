"""Image-to-image and inpainting of A1111 / Forge infotext and ComfyUI graphs import as the img2img element."""
import copy
import json
from pathlib import Path

import numpy as np
import pytest

import aigif
from aigif import ImageRef, Img2Img, dumps, loads
from aigif.importers import Options, a1111_parameters, encode_image, import_image
from aigif.importers.a1111 import map_a1111
from aigif.importers.comfyui import map_comfyui

FIX = Path(__file__).parent / "fixtures" / "importers"
SAMPLES = json.loads((FIX / "samples.json").read_text("utf-8"))
HEAD = "a castle on a hill\nNegative prompt: blurry\n"
BASE = "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly"
INIT = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def a1111(settings: str):
    return map_a1111(HEAD + BASE + ", " + settings)


def comfy_graph() -> dict:
    return json.loads(SAMPLES["comfyui_img2img"]["fields"]["prompt"])


def comfy(graph: dict, size=(768, 768)):
    return map_comfyui({"prompt": json.dumps(graph)}, graph, image_size=size)


# --- A1111 --------------------------------------------------------------------------------
def test_a1111_img2img_keeps_the_syntax_and_says_the_init_image_is_missing():
    imp = a1111("Denoising strength: 0.6")
    assert imp.has_syntax and imp.img2img == Img2Img(0.6) and "params" not in imp.extra
    assert not imp.regenerable and "init image not stored" in imp.reason and "--init-image" in imp.reason
    assert (imp.generation.width, imp.generation.height) == (512, 768)


def test_every_a1111_inpainting_key():
    imp = a1111("Denoising strength: 0.75, Mask blur: 4, Mask mode: Inpaint not masked, Inpaint area: Only masked, "
                "Masked area padding: 32, Masked content: latent noise")
    assert imp.img2img == Img2Img(0.75, inpaint=True, mask_blur=4, mask_invert=True, masked_padding=32, fill="latent-noise")
    assert "params" not in imp.extra and "masked content 'latent-noise'" in imp.reason
    assert "--mask" in a1111("Denoising strength: 0.75, Mask blur: 4").reason


@pytest.mark.parametrize("settings, words", [
    ("Denoising strength: 0.5, Soft inpainting enabled: True, Soft inpainting schedule bias: 1", "Soft inpainting"),
    ("Denoising strength: 0.5, Noise multiplier: 0.9", "Noise multiplier"),
    ("Denoising strength: 0.5, Image CFG scale: 1.5", "Image CFG scale"),
    ("Denoising strength: 0.5, Mask blur: 4, Inpaint area: Whole picture", "Inpaint area"),
    ("Denoising strength: 1.5", "strength"),
    ("Denoising strength: 0.5, Hires upscaler: Latent", "Denoising strength"),    # a broken hires fix is no img2img
])
def test_a1111_settings_the_element_cannot_say_stay_partial(settings, words):
    imp = a1111(settings)
    assert imp.has_syntax and not imp.regenerable and words in imp.reason, imp.reason


def test_the_way_back_gives_the_same_element():
    imp = a1111("Denoising strength: 0.75, Mask blur: 4, Inpaint area: Only masked, Masked area padding: 16, "
                "Masked content: fill")
    doc = aigif.Document(generation=imp.generation, model=imp.model, img2img=imp.img2img)
    again = map_a1111(a1111_parameters(doc))
    assert again.img2img == imp.img2img and again.generation == imp.generation
    no_blur = aigif.Document(generation=imp.generation, model=imp.model, img2img=Img2Img(0.5, inpaint=True))
    assert map_a1111(a1111_parameters(no_blur)).img2img == Img2Img(0.5, inpaint=True, mask_blur=0)


# --- ComfyUI ------------------------------------------------------------------------------
def test_comfyui_img2img_fixture():
    imp = import_image(next((FIX / "images").glob("comfyui_img2img.*")))
    assert imp.img2img == Img2Img(0.8700000000000001, ImageRef(name="example.png"))
    assert imp.generation.num_inference_steps == 22          # 20 steps at denoise 0.87: the last 20 of int(20 / 0.87)
    assert not imp.regenerable and "init image example.png not stored" in imp.reason
    assert imp.segments                                      # the graph is kept losslessly


def test_comfyui_set_latent_noise_mask_and_inpaint_nodes():
    g = comfy_graph()
    g["20"] = {"class_type": "LoadImageMask", "inputs": {"image": "mask.png", "channel": "alpha"}}
    g["21"] = {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["12", 0], "mask": ["20", 0]}}
    g["3"]["inputs"]["latent_image"] = ["21", 0]
    imp = comfy(copy.deepcopy(g))
    assert imp.img2img == Img2Img(0.8700000000000001, ImageRef(name="example.png"), inpaint=True, mask=ImageRef(name="mask.png"))
    g["12"] = {"class_type": "VAEEncodeForInpaint", "inputs": {"pixels": ["10", 0], "vae": ["14", 2], "mask": ["10", 1],
                                                               "grow_mask_by": 6}}
    g["3"]["inputs"]["latent_image"] = ["12", 0]
    del g["20"], g["21"]
    imp = comfy(copy.deepcopy(g))
    assert imp.img2img.fill == "gray" and imp.img2img.mask == ImageRef(name="example.png")
    assert "masked content 'gray'" in imp.reason
    g["12"] = {"class_type": "InpaintModelConditioning", "inputs": {"positive": ["6", 0], "negative": ["7", 0], "vae": ["14", 2],
                                                                    "pixels": ["10", 0], "mask": ["10", 1], "noise_mask": True}}
    g["3"]["inputs"].update(latent_image=["12", 2], positive=["12", 0], negative=["12", 1])
    imp = comfy(copy.deepcopy(g))
    assert imp.img2img.inpaint_model is True and imp.generation.prompt.startswith("photograph of victorian woman")


@pytest.mark.parametrize("mutate, words", [
    (lambda g: g["12"]["inputs"].update(vae=["99", 0]) or g.update({"99": {"class_type": "VAELoader",
                                                                           "inputs": {"vae_name": "x.safetensors"}}}),
     "another VAE"),
    (lambda g: g["12"]["inputs"].update(pixels=["99", 0]) or g.update({"99": {"class_type": "EmptyImage", "inputs": {}}}),
     "init image does not come from LoadImage"),
    (lambda g: g["3"]["inputs"].update(denoise=0.0), "denoise 0.0"),
])
def test_comfyui_img2img_graphs_the_element_cannot_say_stay_partial(mutate, words):
    g = comfy_graph()
    mutate(g)
    imp = comfy(copy.deepcopy(g))
    assert imp.has_syntax and not imp.regenerable and words in imp.reason, imp.reason


# --- the user gives the init image: regeneration --------------------------------------------
def test_encode_with_the_init_image_regenerates_an_a1111_img2img(tmp_path, aigif_home):
    """aigif's own img2img image, written back as A1111 infotext, imports exactly once its init image is given."""
    from PIL import Image

    from aigif.engine import Engine

    engine = Engine(threads=1)
    Image.fromarray(INIT).save(tmp_path / "init.png")
    res = aigif.generate("a fox", model="aigif-tiny-sd", steps=3, seed=5, init_image=INIT, strength=0.6, engine=engine)
    png = tmp_path / "made.png"
    from aigif.importers import png_info_for

    res.image.save(png, pnginfo=png_info_for(res.document))
    plain = encode_image(png, engine=engine)
    assert plain.kind == "pixels" and "init image not stored" in plain.outcome.reason
    enc = encode_image(png, engine=engine, options=Options(init_image=tmp_path / "init.png"))
    assert enc.kind == "exact", enc.outcome.reason
    doc = loads(enc.data)
    assert doc.img2img.image == ImageRef(sha256=res.document.img2img.image.sha256, name="init.png")
    with pytest.raises(aigif.InputImageError):
        aigif.decode(enc.data, engine=engine)
    assert aigif.decode(enc.data, engine=engine, init_image=tmp_path / "init.png").status == "exact"
    syntax_only = encode_image(png, options=Options(syntax_only=True))
    assert loads(syntax_only.data).img2img == Img2Img(0.6) and syntax_only.data.count(b"partial") == 0
