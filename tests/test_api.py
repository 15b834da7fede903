import io
import shutil

import numpy as np
import pytest
from PIL import Image

import aigif
from aigif import api
from aigif.errors import ConfigError, FormatError, ModelError
from aigif.syntax import ModelRef


@pytest.fixture(scope="module")
def tiny_pipe():
    import diffusers

    from aigif.engine.tiny import ensure_tiny

    pipe = diffusers.StableDiffusionPipeline.from_pretrained(ensure_tiny("aigif-tiny-sd"))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def made():
    return api.generate("a lighthouse at dusk", seed=7, steps=3)


def test_generate_defaults_and_output(tmp_path, made):
    g = made.document.generation
    assert (g.width, g.height, g.num_inference_steps, g.seed) == (64, 64, 3, 7)
    assert made.document.model == ModelRef(name="aigif-tiny-sd")
    assert made.document.fingerprint is not None and isinstance(made.image, Image.Image) and made.image.size == (64, 64)
    out = tmp_path / "l.aigif"
    res = api.generate("a lighthouse at dusk", seed=7, steps=3, output=out)
    assert aigif.load(out) == res.document
    assert np.array_equal(np.asarray(res.image), np.asarray(made.image))   # deterministic
    with pytest.raises(aigif.AigifError, match="exists"):
        api.generate("a lighthouse at dusk", seed=7, steps=3, output=out, overwrite=False)
    assert api.generate("x", steps=1).document.generation.seed >= 0   # random seed is recorded


def test_decode_every_source_kind(tmp_path, made):
    data = aigif.dumps(made.document)
    path = tmp_path / "l.aigif"
    path.write_bytes(data)
    for src in (path, str(path), data, io.BytesIO(data), made.document):
        out = api.decode(src)
        assert isinstance(out.image, Image.Image) and out.image.size == (64, 64)
        assert out.status == "exact" and out.source == "regenerated"
        assert np.array_equal(np.asarray(out.image), np.asarray(made.image))
    ref = api.decode(data, reference=made.image)
    assert ref.report.reference != "fingerprint" and ref.status == "exact"


def test_decode_bad_input(tmp_path):
    with pytest.raises(FormatError):
        api.decode(b"GIF89a not an aigif")
    with pytest.raises(ConfigError):
        api.decode(12345)
    with pytest.raises(aigif.AigifError):
        api.decode(tmp_path / "missing.aigif")


def test_model_ref_parsing(tmp_path):
    assert api.model_ref("aigif-tiny-sd") == ModelRef(name="aigif-tiny-sd")
    assert api.model_ref("owner/model@abc123") == ModelRef(repo="owner/model", revision="abc123")
    assert api.model_ref(None) is None
    for bad in ("not a model", "", 3, str(tmp_path)):
        with pytest.raises(ConfigError):
            api.model_ref(bad)


def test_generate_and_decode_return_the_same_kind_of_image(made):
    decoded = api.decode(made.document)
    assert type(decoded.image) is type(made.image) and decoded.image.mode == made.image.mode == "RGB"


def test_pack_and_generate_agree_on_defaults(made):
    """One function fills a request's left-out values: the same model gets the same size, steps and guidance."""
    packed = aigif.loads(api.pack({"model": "aigif-tiny-sd", "prompt": "a lighthouse at dusk", "seed": 7}))
    generated = api.generate("a lighthouse at dusk", seed=7, steps=None).document.generation
    assert packed.generation == generated
    assert (generated.width, generated.height, generated.num_inference_steps, generated.guidance_scale) == (64, 64, 10, 7.5)
    sd15 = aigif.loads(api.pack({"model": "sd15", "prompt": "x", "seed": 1})).generation
    assert (sd15.width, sd15.num_inference_steps) == (512, 50)


def test_record_reproduces_with_the_engine(tiny_pipe):
    image, data = api.record(tiny_pipe, prompt="a red fox", seed=5, num_inference_steps=3, width=64, height=64)
    doc = aigif.loads(data)
    assert doc.model == ModelRef(name="aigif-tiny-sd")          # digest matched the registry entry
    assert doc.generation.scheduler is None and doc.platform.attention == "sdpa"
    out = api.decode(data)
    assert out.status == "exact"
    assert np.array_equal(np.asarray(out.image), np.asarray(image))


