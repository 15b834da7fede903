"""Generator families are registrations: SD 1.x/2.x/XL are ones, and a package adds its own the same way."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from aigif.errors import ConfigError, ModelError
from aigif.engine import families as F
from aigif.syntax import ModelRef, defaults
from aigif.syntax import extensions as X
from aigif.syntax.defaults import resolve_generation


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    monkeypatch.setattr(F, "_FAMILIES", dict(F._FAMILIES))
    monkeypatch.setattr(defaults, "_REGISTERED_DEFAULTS", {})
    monkeypatch.setattr(X, "_discovered", True)
    monkeypatch.setattr(X, "_load_failures", [])


class ToyFamily(F.GeneratorFamily):
    """A package's family: its own latent layout (one channel fewer, say) and defaults."""

    def latent_shape(self, pipe, gen):
        return (3, gen.height // 8, gen.width // 8)


TOY = ToyFamily("toy", "SanaPipeline", options=("negative_prompt",), denoiser="transformer",
                default_size=256, default_steps=4, variants=("SanaSprintPipeline",))


class _EntryPoint:
    name, value, dist = "toy", "toy_pkg:family", None

    def __init__(self, obj):
        self.obj = obj

    def load(self):
        return self.obj


def test_sd_families_are_registrations():
    assert {f.name for f in F.registered_families()} >= {"sd1", "sd2", "sdxl"}
    assert F.get_family("sdxl").text_encoders == ("text_encoder", "text_encoder_2")
    assert F.family_of_pipeline("StableDiffusionPipeline") == "sd1"
    assert F.allowed_pipelines() >= {"StableDiffusionPipeline", "StableDiffusionXLPipeline", "FluxPipeline", "StableDiffusion3Pipeline"}
    with pytest.raises(ModelError, match="supported: chroma, flux1, flux2, flux2-klein, qwen-image, sd1, sd2, sd3, sdxl, z-image"):
        F.get_family("flux-unknown")


def test_a_package_adds_a_family_through_the_entry_point():
    with pytest.raises(ModelError):
        F.get_family("toy")
    assert "SanaPipeline" not in F.allowed_pipelines() and "SanaSprintPipeline" not in F.adapter_pipelines()
    X.load_entry_points([_EntryPoint(TOY)])
    assert F.get_family("toy") is TOY and "SanaPipeline" in F.allowed_pipelines()
    assert {"SanaPipeline", "SanaSprintPipeline"} <= F.adapter_pipelines()   # the registration allows its variants too
    gen = resolve_generation(ModelRef(repo="someone/toy-model", family="toy"), prompt="a fox", seed=1)
    assert (gen.width, gen.height, gen.num_inference_steps) == (256, 256, 4)   # the family's own defaults
    assert TOY.call_kwargs(gen) == {"prompt": "a fox", "num_inference_steps": 4, "guidance_scale": 7.5, "width": 256,
                                    "height": 256, "negative_prompt": None}
    with pytest.raises(ConfigError, match="does not take eta"):
        TOY.call_kwargs(dataclasses.replace(gen, eta=0.5))
    with pytest.warns(X.ExtensionLoadWarning, match="already registered"):
        X.load_entry_points([_EntryPoint(TOY)])                  # twice: a warning, never a crash


def test_a_family_outside_the_registry_needs_its_defaults():
    with pytest.raises(ConfigError, match="default_size"):
        F.register_family(F.GeneratorFamily("nameless", "FluxPipeline"))
    with pytest.raises(ConfigError):
        F.register_family("sd1")


def test_the_engine_draws_noise_and_calls_through_the_registration():
    """The engine asks the family for the latents (shape and packing) and the call: a registration changes both."""
    from aigif import Generation
    from aigif.engine import Engine

    seen = []

    class Watched(F.GeneratorFamily):
        def pack_latents(self, latents):
            seen.append(tuple(latents.shape))
            return latents

    gen = Generation(prompt="a boat", seed=3, num_inference_steps=2, guidance_scale=7.5, width=64, height=48)
    base = Engine(threads=1).generate(gen).image
    F.register_family(Watched(**{f.name: getattr(F.get_family("sd1"), f.name) for f in dataclasses.fields(F.GeneratorFamily)}),
                      replace=True)
    again = Engine(threads=1).generate(gen).image
    assert seen == [(1, 4, 6, 8)] and np.array_equal(base, again)


def test_the_allowlists_are_the_registrations():
    """Loading and adapter allowlists are derived from the registered families: removing SD3's registration removes
    its pipelines, and an adapter that returns one is then refused by the engine and flagged by `aigif extensions`."""
    from aigif.cli.ext_cmds import cli_extensions
    from aigif.engine.adapters import check_adapter
    from aigif.errors import ExtensionError
    from aigif.syntax.msgpack_schema import Field

    sd3 = {"StableDiffusion3Pipeline", "StableDiffusion3Img2ImgPipeline"}
    assert F.adapter_pipelines() == {p for f in F.registered_families() for p in (f.pipeline, *f.variants)}
    assert "StableDiffusion3Pipeline" in F.allowed_pipelines() and sd3 <= F.adapter_pipelines()

    class Adapter:
        pipeline = "StableDiffusion3Img2ImgPipeline"

        def adapt(self, pipe, call_kwargs, data):
            return pipe, call_kwargs

    ext = X.msgpack_extension("sd3-i2i", 0x4003, {"n": Field("int")}, adapter=Adapter())
    check_adapter(ext)
    F.unregister_family("sd3")
    assert not sd3 & F.allowed_pipelines() and not sd3 & F.adapter_pipelines()
    with pytest.raises(ExtensionError, match="StableDiffusion3Img2ImgPipeline are not allowlisted"):
        check_adapter(ext)
    X.register_extension(ext)
    try:
        assert "not allowlisted, the engine refuses this adapter: StableDiffusion3Img2ImgPipeline" in cli_extensions()
    finally:
        X.unregister_extension(ext.name)


def test_a_misspelled_family_is_refused_when_writing_and_lists_the_known_ones(tmp_path):
    """pack / generate refuse a family name that is not in the registry, not registered and not <package>.<family>;
    reading such a file stays possible (its family is only a string)."""
    import aigif
    from aigif import api
    from aigif.cli import main
    from aigif.errors import AigifError
    from aigif.syntax import dumps, loads

    desc = {"model": {"repo": "someone/x", "family": "flux-1"}, "prompt": "a cat", "seed": 1}
    with pytest.raises(AigifError) as exc:
        api.pack(desc)
    assert "'flux-1'" in str(exc.value) and all(f in str(exc.value) for f in ("flux1", "qwen-image", "z-image", "sdxl"))
    with pytest.raises(ConfigError, match="unknown generator family 'flux-1'"):
        api.generate("a cat", model=ModelRef(repo="someone/x", family="flux-1"), seed=1, steps=1)
    (tmp_path / "d.json").write_text('{"model": {"repo": "someone/x", "family": "flux-1"}, "prompt": "a cat"}')
    assert main(["pack", str(tmp_path / "d.json"), "-o", str(tmp_path / "d.aigif")]) != 0
    assert not (tmp_path / "d.aigif").exists()
    for family in ("flux1", "aigif_hidream.hidream"):   # registry and package families pack
        assert loads(api.pack({**desc, "model": {"repo": "someone/x", "family": family}})).model.family == family
    F.register_family(F.GeneratorFamily("toy", "StableDiffusionPipeline", default_size=64))
    assert loads(api.pack({**desc, "model": {"repo": "someone/x", "family": "toy"}})).model.family == "toy"
    assert loads(dumps(aigif.document_from_dict(desc))).model.family == "flux-1"
