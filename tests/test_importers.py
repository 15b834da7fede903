"""Importers: metadata of A1111 / ComfyUI / InvokeAI / NovelAI / Fooocus -> syntax, decisions, batch, way back.

Fixtures (tests/fixtures/importers/images, rebuilt by make_fixtures.py from samples.json) carry
real metadata texts of each tool (most from sd-parsers' own test resources) on 64x64 pixels.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from aigif import Document, Generation, Lora, ModelRef, dumps, loads
from aigif.errors import AigifError, ImportMetadataError, LimitError, ModelError
from aigif.importers import (
    EXACT, PIXELS, RESIDUAL, SYNTAX_ONLY, Options, a1111_parameters, decide, encode_image, import_bytes,
    import_image, png_info_for, read_image_and_metadata,
)
from aigif.importers import samplers
from aigif.importers.a1111 import map_a1111, parse_infotext
from aigif.batch import JOURNAL_NAME, Settings, run_files
from aigif.importers.extract import decode_user_comment, write_stealth

FIX = Path(__file__).parent / "fixtures" / "importers"
IMG = FIX / "images"
SAMPLES = json.loads((FIX / "samples.json").read_text(encoding="utf-8"))

SKIPPED, FAILED = "skipped", "error"


def run_batch(paths, out, *, engine=None, codec=None, options=Options(), force=False, progress=False):
    """``aigif encode``'s batch: the shared planner with the encode operation."""
    return run_files("encode", paths, out, Settings(engine=engine, codec=codec, options=options), force=force,
                     progress=progress)


def counts(summary):
    """Converted files by kind and all files by status (ok / skipped / error) in one Counter."""
    return summary.kinds + summary.counts



def fx(name: str) -> Path:
    return next(IMG.glob(name + ".*"))


# --- fakes for the engine and the codec ----------------------------------------------
class FakeCodec:
    """Lossless stand-in: pixels and residuals as raw bytes (the decision logic is what is tested)."""

    def compress_pixels(self, rgb, quality):
        return b"PIX" + np.asarray(rgb, np.uint8).tobytes()

    def compress_residual(self, original, reference, quality):
        d = original.astype(np.int16) - reference.astype(np.int16)
        return b"RES" + np.array(d.shape, np.uint32).tobytes() + d.tobytes()

    def decompress_residual(self, data, reference):
        shape = tuple(np.frombuffer(data[3:15], np.uint32))
        d = np.frombuffer(data[15:], np.int16).reshape(shape)
        return np.clip(reference.astype(np.int16) + d, 0, 255).astype(np.uint8)


class FakeEngine:
    def __init__(self, image=None, error=None):
        self.image, self.error, self.calls = image, error, 0

    def regenerate(self, doc):
        self.calls += 1
        if self.error:
            raise self.error
        return self.image


# --- A1111 ----------------------------------------------------------------------------
def test_a1111_png_every_field():
    imp = import_image(fx("a1111_basic"))
    g, m = imp.generation, imp.model
    assert imp.tool == "A1111" and imp.carrier == "png-text" and imp.unsupported == []
    assert (g.prompt, g.negative_prompt) == ("photo of a duck", "monochrome")
    assert (g.num_inference_steps, g.scheduler, g.guidance_scale, g.seed) == (15, "unipc", 5.0, 235284042)
    assert (g.width, g.height) == (512, 400)
    assert m == ModelRef(name="realistic_realisticVisionV20_v20", sha256="c0d1994c73")
    assert imp.metadata_bytes == len(SAMPLES["a1111_basic"]["fields"]["parameters"].encode())
    assert imp.extra["image_size"] == [64, 64]     # pixels were resized/cropped after generation


def test_a1111_full_registry_model_lora_vae_clip_skip():
    imp = import_image(fx("a1111_full"))
    g, m = imp.generation, imp.model
    assert g.prompt == "masterpiece, a cozy cabin in the woods, , (snow:1.2)"   # tag removed exactly as A1111 does
    assert g.negative_prompt == "lowres, bad anatomy"
    assert g.scheduler == "dpmpp-2m-karras" and g.clip_skip == 1 and g.guidance_scale == 6.5
    assert (g.seed, g.num_inference_steps, g.width, g.height) == (3912287450, 25, 512, 768)
    assert m.name == "sd15"                                     # AutoV2 6ce0161689 = registry sd15 single file
    assert m.vae.name == "vae-ft-mse-840000-ema-pruned.safetensors" and m.vae.sha256 == "735e4c3a44"
    assert [(lo.name, lo.weight, lo.sha256) for lo in m.loras] == [("add_detail", 0.5, "7c6bad76eb54")]
    assert imp.extra["params"] == {"ENSD": "31337"} and imp.extra["model_name"] == "v1-5-pruned-emaonly"
    assert imp.extra["prompt_syntax"] == "a1111" and imp.version == "v1.10.1"


@pytest.mark.parametrize("tag, lora, words", [
    ("<lora:x:0.5:1.5>", Lora(name="x", weight=1.5, text_weight=0.5), None),     # A1111: te, then unet multiplier
    ("<lora:x:0.5:0.5>", Lora(name="x", weight=0.5), None),
    ("<lora:x>", Lora(name="x"), None),
    ("<lora:x:1:1:8>", None, "named or dynamic-rank"),
    ("<lora:x:te=1>", None, "named or dynamic-rank"),
    ("<lora:x:a:1>", None, "not a number"),
    ("<lora:x:1> " * 17, None, "17 LoRAs, more than the 16"),
])
def test_a1111_lora_tags(tag, lora, words):
    imp = map_a1111(f"a fox {tag}\nSteps: 8, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512, Model: m")
    if words is None:
        assert imp.regenerable or imp.has_syntax, imp.reason
        assert imp.model.loras == (lora,)
    else:
        assert words in imp.reason, imp.reason


