"""ComfyUI FLUX.1 / SD 3.5 graphs (as ComfyUI's example workflows write them) -> syntax the engine regenerates."""
import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from aigif import api
from aigif.engine import Engine
from aigif.errors import ImportMetadataError
from aigif.importers import EXACT, Options, encode_image, import_bytes, import_image
from aigif.syntax import ComponentRef, Generation, ModelRef, loads
from aigif.syntax.elements import Lora

from .comfy_layout import lay_out_tiny_flux

FIX = Path(__file__).parent / "fixtures" / "importers"
SAMPLES = json.loads((FIX / "samples.json").read_text(encoding="utf-8"))
pytestmark = pytest.mark.usefixtures("aigif_home")


def graph_of(name: str) -> dict:
    return json.loads(SAMPLES[name]["fields"]["prompt"])


def png_with(graph: dict, rgb=None, workflow: str | None = None) -> bytes:
    info = PngInfo()
    info.add_text("prompt", json.dumps(graph))
    if workflow is not None:
        info.add_text("workflow", workflow)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) if rgb is None else rgb).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def short_flux(changes: dict | None = None) -> dict:
    """ComfyUI's flux_dev example graph with a prompt short enough for its T5 padding."""
    g = graph_of("comfyui_flux_dev")
    g["6"]["inputs"]["text"] = "a red fox in the snow"
    for (node, key), value in (changes or {}).items():
        g[node]["inputs"][key] = value
    return g


# --- the real example graphs ---------------------------------------------------------------
def test_flux_dev_example_maps_to_the_syntax_with_its_files():
    imp = import_image(next((FIX / "images").glob("comfyui_flux_dev.*")))
    g, m = imp.generation, imp.model
    assert (g.seed, g.num_inference_steps, g.guidance_scale, g.width, g.height) == (219670278747233, 20, 3.5, 1024, 1024)
    assert (g.scheduler, g.scheduler_config, g.min_sequence_length) == ("flow-euler", None, 256)
    assert m == ModelRef(name="flux1-dev", local="diffusion_models/flux1-dev.safetensors",
                         text_encoders=(ComponentRef(local="text_encoders/clip_l.safetensors", subfolder="text_encoder"),
                                        ComponentRef(local="text_encoders/t5xxl_fp16.safetensors", subfolder="text_encoder_2")),
                         vae=ComponentRef(local="vae/ae.safetensors"))
    # its 393-character prompt may pass the 256 T5 tokens ComfyUI pads to: the engine pads to its own length then
    assert imp.regenerable and len(g.prompt) == 393, imp.reason
    short = import_bytes(png_with(short_flux()))
    assert short.regenerable and short.generation.prompt == "a red fox in the snow", short.reason


def test_flux_schnell_example_keeps_comfyuis_constant_time_shift():
    imp = import_image(next((FIX / "images").glob("comfyui_flux_schnell.*")))
    g = imp.generation
    assert imp.regenerable, imp.reason
    assert imp.model.name == "flux1-schnell" and (g.seed, g.num_inference_steps) == (112298569477003, 4)
    # ComfyUI shifts schnell's sigmas by mu = 1.0 whatever the size; diffusers' schnell scheduler does not shift
    assert g.scheduler_config == {"use_dynamic_shifting": True, "base_shift": 1.0, "max_shift": 1.0}


def test_flux_all_in_one_checkpoint_is_mapped_and_not_regenerable():
    imp = import_image(next((FIX / "images").glob("comfyui_flux_dev_checkpoint.*")))
    g = imp.generation
    assert (g.seed, g.guidance_scale, g.scheduler_config) == (972054013131368, 3.5, {"base_shift": 1.15, "max_shift": 1.15})
    assert imp.model.local == "checkpoints/flux1-dev-fp8.safetensors" and imp.model.family == "flux1"
    assert "all-in-one FLUX.1 checkpoint (flux1-dev-fp8.safetensors)" in imp.reason
    assert "not a file of a registry model" in imp.reason