def test_record_other_scheduler_and_batch_index(tiny_pipe):
    import diffusers

    saved = tiny_pipe.scheduler
    try:
        tiny_pipe.scheduler = diffusers.EulerAncestralDiscreteScheduler.from_config(saved.config)
        rec = api.record(tiny_pipe, prompt="a red fox", seed=5, batch_index=2, num_inference_steps=3, width=64, height=64,
                         negative_prompt="blurry", guidance_scale=5.0)
        g = rec.document.generation
        assert (g.scheduler, g.batch_index, g.negative_prompt, g.guidance_scale) == ("euler-a", 2, "blurry", 5.0)
        assert api.decode(rec.data).status == "exact"
        tiny_pipe.scheduler = diffusers.DPMSolverMultistepScheduler.from_config(saved.config, use_karras_sigmas=True, solver_order=3)
        rec = api.record(tiny_pipe, prompt="a red fox", seed=5, num_inference_steps=3, width=64, height=64)
        assert rec.document.generation.scheduler == "dpmpp-2m-karras"
        assert rec.document.generation.scheduler_config == {"solver_order": 3}
        assert np.array_equal(np.asarray(api.decode(rec.data).image), np.asarray(rec.image))
    finally:
        tiny_pipe.scheduler = saved


def test_record_refuses_what_a_syntax_cannot_hold(tiny_pipe):
    import torch

    for kw in ({"generator": torch.Generator().manual_seed(1)}, {"prompt_embeds": None}, {"num_images_per_prompt": 2},
               {"callback_on_step_end": print}):
        with pytest.raises(ConfigError):
            api.record(tiny_pipe, prompt="x", num_inference_steps=1, **kw)
    with pytest.raises(ConfigError):
        api.record(tiny_pipe, prompt=["a", "b"], num_inference_steps=1)
    with pytest.raises(ConfigError):
        api.record(tiny_pipe, prompt="x", num_inference_steps=1, width=60, height=64)


def test_wrap_pipeline(tiny_pipe):
    wrapped = api.wrap_pipeline(tiny_pipe)
    assert wrapped.scheduler is tiny_pipe.scheduler             # attributes pass through
    rec = wrapped(prompt="a tiny boat", seed=3, num_inference_steps=2, width=64, height=64)
    assert isinstance(rec, api.Recording) and rec.image.size == (64, 64)
    assert aigif.loads(rec.data) == rec.document


def test_record_local_model_outside_the_registry(tmp_path, tiny_pipe):
    """A folder that is not a registry model is recorded as local + sha256 and decodes from the model dir."""
    import diffusers
    from safetensors.numpy import load_file, save_file

    from aigif.engine import Engine

    src = tiny_pipe.name_or_path
    folder = tmp_path / "models" / "my-model"
    shutil.copytree(src, folder)
    wfile = folder / "unet" / "diffusion_pytorch_model.safetensors"
    sd = load_file(str(wfile))
    key = next(k for k in sorted(sd) if sd[k].ndim >= 2 and np.any(sd[k]))
    sd[key] = (sd[key] * 1.5).astype(sd[key].dtype)
    save_file(sd, str(wfile), metadata={"format": "pt"})
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    rec = api.record(pipe, prompt="a red fox", seed=5, num_inference_steps=2, width=64, height=64,
                     model_dirs=[tmp_path / "models"])
    m = rec.document.model
    assert (m.name, m.local, m.family) == (None, "my-model", "sd1") and len(m.sha256) == 64
    assert api.decode(rec.data, engine=Engine(model_dirs=[tmp_path / "models"])).status == "exact"
    with pytest.raises(ModelError):                               # no model dir: the model is missing
        api.decode(rec.data, engine=Engine())


def test_record_refuses_unsupported_pipelines():
    class NotAPipeline:
        pass

    with pytest.raises(ModelError):
        api.record(NotAPipeline(), prompt="x")