@pytest.mark.parametrize("name, carrier", [("a1111_jpeg", "exif-usercomment"), ("a1111_webp", "exif-usercomment")])
def test_a1111_exif_forms_give_the_png_syntax(name, carrier):
    png, other = import_image(fx("a1111_basic")), import_image(fx(name))
    assert other.carrier == carrier
    assert (other.generation, other.model) == (png.generation, png.model)


@pytest.mark.parametrize("name, carrier", [("a1111_stealth", "stealth-alpha"), ("a1111_stealth_rgb", "stealth-rgb")])
def test_a1111_stealth_forms(name, carrier):
    imp = import_image(fx(name))
    g = imp.generation
    assert imp.carrier == carrier
    assert (g.prompt, g.negative_prompt, g.scheduler, g.seed, g.clip_skip) == ("a circle", "a square", "euler", 2015833630, None)
    assert imp.extra["clip_layer"] == 2          # "Clip skip: 2" waits for the model family (unknown checkpoint)
    assert imp.version == "v1.9.4-169-ga30b19dd" and imp.model.sha256 == "15012c538f"


def test_user_comment_byte_orders():
    text = "a cat\nSteps: 1, Sampler: Euler, CFG scale: 1, Seed: 1"
    assert decode_user_comment(b"UNICODE\0" + text.encode("utf-16-be")) == text
    assert decode_user_comment(b"UNICODE\0" + text.encode("utf-16-le")) == text
    assert decode_user_comment(b"ASCII\0\0\0" + text.encode()) == text


@pytest.mark.parametrize("sampler, schedule, expected", [
    ("DPM++ 2M Karras", None, "dpmpp-2m-karras"), ("DPM++ 2M", "Karras", "dpmpp-2m-karras"),
    ("DPM++ 2M Karras", "Karras", "dpmpp-2m-karras"), ("Euler a", "Automatic", "euler-a"), ("Euler", "Uniform", "euler"),
    ("DPM++ 2M", "Automatic", None), ("DPM++ 2M", "Exponential", None), ("DPM++ 2M SDE", "Karras", "dpmpp-2m-sde-karras"),
    ("UniPC", None, "unipc"), ("DPM adaptive", None, None), ("Restart", "Karras", None),
])
def test_a1111_sampler_table(sampler, schedule, expected):
    got = samplers.from_a1111(sampler, schedule)
    assert (got[0] if got else None) == expected


@pytest.mark.parametrize("pair, expected", [
    (("dpmpp_2m", "karras"), "dpmpp-2m-karras"), (("euler", "normal"), "euler"), (("euler_ancestral", "normal"), "euler-a"),
    (("dpmpp_2m_sde_gpu", "karras"), "dpmpp-2m-sde-karras"), (("sample_dpmpp_2m", "normal"), "dpmpp-2m"),
    (("uni_pc", "normal"), "unipc"), (("euler", "exponential"), None), (("uni_pc_bh2", "normal"), None), (("ddim", "ddim_uniform"), None),
])
def test_comfy_sampler_pairs(pair, expected):
    got = samplers.from_comfy(*pair)
    assert (got[0] if got else None) == expected


def test_invokeai_scheduler_configs():
    assert samplers.from_invokeai("heun_k") == ("heun", {"use_karras_sigmas": True})
    assert samplers.from_invokeai("dpmpp_sde_k") == ("dpmpp-sde-karras", {"noise_sampler_seed": 0})
    assert samplers.from_invokeai("k_lms") == ("lms", None)
    assert samplers.from_invokeai("tcd") is None


def test_infotext_split_keeps_whitespace_and_quotes():
    p = parse_infotext('  two\nlines \nNegative prompt: neg\nmore neg\nSteps: 5, Sampler: Euler, Seed: 3, '
                       'Lora hashes: "a: 0123456789ab, b: ba9876543210", Hashes: {"model": "6ce0161689"}, Xy: y')
    assert p["prompt"] == "  two\nlines " and p["negative_prompt"] == "neg\nmore neg"
    assert p["Lora hashes"] == "a: 0123456789ab, b: ba9876543210" and p["Xy"] == "y"
    assert json.loads(p["Hashes"]) == {"model": "6ce0161689"}


def test_registry_name_collision_is_not_the_registry_model():
    imp = map_a1111("x\nSteps: 5, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 64x64, Model: sdxl")
    assert imp.model.name == "checkpoint:sdxl"
    imp = map_a1111("x\nSteps: 5, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 64x64, Model hash: 31e35c80fc, Model: sdxl")
    assert imp.model.name == "sdxl"


# --- ComfyUI / InvokeAI / NovelAI / Fooocus ----------------------------------------------
def test_comfyui_txt2img_graph():
    imp = import_image(fx("comfyui_txt2img"))
    g, m = imp.generation, imp.model
    assert imp.tool == "ComfyUI" and imp.unsupported == []
    assert g.prompt == "beautiful scenery nature glass bottle landscape, , purple galaxy bottle,"
    assert g.negative_prompt == "text, watermark"
    assert (g.seed, g.num_inference_steps, g.guidance_scale, g.scheduler) == (156680208700286, 20, 8.0, "dpmpp-2m-karras")
    assert (g.width, g.height, g.clip_skip, imp.extra["clip_layer"]) == (512, 512, None, 2)
    assert (m.name, m.weights_file) == ("v1-5-pruned-emaonly", "v1-5-pruned-emaonly.safetensors")
    assert [(lo.name, lo.weight, lo.weight_name) for lo in m.loras] == [("add_detail", 0.6, "add_detail.safetensors")]
    assert imp.metadata_bytes > 5000 and len(dumps(Document(generation=g, model=m, source=imp.source))) < 400


