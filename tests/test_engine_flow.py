"""The flow-matching families on their embedded tiny models: FLUX.1 and Chroma (packed 2x2 latents) and SD 3.5."""
import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

import aigif
from aigif import api
from aigif.errors import AigifError, ConfigError
from aigif.syntax import ModelRef, dumps, loads

pytestmark = pytest.mark.usefixtures("aigif_home")  # a fresh $AIGIF_HOME per module (conftest.py)

MODELS = ("aigif-tiny-flux", "aigif-tiny-sd3", "aigif-tiny-chroma")


@pytest.fixture(scope="module")
def made():
    return {m: api.generate("a red fox in the snow", model=m, seed=11, steps=3) for m in MODELS}


@pytest.fixture(scope="module")
def flux_pipe():
    import diffusers

    from aigif.engine.tiny import ensure_tiny

    pipe = diffusers.FluxPipeline.from_pretrained(ensure_tiny("aigif-tiny-flux"))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("model", MODELS)
def test_generate_decode_exact(made, model):
    doc = made[model].document
    assert doc.model == ModelRef(name=model)
    gen = doc.generation
    assert (gen.width, gen.height, gen.num_inference_steps) == (64, 64, 3)
    assert gen.guidance_scale == {"aigif-tiny-flux": 3.5, "aigif-tiny-sd3": 7.0, "aigif-tiny-chroma": 5.0}[model]   # family default
    out = api.decode(dumps(doc))
    assert out.status == "exact"
    assert np.array_equal(np.asarray(out.image), np.asarray(made[model].image))


def test_prompt_and_seed_change_the_image(made):
    base = np.asarray(made["aigif-tiny-flux"].image)
    other_prompt = np.asarray(api.generate("a blue boat on the sea", model="aigif-tiny-flux", seed=11, steps=3).image)
    other_seed = np.asarray(api.generate("a red fox in the snow", model="aigif-tiny-flux", seed=12, steps=3).image)
    assert not np.array_equal(base, other_prompt) and not np.array_equal(base, other_seed)


