"""LoRAs on the flow-matching families (FLUX.1, SD 3.5): applied, recorded, regenerated bit-exactly, refused cleanly."""
import hashlib

import numpy as np
import pytest

from aigif import Generation, ModelRef, dumps, loads
from aigif.errors import ModelError
from aigif.fidelity import EXACT, psnr
from aigif.syntax.elements import Lora

from .fresh_process import decode_in_fresh_process
from .test_engine_lora_vae import _seeded

pytestmark = pytest.mark.usefixtures("aigif_home")  # a fresh $AIGIF_HOME per module (conftest.py)

ATTENTION = ["to_q", "to_k", "to_v", "to_out.0"]
# model -> (pipeline class, the CLIP text encoders diffusers takes LoRAs for)
FLOW = {"aigif-tiny-flux": ("FluxPipeline", ("text_encoder",)),
        "aigif-tiny-sd3": ("StableDiffusion3Pipeline", ("text_encoder", "text_encoder_2"))}


def gen(seed=5, prompt="a red fox in the snow"):
    return Generation(prompt=prompt, seed=seed, num_inference_steps=3, guidance_scale=3.5, width=64, height=64)


def flow_lora_layers(model: str, seed: int, encoders: tuple[str, ...] | None = None) -> dict:
    """component -> PEFT LoRA tensors (seeded) for the tiny model's transformer attention and CLIP q/v projections."""
    import diffusers
    import transformers
    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model

    from aigif.engine import tiny

    spec = tiny.TINY[model]
    classes = {comp: cls for comp, cls, _ in spec.modules}
    out = {}
    for i, comp in enumerate(("transformer", *(FLOW[model][1] if encoders is None else encoders))):
        if comp == "transformer":
            module = getattr(diffusers, classes[comp])(**spec.config(comp))
            module.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=ATTENTION))
        else:
            cfg = getattr(transformers, classes[comp]).config_class(**spec.config(comp))
            module = inject_adapter_in_model(LoraConfig(r=2, lora_alpha=2, target_modules=["q_proj", "v_proj"]),
                                             getattr(transformers, classes[comp])(cfg))
        sd = get_peft_model_state_dict(module)
        out[comp] = {k: _seeded(tuple(v.shape), seed * 1000 + i * 100 + j, 0.3) for j, (k, v) in enumerate(sorted(sd.items()))}
    return out


def make_flow_lora(folder, model: str, name: str, seed: int, encoders: tuple[str, ...] | None = None):
    import diffusers

    layers = flow_lora_layers(model, seed, encoders)
    kw = {f"{comp}_lora_layers": sd for comp, sd in layers.items()}
    getattr(diffusers, FLOW[model][0]).save_lora_weights(folder, weight_name=name, safe_serialization=True, **kw)
    return folder / name


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, aigif_home):
    d = tmp_path_factory.mktemp("models")
    (d / "loras").mkdir()
    for model in FLOW:
        make_flow_lora(d / "loras", model, f"{model}-style.safetensors", 1)
        make_flow_lora(d, model, f"{model}-denoiser.safetensors", 1, encoders=())
    return d


@pytest.fixture(scope="module")
def engine(model_dir):
    from aigif.engine import Engine

    return Engine(model_dirs=[model_dir], threads=1)


def ref(model, *loras):
    return ModelRef(name=model, loras=tuple(loras))


@pytest.mark.parametrize("model", list(FLOW))
def test_a_flow_lora_changes_the_image_is_recorded_and_regenerates_in_a_fresh_process(
        model, engine, model_dir, tmp_path, aigif_home, monkeypatch):
    base = engine.generate(gen(), ref(model)).image
    res = engine.generate(gen(), ref(model, Lora(name=f"{model}-style", weight=0.8)))
    assert not np.array_equal(res.image, base) and psnr(res.image, base) < 45
    sha = hashlib.sha256((model_dir / "loras" / f"{model}-style.safetensors").read_bytes()).hexdigest()
    doc = loads(dumps(res.document))
    assert [(lo.name, lo.weight, lo.sha256) for lo in doc.model.loras] == [(f"{model}-style", 0.8, sha)]
    assert np.array_equal(engine.generate(gen(), ref(model)).image, base)          # adapters do not leak
    f = tmp_path / f"{model}.aigif"
    f.write_bytes(dumps(doc))
    monkeypatch.setenv("AIGIF_MODEL_DIRS", str(model_dir))
    decode_in_fresh_process([f], tmp_path / "out", aigif_home, [res.image])


