"""Hires fix: the syntax element (segment 0x0b), its JSON form, and its regeneration by the engine and record()."""
import numpy as np
import pytest

import aigif
from aigif import ConfigError, CorruptError, Document, Generation, HiresFix, LimitError, ModelRef, dumps, loads
from aigif.errors import ModelError, UnsafeModelError
from aigif.container import read_container

from .fresh_process import decode_in_fresh_process

pytestmark = pytest.mark.usefixtures("aigif_home")

BASE = dict(prompt="a red lighthouse at dawn", seed=7, num_inference_steps=3, guidance_scale=7.5, width=64, height=64)
TINY = ModelRef(name="aigif-tiny-sd")


@pytest.fixture(scope="module")
def engine(aigif_home):
    from aigif.engine import Engine

    return Engine(threads=1)


def hires(**kw):
    return HiresFix(**{"upscaler": "latent-bicubic", "strength": 0.6, "scale": 2.0, "steps": 3, **kw})


# --- syntax ------------------------------------------------------------------------------
def test_element_round_trip_and_tool_names():
    h = HiresFix(upscaler="Latent (bicubic antialiased)", strength=0.45, scale=1.5, steps=12, seed=3, scheduler="DPM++ 2M Karras",
                 scheduler_config={"timestep_spacing": "trailing"}, guidance_scale=5.0, prompt="sharp", negative_prompt="")
    assert h.upscaler == "latent-bicubic-antialiased" and h.scheduler == "dpmpp-2m-karras"
    doc = Document(generation=Generation(**BASE), model=TINY, hires=h)
    data = dumps(doc)
    assert loads(data) == doc
    assert [s.type for s in read_container(data)[1]] == [0x03, 0x05, 0x0B]
    assert read_container(data)[1][-1].critical        # a decoder that does not know it must refuse the file
    assert doc.image_size == (96, 96)


def test_second_pass_takes_the_first_pass_values_where_absent():
    gen = Generation(**BASE, scheduler="euler-a", scheduler_config={"steps_offset": 1}, negative_prompt="blurry")
    second = HiresFix(upscaler="latent-bilinear", strength=0.5, width=128, height=96).second_pass(gen)
    assert (second.width, second.height, second.seed, second.prompt, second.negative_prompt) == (128, 96, 7, gen.prompt, "blurry")
    assert (second.scheduler, second.scheduler_config, second.num_inference_steps) == ("euler-a", {"steps_offset": 1}, 3)
    own = HiresFix(upscaler="latent-bilinear", strength=0.5, scale=2, scheduler="ddim", seed=9, prompt="p", steps=5).second_pass(gen)
    assert (own.scheduler, own.scheduler_config, own.seed, own.prompt, own.num_inference_steps) == ("ddim", None, 9, "p", 5)


@pytest.mark.parametrize("kw", [dict(strength=0.0), dict(strength=1.5), dict(scale=None), dict(scale=0), dict(scale=17),
                                dict(width=64), dict(steps=0), dict(seed=-1), dict(upscaler=""),
                                dict(scheduler_config={"a": 1}), dict(strength=float("nan"))])
def test_bad_values_are_refused_when_built(kw):
    with pytest.raises(ConfigError):
        HiresFix(**{"upscaler": "latent-bilinear", "strength": 0.5, "scale": 2.0, **kw})


def test_json_form_pack_and_info(tmp_path):
    desc = {"model": "aigif-tiny-sd", **BASE, "hires": {"upscaler": "Latent", "strength": 0.5, "scale": 2}}
    doc = loads(aigif.pack(desc))
    assert doc.hires == HiresFix(upscaler="latent-bilinear", strength=0.5, scale=2.0)
    assert aigif.document_to_dict(doc)["hires"] == {"upscaler": "latent-bilinear", "strength": 0.5, "scale": 2.0}
    assert aigif.document_from_dict(aigif.document_to_dict(doc)) == doc
    with pytest.raises(ConfigError, match="unknown key"):
        aigif.pack({**desc, "hires": {"upscaler": "latent-bilinear", "strength": 0.5, "scale": 2, "denoise": 1}})
    with pytest.raises(ConfigError, match="first pass"):
        Document(pixels=b"x", hires=HiresFix(upscaler="latent-bilinear", strength=0.5, scale=2.0))