def test_comfyui_lora_strengths_and_model_only_loras():
    def model_only(g):
        g["10"] = {"class_type": "LoraLoaderModelOnly", "inputs": {"lora_name": "sub\\add_detail.safetensors",
                                                                   "strength_model": 0.6, "model": ["4", 0]}}
        g["11"]["inputs"]["clip"] = ["4", 1]

    for mutate, lora in ((lambda g: g["10"]["inputs"].update(strength_clip=1.0),
                          Lora(name="add_detail", weight=0.6, weight_name="add_detail.safetensors", text_weight=1.0)),
                         (model_only, Lora(name="add_detail", weight=0.6, weight_name="sub/add_detail.safetensors",
                                           text_weight=0.0))):
        imp = import_bytes(_comfy_variant(mutate))
        assert imp.unsupported == [] and imp.model.loras == (lora,), imp.reason


def _comfy_variant(mutate) -> bytes:
    fields = json.loads(json.dumps(SAMPLES["comfyui_txt2img"]["fields"]))
    graph = json.loads(fields["prompt"])
    mutate(graph)
    fields["prompt"] = json.dumps(graph)
    return _png_with(fields)


@pytest.mark.parametrize("mutate, words", [
    (lambda g: g["3"]["inputs"].update(denoise=0.6), "denoise"),
    (lambda g: g["3"]["inputs"].update(sampler_name="dpm_adaptive"), "sampler"),
    (lambda g: g["5"]["inputs"].update(batch_size=4), "batch_size"),
    (lambda g: g["11"]["inputs"].update(clip=["4", 1]), "applied differently"),
    (lambda g: g.update({"12": {"class_type": "LatentUpscale", "inputs": {}}}), "LatentUpscale"),
    (lambda g: g["6"]["inputs"].update(text=["5", 0]), "not a plain value"),
])
def test_comfyui_unsupported_graphs_are_reported(mutate, words):
    """The main pass stays as a partial syntax (not regenerable, with the reason); the graph is kept whole."""
    from aigif.syntax.graph_segment import decode_graph

    data = _comfy_variant(mutate)
    imp = import_bytes(data)
    assert not imp.regenerable and words in imp.reason and imp.regenerable_reason.startswith("no: ")
    if words != "not a plain value":          # a prompt wired from another node: no text to keep as the prompt
        assert imp.generation.seed == 156680208700286 and imp.model.weights_file == "v1-5-pruned-emaonly.safetensors"
    (seg,) = imp.segments
    assert decode_graph(seg.payload)["prompt"] == json.loads(_png_fields(data)["prompt"])   # graph kept, nothing lost


def test_comfyui_api_graph_without_workflow_and_ksampler_advanced():
    def advanced(g):
        inp = g["3"]["inputs"]
        g["3"] = {"class_type": "KSamplerAdvanced", "inputs": {
            "add_noise": "enable", "noise_seed": inp["seed"], "steps": 20, "cfg": 8.0, "sampler_name": "euler",
            "scheduler": "normal", "start_at_step": 0, "end_at_step": 10000, "return_with_leftover_noise": "disable",
            "model": inp["model"], "positive": inp["positive"], "negative": inp["negative"], "latent_image": inp["latent_image"]}}

    fields = {"prompt": SAMPLES["comfyui_txt2img"]["fields"]["prompt"]}
    graph = json.loads(fields["prompt"])
    advanced(graph)
    imp = import_bytes(_png_with({"prompt": json.dumps(graph)}))
    assert imp.tool == "ComfyUI" and imp.generation.seed == 156680208700286 and imp.generation.scheduler == "euler"
    graph["3"]["inputs"]["end_at_step"] = 12
    imp = import_bytes(_png_with({"prompt": json.dumps(graph)}))
    assert not imp.regenerable and "partial schedule" in imp.reason


def test_comfyui_complex_graph_kept_with_its_main_pass():
    from aigif.syntax.graph_segment import decode_graph

    imp = import_image(fx("comfyui_complex"))
    assert imp.has_syntax and not imp.regenerable and "ConditioningSetArea" in imp.reason
    assert decode_graph(imp.segments[0].payload)["workflow"]["last_node_id"] == 47
    assert imp.generation.prompt.startswith("(masterpiece) (best quality) beautiful landscape")   # the first text found


def test_invokeai_v4():
    imp = import_image(fx("invokeai_v4"))
    g, m = imp.generation, imp.model
    assert imp.tool == "InvokeAI" and imp.version == "4.2.9"
    assert (g.prompt, g.negative_prompt) == ("a lighthouse on a cliff at dusk, oil painting", "blurry, lowres")
    assert (g.seed, g.num_inference_steps, g.guidance_scale, g.scheduler) == (1834721996, 30, 7.5, "dpmpp-2m-karras")
    assert (g.width, g.height, g.clip_skip, g.guidance_rescale) == (512, 768, None, None)
    assert (m.name, m.family) == ("Deliberate v2", "sd1")
    assert m.loras[0].name == "detail-tweaker" and m.loras[0].weight == 0.75 and m.loras[0].sha256.startswith("8cbd0a1c")
    assert imp.extra["model_hash"].startswith("blake3:") and imp.extra["meta"] == {"rand_device": "cpu"}


@pytest.mark.parametrize("name, words", [("invokeai_v3", "ipAdapters"), ("invokeai_v2", "postprocessing"),
                                         ("fooocus_styled", "sharpness"), ("a1111_unknown_sampler", "DPM adaptive")])
def test_unsupported_metadata_is_kept_as_partial_syntax(name, words):
    imp = import_image(fx(name))
    assert imp.has_syntax and not imp.regenerable and words in imp.reason
    raw = imp.extra["raw"]
    for key, text in SAMPLES[name]["fields"].items():
        assert raw[key] == (json.loads(text) if text.startswith(("{", "[")) else text)


