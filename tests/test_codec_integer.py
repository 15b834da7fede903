"""Integer decoding (model id 6): the same pixels under every CPU instruction set and thread count, exact
arithmetic checked, strips equal to the whole image, and model id 5 still decoding with its float path."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from aigif.codec import zoo  # noqa: E402
from aigif.errors import ModelError  # noqa: E402
from aigif.fileio import sha256_of_file  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "spec" / "conformance" / "codec"

#: decodes every exact (max_abs_diff 0) conformance vector with 1, then 2 torch threads and prints the names
#: whose pixels differ (one process per instruction-set setting: torch reads those at start-up)
CHILD = r"""
import json, sys
from pathlib import Path
import numpy as np
import torch
from PIL import Image
from aigif.codec import decompress_image, decompress_residual
root = Path(sys.argv[1])
bad, n = [], 0
for path, threads in [(p, t) for t in (1, 2) for p in sorted(root.glob("*.json"))]:
    torch.set_num_threads(threads)
    e = json.loads(path.read_text())
    if e.get("max_abs_diff") != 0:
        continue
    data = path.with_suffix(".nvtc").read_bytes()
    if "reference" in e:
        out = decompress_residual(data, np.asarray(Image.open(root / e["reference"]).convert("RGB")))
    else:
        out = decompress_image(data)
    n += 1
    if not np.array_equal(out, np.asarray(Image.open(root / e["pixels"]).convert("RGB"))):
        bad.append(f"{path.stem} ({threads} threads)")
print(json.dumps({"decoded": n, "differ": bad}))
"""


def _isa_settings() -> list:
    settings = [("default", "SSE41"), ("avx2", "AVX2")]
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    if " avx512f" in flags:
        settings.append(("avx512", "AVX512_CORE"))
    return settings


@pytest.mark.parametrize("aten,onednn", _isa_settings())
def test_conformance_pixels_identical_under_every_isa_and_thread_count(aten, onednn):
    """Each setting picks other torch / oneDNN kernels (and float32 decoders then differ by a few levels);
    the integer decoder must reproduce the reference PNGs bit for bit with 1 and with 2 threads."""
    env = dict(os.environ, ATEN_CPU_CAPABILITY=aten, ONEDNN_MAX_CPU_ISA=onednn, OMP_NUM_THREADS="2",
               MKL_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", CHILD, str(VECTORS)], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["decoded"] >= 20 and result["differ"] == [], (aten, onednn, result)


def test_default_encoder_writes_the_integer_model_and_every_exact_vector_is_id6():
    assert zoo.DEFAULT_MODEL_ID == 6 and all(zoo.MODELS[q][1]["model_id"] == 6 for q in zoo.QUALITIES)
    records = [json.loads(p.read_text()) for p in VECTORS.glob("*.json")]
    valid = [r for r in records if "error" not in r]
    assert {r["model_id"] for r in valid if r["max_abs_diff"] == 0} == {6}
    assert any(r["model_id"] == 5 for r in valid)  # the float model id keeps decoding


def test_rshift_rounds_halves_up():
    from aigif.codec.intsynth import rshift

    v = torch.tensor([-5.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 5.0])
    assert rshift(v, 1).tolist() == [-2, -2, -1, -1, 0, 0, 1, 1, 2, 3]
    assert rshift(v, torch.tensor(2.0)).tolist() == [-1, -1, -1, 0, 0, 0, 0, 1, 1, 1]
    assert rshift(v, 0).tolist() == v.tolist()


def test_shipped_layers_are_exact_in_float32():
    """Re-derive every layer's worst partial sum from the shipped integers (what the loader checks)."""
    from safetensors.numpy import load_file

    from aigif.codec.intsynth import EXACT

    arrays = load_file(os.path.join(zoo.ASSET_DIR, zoo.INT_FILES[6]))
    layers = [k[: -len(".weight")] for k in arrays if k.endswith(".weight")]
    assert len(layers) == 3 * 11 * 2 + 2 + 2 + 1 + 5
    for p in layers:
        w = np.abs(arrays[f"{p}.weight"].astype(np.int64))
        sums = w.sum(1).max(1) if w.ndim == 3 else w.reshape(w.shape[0], -1).sum(1)
        clamp = int(arrays[f"{p}.input"][1])
        worst = sums * clamp + np.abs(arrays[f"{p}.bias"].astype(np.int64)) + 2 ** (arrays[f"{p}.shift"] - 1)
        assert worst.max() < EXACT, p


