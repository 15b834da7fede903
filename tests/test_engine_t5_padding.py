"""``min_sequence_length``: T5 prompts padded to at least N tokens and never truncated, as ComfyUI and Forge do."""
import dataclasses

import numpy as np
import pytest

from aigif import dumps, loads
from aigif.engine import Engine
from aigif.engine.families import T5_LIMIT, get_family
from aigif.errors import ConfigError
from aigif.syntax import Generation, ModelRef

pytestmark = pytest.mark.usefixtures("aigif_home")  # a fresh $AIGIF_HOME per module (conftest.py)

FLUX = ModelRef(name="aigif-tiny-flux")
LONG = "a red fox in the snow, soft morning light, pine trees, frost on the whiskers, shallow depth of field"


@pytest.fixture(scope="module")
def engine():
    return Engine()


@pytest.fixture(scope="module")
def t5_tokens(engine):
    import diffusers

    from aigif.engine.tiny import ensure_tiny

    tok = diffusers.FluxPipeline.from_pretrained(ensure_tiny("aigif-tiny-flux")).tokenizer_2
    return lambda text: len(tok(text).input_ids)


def flux(prompt: str, **kw) -> Generation:
    return Generation(prompt=prompt, seed=7, num_inference_steps=2, guidance_scale=3.5, width=64, height=64, **kw)


def render(engine, gen: Generation, model: ModelRef = FLUX) -> np.ndarray:
    return np.asarray(engine.generate(gen, model).image)


def test_a_long_prompt_pads_to_its_own_length_and_a_short_one_to_the_minimum(engine, t5_tokens):
    n = t5_tokens(LONG)
    assert n > 12
    long_min = render(engine, flux(LONG, min_sequence_length=12))
    assert np.array_equal(long_min, render(engine, flux(LONG, max_sequence_length=n)))          # never truncated
    assert not np.array_equal(long_min, render(engine, flux(LONG, max_sequence_length=12)))     # truncation shows
    short = "a fox"
    assert t5_tokens(short) < 12
    assert np.array_equal(render(engine, flux(short, min_sequence_length=12)),
                          render(engine, flux(short, max_sequence_length=12)))


def test_the_file_keeps_the_minimum_and_decodes_exact(engine):
    made = engine.generate(flux(LONG, min_sequence_length=12), FLUX)
    doc = loads(dumps(made.document))
    assert doc.generation.min_sequence_length == 12 and doc.generation.max_sequence_length is None
    assert np.array_equal(np.asarray(engine.regenerate(doc)), np.asarray(made.image))


def test_more_tokens_than_the_pipeline_takes_are_refused(engine, t5_tokens):
    prompt = " ".join(["fox"] * (T5_LIMIT + 20))
    assert t5_tokens(prompt) > T5_LIMIT
    with pytest.raises(ConfigError, match=f"more than the {T5_LIMIT}"):
        engine.generate(flux(prompt, min_sequence_length=256), FLUX)


def test_a_negative_prompt_padded_to_another_length_is_refused(engine):
    gen = flux(LONG, min_sequence_length=8, negative_prompt="blurry", true_cfg_scale=2.0)
    with pytest.raises(ConfigError, match="pad to different T5 lengths"):
        engine.generate(gen, FLUX)
    # without true CFG the negative prompt is not encoded: only the prompt's length counts
    assert get_family("flux1").encodes_negative(dataclasses.replace(gen, true_cfg_scale=None)) is False
    # both within the minimum: one length, rendered
    engine.generate(dataclasses.replace(gen, prompt="a fox", min_sequence_length=16), FLUX)


def test_sd3_counts_its_third_encoders_tokens(engine):
    sd3 = ModelRef(name="aigif-tiny-sd3")
    gen = Generation(prompt="a fox", seed=7, num_inference_steps=2, guidance_scale=5.0, width=64, height=64,
                     min_sequence_length=10)
    assert np.array_equal(render(engine, gen, sd3), render(engine, dataclasses.replace(gen, min_sequence_length=None,
                                                                                       max_sequence_length=10), sd3))


def test_families_without_t5_and_both_lengths_are_refused(engine):
    with pytest.raises(ConfigError, match="does not take min_sequence_length"):
        engine.generate(Generation(prompt="a fox", seed=1, num_inference_steps=1, guidance_scale=7, width=64, height=64,
                                   min_sequence_length=77), ModelRef(name="aigif-tiny-sd"))
    with pytest.raises(ConfigError, match="exclude each other"):
        flux("a fox", min_sequence_length=77, max_sequence_length=77)
    with pytest.raises(ConfigError, match="min_sequence_length must be"):
        flux("a fox", min_sequence_length=0)