def test_sd35_examples_map_cfg_negative_and_text_encoders():
    simple = import_image(next((FIX / "images").glob("comfyui_sd35.*")))
    assert simple.generation.guidance_scale == 4.01 and simple.generation.negative_prompt == ""
    assert simple.generation.min_sequence_length == 77 and simple.model.family == "sd3"
    enc = import_image(next((FIX / "images").glob("comfyui_sd35_encoders.*")))
    assert enc.model.name == "sd35-large" and enc.generation.guidance_scale == 5.45      # spare loaders are ignored
    assert [t.local for t in enc.model.text_encoders] == [f"text_encoders/{n}.safetensors" for n in ("clip_l", "clip_g", "t5xxl_fp16")]
    assert [t.subfolder for t in enc.model.text_encoders] == ["text_encoder", "text_encoder_2", "text_encoder_3"]
    assert "all-in-one SD 3.5 checkpoint" in enc.reason


def sd35_split(prompt="a fox", **inputs) -> dict:
    """An SD 3.5 graph on ComfyUI's separate files: UNETLoader + TripleCLIPLoader + VAELoader + ModelSamplingSD3."""
    g = graph_of("comfyui_sd35_encoders")
    for spare in ("41", "42"):
        del g[spare]
    g["4"] = {"class_type": "UNETLoader", "inputs": {"unet_name": "sd3.5_medium.safetensors", "weight_dtype": "default"}}
    g["50"] = {"class_type": "VAELoader", "inputs": {"vae_name": "sd35_vae.safetensors"}}
    g["51"] = {"class_type": "ModelSamplingSD3", "inputs": {"shift": 3.0, "model": ["4", 0]}}
    g["3"]["inputs"]["model"] = ["51", 0]
    g["8"]["inputs"]["vae"] = ["50", 0]
    g["16"]["inputs"]["text"] = prompt
    for key, v in inputs.items():
        g[key.split("__")[0]]["inputs"][key.split("__")[1]] = v
    return g


def test_sd35_on_separate_files_is_regenerable_and_takes_modelsamplingsd3s_shift():
    imp = import_bytes(png_with(sd35_split()))
    assert imp.regenerable, imp.reason
    assert imp.model.name == "sd35-medium" and imp.model.vae == ComponentRef(local="vae/sd35_vae.safetensors")
    assert imp.generation.scheduler_config is None                       # shift 3.0 is the model's own
    shifted = import_bytes(png_with(sd35_split(**{"51__shift": 5.0})))
    assert shifted.generation.scheduler_config == {"shift": 5.0}
    dpm = import_bytes(png_with(sd35_split(**{"51__shift": 5.0, "3__sampler_name": "dpmpp_2m"})))
    assert (dpm.generation.scheduler, dpm.generation.scheduler_config) == ("flow-dpmpp-2m", {"flow_shift": 5.0})
    fp8 = import_bytes(png_with(sd35_split(**{"4__weight_dtype": "fp8_e4m3fn"})))
    assert not fp8.regenerable and "weight_dtype fp8_e4m3fn" in fp8.reason


# --- FLUX wiring variants ------------------------------------------------------------------------
def test_modelsamplingflux_follows_the_size_or_becomes_a_constant_shift():
    assert import_bytes(png_with(short_flux({("30", "max_shift"): 1.3}))).generation.scheduler_config == \
        {"base_shift": 0.5, "max_shift": 1.3}
    other = import_bytes(png_with(short_flux({("30", "width"): 512, ("30", "height"): 512}))).generation
    mu = 512 * 512 / 256 * (0.65 / 3840) + (0.5 - 0.65 / 3840 * 256)       # the node's line at its own size
    assert other.scheduler_config == {"base_shift": mu, "max_shift": mu}
    g = short_flux()
    g["22"]["inputs"]["model"] = g["17"]["inputs"]["model"] = ["12", 0]
    del g["30"]
    assert import_bytes(png_with(g)).generation.scheduler_config == {"base_shift": 1.15, "max_shift": 1.15}