def test_stamp_fingerprint_has_the_hires_size():
    from aigif.syntax.elements import Fingerprint, Platform

    platform = Platform(device="cpu", dtype="float32", attention="sdpa", threads=1, deterministic=True)
    fp = Fingerprint(pixel_sha256="0123456789abcdef", width=128, height=128, perceptual="a5c30f11")
    doc = Document(generation=Generation(**BASE), model=TINY, hires=hires(), platform=platform, fingerprint=fp)
    data = dumps(doc)
    from aigif.syntax.registry import SEG_STAMP

    assert SEG_STAMP in [s.type for s in read_container(data)[1]]     # the compact stamp, not the full elements
    assert loads(data) == doc


def test_unknown_upscaler_code_and_missing_strength_are_corrupt():
    from aigif.container import Segment, write_container
    from aigif.syntax.schema import encode_element

    doc = Document(generation=Generation(**BASE), model=TINY)
    core = read_container(dumps(doc))[1]
    good = encode_element(hires())
    for payload in (b"\x08\x7f" + good[2:], b"\x08\x03\x18\x02"):
        with pytest.raises(CorruptError):
            loads(write_container([*core, Segment(0x0B, payload)]))


# --- regeneration ------------------------------------------------------------------------
def test_generate_then_decode_in_a_fresh_process_is_bit_identical(engine, tmp_path, aigif_home):
    files, images = [], []
    cases = [("aigif-tiny-sd", hires()), ("aigif-tiny-sd", hires(upscaler="latent-nearest-exact", scheduler="euler-a", seed=3,
                                                                     prompt="a blue lighthouse", guidance_scale=4.0)),
             ("aigif-tiny-sdxl", hires(upscaler="latent-bilinear-antialiased", scale=1.5, strength=0.4))]
    for i, (model, h) in enumerate(cases):
        res = engine.generate(Generation(**BASE), ModelRef(name=model), hires=h)
        w, h2 = res.document.image_size
        assert res.image.shape == (h2, w, 3) and w > 64
        f = tmp_path / f"h{i}.aigif"
        f.write_bytes(dumps(res.document))
        files.append(f)
        images.append(res.image)
    decode_in_fresh_process(files, tmp_path / "out", aigif_home, images)


def test_the_second_pass_changes_the_image(engine):
    first = engine.generate(Generation(**BASE), TINY).image
    a = engine.generate(Generation(**BASE), TINY, hires=hires()).image
    b = engine.generate(Generation(**BASE), TINY, hires=hires(strength=0.3)).image
    c = engine.generate(Generation(**BASE), TINY, hires=hires(upscaler="latent-nearest")).image
    assert a.shape == (128, 128, 3) and first.shape == (64, 64, 3)
    assert not np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("upscaler", ["latent-bicubic", "lanczos"])
def test_engine_equals_bare_diffusers_calls(engine, upscaler):
    """spec/engine.md 2.1 word for word: first pass latents and float32 interpolate (a latent upscaler) or its decoded
    image and PIL's Lanczos (a pixel one), then img2img from_pipe with a CPU seed."""
    import diffusers
    import torch
    from PIL import Image

    from aigif.engine.schedulers import make_scheduler

    pixel = upscaler == "lanczos"
    ours = engine.generate(Generation(**BASE), TINY, hires=hires(upscaler=upscaler)).image
    loaded = engine._loaded(TINY, "float32", "sdpa")
    pipe = loaded.pipe
    torch.set_num_threads(1)
    with torch.inference_mode():
        pipe.scheduler = make_scheduler(loaded.scheduler_cls, loaded.scheduler_config, None, None)
        first = pipe(BASE["prompt"], num_inference_steps=3, guidance_scale=7.5, width=64, height=64,
                     generator=torch.Generator("cpu").manual_seed(7), output_type="pil" if pixel else "latent").images
        up = first[0].resize((128, 128), Image.Resampling.LANCZOS) if pixel else \
            torch.nn.functional.interpolate(first.float(), size=(16, 16), mode="bicubic", antialias=False)
        i2i = diffusers.StableDiffusionImg2ImgPipeline.from_pipe(
            pipe, scheduler=make_scheduler(loaded.scheduler_cls, loaded.scheduler_config, None, None))
        out = i2i(BASE["prompt"], image=up, strength=0.6, num_inference_steps=3, guidance_scale=7.5,
                  generator=torch.Generator("cpu").manual_seed(7), output_type="np").images[0]
    assert np.array_equal(np.round(out * 255).astype(np.uint8), ours)


