"""The comfyui-graph extension: lossless round trips, conformance payloads, limits, and the way back out."""
from __future__ import annotations

import json
import math
import random
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aigif import dumps, loads
from aigif.errors import AigifError, CorruptError, LimitError, TruncatedError
from aigif.importers import Options, encode_image, import_image
from aigif.limits import Limits
from aigif.syntax import comfy_names
from aigif.syntax.graph_segment import EXPANSION, EXPANSION_BASE, RANGE_CODED, TYPE_CODE, decode_graph, encode_graph
from aigif.syntax.jsoncode import same
from tests.test_registry_doc import DOC, parse_tables

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "spec" / "conformance" / "comfyui-graph"
FIX = ROOT / "tests" / "fixtures" / "importers"
SAMPLES = json.loads((FIX / "samples.json").read_text("utf-8"))
COMFY = sorted(n for n, s in SAMPLES.items() if "prompt" in s["fields"])


def graph_of(name: str) -> dict:
    f = SAMPLES[name]["fields"]
    return {"prompt": json.loads(f["prompt"]), **({"workflow": json.loads(f["workflow"])} if "workflow" in f else {})}


def test_registry_tables_are_mirrored_in_the_spec():
    tables = parse_tables(DOC.read_text("utf-8"))
    assert [(int(r["Index"]), r["Name"]) for r in tables["ComfyUI names"]] == list(enumerate(comfy_names.NAMES))
    rows = {r["Class"]: (r["Title"], r["Inputs"].replace("—", ""), r["Outputs"].replace("—", "")) for r in tables["ComfyUI nodes"]}
    assert rows == comfy_names.NODES
    number = lambda c: float(c) if "." in c else int(c)                # noqa: E731
    sizes = {r["Class"]: (number(r["Width"]), number(r["Height"])) for r in tables["ComfyUI node sizes"]}
    assert sizes == comfy_names.SIZES
    assert all(same(list(a), list(b)) for a, b in zip(sizes.values(), comfy_names.SIZES.values()))
    assert len(set(comfy_names.NAMES)) == len(comfy_names.NAMES)


@pytest.mark.parametrize("path", sorted(CONF.glob("*.bin")), ids=lambda p: p.stem)
def test_conformance_payload(path):
    expected = json.loads(path.with_suffix(".json").read_text("utf-8"))
    payload = path.read_bytes()
    if "error" in expected:
        with pytest.raises(AigifError) as info:
            decode_graph(payload)
        assert info.value.kind == expected["error"], str(info.value)
    else:
        assert same(decode_graph(payload), expected["data"])
        coding = 2 if payload[1] & RANGE_CODED else 1               # coding1-*: payloads of earlier releases
        assert coding == (1 if path.stem.startswith("coding1-") else 2)
        assert encode_graph(expected["data"], coding=coding) == payload          # writers are deterministic


@pytest.mark.parametrize("name", COMFY)
def test_every_comfyui_fixture_round_trips_and_beats_zlib(name):
    data = graph_of(name)
    payload = encode_graph(data)
    assert same(decode_graph(payload), data)
    compact = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(payload) < len(zlib.compress(compact, 9))        # the size targets are in benchmarks/bench_import.py


def test_tricky_values_keep_their_form():
    values = [0.1, 1.0, 1, -0.0, 0.0, 2**64 - 1, 2**64, -(2**200), 1e308, 5e-324, 422.84503173828125, 1e-7, 123456789.125,
              "", "0", "007", "18446744073709551616", "ünïcödé ✓", {"z": 1, "a": [None, True, False]}, [[[]]], {}]
    data = {"prompt": {"v": values}, "workflow": [math.inf, -math.inf]}
    back = decode_graph(encode_graph(data))
    assert same(back["prompt"], data["prompt"]) and back["workflow"] == [math.inf, -math.inf]
    assert math.isnan(decode_graph(encode_graph({"prompt": math.nan}))["prompt"])


def test_a_wrong_prediction_only_costs_bytes():
    """Workflow nodes that contradict their API nodes (types, widgets, links) still round-trip exactly."""
    data = graph_of("comfyui_txt2img")
    for node in data["workflow"]["nodes"]:
        node["type"], node["widgets_values"], node["mode"] = "Other", [1.5, "x", None], 4
        node["inputs"] = [{"name": "q", "link": 999}]
    data["workflow"]["links"] = [[999, 1, 0, 2, 0, "Z"]]
    assert same(decode_graph(encode_graph(data)), data)


