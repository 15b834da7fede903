"""Syntax of the flow-matching families: their generation fields, defaults and schedules."""
import pytest

import aigif
from aigif.errors import ConfigError
from aigif.syntax import Generation, dumps, loads, registry
from aigif.syntax.flow import check_schedule, flow_scheduler


def test_new_fields_round_trip():
    d = {"model": "flux1-dev", "prompt": "a fox", "prompt_2": "a fox, detailed fur", "seed": 2**64 - 1,
         "true_cfg_scale": 4.0, "max_sequence_length": 256, "negative_prompt": "blurry"}
    doc = aigif.document_from_dict(d)
    back = loads(dumps(doc))
    assert back == doc
    g = back.generation
    assert (g.prompt_2, g.true_cfg_scale, g.max_sequence_length, g.seed) == ("a fox, detailed fur", 4.0, 256, 2**64 - 1)
    assert (g.num_inference_steps, g.guidance_scale, g.width, g.height) == (28, 3.5, 1024, 1024)   # FLUX defaults


def test_prompt_2_equal_to_prompt_is_not_stored():
    g = Generation(prompt="a fox", prompt_2="a fox", prompt_3="a fox", seed=1, num_inference_steps=4, guidance_scale=0.0,
                   width=64, height=64)
    assert g.prompt_2 is None and g.prompt_3 is None
    with pytest.raises(ConfigError):
        Generation(prompt="a", seed=1, num_inference_steps=4, guidance_scale=1, width=64, height=64, max_sequence_length=0)


@pytest.mark.parametrize("model,steps,guidance", [("sd35-large", 28, 7.0), ("sd35-large-turbo", 28, 7.0), ("flux1-schnell", 28, 3.5)])
def test_pack_defaults_follow_the_family(model, steps, guidance):
    g = aigif.document_from_dict({"model": model, "prompt": "x", "seed": 1}).generation
    assert (g.num_inference_steps, g.guidance_scale, g.width) == (steps, guidance, 1024)


@pytest.mark.parametrize("sampler,schedule,name", [
    ("euler", "simple", "flow-euler"), ("euler", "sgm_uniform", "flow-euler"), ("euler", "normal", "flow-euler"),
    ("euler", "karras", "flow-euler-karras"), ("euler", "beta", "flow-euler-beta"), ("heun", "simple", "flow-heun"),
    ("dpmpp_2m", "simple", "flow-dpmpp-2m"),
])
def test_comfyui_flow_schedules_map_to_registry_codes(sampler, schedule, name):
    got, overrides = flow_scheduler(sampler, schedule)
    assert got == name and overrides == {} and registry.code_of("scheduler", got) is not None


def test_shift_goes_to_the_schedulers_own_config_key():
    assert flow_scheduler("euler", "simple", shift=3.0, dynamic_shifting=False) == ("flow-euler", {"shift": 3.0, "use_dynamic_shifting": False})
    assert flow_scheduler("dpmpp_2m", "simple", shift=3.0)[1] == {"flow_shift": 3.0}


@pytest.mark.parametrize("sampler,schedule,why", [
    ("euler_ancestral", "simple", "has no flow scheduler"), ("euler", "ddim_uniform", "no diffusers flow scheduler"),
    ("heun", "karras", "only in FlowMatchEulerDiscreteScheduler"),
])
def test_unreproducible_comfyui_schedules_are_refused_with_the_reason(sampler, schedule, why):
    with pytest.raises(ConfigError, match=why):
        flow_scheduler(sampler, schedule)


@pytest.mark.parametrize("model,scheduler,config,why", [
    ("flux1-dev", "ddim", None, "flow-matching model"),
    ("flux1-dev", "flow-heun", None, "passes its own sigma list"),
    ("sd15", "flow-euler", None, "is not one"),
    ("sd35-large", "flow-euler", {"use_karras_sigmas": True, "use_beta_sigmas": True}, "one sigma schedule"),
])
def test_pack_refuses_schedules_the_engine_cannot_reproduce(model, scheduler, config, why):
    d = {"model": model, "prompt": "x", "seed": 1, "scheduler": scheduler}
    if config:
        d["scheduler_config"] = config
    with pytest.raises(ConfigError, match=why):
        aigif.document_from_dict(d)


def test_sd3_takes_every_flow_scheduler():
    for e in registry.SCHEDULERS.values():
        if registry.is_flow_scheduler(e):
            check_schedule("sd3", e.name, None)
