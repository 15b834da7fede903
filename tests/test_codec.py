"""NVTC codec: round trips, exact decoding, real bits, hostile payloads, limits."""
from __future__ import annotations

import hashlib
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from aigif.codec import QUALITIES, compress_image, compress_residual, decompress_image, decompress_residual
from aigif.codec import payload, zoo
from aigif.errors import (AigifError, CorruptError, LimitError, RegistryError, TruncatedError,
                          UnknownCodecError)


MODEL_ID = zoo.MODELS[QUALITIES[0]][1]["model_id"]


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth, photo-like test image (gradients, an edge, mild texture)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 80 * np.sin(x / 9.0 + seed) * np.cos(y / 13.0)
    g = 90 + 0.6 * x + 0.3 * y
    b = 60 + 120 * (x + y > (h + w) / 2)
    img = np.stack([r, g, b], -1) + rng.normal(0, 3, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def psnr(a, b) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize("shape", [(1, 1), (17, 23), (70, 41), (64, 129)])
def test_round_trip_odd_sizes(shape):
    img = photo(*shape)
    for q in (QUALITIES[0], QUALITIES[-1]):
        data = compress_image(img, q)
        out = decompress_image(data)
        assert out.shape == img.shape and out.dtype == np.uint8
        assert np.array_equal(out, decompress_image(data))
        if min(shape) > 8:
            assert psnr(img, out) > 14.0


def test_higher_quality_more_bits_and_better_psnr():
    img = photo(96, 128, seed=3)
    lo, hi = compress_image(img, QUALITIES[0]), compress_image(img, QUALITIES[-1])
    assert len(hi) > len(lo)
    assert psnr(img, decompress_image(hi)) > psnr(img, decompress_image(lo))


def test_payload_size_is_the_entropy_coded_size():
    """Real bits: the stream length matches the ideal code length of the integer tables."""
    import torch

    from aigif.codec import zoo
    from aigif.codec.entropy import layer_code_length
    from aigif.codec.model import contexts_for

    img = photo(128, 192, seed=1)
    q = QUALITIES[len(QUALITIES) // 2]
    data = compress_image(img, q, transpose=False)
    p = payload.read_header(data)
    flags, h, w, stream, post = p.flags, p.height, p.width, p.stream, p.post
    assert len(data) == payload.HEADER.size + len(stream) + (2 + len(post) if post else 0) + 4 == payload.size(stream, post)
    adaptive = bool(flags & payload.FLAG_ADAPTIVE)
    assert adaptive  # the default
    assert flags & payload.FLAG_DIRECTIONS  # the default
    model = zoo.load_model(q)
    idx, directions = model.decode_indices([stream], (128, 192), adaptive, directions=True)
    ideal = 2.0 * len(idx)  # a 2-bit direction per layer
    for (s, l), i in idx.items():
        ctx = contexts_for(s, l, idx, i.shape)
        ideal += layer_code_length(i.numpy(), ctx.numpy(), model.tables.tables[(s, l)], model.tables.flags[(s, l)],
                                   adaptive, directions[(s, l)])
    max_bits = sum(int(i.numel()) * 8 for i in idx.values())
    bits = len(stream) * 8
    assert bits < max_bits  # entropy coding beats fixed-length indices
    assert 0.97 * ideal <= bits <= ideal * 1.03 + 96
    assert isinstance(torch.get_num_threads(), int)


DECODE_SNIPPET = """
import sys, hashlib, torch
torch.set_num_threads(int(sys.argv[2]))
from aigif.codec import decompress_image
data = open(sys.argv[1], 'rb').read()
print(hashlib.sha256(decompress_image(data).tobytes()).hexdigest())
"""


def test_decode_bit_exact_across_processes_and_threads(tmp_path):
    import torch

    img = photo(80, 112, seed=5)
    p = payload.read_header(compress_image(img, QUALITIES[-1], post_filter=False))
    data = payload.pack(MODEL_ID, p.quality, p.flags, p.height, p.width, p.stream, b"\x03")  # the float restoration network too
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        here = hashlib.sha256(decompress_image(data).tobytes()).hexdigest()
    finally:
        torch.set_num_threads(saved)
    assert torch.get_num_threads() == saved  # decode restores the caller's thread count
    path = tmp_path / "p.nvtc"
    path.write_bytes(data)
    out = subprocess.run([sys.executable, "-c", DECODE_SNIPPET, str(path), "3"], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == here


def test_truncated_payload_every_offset():
    data = compress_image(photo(20, 30), QUALITIES[0])
    for n in range(len(data)):
        with pytest.raises(TruncatedError):
            decompress_image(data[:n])


def test_corrupt_payloads_raise_aigif_errors():
    data = bytearray(compress_image(photo(33, 47), QUALITIES[0]))
    for pos in range(0, len(data), max(1, len(data) // 40)):
        bad = bytearray(data)
        bad[pos] ^= 0x5A
        with pytest.raises(AigifError):
            decompress_image(bytes(bad))
    with pytest.raises(CorruptError):
        decompress_image(bytes(data) + b"\0")
    with pytest.raises(AigifError):
        decompress_image(b"\x89PNG\r\n\x1a\n" + bytes(40))
    with pytest.raises(AigifError):
        decompress_image("not bytes")  # type: ignore[arg-type]


def test_unknown_model_and_quality():
    data = compress_image(photo(16, 16), QUALITIES[0])
    body = bytearray(data[:-4])
    for off, val in ((5, 200), (6, 0), (6, 99)):
        bad = bytearray(body)
        bad[off] = val
        with pytest.raises(UnknownCodecError):
            decompress_image(with_crc(bytes(bad)))
    with pytest.raises(RegistryError, match="valid qualities"):
        compress_image(photo(8, 8), 99)


def test_garbage_stream_with_valid_crc_never_escapes():
    rng = np.random.default_rng(0)
    for n in (0, 4, 64):
        stream = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        body = payload.HEADER.pack(payload.MAGIC, payload.VERSION, MODEL_ID, QUALITIES[0], 0, 24, 40, len(stream)) + stream
        try:
            out = decompress_image(with_crc(body))
        except AigifError:
            continue
        assert out.shape == (24, 40, 3)


def test_max_pixels_limit():
    img = photo(40, 50)
    data = compress_image(img, QUALITIES[0])
    assert decompress_image(data, max_pixels=2000).shape == (40, 50, 3)
    with pytest.raises(LimitError):
        decompress_image(data, max_pixels=1999)
    huge = with_crc(payload.HEADER.pack(payload.MAGIC, payload.VERSION, MODEL_ID, QUALITIES[0], 0, 65535, 65535, 0))
    with pytest.raises(LimitError):
        decompress_image(huge)


def test_residual_round_trip_improves_reference():
    original = photo(96, 128, seed=7)
    y, x = np.mgrid[0:96, 0:128]
    offset = (25 * np.sin(x / 20.0) + 15 * np.cos(y / 15.0)).astype(np.int16)[..., None]
    reference = np.clip(original.astype(np.int16) + offset, 0, 255).astype(np.uint8)
    data = compress_residual(original, reference, QUALITIES[-1])
    approx = decompress_residual(data, reference)
    assert approx.shape == original.shape
    assert psnr(original, approx) > psnr(original, reference) + 1.0
    with pytest.raises(CorruptError):
        decompress_image(data)  # a residual is not an image
    with pytest.raises(CorruptError):
        decompress_residual(data, reference[:10])


def test_residual_of_identical_reference_is_tiny():
    img = photo(48, 64, seed=2)
    data = compress_residual(img, img, QUALITIES[0])
    assert np.array_equal(decompress_residual(data, img), img) or len(data) < 200


def test_strip_decoding_computes_the_whole_image_function():
    """The finest stage is decoded in strips with a margin of context rows; with block FCs that
    really mix (random weights, not the shipped near-identity ones) strips equal the whole-image
    loop, and a margin smaller than the transforms' reach does not (so the check can fail)."""
    import torch

    from aigif.codec.model import STAGE_FACTORS, NVTC, context_plan

    torch.manual_seed(0)
    cfg = {"channels": 16, "hidden": 16, "layers": [1, 2, 2], "dims": [4, 4, 4], "codebooks": [8, 8, 8],
           "lambdas": [50]}
    model = NVTC(cfg, n_qualities=0).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "block_fc.weight" in name or "conv2" in name:
                p.normal_(0, 0.3)
    g = torch.Generator().manual_seed(1)
    h, w = 1024, 128
    idx = {(s, l): torch.randint(0, k, (1, h // STAGE_FACTORS[s], w // STAGE_FACTORS[s]), generator=g)
           for s, l, _rows, k in context_plan(cfg)}
    with torch.no_grad():
        whole = model.run(lambda s, l, r, i, shape: (idx[(s, l)], model.codewords(s, l, idx[(s, l)])), (1, h, w))[0]
    scale = float(whole.abs().max())
    margin = model.strip_margin()
    assert margin == 4 * -(-(3 * 2 * 2 + 2) // 4)  # block FCs of 2 layers x 2 units reach 3 rows each, 2 convs 1 row
    for rows in (32, 40, 100):
        strips = model.synthesize(idx, strip_rows=rows)
        assert strips.shape == whole.shape
        assert float((strips - whole).abs().max()) < 1e-6 * scale, rows  # float rounding only
    model.strip_margin = lambda: 4
    assert float((model.synthesize(idx, strip_rows=32) - whole).abs().max()) > 1e-2 * scale


def test_training_can_start_from_the_shipped_weights():
    """``train --init`` turns the shipped file back into a training state (weights + logits close to the tables)."""
    import torch

    from aigif.codec import zoo
    from aigif.codec.model import NVTC, context_plan
    from tools.train_nvtc import load_shipped

    state = load_shipped(zoo.asset_path(QUALITIES[0]))
    model = NVTC(state["config"])
    model.load_state_dict(state["model"], strict=True)
    for q in QUALITIES:
        shipped = zoo.load_model(q)
        for s, l, _rows, _k in context_plan(state["config"]):
            p = torch.softmax(model.logits[f"q{q - 1}_s{s}_l{l}"].detach().double(), -1).numpy()
            t = shipped.tables.tables[(s, l)] / 65536.0
            assert np.abs(p - t).max() < 0.01
    assert torch.equal(model.codebooks[2], zoo.load_model(QUALITIES[0]).codebooks[2])


def test_bf16_training_step_on_cpu():
    """``train --amp`` works on a CPU too: a bf16 step on a small model gives finite losses and moves the weights."""
    import torch

    from aigif.codec.model import NVTC
    from tools.train_nvtc import make_optimizer, train_step

    torch.manual_seed(0)
    model = NVTC({"channels": 16, "hidden": 16, "codebooks": [16, 8, 8]}, n_qualities=1)
    opt = make_optimizer(model, 1e-3, 1.0)
    before = model.dec_out[-1].weight.detach().clone()
    x = torch.rand(2, 3, 64, 64) - 0.5
    out, mse, bpp = train_step(model, opt, x, 0, 3, True, amp=True)
    assert out["x_hat"].dtype == torch.bfloat16 and torch.isfinite(mse) and torch.isfinite(bpp)
    assert not torch.equal(before, model.dec_out[-1].weight)


def _brute_copy_aware(dist, sym_bits, ctx, flag_bits, lmbda):
    """Reference of NVTC.assign_copy_aware: one position at a time, left to right."""
    n, h, w, k = dist.shape
    out = np.zeros((n, h, w), dtype=np.int64)
    for a in range(n):
        for y in range(h):
            for x in range(w):
                cost = dist[a, y, x] + sym_bits[ctx[a, y, x]] / lmbda
                if x:
                    fc = int(ctx[a, y, x] == ctx[a, y, x - 1])
                    cost = cost + flag_bits[fc, 0] / lmbda
                    left = out[a, y, x - 1]
                    cost[left] = dist[a, y, x, left] + flag_bits[fc, 1] / lmbda
                out[a, y, x] = int(np.argmin(cost))
    return out


def test_copy_aware_training_ecvq_prices_the_copy_flag():
    """Training ECVQ with copy flags equals a position-by-position reference; free copies make runs,
    prohibitive ones none."""
    import torch

    from aigif.codec.model import NVTC, squared_distances

    torch.manual_seed(3)
    model = NVTC({"channels": 16, "hidden": 16, "codebooks": [16, 8, 8]}, n_qualities=1)
    r = torch.randn(2, 4, 3, 7)  # stage 2: d = 4, K = 8
    ctx = torch.randint(0, 8, (2, 3, 7))
    ctx[0, 0, 3:] = ctx[0, 0, 2]  # some equal neighbouring contexts (flag context 1)
    sym_bits = torch.rand(8, 8) * 6
    flag_bits = torch.tensor([[0.3, 2.5], [0.9, 1.2]])
    i, fc, copied = model.assign_copy_aware(2, 0, r, ctx, sym_bits, flag_bits, 2.0)
    dist = squared_distances(r.permute(0, 2, 3, 1), model.codebooks[2][0].detach()).numpy()
    want = _brute_copy_aware(dist, sym_bits.numpy(), ctx.numpy(), flag_bits.numpy(), 2.0)
    assert np.array_equal(i.numpy(), want)
    assert np.array_equal(copied[..., 1:].numpy(), want[..., 1:] == want[..., :-1]) and not copied[..., 0].any()
    assert np.array_equal(fc[..., 1:].numpy(), (ctx[..., 1:] == ctx[..., :-1]).numpy())
    assert copied.any() and not copied.all()
    never = model.assign_copy_aware(2, 0, r, ctx, sym_bits, torch.tensor([[0.0, 1e9], [0.0, 1e9]]), 2.0)[2]
    assert not never.any()
    runs = model.assign_copy_aware(2, 0, r, ctx, sym_bits, torch.tensor([[1e9, 0.0], [1e9, 0.0]]), 2.0)[0]
    assert torch.equal(runs, runs[..., :1].expand_as(runs))


def test_copy_aware_training_rate_counts_flags_and_new_symbols():
    """``forward(copy_aware=True)``: the rate is the flag bits of columns > 0 plus the symbol bits of the
    symbols that are not copies, each from the learned logits; a training step moves the flag logits."""
    import math

    import torch
    import torch.nn.functional as F

    from aigif.codec.model import NVTC, contexts_for
    from tools.train_nvtc import make_optimizer, train_step

    torch.manual_seed(0)
    model = NVTC({"channels": 16, "hidden": 16, "codebooks": [16, 8, 8]}, n_qualities=1)
    model.add_copy_logits()
    with torch.no_grad():
        for key, p in model.logits.items():
            p.copy_(torch.randn_like(p))
    x = torch.rand(2, 3, 64, 64) - 0.5
    with torch.no_grad():
        out = model(x, 0, 3, True, copy_aware=True)
    want = 0.0
    for (s, l), i in out["idx"].items():
        ctx = contexts_for(s, l, out["idx"], i.shape)
        logp = F.log_softmax(model.logits[f"q0_s{s}_l{l}"], -1)
        flogp = F.log_softmax(model.logits[f"q0_s{s}_l{l}_copy"], -1)
        copied = i[..., 1:] == i[..., :-1]
        fc = (ctx[..., 1:] == ctx[..., :-1]).long()
        want -= float(flogp[fc, copied.long()].sum())
        coded = torch.ones_like(i, dtype=torch.bool)
        coded[..., 1:] = ~copied
        want -= float(logp[ctx[coded], i[coded]].sum())
    assert abs(float(out["bits"]) - want / math.log(2.0)) < 1e-3 * want
    opt = make_optimizer(model, 1e-2, 1.0)
    before = model.logits["q0_s2_l0_copy"].detach().clone()
    train_step(model, opt, x, 0, 3, True, amp=False, copy_aware=True)
    assert not torch.equal(before, model.logits["q0_s2_l0_copy"])


def test_scale_augmentation_shrinks_wider_crops():
    """``random_batch(min_scale=0.5)``: crops keep their size and range, reproduce with the same seed, and
    hold shrunk content: a 2-pixel checkerboard averages towards grey, which a plain crop never does."""
    import torch

    from tools.train_nvtc import random_batch

    yy, xx = torch.meshgrid(torch.arange(96), torch.arange(128), indexing="ij")
    board = (((yy // 2 + xx // 2) % 2) * 255).to(torch.uint8).expand(3, 96, 128).contiguous()
    plain = random_batch([board], 8, 32, torch.Generator().manual_seed(1), "cpu")
    a = random_batch([board], 8, 32, torch.Generator().manual_seed(1), "cpu", min_scale=0.5)
    b = random_batch([board], 8, 32, torch.Generator().manual_seed(1), "cpu", min_scale=0.5)
    assert a.shape == plain.shape == (8, 3, 32, 32) and torch.equal(a, b)
    assert float(a.min()) >= -0.5 and float(a.max()) <= 0.5
    assert set(plain.unique().tolist()) == {-0.5, 0.5}
    assert float(a.abs().mean()) < 0.45  # shrunk crops blend the squares


def test_export_redesigns_tables_from_the_shipped_file():
    """``export --ckpt FILE.safetensors`` starts from the shipped symbol and copy-flag tables; without refinement
    they come back as they were (up to the tables -> logits -> tables round trip, < 0.5 % of probability)."""
    from aigif.codec import zoo
    from tools.train_nvtc import load_checkpoint, quality_tables

    path = zoo.asset_path(QUALITIES[0])
    ck = load_checkpoint(path)
    assert ck["step"] > 0 and all(v.shape == (128, 2) for v in ck["flags"].values())
    tables = quality_tables(path, 1, refine=0, rounds=0, threads=1)  # rate point index 1 = quality 2
    shipped = zoo.load_model(2).tables
    for (s, l), t in shipped.tables.items():
        assert np.abs(tables[f"table.q2.s{s}_l{l}"].astype(np.int64) - t).max() < 0.005 * 65536
        assert np.array_equal(tables[f"flag.q2.s{s}_l{l}"], shipped.flags[(s, l)])


@pytest.mark.parametrize("drop", ["table.q2.s1_l2", "flag.q2.s2_l0"])
def test_weights_file_missing_a_table_is_a_model_error(tmp_path, monkeypatch, drop):
    """A weights file without one of a quality's symbol or copy-flag tables is refused by name, not decoded."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    from aigif.errors import ModelError

    src = zoo.asset_path(2)
    with safe_open(src, framework="numpy") as f:
        meta = f.metadata()
    arrays = {k: v for k, v in load_file(src).items() if k != drop}
    save_file(arrays, str(tmp_path / zoo.MODELS[2][0]), metadata=meta)
    monkeypatch.setattr(zoo, "ASSET_DIR", str(tmp_path))
    monkeypatch.setattr(zoo, "SHA256", {})
    zoo.load_model.cache_clear()
    try:
        with pytest.raises(ModelError, match=drop.replace(".", r"\.")):
            zoo.load_model(2)
    finally:
        zoo.load_model.cache_clear()


TINY_TRAIN_CONFIG = {"channels": 16, "hidden": 16, "layers": [1, 1, 1], "dims": [4, 4, 2], "codebooks": [8, 8, 8]}


def test_training_code_length_is_the_sum_of_the_chosen_symbols_bits():
    """The training rate (counts times log-probabilities, counted without a device sync) equals
    sum -log2 p(symbol | context) over every chosen index: it fails if a count is lost or misplaced."""
    import math

    import torch

    from aigif.codec.model import NVTC, contexts_for

    torch.manual_seed(0)
    model = NVTC(TINY_TRAIN_CONFIG)
    with torch.no_grad():
        for p in model.logits.values():
            p.normal_()
    x = torch.rand(2, 3, 64, 64) - 0.5
    out = model(x, quality=1)
    expect = 0.0
    for (s, l), i in out["idx"].items():
        ctx = contexts_for(s, l, out["idx"], i.shape)
        logp = torch.log_softmax(model.logits[f"q1_s{s}_l{l}"].double(), -1)
        expect -= float(logp[ctx, i].sum().detach()) / math.log(2.0)
    assert len(out["idx"]) == 3 and expect > 0
    assert abs(float(out["bits"].detach()) - expect) < 1e-4 * expect


def test_budgeted_training_fits_its_schedule_to_the_measured_step_time(tmp_path, monkeypatch, capsys):
    """A first run with --budget-minutes re-times its real steps and resizes the schedule, then saves a checkpoint
    that records the new length (tiny model, random images: not a quality test)."""
    import json

    import torch
    from PIL import Image

    import tools.train_nvtc as train

    rng = np.random.default_rng(0)
    for n in range(2):
        Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)).save(tmp_path / f"im{n}.png")
    monkeypatch.setattr(train, "RECALIBRATE_AT", (2, 6))
    out = tmp_path / "run"
    train.main(["train", "--data", str(tmp_path / "*.png"), "--out", str(out), "--budget-minutes", "0.02",
                "--minutes", "0.5", "--batch", "2", "--crop", "64", "--log-every", "1000",
                "--config", json.dumps(TINY_TRAIN_CONFIG)])
    log = capsys.readouterr().out
    assert "calibration:" in log and "recalibrated:" in log
    ck = torch.load(out / "last.pt", weights_only=False)
    planned = int(log.split("recalibrated:")[1].split("->")[1].split()[0])
    assert ck["total"] == planned and ck["step"] >= 6