def test_flux_guidance_cfg_and_prompts():
    g = short_flux({("26", "guidance"): 2.5})
    g["6"] = {"class_type": "CLIPTextEncodeFlux", "inputs": {"clip_l": "fox", "t5xxl": "a red fox", "guidance": 7.0,
                                                               "clip": ["11", 0]}}
    gen = import_bytes(png_with(g)).generation
    assert (gen.prompt, gen.prompt_2, gen.guidance_scale) == ("fox", "a red fox", 2.5)     # FluxGuidance wins
    # KSampler with cfg > 1 and a text negative: FLUX's guidance stays, true CFG on top
    k = {"class_type": "KSampler", "inputs": {"seed": 2**64 - 1, "steps": 8, "cfg": 2.0, "sampler_name": "euler",
                                              "scheduler": "beta", "denoise": 1.0, "model": ["30", 0],
                                              "positive": ["26", 0], "negative": ["40", 0], "latent_image": ["27", 0]}}
    g = short_flux()
    for n in ("13", "16", "17", "22", "25"):
        del g[n]
    g["13"], g["40"] = k, {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["11", 0]}}
    g["41"] = {"class_type": "FluxGuidance", "inputs": {"guidance": 3.5, "conditioning": ["40", 0]}}
    g["13"]["inputs"]["negative"] = ["41", 0]
    imp = import_bytes(png_with(g))
    gen = imp.generation
    assert imp.regenerable, imp.reason
    assert (gen.seed, gen.true_cfg_scale, gen.negative_prompt, gen.guidance_scale, gen.scheduler) == \
        (2**64 - 1, 2.0, "blurry", 3.5, "flow-euler-beta")
    g["41"]["inputs"]["guidance"] = 5.0
    assert "another FLUX guidance" in import_bytes(png_with(g)).reason
    g["41"] = {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["40", 0]}}
    assert "zeroed negative" in import_bytes(png_with(g)).reason
    g["13"]["inputs"]["cfg"] = 1.0                   # cfg 1: the negative is not sampled at all
    assert import_bytes(png_with(g)).regenerable


@pytest.mark.parametrize("change, words", [
    ({("16", "sampler_name"): "heun"}, "its own sigma list"),
    ({("16", "sampler_name"): "euler_ancestral"}, "euler_ancestral"),
    ({("17", "denoise"): 0.6}, "denoise 0.6"),
    ({("11", "clip_name1"): "encoder.safetensors"}, "cannot tell which text encoder encoder.safetensors"),
    ({("12", "weight_dtype"): "fp8_e4m3fn"}, "weight_dtype fp8_e4m3fn"),
    ({("12", "unet_name"): "fluxmania_v7.safetensors"}, "fluxmania_v7.safetensors is not a file of a registry model"),
    ({("27", "batch_size"): 4}, "batch_size 4"),
])
def test_what_the_engine_cannot_reproduce_is_refused_with_the_reason(change, words):
    imp = import_bytes(png_with(short_flux(change)))
    assert imp.has_syntax and not imp.regenerable and words in imp.reason, imp.reason


def test_unknown_nodes_and_a_second_pass_keep_the_main_pass_only():
    g = short_flux()
    g["90"] = {"class_type": "FreeU_V2", "inputs": {"b1": 1.3, "b2": 1.4, "s1": 0.9, "s2": 0.2, "model": ["12", 0]}}
    g["30"]["inputs"]["model"] = ["90", 0]
    imp = import_bytes(png_with(g))
    assert not imp.regenerable and "FreeU_V2" in imp.reason and imp.generation.seed == 219670278747233
    g = short_flux()
    g["91"] = {"class_type": "SuperUpscaler", "inputs": {"image": ["8", 0]}}
    assert "custom node SuperUpscaler" in import_bytes(png_with(g)).reason


# --- LoRA loaders ------------------------------------------------------------------------------------
def with_loras(g: dict, *loras: tuple) -> dict:
    """Chain (id, class, lora_name, strength_model, strength_clip) loaders between the FLUX example's UNETLoader (12)
    / DualCLIPLoader (11) and ModelSamplingFlux (30) / the prompt encoder (6)."""
    model, clip = ["12", 0], ["11", 0]
    for node, cls, name, sm, sc in loras:
        inputs = {"lora_name": name, "strength_model": sm, "model": model}
        if cls == "LoraLoader":
            inputs.update(strength_clip=sc, clip=clip)
            clip = [node, 1]
        g[node] = {"class_type": cls, "inputs": inputs}
        model = [node, 0]
    g["30"]["inputs"]["model"], g["6"]["inputs"]["clip"] = model, clip
    return g


