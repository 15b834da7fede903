"""Forge, SD.Next, Civitai, SwarmUI, RuinedFooocus and multi-pass A1111 files: syntax, regenerability, model identity."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aigif import loads
from aigif.importers import Options, encode_image, import_image
from aigif.importers.identity import checkpoint, civitai_resources, parse_air

FIX = Path(__file__).parent / "fixtures" / "importers"
SAMPLES = json.loads((FIX / "samples.json").read_text(encoding="utf-8"))


def fx(name: str) -> Path:
    return next((FIX / "images").glob(name + ".*"))


def test_every_fixture_with_metadata_imports_with_syntax_only():
    for name, sample in SAMPLES.items():
        if sample["fields"]:
            enc = encode_image(fx(name), options=Options(syntax_only=True))
            assert enc.kind == "syntax-only" and "regenerable: " in enc.outcome.reason, name


def test_forge_flux_nf4_infotext_is_mapped_and_not_regenerable():
    imp = import_image(fx("forge_flux"))
    assert imp.tool == "Forge" and imp.version.startswith("f2.0.1") and imp.has_syntax and not imp.regenerable
    assert "flux1-dev-bnb-nf4-v2 holds quantized weights" in imp.reason
    g = imp.generation
    assert (g.seed, g.num_inference_steps, g.guidance_scale, g.scheduler) == (3442235452, 20, 3.5, "flow-euler")
    assert imp.model.name == "flux1-dev-bnb-nf4-v2" and imp.model.family == "flux1" and imp.model.sha256 == "57b2a98e59"
    assert imp.model.vae.local == "vae/ae.safetensors"                    # Module 1: ae
    assert imp.model.text_encoders[1].local == "text_encoders/t5xxl_fp8_e4m3fn.safetensors"


def test_a1111_hires_adetailer_and_ti_keep_the_first_pass_and_its_embedding():
    imp = import_image(fx("a1111_sdxl_hires_adetailer"))
    assert imp.tool == "A1111" and not imp.regenerable
    for words in ("ADetailer detail pass (detector face_yolov8n.pt) cannot be run",):
        assert words in imp.reason
    assert [p.detector for p in imp.detail.passes] == ["face_yolov8n.pt"] and imp.detail.version == "24.9.0"
    assert [(e.name, e.sha256) for e in imp.model.embeddings] == [("easynegative", "c74b4e810b03")]   # TI hashes
    assert (imp.hires.upscaler, imp.hires.scale, imp.hires.steps, imp.hires.strength) == ("4x-UltraSharp", 1.5, 15, 0.35)
    g = imp.generation
    assert (g.width, g.height, g.num_inference_steps, g.scheduler) == (832, 1216, 30, "dpmpp-2m-karras")
    assert "raw" not in imp.extra and "TI hashes" not in imp.extra.get("params", {})      # everything mapped


def test_civitai_resources_name_the_checkpoint():
    imp = import_image(fx("civitai_resources"))
    assert imp.tool == "Civitai" and imp.model.name == "SD XL"
    assert imp.extra["civitai_checkpoint"] == {"name": "SD XL", "version_name": "v1.0 VAE fix", "version_id": 128078}
    assert not imp.regenerable and "Double Exposure" in imp.reason        # a LoRA named only there


def test_civitai_air_urn():
    assert parse_air("urn:air:sdxl:checkpoint:civitai:827184@2514310") == {
        "ecosystem": "sdxl", "type": "checkpoint", "source": "civitai", "id": "827184", "version": "2514310"}
    assert parse_air("not an urn") is None
    ck = checkpoint(civitai_resources('[{"air": "urn:air:sdxl:checkpoint:civitai:827184@2514310", "modelName": "X"}]'))
    assert ck == {"name": "X", "version_id": "2514310", "air": "urn:air:sdxl:checkpoint:civitai:827184@2514310"}
    imp = import_image(fx("civitai_air"))
    assert imp.tool == "Civitai" and imp.regenerable and imp.model.name == "WAI-illustrious-SDXL"
    assert imp.extra["params"]["Civitai metadata"] == '{"remixOfId":11111100000}'


def test_swarmui():
    imp = import_image(fx("swarmui"))
    g = imp.generation
    assert imp.tool == "SwarmUI" and imp.version == "0.9.3.1" and imp.regenerable
    assert (g.prompt, g.negative_prompt, g.seed, g.num_inference_steps, g.guidance_scale) == (
        "a photo of a cat sitting on a windowsill", "blurry", 1234567, 20, 7.0)
    assert (g.width, g.height, g.scheduler) == (1024, 1024, "dpmpp-2m-karras")
    assert imp.extra["swarmui"]["sui_extra_data"]["date"] == "2025-01-25"


def test_ruinedfooocus():
    imp = import_image(fx("ruinedfooocus"))
    g, m = imp.generation, imp.model
    assert imp.tool == "RuinedFooocus" and imp.regenerable
    assert (g.seed, g.num_inference_steps, g.guidance_scale, g.scheduler) == (3864674281, 30, 8.5, "dpmpp-2m-sde-karras")
    assert m.weights_file == "sd_xl_base_1.0_0.9vae.safetensors" and imp.extra["model_hash"] == "be9edd61"
    assert [(lo.name, lo.weight, lo.sha256) for lo in m.loras] == [("sd_xl_offset_example-lora_1.0", 0.1, "4852686128")]


def test_sdnext():
    imp = import_image(fx("sdnext"))
    assert imp.tool == "SD.Next" and imp.regenerable and imp.generation.scheduler == "dpmpp-2m"
    assert imp.extra["params"]["Backend"] == "Diffusers"


@pytest.mark.parametrize("name, lines", [
    ("civitai_resources", ["model identity: Civitai model-version 128078"]),
    ("civitai_air", ["model identity: urn:air:sdxl:checkpoint:civitai:827184@2514310"]),
    ("invokeai_v4", ["model identity: blake3:"]),
    ("a1111_basic", ["model identity: AutoV2 "]),
    ("ruinedfooocus", ["model identity: AutoV1 be9edd61", "model identity: LoRA sd_xl_offset_example-lora_1.0: AutoV2 4852686128"]),
])
def test_info_shows_model_identity_and_regenerability(name, lines, tmp_path):
    from aigif.cli import app

    out = tmp_path / "x.aigif"
    out.write_bytes(encode_image(fx(name), options=Options(syntax_only=True)).data)
    r = CliRunner().invoke(app, ["info", str(out)])
    assert r.exit_code == 0 and "regenerable: " in r.output
    for line in lines:
        assert line in r.output, r.output
    assert loads(out.read_bytes()).source is not None


def test_png_info_for_a_comfyui_file_carries_its_graph_back():
    """The way back (decode --embed-parameters): A1111 parameters plus ComfyUI's prompt / workflow chunks."""
    import io

    import numpy as np
    from PIL import Image

    from aigif.importers import import_bytes, png_info_for

    doc = loads(encode_image(fx("comfyui_flux_dev"), options=Options(syntax_only=True)).data)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="PNG", pnginfo=png_info_for(doc))
    text = Image.open(io.BytesIO(buf.getvalue())).text
    fields = SAMPLES["comfyui_flux_dev"]["fields"]
    assert "Steps: 20" in text["parameters"]
    assert json.loads(text["prompt"]) == json.loads(fields["prompt"]) and json.loads(text["workflow"]) == json.loads(fields["workflow"])
    again = import_bytes(buf.getvalue())
    assert again.tool == "ComfyUI" and again.segments[0].payload == doc.extensions[0].payload


