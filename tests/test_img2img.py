"""Image-to-image and inpainting: the syntax element (segment 0x0f), its images, and regeneration by the engine."""
import io
import struct
import zlib

import numpy as np
import pytest

import aigif
from aigif import (ConfigError, CorruptError, Document, Generation, ImageRef, Img2Img, InputImageError, ModelRef, dumps,
                   loads)
from aigif.container import Segment, read_container, write_container
from aigif.inputs import InputImages, image_ref, pixel_sha256
from aigif.syntax.builtin import regenerable

from .fresh_process import decode_in_fresh_process

pytestmark = pytest.mark.usefixtures("aigif_home")

BASE = dict(prompt="a red lighthouse at dawn", seed=7, num_inference_steps=4, guidance_scale=7.5, width=64, height=64)
TINY = ModelRef(name="aigif-tiny-sd")
INIT = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
MASK = np.zeros((64, 64), np.uint8)
MASK[16:48, 16:48] = 255


@pytest.fixture(scope="module")
def engine(aigif_home):
    from aigif.engine import Engine

    return Engine(threads=1)


def inpaint(store=True, **kw):
    return Img2Img(**{"strength": 0.75, "image": image_ref(INIT, store=store), "inpaint": True,
                      "mask": image_ref(MASK, store=store), **kw})


def png_header(w: int, h: int) -> bytes:
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


# --- syntax ------------------------------------------------------------------------------
def test_element_round_trip_critical_and_json():
    el = inpaint(mask_blur=4, mask_invert=True, masked_padding=32, inpaint_model=False)
    doc = Document(generation=Generation(**BASE), model=TINY, img2img=el)
    data = dumps(doc)
    assert loads(data) == doc
    seg = read_container(data)[1][-1]
    assert seg.type == 0x0F and seg.critical            # a decoder that does not know it must refuse the file
    j = aigif.document_to_dict(doc)
    assert j["img2img"]["mask"]["png"].keys() == {"base64"} and j["img2img"]["mask_blur"] == 4
    assert aigif.document_from_dict(j) == doc
    assert aigif.loads(aigif.pack(j)) == doc


def test_digest_only_is_small_and_the_mask_a_one_bit_png():
    doc = Document(generation=Generation(**BASE), model=TINY, img2img=Img2Img(0.6, image_ref(INIT, name="street.png")))
    assert len(dumps(doc)) < 100
    from PIL import Image

    assert Image.open(io.BytesIO(image_ref(MASK, store=True).png)).mode == "1"
    assert image_ref(MASK).sha256 == pixel_sha256(MASK) != pixel_sha256(INIT)


@pytest.mark.parametrize("kw", [dict(strength=0.0), dict(strength=1.5), dict(strength=float("nan")), dict(mask_blur=4),
                                dict(mask_invert=True), dict(fill="latent noise"), dict(masked_padding=-1),
                                dict(inpaint=True, mask_blur=2000), dict(image="a.png"), dict(inpaint=1)])
def test_bad_values_are_refused_when_built(kw):
    with pytest.raises(ConfigError):
        Img2Img(**{"strength": 0.5, **kw})


@pytest.mark.parametrize("kw", [dict(), dict(sha256="ab" * 31), dict(sha256="AB" * 32), dict(png=b"GIF89a"),
                                dict(name=""), dict(name="x" * 1025)])
def test_bad_image_references_are_refused(kw):
    with pytest.raises(ConfigError):
        ImageRef(**kw)


def test_tool_fill_names_and_regenerable():
    gen, model = Generation(**BASE), TINY
    imported = Img2Img(0.75, inpaint=True, mask_blur=4, fill="latent noise")
    assert imported.fill == "latent-noise"
    assert regenerable(Document(generation=gen, model=model, img2img=imported)).startswith("no: inpainting with masked content")
    named = Img2Img(0.6, ImageRef(name="photo.png"))
    assert regenerable(Document(generation=gen, model=model, img2img=named)) == \
        "no: init image photo.png not stored (decode it with --init-image / --mask)"
    assert regenerable(Document(generation=gen, model=model, img2img=inpaint())) == "yes"
    assert regenerable(Document(generation=gen, model=model, img2img=Img2Img(0.6))) == \
        "no: image-to-image: init image not stored (the file does not identify it)"