def test_novelai():
    imp = import_image(fx("novelai"))
    g = imp.generation
    assert imp.tool == "NovelAI"
    assert g.prompt == "masterpiece, best quality,  cat, space, icon" and g.negative_prompt.startswith("lowres, bad anatomy")
    assert (g.seed, g.num_inference_steps, g.guidance_scale, g.scheduler) == (2253955223, 50, 10.0, "euler-a")
    assert (g.width, g.height) == (64, 64)            # no size in old NovelAI metadata: the image's own
    assert imp.model.name == "NovelAI Stable Diffusion" and imp.extra["model_id"] == "1D44365E"
    assert imp.extra["meta"] == {"strength": 0.4, "noise": 0.0}


def test_fooocus_plain():
    imp = import_image(fx("fooocus_plain"))
    g, m = imp.generation, imp.model
    assert imp.tool == "Fooocus" and imp.version == "2.5.5"
    assert (g.prompt, g.negative_prompt, g.seed) == ("a red fox in the snow", "low quality", 8218393823)
    assert (g.num_inference_steps, g.guidance_scale, g.scheduler, g.clip_skip) == (30, 5.0, "dpmpp-2m-sde-karras", None)
    assert imp.extra["clip_layer"] == 2
    assert (g.width, g.height) == (1024, 1024)
    assert (m.name, m.sha256) == ("sd_xl_base_1.0_0.9vae", "e6bb9ea85b")
    assert (m.loras[0].name, m.loras[0].weight, m.loras[0].sha256) == ("sd_xl_offset_example-lora_1.0", 0.1, "4852686128")


def test_no_metadata_is_a_clear_error():
    with pytest.raises(ImportMetadataError, match="no generation metadata"):
        import_image(fx("plain"))


# --- the way back -----------------------------------------------------------------------
A1111_TEXTS = [SAMPLES[n]["fields"]["parameters"] for n in ("a1111_basic", "a1111_full", "a1111_stealth")] + [
    "a <lora:x:1.5> b <lora:y:0.25> c <lora:z:0.5:-1>\nSteps: 8, Sampler: Heun, Schedule type: Karras, CFG scale: 3.5, Seed: 18446744073709551615, Size: 1024x576, Model: m, Clip skip: 3",
    "old\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 512x512, Model hash: 7460a6fa, Model: sd-v1-4",
    "ünïcode prompt, 猫\nNegative prompt: , \nSteps: 4, Sampler: DDIM, CFG scale: 1, Seed: 0, Size: 64x64, Model hash: 0123456789, Model: x, Eta DDIM: 0.5, Odd key: \"a, b: c\"",
]


@pytest.mark.parametrize("text", A1111_TEXTS)
def test_a1111_round_trip(text):
    imp = map_a1111(text)
    assert imp.has_syntax, imp.reason
    doc = loads(dumps(Document(generation=imp.generation, model=imp.model, source=imp.source)))
    again = map_a1111(a1111_parameters(doc))
    assert again.generation == imp.generation and again.model == imp.model
    assert {k: v for k, v in again.extra.items() if k != "image_size"} == {k: v for k, v in imp.extra.items() if k != "image_size"}


def test_export_of_registry_and_engine_docs():
    doc = Document(generation=Generation(prompt="a cat", seed=1, num_inference_steps=4, guidance_scale=7.5, width=64,
                                         height=64, scheduler="heun", scheduler_config={"use_karras_sigmas": True}),
                   model=ModelRef(name="aigif-tiny-sd"))
    imp = map_a1111(a1111_parameters(doc))
    assert imp.generation == doc.generation and imp.model == doc.model
    doc2 = doc.replace(generation=doc.generation.__class__(**{**doc.generation.__dict__, "scheduler": None, "scheduler_config": None}))
    assert "Sampler: Default" in a1111_parameters(doc2)
    assert map_a1111(a1111_parameters(doc2)).generation == doc2.generation


def test_export_unsupported_a1111_gives_original_text_and_others_refuse():
    imp = import_image(fx("a1111_unknown_sampler"))
    doc = Document(source=imp.source, pixels=b"x")
    assert a1111_parameters(doc) == SAMPLES["a1111_unknown_sampler"]["fields"]["parameters"]
    imp = import_image(fx("comfyui_complex"))
    with pytest.raises(ImportMetadataError):
        a1111_parameters(Document(source=imp.source, pixels=b"x"))


def test_png_info_for_is_read_back():
    imp = import_image(fx("comfyui_txt2img"))
    doc = Document(generation=imp.generation, model=imp.model, source=imp.source)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG", pnginfo=png_info_for(doc))
    back = import_bytes(buf.getvalue())
    assert back.tool == "A1111" and back.generation.prompt == doc.generation.prompt
    assert back.generation.scheduler == "dpmpp-2m-karras" and back.extra["clip_layer"] == 2
    assert [lo.name for lo in back.model.loras] == ["add_detail"]


# --- decisions -------------------------------------------------------------------------------
def _imp_and_rgb(name="a1111_stealth"):
    emb, rgb = read_image_and_metadata(fx(name))
    from aigif.importers.detect import map_embedded

    return map_embedded(emb), rgb