def test_record_with_hires_reproduces_with_the_engine(aigif_home):
    import diffusers

    from aigif.engine.tiny import ensure_tiny

    pipe = diffusers.StableDiffusionPipeline.from_pretrained(ensure_tiny("aigif-tiny-sd"))
    pipe.set_progress_bar_config(disable=True)
    rec = aigif.record(pipe, prompt="a red fox", seed=5, num_inference_steps=3, width=64, height=64,
                       hires={"upscaler": "latent-bilinear", "strength": 0.5, "scale": 1.5, "scheduler": "euler"})
    assert rec.image.size == (96, 96) and rec.document.hires.scheduler == "euler"
    out = aigif.decode(rec.data)
    assert out.status == "exact" and np.array_equal(np.asarray(out.image), np.asarray(rec.image))
    rec2 = aigif.record(pipe, prompt="a red fox", seed=5, num_inference_steps=3, width=64, height=64,
                        hires=HiresFix(upscaler="latent-bilinear", strength=0.5, scale=1.5))
    assert np.array_equal(np.asarray(aigif.decode(rec2.data).image), np.asarray(rec2.image))


def test_what_the_engine_cannot_run_is_refused_before_loading(engine):
    for h, why in ((hires(upscaler="SwinIR 4x"), "SwinIR_4x.*swinir.*not supported"), (hires(upscaler="latent-bislerp"), "interpolate")):
        doc = Document(generation=Generation(**BASE), model=ModelRef(name="sd15"), hires=h)   # sd15 is not installed here
        with pytest.raises(ConfigError, match=f"not regenerable.*{why}"):
            engine.regenerate(doc)
    for h, err, why in ((hires(upscaler="4x-UltraSharp"), ModelError, "4x-UltraSharp not found in --model-dir"),
                        (hires(upscaler="my_upscaler.pth"), UnsafeModelError, "convert it to .safetensors")):
        with pytest.raises(err, match=f"(?i){why}"):
            engine.regenerate(Document(generation=Generation(**BASE), model=ModelRef(name="sd15"), hires=h))
    doc = Document(generation=Generation(**BASE), model=TINY, hires=hires(width=60, height=64))
    with pytest.raises(ConfigError, match="multiples of 8"):
        engine.regenerate(doc)


def test_limits_count_the_second_pass(engine):
    big = Document(generation=Generation(**BASE), model=ModelRef(name="sd15"), hires=hires(scale=16, steps=10000, strength=1.0))
    with pytest.raises(LimitError):
        engine.regenerate(big)
    with pytest.raises(LimitError, match="second pass"):
        engine.regenerate(big, limits=aigif.Limits(max_render_pixels=2**30))


def test_cli_generate_with_hires_and_decode(tmp_path):
    from aigif.cli import main

    out = tmp_path / "h.aigif"
    assert main(["generate", "-p", "a boat", "--seed", "1", "--steps", "2", "--hires-scale", "1.5", "--hires-strength", "0.5",
                 "--hires-upscaler", "latent-bicubic", "-o", str(out), "-q"]) == 0
    doc = loads(out.read_bytes())
    assert doc.hires == HiresFix(upscaler="latent-bicubic", strength=0.5, scale=1.5) and doc.image_size == (96, 96)
    assert main(["decode", str(out), "-o", str(tmp_path / "h.png"), "-q"]) == 0