def test_fresh_process_is_bit_identical(tmp_path, made, aigif_home):
    files = []
    for m in MODELS:
        f = tmp_path / f"{m}.aigif"
        f.write_bytes(dumps(made[m].document))
        files.append(f)
    env = dict(os.environ, AIGIF_HOME=str(aigif_home), TRANSFORMERS_VERBOSITY="error")
    cmd = [sys.executable, "-c", "import sys; from aigif.cli import main; sys.exit(main(sys.argv[1:]))",
           "decode", *map(str, files), "-o", f"{tmp_path}/out/", "-q"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    from PIL import Image

    for f in files:
        regen = np.asarray(Image.open(tmp_path / "out" / (f.stem + ".png")).convert("RGB"))
        assert np.array_equal(regen, np.asarray(made[f.stem].image)), f.name


def test_flux_noise_is_what_diffusers_draws(flux_pipe):
    """The engine's packed latents equal FluxPipeline.prepare_latents with a CPU generator of the same seed."""
    import torch

    from aigif.engine.families import get_family
    from aigif.syntax import Generation

    gen = Generation(prompt="x", seed=2**64 - 1, num_inference_steps=1, guidance_scale=1.0, width=128, height=64)
    ours, _ = get_family("flux1").initial_noise(flux_pipe, gen, torch.float32, "cpu")
    g = torch.Generator("cpu").manual_seed(2**64 - 1)
    theirs, _ = flux_pipe.prepare_latents(1, 4, 64, 128, torch.float32, "cpu", g)
    assert ours.shape == theirs.shape == (1, 4 * 8, 16) and torch.equal(ours, theirs)


def test_flux_size_must_fit_the_packing(flux_pipe):
    with pytest.raises(ConfigError, match="multiples of 16"):
        api.generate("x", model="aigif-tiny-flux", steps=1, width=72, height=64)


def test_record_tiny_flux_decodes_exact(flux_pipe):
    rec = api.record(flux_pipe, prompt="a red fox", prompt_2="snow, winter", seed=2**64 - 1, num_inference_steps=2,
                     width=64, height=64, max_sequence_length=64)
    doc = aigif.loads(rec.data)
    assert doc.model == ModelRef(name="aigif-tiny-flux")
    gen = doc.generation
    assert (gen.guidance_scale, gen.prompt_2, gen.max_sequence_length, gen.seed) == (3.5, "snow, winter", 64, 2**64 - 1)
    out = api.decode(rec.data)
    assert out.status == "exact"
    assert np.array_equal(np.asarray(out.image), np.asarray(rec.image))


def test_true_cfg_and_negative_prompt_reach_flux():
    plain = api.generate("a red fox", model="aigif-tiny-flux", seed=3, steps=2)
    cfg = api.generate("a red fox", model="aigif-tiny-flux", seed=3, steps=2, negative_prompt="blurry")
    doc = cfg.document.replace(generation=dataclasses.replace(cfg.document.generation, true_cfg_scale=4.0))
    out = api.decode(dumps(doc))
    assert out.status != "exact"                          # the fingerprint was made without true CFG
    assert not np.array_equal(np.asarray(out.image), np.asarray(plain.image))


def test_embedded_models_are_listed_on_unknown_names():
    with pytest.raises(AigifError) as exc:
        api.generate("x", model="flux-dev-typo", steps=1)
    assert all(m in str(exc.value) for m in MODELS)


def test_every_flow_scheduler_renders_on_sd3_and_only_euler_on_flux():
    from aigif.syntax.registry import SCHEDULERS, is_flow_scheduler

    for entry in SCHEDULERS.values():
        if not is_flow_scheduler(entry):
            continue
        img = np.asarray(api.generate("a red fox", model="aigif-tiny-sd3", seed=5, steps=2, scheduler=entry.name).image)
        assert img.std() > 5, entry.name     # flow-euler-beta too: scipy is a dependency
    with pytest.raises(ConfigError, match="its own sigma list"):
        api.generate("a red fox", model="aigif-tiny-flux", seed=5, steps=2, scheduler="flow-heun")
    shifted = api.generate("a red fox", model="aigif-tiny-sd3", seed=5, steps=2, scheduler="flow-dpmpp-2m")
    assert api.decode(dumps(shifted.document)).status == "exact"


@pytest.mark.parametrize("family,words", [("aigif_hidream.hidream", ("aigif_hidream", "pip install")),
                                          ("flux2", ("flux2", "not regenerated", "qwen-image"))])
def test_a_family_this_decoder_lacks_stays_readable_and_is_refused_by_name(family, words, monkeypatch):
    from aigif.engine import families
    from aigif.errors import ModelError

    # a registry family without a registration (every registry family has one now): as in a decoder of another version
    monkeypatch.setattr(families, "_FAMILIES", {k: v for k, v in families._FAMILIES.items() if k != family})

    doc = aigif.document_from_dict({"model": {"repo": "someone/model", "family": family}, "prompt": "a cat", "seed": 1})
    back = loads(dumps(doc))
    assert back.model.family == family
    with pytest.raises(ModelError) as exc:
        api.decode(dumps(doc))
    assert all(w in str(exc.value) for w in words), str(exc.value)


def test_record_refuses_a_schedule_flux_would_not_reproduce(flux_pipe):
    """FluxPipeline passes its own sigmas: a Heun flow scheduler on it is refused before anything runs or is written."""
    import diffusers

    own = flux_pipe.scheduler
    flux_pipe.scheduler = diffusers.FlowMatchHeunDiscreteScheduler.from_config(own.config)
    try:
        with pytest.raises(ConfigError, match="its own sigma list"):
            api.record(flux_pipe, prompt="a red fox", seed=1, num_inference_steps=2, width=64, height=64)
    finally:
        flux_pipe.scheduler = own


def test_beta_sigmas_render_and_decode_exactly_on_flux():
    """ComfyUI's beta schedule (diffusers computes it with scipy.stats) is a declared dependency, not optional."""
    import scipy.stats  # noqa: F401  (a missing scipy fails here, not as a skip)

    beta = api.generate("a red fox", model="aigif-tiny-flux", seed=5, steps=3, scheduler="flow-euler-beta")
    plain = api.generate("a red fox", model="aigif-tiny-flux", seed=5, steps=3)
    assert not np.array_equal(np.asarray(beta.image), np.asarray(plain.image))
    assert api.decode(dumps(beta.document)).status == "exact"


def test_chroma_noise_is_what_diffusers_draws_and_its_record_decodes_exact(made):
    """Chroma packs its latents like FLUX.1: the engine's noise equals ChromaPipeline.prepare_latents; record() is exact."""
    import diffusers
    import torch

    from aigif.engine.families import get_family
    from aigif.engine.tiny import ensure_tiny
    from aigif.syntax import Generation

    pipe = diffusers.ChromaPipeline.from_pretrained(ensure_tiny("aigif-tiny-chroma"))
    pipe.set_progress_bar_config(disable=True)
    gen = Generation(prompt="x", seed=2**64 - 1, num_inference_steps=1, guidance_scale=1.0, width=128, height=64)
    ours, _ = get_family("chroma").initial_noise(pipe, gen, torch.float32, "cpu")
    theirs, _ = pipe.prepare_latents(1, 4, 64, 128, torch.float32, "cpu", torch.Generator("cpu").manual_seed(2**64 - 1))
    assert ours.shape == theirs.shape == (1, 4 * 8, 16) and torch.equal(ours, theirs)
    rec = api.record(pipe, prompt="a red fox in the snow", negative_prompt="blurry", seed=11, num_inference_steps=3,
                     width=64, height=64)
    assert aigif.loads(rec.data).model == ModelRef(name="aigif-tiny-chroma")
    out = api.decode(rec.data)
    assert out.status == "exact" and np.array_equal(np.asarray(out.image), np.asarray(rec.image))
    assert not np.array_equal(np.asarray(rec.image), np.asarray(made["aigif-tiny-chroma"].image))   # the negative prompt counts