def test_decide_exact_residual_pixels_with_fakes():
    imp, rgb = _imp_and_rgb()
    codec = FakeCodec()
    out = decide(imp, rgb, engine=FakeEngine(rgb.copy()), codec=codec)
    assert out.kind == EXACT and out.document.pixels is None and out.document.residual is None
    assert out.document.fingerprint.pixel_sha256 == hashlib.sha256(rgb.tobytes()).hexdigest()[:16]
    near = rgb.copy()
    near[::7, ::5] ^= 1
    out = decide(imp, rgb, engine=FakeEngine(near), codec=codec)
    assert out.kind == RESIDUAL and out.document.residual.startswith(b"RES") and out.final_psnr == float("inf")
    far = 255 - rgb
    out = decide(imp, rgb, engine=FakeEngine(far), codec=codec)
    assert out.kind == PIXELS and "differs" in out.reason and out.document.generation == imp.generation
    out = decide(imp, rgb, engine=FakeEngine(error=ModelError("model x not found")), codec=codec)
    assert out.kind == PIXELS and "model x not found" in out.reason and out.document.pixels.startswith(b"PIX")

    class UselessResidual(FakeCodec):
        def decompress_residual(self, data, reference):
            return reference

    out = decide(imp, rgb, engine=FakeEngine(near), codec=UselessResidual(), options=Options(target_psnr=90.0))
    assert out.kind == PIXELS and "target 90 dB" in out.reason
    out = decide(imp, rgb, engine=FakeEngine(near), codec=UselessResidual(), options=Options(target_psnr=40.0))
    assert out.kind == RESIDUAL and 40.0 <= out.final_psnr == out.psnr


def test_decide_syntax_only_and_unsupported():
    imp, rgb = _imp_and_rgb()
    eng = FakeEngine(rgb)
    out = decide(imp, rgb, engine=eng, options=Options(syntax_only=True))
    assert out.kind == SYNTAX_ONLY and eng.calls == 0 and out.document.pixels is None
    bad, rgb2 = _imp_and_rgb("a1111_unknown_sampler")
    out = decide(bad, rgb2, options=Options(syntax_only=True))        # a partial syntax, marked not regenerable
    assert out.kind == SYNTAX_ONLY and "regenerable: no: " in out.reason and "DPM adaptive" in out.reason
    assert [s.type for s in out.document.extensions] == [0x43]
    with pytest.raises(AigifError, match="not regenerable: .*DPM adaptive"):
        from aigif.engine.adapters import apply_adapters
        apply_adapters(loads(dumps(out.document)).extensions, object(), {})
    out = decide(bad, rgb2, engine=eng, codec=FakeCodec())
    assert out.kind == PIXELS and eng.calls == 0 and out.document.generation.prompt.startswith("a red apple")
    assert loads(dumps(out.document)).source.extra["raw"]["parameters"].startswith("a red apple")
    nothing = import_bytes(_png_with({"parameters": "Steps: 20"}))
    with pytest.raises(ImportMetadataError, match="--syntax-only"):
        decide(nothing, rgb2, options=Options(syntax_only=True))