# --- regeneration ------------------------------------------------------------------------
def test_generate_then_decode_in_a_fresh_process_is_bit_identical(engine, tmp_path, aigif_home):
    cases = [("aigif-tiny-sd", Img2Img(0.6, image_ref(INIT, store=True))),
             ("aigif-tiny-sd", inpaint(mask_blur=3, masked_padding=8)),
             ("aigif-tiny-sdxl", inpaint(mask_invert=True))]
    files, images = [], []
    for i, (model, el) in enumerate(cases):
        res = engine.generate(Generation(**BASE), ModelRef(name=model), img2img=el)
        f = tmp_path / f"i{i}.aigif"
        f.write_bytes(dumps(res.document))
        files.append(f)
        images.append(res.image)
    assert not np.array_equal(images[0], engine.generate(Generation(**BASE), TINY).image)   # the init image counts
    decode_in_fresh_process(files, tmp_path / "out", aigif_home, images)


def test_engine_equals_bare_diffusers_calls(engine):
    """spec/engine.md 2.3 word for word: from_pipe, the init image as PIL, a CPU generator seeded with the seed."""
    import diffusers
    import torch
    from PIL import Image

    from aigif.engine.schedulers import make_scheduler

    ours = engine.generate(Generation(**BASE), TINY, img2img=Img2Img(0.6, image_ref(INIT, store=True))).image
    loaded = engine._loaded(TINY, "float32", "sdpa")
    torch.set_num_threads(1)
    with torch.inference_mode():
        loaded.pipe.scheduler = make_scheduler(loaded.scheduler_cls, loaded.scheduler_config, None, None)
        i2i = diffusers.StableDiffusionImg2ImgPipeline.from_pipe(loaded.pipe)
        out = i2i(BASE["prompt"], image=Image.fromarray(INIT), strength=0.6, num_inference_steps=4, guidance_scale=7.5,
                  generator=torch.Generator("cpu").manual_seed(7), output_type="np").images[0]
    assert np.array_equal(ours, np.clip(np.round(out * 255), 0, 255).astype(np.uint8))


def test_strength_mask_and_settings_change_the_image(engine):
    gen = Generation(**BASE)
    a = engine.generate(gen, TINY, img2img=inpaint()).image
    assert not np.array_equal(a, engine.generate(gen, TINY, img2img=inpaint(strength=0.5)).image)
    assert not np.array_equal(a, engine.generate(gen, TINY, img2img=inpaint(mask_blur=6)).image)
    assert not np.array_equal(a, engine.generate(gen, TINY, img2img=inpaint(mask_invert=True)).image)


def test_referenced_images_come_from_the_caller_and_are_checked(engine):
    gen = Generation(**BASE)
    el = inpaint(store=False)
    res = engine.generate(gen, TINY, img2img=el, inputs=InputImages(INIT, MASK))
    doc = loads(dumps(res.document))
    with pytest.raises(InputImageError, match="not stored"):
        engine.decode(doc)
    with pytest.raises(InputImageError, match="mask .* not stored|--mask"):
        engine.decode(doc, inputs=InputImages(INIT))
    with pytest.raises(InputImageError, match="does not match"):
        engine.decode(doc, inputs=InputImages(INIT[::-1].copy(), MASK))
    with pytest.raises(InputImageError, match="32x64"):
        engine.decode(doc, inputs=InputImages(INIT[:, :32].copy(), MASK))
    assert engine.decode(doc, inputs=InputImages(INIT, MASK)).report.status == "exact"


def test_hostile_stored_images_are_refused_before_decoding(engine):
    gen = Generation(**BASE)
    for png in (png_header(16384, 16384), png_header(64, 64), png_header(32, 64), b"\x89PNG\r\n\x1a\n" + b"\0" * 40):
        doc = Document(generation=gen, model=TINY, img2img=Img2Img(0.6, ImageRef(png=png)))
        with pytest.raises(CorruptError, match="stored init image"):
            engine.decode(loads(dumps(doc)))


def test_what_the_engine_cannot_run_is_refused_before_any_model_loads(tmp_path):
    from aigif.engine import Engine

    eng = Engine(threads=1, model_dirs=[tmp_path])
    gen = Generation(**BASE)
    missing = ModelRef(local="no-such-model")
    for el, why in ((Img2Img(0.6), "does not identify"), (inpaint(fill="fill"), "masked content"),
                    (Img2Img(0.6, ImageRef(name="a.png")), "not stored")):
        with pytest.raises(aigif.AigifError, match=why):
            eng.decode(Document(generation=gen, model=missing, img2img=el))
    assert eng.pipelines_loaded == 0