def test_flux_lora_loaders_map_to_loras_with_their_text_strength():
    g = with_loras(short_flux(), ("90", "LoraLoaderModelOnly", "flux\\style.safetensors", 0.8, None),
                   ("91", "LoraLoader", "detail.safetensors", 0.5, 1.0), ("92", "LoraLoader", "same.safetensors", 0.7, 0.7))
    imp = import_bytes(png_with(g))
    assert imp.regenerable, imp.reason
    assert imp.model.loras == (Lora(name="style", weight=0.8, weight_name="flux/style.safetensors", text_weight=0.0),
                               Lora(name="detail", weight=0.5, weight_name="detail.safetensors", text_weight=1.0),
                               Lora(name="same", weight=0.7, weight_name="same.safetensors"))
    assert imp.model.name == "flux1-dev" and imp.generation.seed == 219670278747233
    # the ModelSamplingFlux node may sit below the LoRAs too
    g = with_loras(short_flux(), ("90", "LoraLoaderModelOnly", "style.safetensors", 1.0, None))
    g["30"]["inputs"]["model"], g["90"]["inputs"]["model"] = ["12", 0], ["30", 0]
    g["22"]["inputs"]["model"] = g["17"]["inputs"]["model"] = ["90", 0]
    imp = import_bytes(png_with(g))
    assert imp.regenerable and [lo.name for lo in imp.model.loras] == ["style"], imp.reason


def test_flux_lora_wirings_outside_the_mapping_are_refused_with_the_reason():
    g = with_loras(short_flux(), ("91", "LoraLoader", "detail.safetensors", 0.5, 1.0))
    g["6"]["inputs"]["clip"] = ["11", 0]                     # the LoRA patches the model, not the prompt's encoder
    assert "applied differently" in import_bytes(png_with(g)).reason
    g = with_loras(short_flux(), ("91", "LoraLoader", "detail.safetensors", 0.5, 1.0))
    g["6"]["inputs"]["clip"] = ["91", 0]
    assert "output 0 of LoraLoader" in import_bytes(png_with(g)).reason
    g = with_loras(short_flux(), ("91", "LoraLoaderModelOnly", "x.safetensors", "strong", None))
    assert not import_bytes(png_with(g)).regenerable
    g = with_loras(short_flux(), ("91", "LoraLoaderModelOnly", "x.safetensors", 1.0, None))
    g["91"]["inputs"]["model"] = ["30", 0]
    g["30"]["inputs"]["model"] = ["91", 0]                    # a cycle: ComfyUI refuses it, so does the import
    with pytest.raises(ImportMetadataError, match="cycle"):
        import_bytes(png_with(g))


# --- end to end: a graph for the embedded FLUX model regenerates -----------------------------------
@pytest.fixture(scope="module")
def comfy_dir(tmp_path_factory):
    """The embedded FLUX model as ComfyUI users keep it, with the legacy clip/ folder for one encoder."""
    return lay_out_tiny_flux(tmp_path_factory.mktemp("comfy"), ("diffusion_models/aigif-tiny-flux.safetensors",
                             "clip/clip_l.safetensors", "text_encoders/t5xxl_tiny.safetensors", "vae/ae.safetensors"))


def tiny_graph(seed: int) -> dict:
    g = short_flux({("12", "unet_name"): "aigif-tiny-flux.safetensors", ("11", "clip_name1"): "t5xxl_tiny.safetensors",
                      ("25", "noise_seed"): seed, ("17", "steps"): 3, ("27", "width"): 64, ("27", "height"): 64,
                      ("30", "width"): 64, ("30", "height"): 64, ("26", "guidance"): 4.0})
    return g


def test_a_comfyui_flux_graph_for_the_tiny_model_regenerates_bit_exactly(comfy_dir):
    engine = Engine(model_dirs=[comfy_dir])
    seed = 2**63 + 12345                         # ComfyUI's seeds reach 2**64 - 1
    # what the graph says, written out by hand: the syntax the importer must produce
    ref = ModelRef(name="aigif-tiny-flux", local="diffusion_models/aigif-tiny-flux.safetensors",
                   text_encoders=(ComponentRef(local="text_encoders/clip_l.safetensors", subfolder="text_encoder"),
                                  ComponentRef(local="text_encoders/t5xxl_tiny.safetensors", subfolder="text_encoder_2")),
                   vae=ComponentRef(local="vae/ae.safetensors"))
    gen = Generation(prompt="a red fox in the snow", seed=seed, num_inference_steps=3, guidance_scale=4.0, width=64,
                     height=64, scheduler="flow-euler", min_sequence_length=256)
    made = engine.generate(gen, ref).image
    data = png_with(tiny_graph(seed), made, SAMPLES["comfyui_flux_dev"]["fields"]["workflow"])
    imp = import_bytes(data)
    assert imp.regenerable, imp.reason
    assert imp.generation == gen and imp.model == ref
    # --syntax-only, then decoded by the engine from the model dir: the same pixels
    syn = encode_image(data, options=Options(syntax_only=True))
    assert "regenerable: yes" in syn.outcome.reason
    assert np.array_equal(np.asarray(api.decode(syn.data, engine=engine).image), made)
    # a full import regenerates the graph's image exactly and keeps no pixels
    full = encode_image(data, engine=engine)
    assert full.outcome.kind == EXACT, full.outcome.reason
    doc = loads(full.data)
    assert doc.pixels is None and doc.residual is None and doc.extensions      # the graph segment stays


