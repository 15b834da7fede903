"""ADetailer detail passes: the detail element, its import from A1111 / Forge infotext and the way back."""
import numpy as np
import pytest
from typer.testing import CliRunner

from aigif import AigifError, ConfigError, CorruptError, Detail, DetailPass, Document, dumps, loads
from aigif.importers import PIXELS, Options, a1111_parameters, decide, encode_image
from aigif.importers.a1111 import map_a1111, parse_settings, split_infotext
from aigif.importers.detail import a1111_detail, suffix
from aigif.syntax import document_from_dict, document_to_dict
from aigif.syntax.builtin import regenerable
from tests.test_importers import FakeCodec, FakeEngine, _png_with

HEAD = 'portrait of a woman, "freckles", soft light\nNegative prompt: lowres, blurry\n'
BASE = ("Steps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234, Size: 512x768, "
        "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly")
# as ADetailer 24.x writes them: always model, confidence, dilate erode, mask blur, denoising strength, inpaint only masked
ONE = ("ADetailer model: face_yolov8n.pt, ADetailer confidence: 0.3, ADetailer dilate erode: 4, ADetailer mask blur: 4, "
       "ADetailer denoising strength: 0.4, ADetailer inpaint only masked: True, ADetailer inpaint padding: 32, "
       "ADetailer version: 24.11.1")
TWO = ('ADetailer model: face_yolov8n.pt, ADetailer prompt: "a smiling face, \\"green eyes\\", detailed skin", '
       "ADetailer negative prompt: bad teeth, ADetailer confidence: 0.35, ADetailer mask only top k largest: 1, "
       "ADetailer dilate erode: 4, ADetailer mask blur: 4, ADetailer denoising strength: 0.45, "
       "ADetailer inpaint only masked: True, ADetailer inpaint padding: 64, ADetailer use separate steps: True, "
       "ADetailer steps: 30, ADetailer use separate sampler: True, ADetailer sampler: DPM++ 2M, ADetailer scheduler: Karras, "
       "ADetailer model 2nd: hand_yolov8n.pt, ADetailer confidence 2nd: 0.3, ADetailer mask min ratio 2nd: 0.01, "
       "ADetailer x offset 2nd: 2, ADetailer y offset 2nd: -3, ADetailer dilate erode 2nd: -4, "
       "ADetailer mask merge invert 2nd: Merge and Invert, ADetailer mask blur 2nd: 8, ADetailer denoising strength 2nd: 0.5, "
       "ADetailer inpaint only masked 2nd: False, ADetailer use inpaint width height 2nd: True, ADetailer inpaint width 2nd: 768, "
       "ADetailer inpaint height 2nd: 768, ADetailer use separate CFG scale 2nd: True, ADetailer CFG scale 2nd: 7.0, "
       "ADetailer use separate checkpoint 2nd: True, ADetailer checkpoint 2nd: hands_v2.safetensors [0123456789], "
       "ADetailer use separate noise multiplier 2nd: True, ADetailer noise multiplier 2nd: 1.05, "
       "ADetailer use separate CLIP skip 2nd: True, ADetailer CLIP skip 2nd: 2, "
       "ADetailer ControlNet model 2nd: control_v11p_sd15_inpaint [ebff9138], ADetailer ControlNet weight 2nd: 0.8, "
       "ADetailer version: 24.11.1")


def infotext(settings: str) -> str:
    return HEAD + BASE + ", " + settings + ", Version: v1.10.1"


def adetailer_keys(text: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in parse_settings(split_infotext(text)[2]).items() if k.startswith("ADetailer")]


def test_one_pass_imports_as_the_element():
    imp = map_a1111(infotext(ONE))
    assert imp.detail == Detail(passes=(DetailPass(detector="face_yolov8n.pt", masked_padding=32),), version="24.11.1")
    assert not imp.regenerable and "ADetailer detail pass (detector face_yolov8n.pt) cannot be run" in imp.reason
    assert not any(k.startswith("ADetailer") for k in imp.extra.get("params", {}))      # every key went into the element
    assert imp.generation.scheduler == "dpmpp-2m-karras"                                 # the main pass is mapped as before


def test_two_passes_with_separate_settings():
    imp = map_a1111(infotext(TWO))
    face, hand = imp.detail.passes
    assert face == DetailPass(detector="face_yolov8n.pt", prompt='a smiling face, "green eyes", detailed skin',
                              negative_prompt="bad teeth", confidence=0.35, mask_k_largest=1, strength=0.45,
                              masked_padding=64, steps=30, scheduler="dpmpp-2m", schedule_type="Karras")
    assert hand == DetailPass(detector="hand_yolov8n.pt", mask_min_ratio=0.01, x_offset=2, y_offset=-3, dilate_erode=-4,
                              mask_merge="merge-invert", mask_blur=8, strength=0.5, width=768, height=768,
                              guidance_scale=7.0, checkpoint="hands_v2.safetensors [0123456789]", noise_multiplier=1.05,
                              clip_skip=2, controlnet_model="control_v11p_sd15_inpaint [ebff9138]", controlnet_weight=0.8)
    assert "face_yolov8n.pt, hand_yolov8n.pt" in imp.reason


@pytest.mark.parametrize("settings", [ONE, TWO, ONE.replace("ADetailer version: 24.11.1", "ADetailer use separate sampler: True, "
                                                             "ADetailer sampler: Euler a, ADetailer version: 24.4.2")])
