"""ComfyUI's ``simple`` schedule on noise-prediction models: the engine samples exactly ComfyUI's sigmas."""
import dataclasses
import inspect
from pathlib import Path

import numpy as np
import pytest

import aigif
from aigif import Document, dumps
from aigif.engine.schedulers import make_scheduler
from aigif.errors import ConfigError
from aigif.importers import import_image
from aigif.importers.samplers import from_comfy
from aigif.syntax.timesteps import TIMESTEP_CAPABLE

FIX = Path(__file__).parent / "fixtures" / "importers"
# Stable Diffusion 1.x/2.x/XL's own scheduler config (the values every one of them ships)
SD_CONFIG = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
             "steps_offset": 1, "timestep_spacing": "leading", "prediction_type": "epsilon"}


def comfy_simple_sigmas(steps: int) -> np.ndarray:
    """ComfyUI's definition: the model's 1000 training sigmas (scaled-linear betas), then for step x the sigma at
    index -(1 + int(x * len(sigmas) / steps)), then a final 0."""
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=np.float64) ** 2
    alphas_cumprod = np.cumprod(1.0 - betas)
    table = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
    stride = len(table) / steps
    return np.array([table[-(1 + int(x * stride))] for x in range(steps)] + [0.0])


def sigmas_of(cls: str, name: str, steps: int) -> np.ndarray:
    sched = make_scheduler(cls, SD_CONFIG, name, {"timestep_schedule": "simple"})
    sched.set_timesteps(steps)
    return np.asarray(sched.sigmas, dtype=np.float64)


@pytest.mark.parametrize("name", ["euler", "dpmpp-2m", "dpmpp-2m-sde", "heun", "dpmpp-2s-a"])
@pytest.mark.parametrize("steps", [1, 7, 14, 20, 28, 30, 50])
def test_engine_sigmas_are_comfyuis_simple_schedule(name, steps):
    got = sigmas_of("PNDMScheduler", name, steps)
    if name == "heun":   # a second-order step evaluates every sigma but the first twice
        got = np.concatenate([got[:1], got[1:-1:2], got[-1:]])
    want = comfy_simple_sigmas(steps)
    assert got.shape == want.shape and np.allclose(got, want, rtol=1e-5, atol=0)   # diffusers keeps alphas_cumprod in float32, (got, want)


def test_a_second_pass_takes_the_tail_comfyui_takes():
    """KSampler with 14 steps at denoise 0.5 runs the last 15 sigmas of a 28-step schedule; diffusers' img2img at
    strength 0.5 of 28 steps starts at step 14 of the same list."""
    sched = make_scheduler("PNDMScheduler", SD_CONFIG, "dpmpp-2m", {"timestep_schedule": "simple"})
    sched.set_timesteps(28)
    start = 28 - int(28 * 0.5)
    assert np.allclose(np.asarray(sched.sigmas[start:], dtype=np.float64), comfy_simple_sigmas(28)[-15:], rtol=1e-5)


def test_diffusers_own_spacings_would_not_do():
    """Why a timestep list: 'trailing' spacing rounds where ComfyUI floors (28 steps: 964 vs 963)."""
    trailing = make_scheduler("PNDMScheduler", SD_CONFIG, "euler", {"timestep_spacing": "trailing"})
    trailing.set_timesteps(28)
    assert not np.allclose(np.asarray(trailing.sigmas, dtype=np.float64), comfy_simple_sigmas(28), rtol=1e-4)


def test_capable_classes_take_a_timestep_list():
    import diffusers

    for cls in TIMESTEP_CAPABLE:
        assert "timesteps" in inspect.signature(getattr(diffusers, cls).set_timesteps).parameters, cls


def test_schedulers_without_timestep_lists_are_refused():
    assert from_comfy("euler_ancestral", "simple", "sd1") is None      # no timestep list: not guessed
    assert from_comfy("lms", "simple", "sd1") is None
    assert from_comfy("uni_pc", "simple", "sd1") is None
    assert from_comfy("dpmpp_2m", "simple", "sd1") == ("dpmpp-2m", {"timestep_schedule": "simple"})
    with pytest.raises(ConfigError, match="custom timesteps"):
        make_scheduler("PNDMScheduler", SD_CONFIG, "euler-a", {"timestep_schedule": "simple"})
    with pytest.raises(ConfigError, match="unknown timestep_schedule"):
        make_scheduler("PNDMScheduler", SD_CONFIG, "euler", {"timestep_schedule": "sgm_uniform"})


def test_the_comfyui_two_pass_fixture_regenerates(aigif_home):
    imp = import_image(next((FIX / "images").glob("comfyui_hires_latent.*")))
    assert imp.regenerable, imp.reason
    assert (imp.hires.scheduler, imp.hires.scheduler_config) == ("dpmpp-2m", {"timestep_schedule": "simple"})
    # the graph's settings on the tiny model, small enough for a CPU (its first pass's dpmpp-sde needs torchsde)
    gen = dataclasses.replace(imp.generation, width=64, height=64, num_inference_steps=3, scheduler="euler",
                              scheduler_config=None)
    doc = Document(generation=gen, model=aigif.ModelRef(name="aigif-tiny-sd"),
                   hires=dataclasses.replace(imp.hires, width=96, height=96, steps=6))
    out = aigif.decode(dumps(doc))
    assert out.image.size == (96, 96)
    assert np.array_equal(np.asarray(out.image), np.asarray(aigif.decode(dumps(doc)).image))
    plain = dataclasses.replace(doc, hires=dataclasses.replace(doc.hires, scheduler_config=None))
    assert not np.array_equal(np.asarray(out.image), np.asarray(aigif.decode(dumps(plain)).image))


def test_a_syntax_pairing_a_timestep_schedule_with_the_wrong_scheduler_is_refused_when_made():
    from aigif.syntax.flow import check_schedule

    check_schedule("sd1", "dpmpp-2m", {"timestep_schedule": "simple"})
    check_schedule("sd1", "EulerDiscreteScheduler", {"timestep_schedule": "simple"})
    with pytest.raises(ConfigError, match="custom timesteps"):
        check_schedule("sd1", "euler-a", {"timestep_schedule": "simple"})
    with pytest.raises(ConfigError, match="custom timesteps"):
        check_schedule("sd1", "pndm", {"timestep_schedule": "simple"})
    with pytest.raises(ConfigError, match="unknown timestep_schedule"):
        check_schedule("sdxl", "euler", {"timestep_schedule": "sgm_uniform"})
    with pytest.raises(ConfigError, match="custom timesteps"):
        aigif.pack({"model": "sd15", "prompt": "a cat", "seed": 1, "scheduler": "euler-a",
                    "scheduler_config": {"timestep_schedule": "simple"}})