def test_integers_against_predicted_ones_keep_their_value_at_the_edges():
    """Coding 2 codes an integer as its difference from a predicted integer, within 64 bits only."""
    data = graph_of("comfyui_hires_latent")
    edges = [2**64 - 1, -(2**64 - 1), 2**64, -(2**70), 0, -1, True, 1.0]
    for node, v in zip(data["workflow"]["nodes"], edges):
        node["size"] = [v, -v if not isinstance(v, bool) else v]
        node["mode"] = v
    data["workflow"]["revision"] = 2**64 - 1
    assert same(decode_graph(encode_graph(data)), data)


def test_a_text_like_an_earlier_one_costs_little():
    note = ("This workflow upscales the latent of the first pass and samples it again at a lower denoise; "
            "keep the seed fixed while you tune the second pass, then randomize it. ") * 3
    one = {"prompt": {"1": {"inputs": {"text": note}, "class_type": "Note"}}}
    two = {"prompt": {"1": {"inputs": {"text": note}, "class_type": "Note"},
                      "2": {"inputs": {"text": note.replace("lower", "higher")}, "class_type": "Note"}}}
    assert same(decode_graph(encode_graph(two)), two)
    assert len(encode_graph(two)) < len(encode_graph(one)) + 40


@pytest.mark.parametrize("coding", [1, 2])
def test_every_truncation_is_refused(coding):
    payload = encode_graph(graph_of("comfyui_txt2img"), coding=coding)
    for n in range(len(payload)):
        with pytest.raises(AigifError):
            decode_graph(payload[:n])


def mutations(payload: bytes, rng: random.Random, n: int):
    """Payloads with bytes changed, inserted, deleted or cut off."""
    for _ in range(n):
        bad = bytearray(payload)
        for _ in range(rng.randint(1, 4)):
            op, i = rng.randrange(4), rng.randrange(2, len(bad))
            if op == 0:
                bad[i] = rng.randrange(256)
            elif op == 1:
                bad.insert(i, rng.randrange(256))
            elif op == 2 and len(bad) > 3:
                del bad[i]
            else:
                bad[i] ^= 1 << rng.randrange(8)
        yield bytes(bad[:rng.randrange(3, len(bad) + 1)] if rng.random() < 0.2 else bad)


@pytest.mark.parametrize("name, coding, n", [("comfyui_lora", 1, 300), ("comfyui_lora", 2, 2000), ("comfyui_flux_dev", 2, 1000)])
def test_corrupted_payloads_give_aigif_errors_only(name, coding, n):
    """Hostile payloads end in an AigifError or in some JSON, never in another exception; output stays bounded."""
    payload = encode_graph(graph_of(name), coding=coding)
    refused = 0
    for bad in mutations(payload, random.Random(5), n):
        try:
            out = json.dumps(decode_graph(bad))
            assert coding == 1 or len(out) <= 4 * (EXPANSION * len(bad) + EXPANSION_BASE)
        except AigifError:
            refused += 1
    assert refused > n * 0.9                     # the canonical-stream check catches nearly every change


def test_a_payload_that_expands_too_far_is_refused_and_a_writer_keeps_coding_1_for_it():
    data = {"prompt": [None] * (3 * EXPANSION_BASE)}                   # some 100 bytes in coding 2
    payload = encode_graph(data)
    assert not payload[1] & RANGE_CODED and same(decode_graph(payload), data)
    small = {"prompt": [None] * 1000}
    assert encode_graph(small)[1] & RANGE_CODED


def test_coding_2_is_smaller_than_coding_1_for_every_fixture():
    for name in COMFY:
        assert len(encode_graph(graph_of(name))) < len(encode_graph(graph_of(name), coding=1)), name


def test_decoded_size_limit_passes_at_limit_and_refuses_below():
    data = {"prompt": {"a": "x" * 1000, "b": ["y" * 500] * 3}}
    payload = encode_graph(data)
    lo, hi = 1, 10_000                                            # bisect the exact budget the payload needs

    def fits(budget: int) -> bool:
        try:
            decode_graph(payload, Limits(max_metadata_bytes=budget))
            return True
        except LimitError:
            return False

    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(mid) else (mid + 1, hi)
    budget = lo
    assert 2500 <= budget < 2600                                  # ~ the characters of the decoded JSON
    assert same(decode_graph(payload, Limits(max_metadata_bytes=budget)), data)
    with pytest.raises(LimitError, match="max_metadata_bytes"):
        decode_graph(payload, Limits(max_metadata_bytes=budget - 1))