def test_round_trip_infotext_aigif_infotext(settings):
    text = infotext(settings)
    imp = map_a1111(text)
    doc = loads(dumps(Document(generation=imp.generation, model=imp.model, detail=imp.detail, source=imp.source)))
    back = a1111_parameters(doc)
    assert adetailer_keys(back) == adetailer_keys(text)            # the same keys, order and values as ADetailer wrote
    assert map_a1111(back).detail == imp.detail
    assert document_from_dict(document_to_dict(doc)) == doc


def test_suffixes_are_adetailers():
    assert [suffix(n) for n in (0, 1, 2, 3, 10, 11, 20)] == ["", " 2nd", " 3rd", " 4th", " 11th", " 12th", " 21st"]


@pytest.mark.parametrize("change, words", [
    (("ADetailer confidence: 0.3", "ADetailer confidence: high"), "not a number"),
    (("ADetailer confidence: 0.3", "ADetailer confidence: nan"), "confidence"),
    (("ADetailer denoising strength: 0.4", "ADetailer denoising strength: 1e999"), "strength"),
    (("ADetailer mask blur: 4", "ADetailer mask blur: 99999999999999999"), "not a number"),
    (("ADetailer confidence: 0.3", "ADetailer confidence: 0.30"), "written back as read"),     # not how ADetailer writes it
    (("ADetailer inpaint only masked: True", "ADetailer inpaint only masked: yes"), "True or False"),
    (("ADetailer dilate erode: 4, ", ""), "dilate erode missing"),
])
def test_what_cannot_be_written_back_stays_in_extra(change, words):
    text = infotext(ONE.replace(*change))
    imp = map_a1111(text)
    assert imp.detail is None and not imp.regenerable and words in imp.reason
    assert "ADetailer model: face_yolov8n.pt" in imp.extra["raw"]["parameters"]     # nothing lost


def test_unknown_adetailer_keys_are_kept():
    imp = map_a1111(infotext(ONE + ", ADetailer future option: 3"))
    assert imp.detail.passes[0].detector == "face_yolov8n.pt"
    assert imp.extra["params"]["ADetailer future option"] == "3"
    back = a1111_parameters(Document(generation=imp.generation, model=imp.model, detail=imp.detail, source=imp.source))
    assert ("ADetailer future option", "3") in adetailer_keys(back)


def test_hostile_pass_counts():
    many = ", ".join(ONE.replace("ADetailer version: 24.11.1", "").replace(": ", f"{suffix(n)}: ").rstrip(", ")
                     for n in range(40))
    imp = map_a1111(infotext(many))
    assert imp.detail is None and "more than 16 passes" in imp.reason
    p = parse_settings(many)
    with pytest.raises(ValueError):
        a1111_detail(p)
    assert "ADetailer model 40th" in p                           # left as it was
    with pytest.raises(ConfigError, match="1..16 passes"):
        Detail(passes=(DetailPass(detector="x"),) * 17)
    with pytest.raises(ConfigError):
        Detail(passes=())
    for bad in ({"strength": 0}, {"confidence": 1.5}, {"mask_merge": "add"}, {"width": 512}, {"detector": ""},
                {"steps": 0}, {"clip_skip": 65}, {"schedule_type": "Karras"}, {"dilate_erode": 10**9}):
        with pytest.raises(ConfigError):
            DetailPass(**{"detector": "face_yolov8n.pt", **bad})


def test_a_file_with_passes_but_no_generation_is_corrupt():
    from aigif.container import Segment, write_container
    from aigif.syntax.schema import encode_element

    payload = encode_element(Detail(passes=(DetailPass(detector="face_yolov8n.pt"),)))
    with pytest.raises(CorruptError, match="detail pass needs a generation"):
        loads(write_container([Segment(0x11, payload), Segment(9, b"pixels")]))
    with pytest.raises(AigifError):
        loads(write_container([Segment(0x11, payload[:-3])]))


def test_full_import_keeps_the_pixels_and_the_engine_refuses(tmp_path):
    text = infotext(TWO)
    rgb = np.full((768, 512, 3), 90, np.uint8)
    src = tmp_path / "00001-1234.png"
    src.write_bytes(_png_with({"parameters": text}, rgb))
    imp = map_a1111(text, image_size=(512, 768))
    engine = FakeEngine(rgb.copy())
    out = decide(imp, rgb, engine=engine, codec=FakeCodec())
    assert out.kind == PIXELS and engine.calls == 0 and "ADetailer detail pass" in out.reason
    doc = loads(dumps(out.document))
    assert doc.detail == imp.detail and doc.pixels is not None
    assert regenerable(doc).startswith("no: ADetailer detail pass (detector face_yolov8n.pt")
    from aigif.engine.engine import Engine

    with pytest.raises(ConfigError, match="not regenerable: ADetailer"):
        Engine().regenerate(doc.replace(extensions=()))
    enc = encode_image(src, options=Options(syntax_only=True))
    out_file = tmp_path / "x.aigif"
    out_file.write_bytes(enc.data)
    from aigif.cli import app

    r = CliRunner().invoke(app, ["info", str(out_file)])
    assert r.exit_code == 0 and "0x0011 critical" in r.output and "hand_yolov8n.pt" in r.output, r.output
    r = CliRunner().invoke(app, ["export-parameters", str(out_file)])
    assert r.exit_code == 0 and adetailer_keys(r.output.rstrip("\n")) == adetailer_keys(text)