@pytest.mark.parametrize("model", list(FLOW))
def test_text_weight_zero_is_the_denoiser_only_lora(model, engine, model_dir):
    """ComfyUI's LoraLoaderModelOnly / strength_clip 0: the text-encoder tensors of the file are not applied."""
    full = engine.generate(gen(seed=8), ref(model, Lora(name=f"{model}-style", weight=0.7))).image
    model_only = engine.generate(gen(seed=8), ref(model, Lora(name=f"{model}-style", weight=0.7, text_weight=0.0))).image
    denoiser_file = engine.generate(gen(seed=8), ref(model, Lora(name=f"{model}-denoiser", weight=0.7))).image
    assert np.array_equal(model_only, denoiser_file) and not np.array_equal(full, model_only)
    other = engine.generate(gen(seed=8), ref(model, Lora(name=f"{model}-style", weight=0.7, text_weight=-1.0))).image
    assert not np.array_equal(other, full) and not np.array_equal(other, model_only)
    from aigif.engine import Engine

    doc = engine.generate(gen(seed=8), ref(model, Lora(name=f"{model}-style", weight=0.7, text_weight=-1.0))).document
    out = Engine(model_dirs=[model_dir], threads=1).decode(loads(dumps(doc)))
    assert out.report.status == EXACT and np.array_equal(out.image, other)


def test_flux_lora_equals_diffusers_own_lora_path(engine, model_dir):
    """Un-fused adapters on FLUX.1: the numerics of FluxPipeline.load_lora_weights + set_adapters."""
    import diffusers
    import torch

    from aigif.engine import prepare_pipeline
    from aigif.engine.families import get_family
    from aigif.engine.schedulers import make_scheduler
    from aigif.engine.tiny import ensure_tiny

    g = gen(seed=13)
    ours = engine.generate(g, ref("aigif-tiny-flux", Lora(name="aigif-tiny-flux-style", weight=0.6))).image
    pipe = diffusers.FluxPipeline.from_pretrained(ensure_tiny("aigif-tiny-flux"))
    prepare_pipeline(pipe)
    pipe.load_lora_weights(str(model_dir / "loras"), weight_name="aigif-tiny-flux-style.safetensors", adapter_name="x")
    pipe.set_adapters(["x"], adapter_weights=[0.6])
    pipe.scheduler = make_scheduler(type(pipe.scheduler).__name__, dict(pipe.scheduler.config), None, None)
    pipe.set_progress_bar_config(disable=True)
    torch.set_num_threads(1)
    latents, generator = get_family("flux1").initial_noise(pipe, g, torch.float32, "cpu")
    kw = get_family("flux1").call_kwargs(g)
    out = pipe(**kw, latents=latents, generator=generator, output_type="np").images[0]
    assert np.array_equal(np.round(out * 255).astype(np.uint8), ours)


def test_loras_for_other_components_or_families_are_refused_cleanly(engine, model_dir):
    import diffusers

    base = engine.generate(gen(), ref("aigif-tiny-flux")).image
    # a FLUX LoRA with T5 tensors: diffusers' FluxPipeline takes LoRAs for the transformer and CLIP only
    t5 = flow_lora_layers("aigif-tiny-flux", 3, ("text_encoder",))
    tensors = {f"transformer.{k}": v for k, v in t5["transformer"].items()}
    tensors.update({f"text_encoder_2.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight": _seeded((2, 32), 1, 0.3),
                    f"text_encoder_2.encoder.block.0.layer.0.SelfAttention.q.lora_B.weight": _seeded((32, 2), 2, 0.3)})
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, str(model_dir / "t5.safetensors"))
    with pytest.raises(ModelError, match="text_encoder_2.*takes no LoRA"):
        engine.generate(gen(), ref("aigif-tiny-flux", Lora(local="t5.safetensors")))
    # an SD 3.5 LoRA on FLUX.1, a FLUX.1 LoRA on SD 3.5
    for model, other in (("aigif-tiny-flux", "aigif-tiny-sd3"), ("aigif-tiny-sd3", "aigif-tiny-flux")):
        with pytest.raises(ModelError, match="another model family"):
            engine.generate(gen(), ref(model, Lora(name=f"{other}-style")))
    assert np.array_equal(engine.generate(gen(), ref("aigif-tiny-flux")).image, base)   # nothing left behind