def test_inpaint_model_and_passes_that_do_not_combine(engine):
    gen = Generation(**BASE)
    with pytest.raises(ConfigError, match="dedicated inpainting model"):
        engine.generate(gen, TINY, img2img=inpaint(inpaint_model=True))
    hires = aigif.HiresFix(upscaler="latent-bilinear", strength=0.5, scale=2.0)
    with pytest.raises(ConfigError, match="hires"):
        engine.generate(gen, TINY, img2img=inpaint(), hires=hires)
    with pytest.raises(ConfigError, match="batch"):
        engine.generate(Generation(**BASE, batch_index=2), TINY, img2img=inpaint())


@pytest.mark.parametrize("model", ["aigif-tiny-flux", "aigif-tiny-sd3"])
def test_flow_families_image_to_image(engine, model):
    gen = Generation(prompt="a fox", seed=3, num_inference_steps=3, guidance_scale=3.5, width=64, height=64)
    ref = ModelRef(name=model)
    res = engine.generate(gen, ref, img2img=Img2Img(0.7, image_ref(INIT, store=True)))
    assert np.array_equal(engine.regenerate(loads(dumps(res.document))), res.image)
    assert not np.array_equal(res.image, engine.generate(gen, ref).image)
    with pytest.raises(ConfigError, match="inpainting"):
        engine.generate(gen, ref, img2img=inpaint())


def test_unknown_fill_code_is_corrupt():
    doc = Document(generation=Generation(**BASE), model=TINY)
    core = read_container(dumps(doc))[1]
    with pytest.raises(CorruptError):
        loads(write_container([*core, Segment(0x0F, b"\x08\x06\x18\x01\x40\x7f")]))


# --- API and CLI ---------------------------------------------------------------------------
def test_api_generate_and_decode_with_an_init_image_file(tmp_path, engine):
    from PIL import Image

    Image.fromarray(INIT).save(tmp_path / "a.png")
    Image.fromarray(MASK).save(tmp_path / "m.png")
    res = aigif.generate("a fox", model="aigif-tiny-sd", steps=3, seed=1, engine=engine, init_image=tmp_path / "a.png",
                         mask=tmp_path / "m.png", strength=0.6, img2img={"mask_blur": 2}, output=tmp_path / "f.aigif")
    el = res.document.img2img
    assert (el.image.name, el.mask.name, el.mask_blur, el.inpaint, el.image.png) == ("a.png", "m.png", 2, True, None)
    assert res.image.size == (64, 64)
    out = aigif.decode(tmp_path / "f.aigif", engine=engine, init_image=tmp_path / "a.png", mask=MASK)
    assert out.status == "exact"
    # an .aigif as init image: its decoded pixels, referenced by its name
    chained = aigif.generate("a cat", model="aigif-tiny-sd", steps=3, seed=2, engine=engine,
                             init_image=_stored_file(tmp_path, engine), strength=0.5)
    assert chained.document.img2img.image.aigif == "stored.aigif"
    with pytest.raises(ConfigError, match="strength goes with"):
        aigif.generate("a fox", model="aigif-tiny-sd", engine=engine, strength=0.5)
    with pytest.raises(ConfigError, match="differs"):
        aigif.generate("a fox", model="aigif-tiny-sd", engine=engine, init_image=INIT, width=128)


def _stored_file(tmp_path, engine):
    path = tmp_path / "stored.aigif"
    aigif.generate("a hill", model="aigif-tiny-sd", steps=3, seed=4, engine=engine, init_image=INIT, store_images=True,
                   output=path)
    return path


def test_cli_generate_info_decode(tmp_path):
    from PIL import Image
    from typer.testing import CliRunner

    from aigif.cli import app

    Image.fromarray(INIT).save(tmp_path / "a.png")
    run = CliRunner().invoke
    res = run(app, ["generate", "-p", "a fox", "-o", str(tmp_path / "f.aigif"), "--steps", "3", "--init-image",
                    str(tmp_path / "a.png"), "--strength", "0.6", "-q"])
    assert res.exit_code == 0, res.output
    assert "image-to-image at strength 0.6" in res.output
    info = run(app, ["info", str(tmp_path / "f.aigif")]).output
    assert "img2img: image-to-image, strength 0.6; init image: a.png, sha256" in info and "regenerable: no: init image" in info
    bad = run(app, ["decode", str(tmp_path / "f.aigif"), "-o", str(tmp_path / "f.png"), "-q"])
    assert isinstance(bad.exception, InputImageError) and "--init-image" in str(bad.exception)
    ok = run(app, ["decode", str(tmp_path / "f.aigif"), "-o", str(tmp_path / "f.png"), "-q", "--init-image",
                   str(tmp_path / "a.png")])
    assert ok.exit_code == 0 and ": exact" in ok.output
