"""Hostile ComfyUI graphs and oversized metadata: a clear AigifError within aigif.Limits, never a hang."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from aigif.errors import AigifError, ImportMetadataError, LimitError
from aigif.importers import encode_image, import_bytes, Options
from aigif.importers.comfy_graph import parse_graph
from aigif.limits import Limits


def png_with(fields: dict) -> bytes:
    info = PngInfo()
    for k, v in fields.items():
        info.add_text(k, v)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def txt2img(lora_model=("2", 0)) -> dict:
    """A plain txt2img graph with one LoraLoader whose model input is *lora_model*."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a.safetensors"}},
        "2": {"class_type": "LoraLoader", "inputs": {"model": list(lora_model), "clip": ["1", 1], "lora_name": "x.safetensors",
                                                     "strength_model": 1, "strength_clip": 1}},
        "3": {"class_type": "KSampler", "inputs": {"model": ["2", 0], "seed": 1, "steps": 2, "cfg": 7, "sampler_name": "euler",
                                                   "scheduler": "normal", "positive": ["4", 0], "negative": ["4", 0],
                                                   "latent_image": ["5", 0], "denoise": 1}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "a", "clip": ["2", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "x"}},
    }


def chain(n: int) -> dict:
    """*n* nodes, each linked to the previous one: deep, but acyclic."""
    g = {"0": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a"}}}
    for i in range(1, n):
        g[str(i)] = {"class_type": "LoraLoaderModelOnly", "inputs": {"model": [str(i - 1), 0], "lora_name": "l", "strength_model": 1}}
    return g


def test_the_plain_graph_still_maps():
    imp = import_bytes(png_with({"prompt": json.dumps(txt2img(("1", 0)))}))
    assert imp.has_syntax and imp.generation.seed == 1


@pytest.mark.parametrize("graph, words", [
    (txt2img(), "cycle through node 2"),                                      # LoraLoader takes its model from itself
    ({**txt2img(("4", 0)), "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "a", "clip": ["2", 1]}}}, "cycle"),
    (txt2img(("99", 0)), "dangling link"),
    ({**txt2img(("1", 0)), "8": {"class_type": "X", "inputs": [1, 2]}}, "malformed inputs"),
    ({**txt2img(("1", 0)), "8": {"class_type": 5, "inputs": {}}}, "not text"),
])
def test_hostile_graphs_raise_a_clear_error(graph, words):
    data = png_with({"prompt": json.dumps(graph)})
    with pytest.raises(ImportMetadataError, match=words):
        import_bytes(data)
    with pytest.raises(AigifError):
        encode_image(data, options=Options(syntax_only=True))


def test_self_loop_png_does_not_hang_the_cli(tmp_path):
    """The reported probe: a small PNG whose LoraLoader feeds itself; `aigif encode` must exit 1 promptly."""
    src = tmp_path / "loop.png"
    src.write_bytes(png_with({"prompt": json.dumps(txt2img())}))
    out = subprocess.run([sys.executable, "-m", "aigif", "encode", str(src), "-o", str(tmp_path / "o.aigif"), "--syntax-only"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "cycle" in out.stderr + out.stdout


def test_graph_node_limit_passes_at_limit_and_refuses_one_more():
    g = chain(50)
    assert len(parse_graph(json.dumps(g), Limits(max_graph_nodes=50))) == 50
    with pytest.raises(LimitError, match="max_graph_nodes"):
        parse_graph(json.dumps(g), Limits(max_graph_nodes=49))


def test_100k_node_graph_is_refused_by_default():
    g = {str(i): {"class_type": "A"} for i in range(100_000)}        # 2.6 MB: within max_metadata_bytes
    with pytest.raises(LimitError, match="max_graph_nodes"):
        import_bytes(png_with({"prompt": json.dumps(g, separators=(",", ":"))}))


def test_default_limit_graph_is_walked_without_recursion():
    g = chain(Limits().max_graph_nodes)
    assert len(parse_graph(g)) == Limits().max_graph_nodes          # a 10,000-deep chain: no RecursionError


def test_metadata_bytes_limit_passes_at_limit_and_refuses_one_more():
    text = "a cat\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 8x8, Model: m"
    data = png_with({"parameters": text})
    assert import_bytes(data, Limits(max_metadata_bytes=len(text))).generation.seed == 1
    with pytest.raises(LimitError, match="max_metadata_bytes"):
        import_bytes(data, Limits(max_metadata_bytes=len(text) - 1))


def test_10_mb_of_text_is_refused():
    data = png_with({"prompt": json.dumps({"1": {"class_type": "CLIPTextEncode", "inputs": {"text": "a" * 10_000_000}}})})
    with pytest.raises(LimitError, match="max_metadata_bytes"):
        import_bytes(data)