def test_node_count_limit():
    payload = encode_graph(graph_of("comfyui_txt2img"))
    n = len(graph_of("comfyui_txt2img")["prompt"])
    assert decode_graph(payload, Limits(max_graph_nodes=max(n, 11)))
    with pytest.raises(LimitError, match="max_graph_nodes"):
        decode_graph(payload, Limits(max_graph_nodes=n - 1))


def test_corrupt_kinds():
    with pytest.raises(TruncatedError):
        decode_graph(b"\x01")
    with pytest.raises(CorruptError, match="registry version"):
        decode_graph(b"\x07\x00\x00")


@pytest.mark.parametrize("name", ["comfyui_txt2img", "comfyui_flux_dev", "sdparsers_unclip_2pass"])
def test_export_comfyui_prints_the_graph_as_read(name, tmp_path):
    from aigif.cli import app

    out = tmp_path / "x.aigif"
    enc = encode_image(next((FIX / "images").glob(name + ".*")), options=Options(syntax_only=True))
    out.write_bytes(enc.data)
    doc = loads(enc.data)
    assert [s.type for s in doc.extensions][0] == TYPE_CODE
    runner = CliRunner()
    r = runner.invoke(app, ["export-parameters", "--comfyui", str(out)])
    assert r.exit_code == 0 and json.loads(r.output) == json.loads(SAMPLES[name]["fields"]["prompt"])
    r = runner.invoke(app, ["export-parameters", "--workflow", str(out)])
    assert r.exit_code == 0 and json.loads(r.output) == json.loads(SAMPLES[name]["fields"]["workflow"])
    r = runner.invoke(app, ["info", str(out)])
    assert r.exit_code == 0 and "regenerable: " in r.output
    assert dumps(loads(enc.data)) == enc.data


def test_export_comfyui_of_a_file_without_a_graph_is_a_clear_error(tmp_path):
    from aigif.cli import app

    out = tmp_path / "a.aigif"
    out.write_bytes(encode_image(next((FIX / "images").glob("a1111_basic.*")), options=Options(syntax_only=True)).data)
    r = CliRunner().invoke(app, ["export-parameters", "--comfyui", str(out)])
    assert r.exit_code == 1 and "no ComfyUI graph" in r.output


def test_every_sd_parsers_sample_imports_with_syntax_only():
    """The sample images of sd-parsers' own test suite (their metadata, tests/fixtures/importers/samples.json)."""
    names = [n for n in SAMPLES if n.startswith("sdparsers_")]
    assert len(names) == 12
    for name in names:
        enc = encode_image(next((FIX / "images").glob(name + ".*")), options=Options(syntax_only=True))
        assert enc.kind == "syntax-only" and "regenerable: " in enc.outcome.reason, name


@pytest.mark.parametrize("name, words", [
    ("comfyui_sd35", "all-in-one SD 3.5 checkpoint"),
    ("comfyui_sd35_encoders", "all-in-one SD 3.5 checkpoint"),
    ("comfyui_img2img", "init image example.png not stored"),
])
def test_graphs_beyond_the_syntax_keep_their_main_pass(name, words):
    imp = import_image(next((FIX / "images").glob(name + ".*")))
    assert imp.has_syntax and not imp.regenerable and words in imp.reason, imp.reason
    g = json.loads(SAMPLES[name]["fields"]["prompt"])
    seeds = {n["inputs"].get("seed", n["inputs"].get("noise_seed")) for n in g.values()} - {None}
    assert imp.generation.seed in seeds and imp.generation.prompt


def test_flux_main_pass_reads_the_custom_sampler_chain():
    imp = import_image(next((FIX / "images").glob("comfyui_flux_dev.*")))
    g = imp.generation
    assert (g.num_inference_steps, g.guidance_scale, g.scheduler) == (20, 3.5, "flow-euler")   # FluxGuidance 3.5
    assert imp.model.local == "diffusion_models/flux1-dev.safetensors" and "cute anime girl" in g.prompt