def test_a_comfyui_flux_graph_with_loras_regenerates_bit_exactly(comfy_dir):
    from .test_engine_flow_lora import make_flow_lora

    (comfy_dir / "loras" / "flux").mkdir(parents=True, exist_ok=True)
    make_flow_lora(comfy_dir / "loras" / "flux", "aigif-tiny-flux", "tiny-style.safetensors", 4)
    make_flow_lora(comfy_dir / "loras", "aigif-tiny-flux", "tiny-detail.safetensors", 5)
    engine = Engine(model_dirs=[comfy_dir])
    graph = with_loras(tiny_graph(77), ("90", "LoraLoader", "flux\\tiny-style.safetensors", 0.8, 0.5),
                       ("91", "LoraLoaderModelOnly", "tiny-detail.safetensors", -0.6, None))
    imp = import_bytes(png_with(graph))
    assert imp.regenerable, imp.reason
    assert imp.model.loras == (Lora(name="tiny-style", weight=0.8, weight_name="flux/tiny-style.safetensors", text_weight=0.5),
                               Lora(name="tiny-detail", weight=-0.6, weight_name="tiny-detail.safetensors", text_weight=0.0))
    made = engine.generate(imp.generation, imp.model)
    plain = engine.generate(imp.generation, dataclasses.replace(imp.model, loras=())).image
    assert not np.array_equal(made.image, plain)
    full = encode_image(png_with(graph, made.image), engine=engine)
    assert full.outcome.kind == EXACT, full.outcome.reason
    doc = loads(full.data)
    assert doc.pixels is None and doc.residual is None and [lo.name for lo in doc.model.loras] == ["tiny-style", "tiny-detail"]
    assert np.array_equal(np.asarray(api.decode(full.data, engine=Engine(model_dirs=[comfy_dir])).image), made.image)


# --- hostile FLUX graphs ---------------------------------------------------------------------------
@pytest.mark.parametrize("value, error, words", [
    ("../../outside.safetensors", "UnsafeModelError", "outside the model dirs"),
    ("/etc/passwd.safetensors", "ModelError", "DIR/diffusion_models/etc/passwd.safetensors"),     # stays under DIR
])
def test_a_file_name_leaving_the_model_dirs_is_refused_at_decode(value, error, words, comfy_dir):
    from aigif import errors

    graph = tiny_graph(1)
    graph["12"]["inputs"]["unet_name"] = value
    syn = encode_image(png_with(graph), options=Options(syntax_only=True))
    with pytest.raises(getattr(errors, error)) as exc:
        api.decode(syn.data, engine=Engine(model_dirs=[comfy_dir]))
    assert words in str(exc.value)


def test_a_long_flux_guidance_chain_and_wrong_types_stay_bounded():
    g = short_flux()
    prev = ["6", 0]
    for i in range(5000):          # within Limits.max_graph_nodes: walked without recursion
        g[f"g{i}"] = {"class_type": "FluxGuidance", "inputs": {"guidance": float(i), "conditioning": prev}}
        prev = [f"g{i}", 0]
    g["26"]["inputs"]["conditioning"] = prev
    assert import_bytes(png_with(g)).generation.guidance_scale == 3.5      # node 26, nearest the sampler
    for bad in ({("25", "noise_seed"): "x"}, {("25", "noise_seed"): 2**70}, {("27", "width"): [1, 2, 3]},
                {("6", "text"): {"a": 1}}, {("17", "steps"): True}):
        imp = import_bytes(png_with(short_flux(bad)))
        assert not imp.regenerable                       # refused with a reason, never a crash