def test_loader_refuses_a_layer_that_could_round(tmp_path, monkeypatch):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    name = zoo.INT_FILES[6]
    arrays = load_file(os.path.join(zoo.ASSET_DIR, name))
    with safe_open(os.path.join(zoo.ASSET_DIR, name), framework="numpy") as f:
        meta = f.metadata()
    arrays["syn.out.weight"] = arrays["syn.out.weight"] * 64  # partial sums beyond 2**24
    save_file(arrays, str(tmp_path / name), metadata=meta)
    monkeypatch.setattr(zoo, "ASSET_DIR", str(tmp_path))
    monkeypatch.setitem(zoo.SHA256, name, sha256_of_file(str(tmp_path / name)))
    zoo.load_integer.cache_clear()
    try:
        with pytest.raises(ModelError, match="2\\*\\*24"):
            zoo.load_integer(6)
    finally:
        zoo.load_integer.cache_clear()


def test_integer_strips_equal_the_whole_image():
    from aigif.codec.intsynth import exact_matmul
    from aigif.codec.model import context_plan

    model = zoo.load_model(1)
    ops = zoo.load_integer(6)[0]
    gen = torch.Generator().manual_seed(0)
    h, w = 512, 64  # finest stage 128 rows: several strips of 8 or 40 rows with 28 margin rows each side
    idx = {(s, l): torch.randint(0, k, (1, h // f, w // f), generator=gen)
           for (s, l, _rows, k), f in ((e, (16, 8, 4)[e[0]]) for e in context_plan(model.config))}
    with exact_matmul():
        whole = model.run(lambda s, l, r, i, shape: (idx[(s, l)], None), (1, h, w), ops=ops)[0]
        for rows in (8, 40):
            assert torch.equal(model.synthesize(idx, strip_rows=rows, ops=ops), whole), rows
    assert whole.dtype == torch.float32 and torch.equal(whole, whole.round())
    assert float(whole.min()) >= 0 and float(whole.max()) <= 255


@pytest.mark.parametrize("shape,strip", [((37, 29), 3), ((64, 50), 5), ((9, 1), 1)])
def test_integer_restoration_strips_equal_the_whole_image(shape, strip):
    from aigif.codec.intsynth import exact_matmul
    from aigif.codec.restore import restore

    net = zoo.load_integer(6)[1]
    img = np.random.default_rng(shape[0]).integers(0, 256, (*shape, 3), dtype=np.uint8)
    with exact_matmul():
        whole = restore(net, img, 2, strip_rows=10_000)
        assert np.array_equal(restore(net, img, 2, strip_rows=strip), whole)
    assert not np.array_equal(whole, img)


def test_both_3x3_paths_give_the_same_integers():
    """oneDNN's direct convolution (x86-64 CPUs) and the nine matrix products (other devices) agree exactly,
    the scaled weights and bias included, and equal the layer's definition in integers (§5c)."""
    from aigif.codec.intsynth import conv3x3_taps, exact_matmul, rshift

    layer = zoo.load_integer(6)[0].res[0][0]
    u = layer.inputs(torch.randint(-(1 << 22), 1 << 22, (1, layer.weight.shape[1], 12, 20)).float())
    with exact_matmul():
        direct = torch.nn.functional.conv2d(u, layer.weight, layer.offset, padding=1)
        assert torch.equal(direct, conv3x3_taps(u, layer.taps, layer.offset))
    assert not torch.equal(direct, direct.floor())  # the scaled sums keep their fractions until the floor
    from safetensors.numpy import load_file

    arrays = load_file(os.path.join(zoo.ASSET_DIR, zoo.INT_FILES[6]))
    w, bias, shift = (torch.from_numpy(arrays[f"syn.res.0.conv1.{k}"].astype(np.float64)) for k in ("weight", "bias", "shift"))
    acc = torch.nn.functional.conv2d(u.double(), w, bias, padding=1)  # float64: exact for these integers
    assert torch.equal(direct.floor().double(), rshift(acc, shift.view(1, -1, 1, 1)))


def test_gelu_table_composed_with_the_next_input_step_matches_the_definition():
    """The one-gather GELU equals ``clamp(rshift(g(v), pre), -m, m)`` of §5c for every v (below -n, inside the
    table, above it)."""
    from safetensors.numpy import load_file

    from aigif.codec.intsynth import rshift

    ops = zoo.load_integer(6)[0]
    lut = torch.from_numpy(load_file(os.path.join(zoo.ASSET_DIR, zoo.INT_FILES[6]))["gelu.lut"].astype(np.float64))
    n = lut.numel() // 2
    for _blk, _fc1, gelu, fc2 in [ops.vt[(0, 0, 0)], ops.vt[(2, 3, 1)]] + [(None, None, *r[1:]) for r in ops.res]:
        v = torch.arange(-3 * n, 3 * n + 7, dtype=torch.float64)
        g = torch.where(v >= n, v, lut[(v.clamp(-n, n - 1) + n).long()])
        want = rshift(g, fc2.pre).clamp(-fc2.clamp, fc2.clamp)
        assert torch.equal(gelu(v.float().clone()).double(), want)