def test_real_engine_exact_and_real_codec_residual(tmp_path):
    """An image made by aigif's engine, exported with A1111 parameters, comes back exact."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from aigif.engine import Engine

    eng = Engine(threads=1)
    res = eng.generate(Generation(prompt="a red cube", seed=7, num_inference_steps=3, guidance_scale=5.0,
                                  width=64, height=64, scheduler="euler"))
    buf = io.BytesIO()
    Image.fromarray(res.image).save(buf, format="PNG", pnginfo=png_info_for(res.document))
    enc = encode_image(buf.getvalue(), engine=eng)
    assert enc.kind == EXACT, enc.outcome.reason
    doc = loads(enc.data)
    assert doc.pixels is None and doc.generation == res.document.generation and doc.model.name == "aigif-tiny-sd"
    assert doc.fingerprint.pixel_sha256 == res.document.fingerprint.pixel_sha256
    assert np.array_equal(eng.decode(doc).image, res.image)
    # a slightly edited copy: close -> syntax + residual (real codec)
    edited = res.image.copy()
    edited[10:20, 10:20] = np.clip(edited[10:20, 10:20].astype(int) + 3, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(edited).save(buf, format="PNG", pnginfo=png_info_for(res.document))
    enc = encode_image(buf.getvalue(), engine=eng, options=Options(quality=4, target_psnr=35.0))
    assert enc.kind == RESIDUAL, enc.outcome.reason
    assert enc.outcome.final_psnr >= 35.0 and loads(enc.data).residual


# --- batch ------------------------------------------------------------------------------------
def _tree(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for n in ("a1111_basic", "comfyui_txt2img", "invokeai_v4", "novelai"):
        shutil.copy(fx(n), src)
    for n in ("a1111_jpeg", "a1111_hires", "plain"):
        shutil.copy(fx(n), src / "sub")
    (src / "notes.txt").write_text("not an image")
    (src / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return src


def _digests(root: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def test_batch_syntax_only_resume_and_inputs_untouched(tmp_path):
    src = _tree(tmp_path)
    before = _digests(src)
    out = tmp_path / "out"
    s = run_batch([src], out, options=Options(syntax_only=True), progress=False)
    c = counts(s)
    assert c[SYNTAX_ONLY] == 6 and c[FAILED] == 2 and len(s.results) == 8
    msgs = {Path(r.input).name: r.message for r in s.results}
    assert "regenerable: yes" in msgs["a1111_hires.png"]          # a latent hires fix is syntax the engine runs
    assert loads((out / "sub" / "a1111_hires.aigif").read_bytes()).hires.upscaler == "latent-bilinear"
    assert "no generation metadata" in msgs["plain.png"] and msgs["broken.png"]
    assert (out / "sub" / "a1111_jpeg.aigif").exists() and (out / JOURNAL_NAME).exists()
    assert loads((out / "novelai.aigif").read_bytes()).generation.seed == 2253955223
    bin_, bout = s.totals()
    assert bout < bin_ and "bytes before / after" in s.table()
    # re-run: done files are skipped, failed ones are tried again
    s2 = run_batch([src], out, options=Options(syntax_only=True), progress=False)
    assert counts(s2)[SKIPPED] == 6 and counts(s2)[FAILED] == 2
    # an output that is not a valid .aigif is never clobbered without force...
    (out / "novelai.aigif").write_bytes(b"garbage")
    s3 = run_batch([src], out, options=Options(syntax_only=True), progress=False)
    assert counts(s3)[SKIPPED] == 5 and (out / "novelai.aigif").read_bytes() == b"garbage"
    assert any("left untouched" in r.message for r in s3.results if r.status == FAILED)
    # ...and redone with it; stale temp files of a killed run are cleaned up
    (out / ".novelai.aigif.abc123.tmp").write_bytes(b"half")
    s4 = run_batch([src], out, options=Options(syntax_only=True), progress=False, force=True)
    assert counts(s4)[SYNTAX_ONLY] == 6 and not list(out.glob(".*.tmp"))
    assert loads((out / "novelai.aigif").read_bytes()).generation.seed == 2253955223
    assert _digests(src) == before


def test_batch_with_fallbacks_and_single_file(tmp_path):
    src = _tree(tmp_path)
    eng = FakeEngine(error=ModelError("not installed"))
    s = run_batch([src], tmp_path / "out", engine=eng, codec=FakeCodec(), progress=False)
    assert counts(s)[PIXELS] == 6 and counts(s)[FAILED] == 2           # plain + broken have no metadata
    one = tmp_path / "one.aigif"
    s = run_batch([fx("a1111_basic")], one, options=Options(syntax_only=True), progress=False)
    assert counts(s)[SYNTAX_ONLY] == 1 and loads(one.read_bytes()).generation.seed == 235284042
    with pytest.raises(AigifError, match="single .aigif file"):
        run_batch([src], tmp_path / "many.aigif", options=Options(syntax_only=True), progress=False)


def test_batch_refuses_output_equal_to_input(tmp_path):
    f = tmp_path / "x.aigif"
    f.write_bytes(fx("a1111_basic").read_bytes())
    with pytest.raises(AigifError, match="one of the inputs"):
        run_batch([f], f, options=Options(syntax_only=True), progress=False)
    assert f.read_bytes() == fx("a1111_basic").read_bytes()


def test_cli_encode_and_export_parameters(tmp_path):
    from typer.testing import CliRunner

    from aigif.cli import app

    runner = CliRunner()
    out = tmp_path / "o"
    r = runner.invoke(app, ["encode", str(fx("a1111_full")), str(fx("comfyui_txt2img")), "-o", str(out), "--syntax-only", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "syntax-only" in r.output and "ratio" in r.output
    r = runner.invoke(app, ["export-parameters", str(out / "a1111_full.aigif")])
    assert r.exit_code == 0 and r.output.strip() == a1111_parameters(loads((out / "a1111_full.aigif").read_bytes()))
    assert "<lora:add_detail:0.5>" in r.output and "Model hash: 6ce0161689" in r.output
    r = runner.invoke(app, ["encode", str(fx("plain")), "-o", str(tmp_path / "p.aigif"), "--syntax-only"])
    assert r.exit_code == 1 and "no generation metadata" in r.output


# --- hostile input ------------------------------------------------------------------------------
def _png_fields(data: bytes) -> dict:
    return dict(Image.open(io.BytesIO(data)).text)


def _png_with(fields: dict, rgb=None, mode="RGB") -> bytes:
    info = PngInfo()
    for k, v in fields.items():
        info.add_text(k, v)
    buf = io.BytesIO()
    Image.fromarray(rgb if rgb is not None else np.zeros((16, 16, 3), np.uint8), mode).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def test_stealth_with_lying_length_is_an_error_not_a_hang():
    rgba = np.full((32, 32, 4), 255, np.uint8)
    img = write_stealth(rgba, "a cat\nSteps: 1, Sampler: Euler, CFG scale: 1, Seed: 1", compressed=False)
    flat = img[:, :, 3].T.reshape(-1).copy()
    flat[120:152] = (flat[120:152] & 0xFE) | 1          # bit count = 2**32 - 1
    img[:, :, 3] = flat.reshape(32, 32).T
    buf = io.BytesIO()
    Image.fromarray(img, "RGBA").save(buf, format="PNG")
    with pytest.raises(ImportMetadataError):
        import_bytes(buf.getvalue())


@pytest.mark.parametrize("fields", [
    {"parameters": "{not json"}, {"prompt": "[1, 2]", "workflow": "{}"}, {"prompt": '{"1": {"class_type": 5}}'},
    {"invokeai_metadata": "[]"}, {"Comment": "{}", "Description": "x", "Source": "y", "Software": "NovelAI"},
    {"parameters": "x\nSteps: 99999999999, Sampler: Euler, CFG scale: nan, Seed: -5, Size: 0x0"},
    {"parameters": "x\nSteps: 5, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 64x64"},
    {"parameters": json.dumps({"prompt": "a", "seed": "x", "sampler": 1, "base_model": "m", "base_model_hash": "zz",
                               "negative_prompt": "", "steps": 1})},
    {"invokeai_metadata": json.dumps({"positive_prompt": 5, "seed": [1], "scheduler": {"a": 1}, "loras": [7]})},
])
def test_odd_metadata_never_gives_a_wrong_syntax(fields):
    try:
        imp = import_bytes(_png_with(fields))
    except AigifError:
        return
    assert (imp.generation is None) == bool(imp.unsupported)
    if imp.generation is None:
        assert imp.reason and imp.extra["raw"]


def test_mutated_fixtures_raise_only_aigif_errors():
    rng = np.random.default_rng(1)
    blobs = [fx(n).read_bytes() for n in ("a1111_basic", "comfyui_txt2img", "a1111_jpeg", "a1111_webp", "a1111_stealth", "novelai")]
    for i in range(300):
        data = bytearray(blobs[i % len(blobs)])
        if i % 3 == 2:
            data = data[: rng.integers(0, len(data))]                  # truncated
        else:
            for _ in range(rng.integers(1, 6)):
                data[rng.integers(0, len(data))] = rng.integers(0, 256)
        try:
            imp = import_bytes(bytes(data))
            if imp.has_syntax:
                dumps(Document(generation=imp.generation, model=imp.model, source=imp.source))
        except AigifError:
            pass


def test_image_pixel_limit():
    from aigif.limits import Limits

    with pytest.raises(LimitError):
        import_image(fx("a1111_basic"), limits=Limits(max_image_pixels=100))


def test_mutated_metadata_text_is_mapped_or_refused_cleanly():
    """Edits of real metadata texts: every mapper must decide (syntax or a reason) without crashing."""
    from aigif.importers.detect import map_embedded
    from aigif.importers.extract import Embedded

    rng = np.random.default_rng(2)
    names = [n for n, s in SAMPLES.items() if s["fields"]]
    alphabet = list(',:"{}[]\n 0123456789-.abcKarrasEulerSteps') + ["null", "true", "[]", "{}", "-1", "1e999"]
    for i in range(300):
        fields = dict(SAMPLES[names[i % len(names)]]["fields"])
        key = sorted(fields)[rng.integers(0, len(fields))]
        text = fields[key]
        for _ in range(rng.integers(1, 4)):
            pos = int(rng.integers(0, len(text) + 1))
            cut = int(rng.integers(0, 4))
            text = text[:pos] + str(alphabet[rng.integers(0, len(alphabet))]) + text[pos + cut:]
        fields[key] = text
        try:
            imp = map_embedded(Embedded(fields, "png-text", len(text), "PNG", (64, 64)))
        except AigifError:
            continue
        assert "unexpected shape" not in imp.reason, (names[i % len(names)], key, imp.reason)
        assert (imp.generation is None) == bool(imp.unsupported)
        dumps(Document(generation=imp.generation, model=imp.model, source=imp.source, pixels=b"p"))


# --- local checkpoints -----------------------------------------------------------------------
def _fake_checkpoint(path: Path, family_key: str, salt: bytes = b"") -> str:
    header = json.dumps({family_key + "weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    data = len(header).to_bytes(8, "little") + header + b"\0\0\0\0" + salt
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def test_local_checkpoints_found_by_hash_or_name(tmp_path, monkeypatch):
    from aigif.importers.localmodels import LocalModels, safetensors_family

    monkeypatch.setenv("AIGIF_HOME", str(tmp_path / "home"))
    root = tmp_path / "models"
    sha_a = _fake_checkpoint(root / "sd" / "renamed_file.safetensors", "cond_stage_model.transformer.text_model.")
    _fake_checkpoint(root / "xl" / "myxl.safetensors", "conditioner.embedders.1.model.", b"x")
    (root / "evil.ckpt").write_bytes(b"pickle")
    assert safetensors_family(root / "xl" / "myxl.safetensors") == "sdxl"
    lm = LocalModels([root])
    by_hash = map_a1111(f"p\nSteps: 5, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 64x64, Model hash: {sha_a[:10]}, Model: original_name")
    ref, name = lm.resolve(by_hash.model)
    assert (ref.local, ref.family, ref.sha256, name) == ("sd/renamed_file.safetensors", "sd1", sha_a, "original_name")
    comfy = ModelRef(name="myxl", weights_file="SDXL/myxl.safetensors")
    assert lm.resolve(comfy)[0].local == "xl/myxl.safetensors" and lm.resolve(comfy)[0].family == "sdxl"
    assert lm.resolve(ModelRef(name="myxl", sha256="0123456789")) is None        # name matches, hash does not
    assert lm.resolve(ModelRef(name="evil")) is None and lm.resolve(ModelRef(name="sd15")) is None

    emb, rgb = read_image_and_metadata(fx("a1111_basic"))
    from aigif.importers.detect import map_embedded

    imp = map_embedded(emb)
    imp.model = by_hash.model
    seen = []

    class Checking(FakeEngine):
        def regenerate(self, doc):
            seen.append(doc.model)
            return super().regenerate(doc)

    out = decide(imp, rgb, engine=Checking(rgb), codec=FakeCodec(), resolver=lm)
    assert out.kind == EXACT and out.document.model.local == "sd/renamed_file.safetensors"
    assert out.document.source.extra["model_name"] == "original_name" and seen[0].family == "sd1"
    out = decide(imp, rgb, engine=Checking(255 - rgb), codec=FakeCodec(), resolver=lm)
    assert out.kind == PIXELS and out.document.model == by_hash.model      # a failed match keeps the imported reference


def test_batch_output_name_clash_is_refused(tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        shutil.copy(fx("a1111_basic"), tmp_path / d / "x.png")
    with pytest.raises(AigifError, match="would both be written"):
        run_batch([tmp_path / "a", tmp_path / "b"], tmp_path / "out", options=Options(syntax_only=True), progress=False)
    s = run_batch([tmp_path / "a", tmp_path / "a" / "x.png"], tmp_path / "out", options=Options(syntax_only=True), progress=False)
    assert len(s.results) == 1 and counts(s)[SYNTAX_ONLY] == 1


def test_cli_encode_function_with_injected_engine(tmp_path):
    from aigif.cli.import_cmds import cli_encode

    lines = []
    echo = lambda msg="", err=False: lines.append(msg)  # noqa: E731
    emb, rgb = read_image_and_metadata(fx("a1111_stealth"))
    code = cli_encode([fx("a1111_stealth"), fx("a1111_unknown_sampler")], tmp_path / "o", engine=FakeEngine(rgb),
                      codec=FakeCodec(), progress=False, echo=echo)
    assert code == 0
    assert loads((tmp_path / "o" / "a1111_stealth.aigif").read_bytes()).fingerprint is not None      # exact
    other = loads((tmp_path / "o" / "a1111_unknown_sampler.aigif").read_bytes())
    assert other.pixels and other.generation.seed and not other.extensions        # no partial marker with pixels
    assert any("pixels (not regenerable" in ln for ln in lines) and any("exact" in ln for ln in lines)
    with pytest.raises(AigifError, match="quality"):
        cli_encode([fx("a1111_basic")], tmp_path / "q", quality=99, engine=FakeEngine(rgb), progress=False, echo=echo)


@pytest.mark.parametrize("rule, layer, family, expected", [
    ("a1111", 2, "sd1", 1), ("a1111", 1, "sd1", None), ("a1111", 2, "sdxl", None), ("a1111", 3, None, "pending"),
    ("comfyui", 2, "sd1", 1), ("comfyui", 2, "sdxl", None), ("comfyui", 3, "sdxl", 1), ("comfyui", 1, "sdxl", "block"),
    ("comfyui", 1, None, "pending"), ("comfyui", 2, "sd2", "pending"),
])
def test_clip_skip_depends_on_the_family(rule, layer, family, expected):
    from aigif.importers.result import clip_skip_for

    assert clip_skip_for(rule, layer, family) == expected


def test_clip_layer_applied_when_the_checkpoint_family_is_known(tmp_path, monkeypatch):
    from aigif.importers.localmodels import LocalModels

    monkeypatch.setenv("AIGIF_HOME", str(tmp_path / "home"))
    _fake_checkpoint(tmp_path / "m" / "realisticVisionV51_v51VAE.safetensors", "cond_stage_model.transformer.text_model.")
    emb, rgb = read_image_and_metadata(fx("a1111_stealth"))
    from aigif.importers.detect import map_embedded

    imp = map_embedded(emb)
    imp.model = ModelRef(name=imp.model.name)          # the fake file cannot match the real hash: name only
    seen = []

    class Checking(FakeEngine):
        def regenerate(self, doc):
            seen.append(doc)
            return super().regenerate(doc)

    out = decide(imp, rgb, engine=Checking(rgb), codec=FakeCodec(), resolver=LocalModels([tmp_path / "m"]))
    assert out.kind == EXACT and seen[0].generation.clip_skip == 1 and seen[0].model.family == "sd1"
    assert "clip_layer" not in out.document.source.extra and out.document.generation.clip_skip == 1


def test_fooocus_a1111_scheme():
    # values with commas are JSON-quoted, as A1111's quote() (which Fooocus reuses) writes them
    styled = ("a smiling goldfish\nNegative prompt: blurry\nSteps: 30, Sampler: DPM++ 2M SDE Karras, Seed: 6952411511246973023, "
              "Size: 768x1280, CFG scale: 4, Sharpness: 2, ADM Guidance: \"(1.5, 0.8, 0.3)\", Refiner: None, "
              "Styles: \"['Fooocus V2', 'Fooocus Sharp']\", Performance: Speed, Model: juggernautXL_v8Rundiffusion, "
              "Model hash: aeb7e9e689, Version: Fooocus v2.4.3")
    imp = import_bytes(_png_with({"parameters": styled, "fooocus_scheme": "a1111"}))
    assert imp.tool == "Fooocus" and not imp.regenerable and "Sharpness: 2" in imp.reason and "Styles" in imp.reason
    plain = styled.replace("Sharpness: 2", "Sharpness: 0").replace("(1.5, 0.8, 0.3)", "(1.0, 1.0, 0.0)") \
        .replace("\"['Fooocus V2', 'Fooocus Sharp']\"", "[]")
    imp = import_bytes(_png_with({"parameters": plain, "fooocus_scheme": "a1111"}))
    assert imp.tool == "Fooocus" and imp.generation.scheduler == "dpmpp-2m-sde-karras" and imp.generation.seed == 6952411511246973023
    assert imp.model == ModelRef(name="juggernautXL_v8Rundiffusion", sha256="aeb7e9e689")


def test_decode_embed_parameters_round_trips_through_the_importer(tmp_path):
    """`aigif decode --embed-parameters` writes A1111 text that `aigif encode` reads back to the same syntax."""
    import aigif
    from aigif.cli import main
    from aigif.importers import import_bytes

    src = tmp_path / "a.aigif"
    assert main(["generate", "-p", "a red fox, (masterpiece:1.2)", "--seed", "7", "--steps", "2", "-o", str(src), "-q"]) == 0
    png = tmp_path / "a.png"
    assert main(["decode", str(src), "-o", str(png), "--embed-parameters", "-q"]) == 0
    from PIL import Image

    assert "parameters" in Image.open(png).info
    back = import_bytes(png.read_bytes())
    assert back.tool == "A1111" and not back.unsupported
    assert back.generation == aigif.load(src).generation and back.model == aigif.load(src).model


def test_journal_starts_a_new_line_after_a_torn_one(tmp_path):
    """A batch killed mid-write leaves half a journal line; the next entry must not be glued onto it."""
    import json

    from aigif.batch import FileResult, append_journal

    j = tmp_path / "journal.jsonl"
    j.write_bytes(b'{"input": "a.png", "kind": "syn')
    append_journal(j, FileResult("b.png", "b.aigif", "ok", "syntax-only"))
    append_journal(j, FileResult("c.png", "c.aigif", "ok", "syntax-only"))
    lines = j.read_text().splitlines()
    assert lines[0] == '{"input": "a.png", "kind": "syn'
    assert [json.loads(x)["input"] for x in lines[1:]] == ["b.png", "c.png"]
