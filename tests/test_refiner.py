"""Refiner: the syntax element (segment 0x0d), its regeneration (denoising_end / denoising_start) and its import."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import aigif
from aigif import ConfigError, Document, Generation, HiresFix, ModelRef, Refiner, dumps, loads
from aigif.container import read_container
from aigif.importers import a1111_parameters, import_image
from aigif.importers.a1111 import map_a1111

from .fresh_process import decode_in_fresh_process

pytestmark = pytest.mark.usefixtures("aigif_home")

BASE = dict(prompt="a red lighthouse at dawn", seed=7, num_inference_steps=6, guidance_scale=7.5, width=64, height=64)
SDXL = ModelRef(name="aigif-tiny-sdxl")
FIX = Path(__file__).parent / "fixtures" / "importers"


@pytest.fixture(scope="module")
def refiner_dir(tmp_path_factory, aigif_home):
    """A model dir with 'my-refiner': the tiny SDXL with other UNet weights (a second model)."""
    from safetensors.numpy import load_file, save_file

    from aigif.engine.tiny import ensure_tiny

    root = tmp_path_factory.mktemp("models")
    folder = root / "my-refiner"
    shutil.copytree(ensure_tiny("aigif-tiny-sdxl"), folder)
    wfile = folder / "unet" / "diffusion_pytorch_model.safetensors"
    sd = load_file(str(wfile))
    for key in sorted(sd)[:8]:
        sd[key] = (sd[key] * 1.5).astype(sd[key].dtype)
    save_file(sd, str(wfile), metadata={"format": "pt"})
    return root


@pytest.fixture(scope="module")
def engine(refiner_dir):
    from aigif.engine import Engine

    return Engine(threads=1, model_dirs=[refiner_dir])


def test_element_round_trip_and_json():
    r = Refiner(model=ModelRef(name="sd_xl_refiner_1.0", sha256="7440042bbd"), switch_at=0.8, aesthetic_score=6.0,
                prompt="a sharper lighthouse")
    doc = Document(generation=Generation(**BASE), model=SDXL, refiner=r)
    data = dumps(doc)
    assert loads(data) == doc
    seg = read_container(data)[1][-1]
    assert seg.type == 0x0D and seg.critical
    d = aigif.document_to_dict(doc)
    assert d["refiner"] == {"model": {"name": "sd_xl_refiner_1.0", "sha256": "7440042bbd"}, "switch_at": 0.8,
                            "aesthetic_score": 6.0, "prompt": "a sharper lighthouse"}
    assert loads(aigif.pack(d)) == doc


@pytest.mark.parametrize("switch", [0, 1, 1.5, -0.1, float("nan")])
def test_switch_at_is_inside_the_schedule(switch):
    with pytest.raises(ConfigError):
        Refiner(model=SDXL, switch_at=switch)


def test_refiner_regenerates_bit_identically_in_a_fresh_process(engine, tmp_path, aigif_home, refiner_dir, monkeypatch):
    gen = Generation(**BASE, scheduler="euler-a")
    other = engine.generate(gen, SDXL, refiner=Refiner(model=ModelRef(local="my-refiner"), switch_at=0.5))
    plain = engine.generate(gen, SDXL).image
    assert not np.array_equal(other.image, plain)               # the second model denoised the last half
    recorded = other.document.refiner.model
    assert (recorded.local, recorded.family, len(recorded.sha256)) == ("my-refiner", "sdxl", 64)   # its digest is checked
    f = tmp_path / "r.aigif"
    f.write_bytes(dumps(other.document))
    monkeypatch.setenv("AIGIF_MODEL_DIRS", str(refiner_dir))
    decode_in_fresh_process([f], tmp_path / "out", aigif_home, [other.image])


def test_a_refiner_that_is_the_base_model_continues_the_same_schedule(engine):
    """denoising_end + denoising_start split one schedule: with the base model as refiner the image is the plain one."""
    gen = Generation(**BASE)
    same = engine.generate(gen, SDXL, refiner=Refiner(model=SDXL, switch_at=0.5)).image
    assert np.array_equal(same, engine.generate(gen, SDXL).image)


def test_what_the_engine_cannot_run_is_refused(engine):
    gen = Generation(**BASE)
    with pytest.raises(ConfigError, match="sd1 base model"):
        engine.generate(gen, ModelRef(name="aigif-tiny-sd"), refiner=Refiner(model=SDXL, switch_at=0.5))
    doc = Document(generation=gen, model=SDXL, refiner=Refiner(model=SDXL, switch_at=0.5),
                   hires=HiresFix(upscaler="latent-bilinear", strength=0.5, scale=2.0))
    with pytest.raises(ConfigError, match="refiner together with a hires fix"):
        engine.regenerate(doc)


# --- import --------------------------------------------------------------------------------
A1111 = ("a cat\nSteps: 30, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 1024x1024, Model hash: 31e35c80fc, "
         "Model: sd_xl_base_1.0, Refiner: sd_xl_refiner_1.0 [7440042bbd], Refiner switch at: 0.8, Version: v1.10.1")


def test_a1111_refiner_and_the_way_back():
    imp = map_a1111(A1111)
    assert imp.regenerable, imp.reason
    assert imp.refiner == Refiner(model=ModelRef(name="sd_xl_refiner_1.0", sha256="7440042bbd"), switch_at=0.8)
    doc = Document(generation=imp.generation, model=imp.model, refiner=imp.refiner, source=imp.source)
    back = map_a1111(a1111_parameters(doc))
    assert (back.generation, back.refiner) == (imp.generation, imp.refiner)
    both = map_a1111(A1111 + ", Denoising strength: 0.4, Hires upscale: 2, Hires upscaler: Latent")
    assert both.refiner and both.hires and not both.regenerable and "hires" in both.reason
    broken = map_a1111(A1111.replace("Refiner switch at: 0.8", "Refiner switch at: x"))
    assert not broken.regenerable and "Refiner switch at" in broken.reason


def test_comfyui_base_and_refiner_graph():
    imp = import_image(next((FIX / "images").glob("comfyui_sdxl_refiner.*")))
    assert imp.regenerable, imp.reason
    r = imp.refiner
    assert (r.model.name, r.model.weights_file, r.switch_at) == ("sd_xl_refiner_1.0", "sd_xl_refiner_1.0.safetensors", 0.8)
    assert r.prompt.startswith("daytime scenery") and r.negative_prompt is None      # the refiner's own prompt text
    assert imp.generation.num_inference_steps == 25 and imp.model.name == "sd_xl_base_1.0"
    g = json.loads(json.loads((FIX / "samples.json").read_text("utf-8"))["comfyui_sdxl_refiner"]["fields"]["prompt"])
    g["11"]["inputs"]["start_at_step"] = 15
    from aigif.importers.comfyui import map_comfyui

    bad = map_comfyui({"prompt": json.dumps(g)}, g, image_size=(64, 64))
    assert not bad.regenerable and "rest of the base pass" in bad.reason
