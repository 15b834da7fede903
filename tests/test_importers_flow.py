"""Importers on flow-matching models: A1111/Forge and ComfyUI sampler names map through aigif.syntax.flow, the one table."""
import io

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from aigif import api
from aigif.engine import default_engine
from aigif.errors import ConfigError
from aigif.importers import EXACT, encode_image, import_bytes, samplers
from aigif.importers.a1111 import map_a1111
from aigif.syntax import flow

pytestmark = pytest.mark.usefixtures("aigif_home")


@pytest.mark.parametrize("family,sampler,schedule,want", [
    ("flux1", "Euler", "Simple", "flow-euler"),
    ("flux1", "Euler", None, "flow-euler"),
    ("flux1", "Euler", "SGM Uniform", "flow-euler"),
    ("flux1", "Euler", "Karras", "flow-euler-karras"),
    ("flux1", "Euler", "Beta", "flow-euler-beta"),
    ("sd3", "DPM++ 2M", "Simple", "flow-dpmpp-2m"),
    ("sd3", "Heun", "Normal", "flow-heun"),
    ("sd3", "flow-heun", None, "flow-heun"),             # aigif's own export
])
def test_a1111_names_on_flow_models(family, sampler, schedule, want):
    assert samplers.from_a1111(sampler, schedule, family) == (want, None)


@pytest.mark.parametrize("family,sampler,schedule,want", [
    ("flux1", "euler", "simple", "flow-euler"), ("flux1", "euler", "beta", "flow-euler-beta"),
    ("sd3", "dpmpp_2m", "sgm_uniform", "flow-dpmpp-2m"), ("sd3", "heun_gpu", "normal", "flow-heun"),
])
def test_comfyui_names_on_flow_models(family, sampler, schedule, want):
    assert samplers.from_comfy(sampler, schedule, family) == (want, None)
    assert samplers.from_comfy("euler", "karras") == ("euler-karras", None)     # the same names on SD stay SD's


@pytest.mark.parametrize("family,sampler,schedule,why", [
    ("flux1", "Euler a", "Simple", "euler_a"),                   # no flow scheduler for it
    ("sd3", "Heun", "Beta", "only in FlowMatchEulerDiscreteScheduler"),
    ("flux1", "Heun", "Simple", "its own sigma list"),           # FluxPipeline passes its own sigmas
    ("flux1", "Euler", "Automatic", "automatic"),
])
def test_a_flow_schedule_that_cannot_be_reproduced_is_refused_with_the_reason(family, sampler, schedule, why):
    with pytest.raises(ConfigError, match=why):
        samplers.from_a1111(sampler, schedule, family)
    imp = map_a1111(f"a fox\nSteps: 3, Sampler: {sampler}, Schedule type: {schedule}, CFG scale: 3.5, Seed: 1, "
                    f"Size: 64x64, AIGIF model: aigif-tiny-{'flux' if family == 'flux1' else 'sd3'}")
    reasons = imp.unsupported + imp.partial                      # kept at most as a partial syntax, never regenerated
    assert any(why in r for r in reasons) and (imp.generation is None or imp.generation.scheduler is None), reasons


def test_the_importers_use_the_flow_table_itself(monkeypatch):
    """One mapping: a schedule added to aigif.syntax.flow is understood by both importers, no second table to edit."""
    with pytest.raises(ConfigError):
        samplers.from_comfy("euler", "kl_optimal", "sd3")
    monkeypatch.setitem(flow.SIGMA_SCHEDULES, "kl_optimal", "-karras")
    assert samplers.from_comfy("euler", "kl_optimal", "sd3") == ("flow-euler-karras", None)
    assert samplers.from_a1111("Euler", "KL Optimal", "sd3") == ("flow-euler-karras", None)


def test_a_forge_style_flux_image_imports_and_regenerates_exactly():
    """Sampler: Euler, Schedule type: Karras on the embedded FLUX model -> flow-euler-karras, regenerated bit-exactly."""
    made = api.generate("a red fox in the snow", model="aigif-tiny-flux", seed=11, steps=3, scheduler="flow-euler-karras")
    text = ("a red fox in the snow\nSteps: 3, Sampler: Euler, Schedule type: Karras, CFG scale: 3.5, Seed: 11, "
            "Size: 64x64, AIGIF model: aigif-tiny-flux")
    info = PngInfo()
    info.add_text("parameters", text)
    buf = io.BytesIO()
    made.image.save(buf, "PNG", pnginfo=info)
    imp = import_bytes(buf.getvalue())
    assert imp.generation.scheduler == "flow-euler-karras" and imp.model.name == "aigif-tiny-flux"
    enc = encode_image(buf.getvalue(), engine=default_engine())
    assert enc.outcome.kind == EXACT, enc.outcome.reason
    assert np.array_equal(np.asarray(api.decode(enc.data).image), np.asarray(made.image))
