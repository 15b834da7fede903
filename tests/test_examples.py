"""Every example runs (as a user would run it: a subprocess, offline) and writes what it promises."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import aigif
from aigif.fidelity import pixel_sha256

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ("quickstart", "save_from_pipeline", "pillow_plugin", "batch_accelerate", "generator_family")


def _run_all(tmp_path):
    """Start the examples and the docs snippets together (their start-up is mostly imports) and wait for all."""
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    procs = {}
    for name in EXAMPLES:
        out = tmp_path / name
        procs[name] = (out, subprocess.Popen([sys.executable, str(ROOT / "examples" / f"{name}.py"), str(out)], env=env,
                                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    docs = tmp_path / "docs"
    docs.mkdir()
    procs["docs"] = (docs, subprocess.Popen([sys.executable, "-c", _docs_code(ROOT / "docs" / "api.md")], env=env, cwd=docs,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = {}
    for name, (out, p) in procs.items():
        stdout, stderr = p.communicate(timeout=480)   # six processes on a shared CPU
        assert p.returncode == 0, f"{name} failed:\n{stdout}\n{stderr[-3000:]}"
        results[name] = (out, stdout)
    return results


def test_examples_run_and_write_their_outputs(tmp_path):
    r = _run_all(tmp_path)

    out, stdout = r["quickstart"]
    doc = aigif.load(out / "lighthouse.aigif")
    assert doc.generation.seed == 1234 and doc.fingerprint is not None
    assert (out / "lighthouse.aigif").stat().st_size < 400
    assert np.asarray(Image.open(out / "lighthouse.png")).shape == (64, 64, 3)
    assert "decoded: exact" in stdout

    out, stdout = r["save_from_pipeline"]
    for i in (0, 1):
        d = aigif.load(out / f"fox{i}.aigif")
        assert d.generation.scheduler == "euler-a" and d.model.name == "aigif-tiny-sd"
        assert pixel_sha256(np.asarray(Image.open(out / f"fox{i}.png").convert("RGB"))) == d.fingerprint.pixel_sha256
    assert "regenerated fox0: exact" in stdout

    out, stdout = r["pillow_plugin"]
    assert aigif.load(out / "boat.aigif").generation.prompt == "a paper boat on a pond"
    assert Image.open(out / "boat_thumb.png").size == (32, 32)
    assert aigif.load(out / "gradient.aigif").pixels is not None
    assert "loaded: exact" in stdout

    out, stdout = r["batch_accelerate"]
    pngs = sorted(p.relative_to(out / "batch" / "out").as_posix() for p in (out / "batch" / "out").rglob("*.png"))
    assert pngs == ["day/000.png", "day/002.png", "day/004.png", "night/001.png", "night/003.png"]
    assert json.loads((out / "batch" / "out" / "aigif-batch-summary.json").read_text())["counts"] == {"skipped": 5}
    assert "| converted | 5 |" in stdout

    out, stdout = r["generator_family"]
    doc = aigif.load(out / "lantern.aigif")
    assert doc.model.family == "my-sd1-variant" and (doc.generation.width, doc.generation.num_inference_steps) == (64, 4)
    assert "noise drawn: (1, 4, 8, 8)" in stdout and "decoded: exact" in stdout

    out, stdout = r["docs"]                      # the ```python snippets of docs/api.md, in order
    assert aigif.load(out / "rated.aigif").extensions
    assert (out / "decoded" / "lighthouse.png").exists()
    assert "exact" in stdout


def test_docs_snippets_cover_the_three_jobs():
    code = _docs_code(ROOT / "docs" / "api.md")
    assert "record(pipe" in code and "register_extension" in code and "run_batch" in code and "decode(" in code


def _docs_code(path: Path) -> str:
    """The ```python blocks of a doc page, in order (```text blocks need a GPU/model and are not run)."""
    blocks, cur = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        if cur is None and line.strip() == "```python":
            cur = []
        elif cur is not None and line.strip() == "```":
            blocks.append("\n".join(cur))
            cur = None
        elif cur is not None:
            cur.append(line)
    assert cur is None, "unclosed code block"
    return "\n\n".join(blocks)


