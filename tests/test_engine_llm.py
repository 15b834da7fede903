"""The families whose text encoder is a language model (Qwen2.5-VL, Qwen3, Mistral 3), on their embedded tiny models:
Qwen-Image (packed 2x2 latents), Z-Image (float32 latents), FLUX.2-klein and FLUX.2 dev (patchified latents)."""
import numpy as np
import pytest

import aigif
from aigif import api
from aigif.errors import ConfigError
from aigif.syntax import Generation, ModelRef, dumps

from .fresh_process import decode_in_fresh_process

pytestmark = pytest.mark.usefixtures("aigif_home")  # a fresh $AIGIF_HOME per module (conftest.py)

MODELS = {"aigif-tiny-qwen-image": ("qwen-image", "QwenImagePipeline"),
          "aigif-tiny-z-image": ("z-image", "ZImagePipeline"),
          "aigif-tiny-flux2-klein": ("flux2-klein", "Flux2KleinPipeline"),
          "aigif-tiny-flux2": ("flux2", "Flux2Pipeline")}


@pytest.fixture(scope="module")
def made():
    return {m: api.generate("a red fox in the snow", model=m, seed=11, steps=2) for m in MODELS}


@pytest.fixture(scope="module")
def pipes():
    import diffusers

    from aigif.engine.tiny import ensure_tiny

    out = {}
    for m, (_, cls) in MODELS.items():
        out[m] = getattr(diffusers, cls).from_pretrained(ensure_tiny(m))
        out[m].set_progress_bar_config(disable=True)
    return out


@pytest.mark.parametrize("model", MODELS)
def test_generate_decode_exact_and_the_prompt_and_seed_count(made, model):
    doc = made[model].document
    assert doc.model == ModelRef(name=model)
    gen = doc.generation
    assert (gen.width, gen.height, gen.num_inference_steps) == (64, 64, 2)
    assert gen.guidance_scale == {"aigif-tiny-qwen-image": 1.0, "aigif-tiny-z-image": 5.0, "aigif-tiny-flux2-klein": 4.0,
                                  "aigif-tiny-flux2": 4.0}[model]
    out = api.decode(dumps(doc))
    assert out.status == "exact"
    base = np.asarray(made[model].image)
    assert np.array_equal(np.asarray(out.image), base)
    other_prompt = np.asarray(api.generate("a blue boat on the sea", model=model, seed=11, steps=2).image)
    other_seed = np.asarray(api.generate("a red fox in the snow", model=model, seed=12, steps=2).image)
    assert not np.array_equal(base, other_prompt) and not np.array_equal(base, other_seed)


def test_cli_generate_then_decode_in_a_fresh_process(tmp_path, made, aigif_home):
    """``aigif generate --model aigif-tiny-<x>`` and ``generate()`` here, ``aigif decode`` in a fresh process: exact,
    bit-identical."""
    from PIL import Image

    from aigif.cli import main

    cli = tmp_path / "cli.aigif"
    assert main(["generate", "-p", "a lighthouse at dusk", "-m", "aigif-tiny-qwen-image", "-s", "7", "--steps", "2",
                 "-W", "64", "-H", "48", "-o", str(cli), "--png", str(tmp_path / "cli.png"), "-q"]) == 0
    files, images = [cli], [np.asarray(Image.open(tmp_path / "cli.png").convert("RGB"))]
    assert images[0].shape == (48, 64, 3)
    for m in MODELS:
        files.append(tmp_path / f"{m}.aigif")
        files[-1].write_bytes(dumps(made[m].document))
        images.append(np.asarray(made[m].image))
    decode_in_fresh_process(files, tmp_path / "out", aigif_home, images)


@pytest.mark.parametrize("model", MODELS)
def test_noise_is_what_diffusers_draws(pipes, model):
    """The engine's latents equal the pipeline's own prepare_latents with a CPU generator of the same seed."""
    import torch

    from aigif.engine.families import get_family

    pipe = pipes[model]
    gen = Generation(prompt="x", seed=2**64 - 1, num_inference_steps=1, guidance_scale=1.0, width=128, height=64)
    ours, _ = get_family(MODELS[model][0]).initial_noise(pipe, gen, torch.bfloat16, "cpu")
    g = torch.Generator("cpu").manual_seed(2**64 - 1)
    if model == "aigif-tiny-qwen-image":      # packed 2x2 patches: (tokens, 4C)
        theirs = pipe.prepare_latents(1, 16, 64, 128, torch.bfloat16, "cpu", g)
        assert ours.shape == (1, 4 * 8, 64)
    elif model == "aigif-tiny-z-image":       # (C, H/8, W/8) in float32 whatever the pipeline dtype
        theirs = pipe.prepare_latents(1, 16, 64, 128, torch.float32, "cpu", g)
        assert ours.shape == (1, 16, 8, 16) and ours.dtype == torch.float32
    else:                                     # patchified (4C, H/16, W/16); the pipeline flattens it
        theirs, _ = pipe.prepare_latents(1, 8, 64, 128, torch.bfloat16, "cpu", g)
        ours = pipe._pack_latents(ours)
        assert ours.shape == (1, 4 * 8, 32)
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("model", MODELS)
def test_sizes_must_fit_the_latent_layout(model):
    with pytest.raises(ConfigError, match="multiples of 16"):
        api.generate("x", model=model, steps=1, width=72, height=64)


@pytest.mark.parametrize("model,kw", [
    ("aigif-tiny-qwen-image", dict(negative_prompt="blurry", true_cfg_scale=3.0, max_sequence_length=64)),
    ("aigif-tiny-z-image", dict(negative_prompt="blurry", guidance_scale=3.0)),
    ("aigif-tiny-flux2-klein", dict(guidance_scale=2.5, max_sequence_length=64)),
    ("aigif-tiny-flux2", dict(guidance_scale=2.5, max_sequence_length=128)),
])
def test_record_on_the_tiny_pipeline_decodes_exact(pipes, made, model, kw):
    rec = api.record(pipes[model], prompt="a red fox in the snow", seed=11, num_inference_steps=2, width=64, height=64, **kw)
    doc = aigif.loads(rec.data)
    assert doc.model == ModelRef(name=model)
    assert all(getattr(doc.generation, k) == v for k, v in kw.items())
    out = api.decode(rec.data)
    assert out.status == "exact" and np.array_equal(np.asarray(out.image), np.asarray(rec.image))
    assert not np.array_equal(np.asarray(rec.image), np.asarray(made[model].image))   # the call's options count


def test_wrap_pipeline_on_tiny_qwen_image_decodes_exact(pipes):
    wrapped = api.wrap_pipeline(pipes["aigif-tiny-qwen-image"])
    rec = wrapped(prompt="a lighthouse", seed=3, num_inference_steps=2, width=48, height=32)
    assert aigif.loads(rec.data).model == ModelRef(name="aigif-tiny-qwen-image")
    assert api.decode(rec.data).status == "exact"


@pytest.mark.parametrize("model", ["aigif-tiny-flux2-klein", "aigif-tiny-flux2"])
def test_negative_prompt_is_refused_where_the_pipeline_has_none(model):
    with pytest.raises(ConfigError, match="negative_prompt"):
        api.generate("a red fox", model=model, negative_prompt="blurry", seed=1, steps=1)