def test_custom_sampler_cluster_equal_to_a_ksampler_maps_to_the_syntax():
    """SamplerCustomAdvanced + RandomNoise + CFGGuider + KSamplerSelect + BasicScheduler on an SD checkpoint."""
    import io

    import numpy as np
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from aigif.importers import import_bytes

    g = json.loads(SAMPLES["comfyui_txt2img"]["fields"]["prompt"])
    k = g["3"]["inputs"]
    g["3"] = {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["20", 0], "guider": ["21", 0], "sampler": ["22", 0],
                                                               "sigmas": ["23", 0], "latent_image": k["latent_image"]}}
    g["20"] = {"class_type": "RandomNoise", "inputs": {"noise_seed": k["seed"]}}
    g["21"] = {"class_type": "CFGGuider", "inputs": {"cfg": k["cfg"], "model": k["model"], "positive": k["positive"], "negative": k["negative"]}}
    g["22"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": k["sampler_name"]}}
    g["23"] = {"class_type": "BasicScheduler", "inputs": {"scheduler": k["scheduler"], "steps": k["steps"], "denoise": 1.0, "model": k["model"]}}

    def png(graph):
        info = PngInfo()
        info.add_text("prompt", json.dumps(graph))
        buf = io.BytesIO()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="PNG", pnginfo=info)
        return buf.getvalue()

    imp = import_bytes(png(g))
    assert imp.regenerable, imp.reason
    assert (imp.generation.seed, imp.generation.num_inference_steps, imp.generation.scheduler) == (156680208700286, 20, "dpmpp-2m-karras")
    g["23"]["inputs"]["denoise"] = 0.5                      # a partial schedule: not a KSampler any more
    imp = import_bytes(png(g))
    assert not imp.regenerable and imp.has_syntax and imp.generation.seed == 156680208700286
