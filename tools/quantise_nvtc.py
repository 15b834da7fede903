"""Quantise model id 5's synthesis and restoration network to the integer decoder of model id 6.

    python tools/quantise_nvtc.py --data 'photos/*.png' [--photos 8] [--crop 256]

Post-training, per layer: the input's range is measured on the decodes of
training photos (twice the largest value seen, a power of two at most), the
input precision is the one of lowest estimated error, and every output
channel's weights get the largest power-of-two scale that keeps
``sum |W| * clamp + |bias| + 2**(shift-1)`` below 2**24 (:func:`check_layer`,
which the loader repeats). Writes ``nvtc_id6_int.safetensors``.
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os

import numpy as np
import torch

from aigif.codec.intsynth import EXACT, check_layer

#: real inputs and outputs a layer may see: twice the largest seen while calibrating
MARGIN = 2.0
#: bits of the largest output a layer may produce (stream additions stay below 2**24)
OUT_BITS = 22
#: stream and hidden values are kept below 2**STREAM_BITS
STREAM_BITS = 22
#: fraction bits of the GELU table's input and output (its domain is [-8, 8) at this step)
GELU_FRAC_MAX = 12
GELU_RANGE = 8


def _pow2_range(x: float) -> float:
    return 2.0 ** math.ceil(math.log2(max(x * MARGIN, 1e-6)))


def quantise_layer(name: str, w: np.ndarray, b: np.ndarray, a_in: int, in_max: float, in_ms: float, a_out: int,
                   fixed_pre: int | None = None, clamp: int | None = None) -> dict:
    """Integer layer of float weights ``w`` (O, I[, 3, 3]) or block (C, k, k) and bias (O,), input integers at
    scale 2**-a_in (real range ``in_max``, mean square ``in_ms``), output at scale 2**-a_out."""
    block = w.ndim == 3
    wo = np.abs(w).sum(1).max(1) if block else np.abs(w).reshape(w.shape[0], -1).sum(1)  # per output channel
    w2 = (w ** 2).sum(1).max(1) if block else (w ** 2).reshape(w.shape[0], -1).sum(1)
    fan_in = w.shape[1] if block else w[0].size
    best = None
    for pre in ([fixed_pre] if fixed_pre is not None else range(0, a_in + 1)):
        f = a_in - pre
        m = clamp if clamp is not None else int(math.ceil(_pow2_range(in_max) * 2.0 ** f))
        if m >= EXACT:
            continue
        # largest e with sum|w| 2**e * m (+ rounding slack) < 2**24
        e = np.floor(np.log2((EXACT * 0.97) / (np.maximum(wo, 1e-12) * m + 2.0))).astype(np.int64)
        e = np.minimum(e, 40)
        if (f + e).min() < a_out + 1:  # some output channel cannot reach the output precision
            continue
        err = (2.0 ** (-2 * f) / 12) * w2 + (2.0 ** (-2 * e) / 12) * fan_in * in_ms
        cost = float(err.sum())
        if best is None or cost < best[0]:
            best = (cost, pre, f, m, e)
    if best is None:
        raise ValueError(f"{name}: no input precision reaches the output scale 2**-{a_out}")
    _cost, pre, f, m, e = best
    for _ in range(8):
        scale = 2.0 ** e.astype(np.float64)
        wi = np.round(w * (scale[:, None, None] if block else scale.reshape(-1, *([1] * (w.ndim - 1)))))
        bi = np.round(b * 2.0 ** (f + e))
        shift = f + e - a_out
        try:
            top = check_layer(name, wi, bi, shift, m)
            break
        except ValueError:
            e = e - 1  # rounding pushed a sum over: one bit less for every channel
    else:
        raise ValueError(f"{name}: no exact integer version (inputs up to {m}, output scale 2**-{a_out})")
    if top >= 1 << OUT_BITS + 1:
        raise ValueError(f"{name}: outputs may reach {top}")
    return {"weight": wi.astype(np.int32), "bias": bi.astype(np.int32), "shift": shift.astype(np.int32),
            "input": np.array([pre, m], dtype=np.int32)}


def reach(w: np.ndarray, in_max: float) -> int:
    """The finest output scale exponent (minus 1) an exact layer of weights ``w`` on inputs up to ``in_max``
    can give every output channel: ``2**(f+e)`` with ``sum |w| 2**e * range 2**f`` below 2**24."""
    sums = np.abs(w).sum(1).max(1) if w.ndim == 3 else np.abs(w).reshape(w.shape[0], -1).sum(1)
    return int(math.floor(math.log2(EXACT * 0.9 / (float(sums.max()) * _pow2_range(in_max))))) - 1


def gelu_table(frac: int) -> np.ndarray:
    """``round(gelu(v / 2**frac) * 2**frac)`` for v in [-n, n), n = GELU_RANGE * 2**frac (exact-erf GELU)."""
    n = GELU_RANGE << frac
    x = np.arange(-n, n, dtype=np.float64) / 2.0 ** frac
    erf = np.vectorize(math.erf)(x / math.sqrt(2.0))
    return np.floor(0.5 * x * (1.0 + erf) * 2.0 ** frac + 0.5).astype(np.int32)


class Recorder:
    """Forward hooks that keep every module's largest |input|, input mean square and largest |output|."""

    def __init__(self, modules: dict):
        self.stats = {k: [0.0, 0.0, 0, 0.0] for k in modules}
        self.handles = [m.register_forward_hook(self._hook(k)) for k, m in modules.items()]

    def _hook(self, key):
        def hook(_m, inputs, output):
            x = inputs[0].detach().double()
            st = self.stats[key]
            st[0] = max(st[0], float(x.abs().max()))
            st[1] += float((x * x).sum())
            st[2] += x.numel()
            st[3] = max(st[3], float(output.detach().abs().max()))
        return hook

    @classmethod
    def of(cls, stats: dict) -> "Recorder":
        rec = cls({})
        rec.stats = stats
        return rec

    def get(self, key) -> tuple:
        mx, ss, n, out = self.stats[key]
        return mx, ss / max(n, 1), out

    def close(self):
        for h in self.handles:
            h.remove()


def calibrate(model, net, photos: list, crop: int) -> tuple:
    """Recorders of the synthesis and the restoration network over the float decodes of ``photos``
    (centre crops, every quality)."""
    from PIL import Image

    from aigif.codec import zoo
    from aigif.codec.model import pad_multiple

    syn = {f"vt.{s}.{l}.{u}.{k}": getattr(unit, k) for s, st in enumerate(model.dec_vt) for l, stack in enumerate(st)
           for u, unit in enumerate(stack) for k in ("block_fc", "fc1", "fc2")}
    syn.update({f"up.{s}": m for s, m in enumerate(model.dec_up)})
    syn.update({f"res.{r}.{k}": getattr(model.dec_out[r], k) for r in range(len(model.dec_out) - 1)
                for k in ("conv1", "conv2")})
    syn["out"] = model.dec_out[-1]
    res = {"inp": net.inp, "out": net.out, **{f"mid.{i}": m for i, m in enumerate(net.mid)}}
    rs, rr = Recorder(syn), Recorder(res)
    m = pad_multiple(model.config)
    with torch.no_grad():
        for path in photos:
            img = np.asarray(Image.open(path).convert("RGB"))
            h, w = (min(crop, img.shape[0]) // m * m, min(crop, img.shape[1]) // m * m)
            y0, x0 = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
            x = torch.from_numpy(np.ascontiguousarray(img[y0 : y0 + h, x0 : x0 + w])).permute(2, 0, 1)[None]
            x = x.float() / 255.0 - 0.5
            for q in range(len(model.config["lambdas"])):
                idx = zoo.load_model(q + 1).encode_indices(x)[0]
                dec = ((model.synthesize(idx) + 0.5) * 255).round().clamp(0, 255) / 255.0 - 0.5
                net(dec, torch.tensor([q]))
    rs.close()
    rr.close()
    return rs, rr


def _flat(conv) -> tuple:
    w = conv.weight.detach().double().numpy()
    return (w.reshape(w.shape[0], -1) if w.shape[2:] == (1, 1) else w), conv.bias.detach().double().numpy()


def quantise(model, net, rs: Recorder, rr: Recorder) -> tuple:
    """(int32 arrays, metadata) of the integer decoder (synthesis and restoration network)."""
    cfg = model.config
    stream_in = [k for k in rs.stats if not k.endswith("fc2") and not k.endswith("conv2")]
    r_x = max(rs.get(k)[0] for k in stream_in)
    mods = {**{f"vt.{s}.{l}.{u}.{k}": getattr(unit, k) for s, st in enumerate(model.dec_vt)
               for l, stack in enumerate(st) for u, unit in enumerate(stack) for k in ("block_fc", "fc1", "fc2")},
            **{f"up.{s}": m for s, m in enumerate(model.dec_up)},
            **{f"res.{r}.{k}": getattr(model.dec_out[r], k) for r in range(int(cfg["res_blocks"]))
               for k in ("conv1", "conv2")}}

    def weights(m):
        return m.weight.detach().double().numpy()

    writers = [k for k in mods if not (k.endswith("fc1") or k.endswith("conv1"))]
    # the stream's precision: what its range allows and what every layer writing to it can deliver
    ax = min(int(math.floor(math.log2(2.0 ** STREAM_BITS / _pow2_range(r_x)))),
             min(reach(weights(mods[k]), rs.get(k)[0]) for k in writers))
    limit = int(_pow2_range(r_x) * 2 ** ax)
    hidden = [k for k in mods if k.endswith("fc1") or k.endswith("conv1")]
    r_h = max(rs.get(k)[2] for k in hidden)
    ah = min(GELU_FRAC_MAX, int(math.floor(math.log2(2.0 ** STREAM_BITS / _pow2_range(r_h)))),
             min(reach(weights(mods[k]), rs.get(k)[0]) for k in hidden))
    arrays = {"gelu.lut": gelu_table(ah)}

    def put(prefix, layer):
        arrays.update({f"{prefix}.{k}": v for k, v in layer.items()})

    for s, st in enumerate(model.dec_vt):
        for l, stack in enumerate(st):
            cb = model.codebooks[s][l].detach().double().numpy()
            pw, pb = _flat(model.proj_out[s][l])
            table = np.round((cb @ pw.T + pb) * 2.0 ** ax)
            if np.abs(table).max() > limit:
                raise ValueError(f"codeword table {s}.{l} exceeds the stream clamp")
            arrays[f"syn.cw.{s}.{l}"] = table.astype(np.int32)
            for u, unit in enumerate(stack):
                key = f"vt.{s}.{l}.{u}"
                bw = unit.block_fc.weight.detach().double().numpy()
                bb = unit.block_fc.bias.detach().double().numpy().reshape(-1)
                mx, ms, _ = rs.get(f"{key}.block_fc")
                put(f"syn.{key}.block", quantise_layer(key, bw, bb, ax, mx, ms, ax, clamp=None))
                mx, ms, _ = rs.get(f"{key}.fc1")
                put(f"syn.{key}.fc1", quantise_layer(key, *_flat(unit.fc1), ax, mx, ms, ah))
                mx, ms, _ = rs.get(f"{key}.fc2")
                put(f"syn.{key}.fc2", quantise_layer(key, *_flat(unit.fc2), ah, mx, ms, ax))
    for s, conv in enumerate(model.dec_up):
        mx, ms, _ = rs.get(f"up.{s}")
        put(f"syn.up.{s}", quantise_layer(f"up.{s}", *_flat(conv), ax, mx, ms, ax))
    for r in range(int(cfg["res_blocks"])):
        blk = model.dec_out[r]
        mx, ms, _ = rs.get(f"res.{r}.conv1")
        put(f"syn.res.{r}.conv1", quantise_layer(f"res.{r}.conv1", *_flat(blk.conv1), ax, mx, ms, ah))
        mx, ms, _ = rs.get(f"res.{r}.conv2")
        put(f"syn.res.{r}.conv2", quantise_layer(f"res.{r}.conv2", *_flat(blk.conv2), ah, mx, ms, ax))
    ow, ob = _flat(model.dec_out[-1])
    mx, ms, _ = rs.get("out")
    put("syn.out", quantise_layer("out", ow * 255.0, (ob + 0.5) * 255.0, ax, mx, ms, 0))
    # restoration network: input 2 D - 255 (the float x = D / 255 - 0.5 times 510) and the quality planes
    iw, ib = _flat(net.inp)
    iw = iw.copy()
    iw[:, :12] /= 510.0
    prev = min(int(math.floor(math.log2(2.0 ** STREAM_BITS / _pow2_range(rr.get("inp")[2])))), reach(iw, 255.0))
    put("res.inp", quantise_layer("res.inp", iw, ib, 0, 255.0, 1.0, prev, fixed_pre=0, clamp=255))
    for i, conv in enumerate(net.mid):
        mx, ms, out = rr.get(f"mid.{i}")
        a_out = min(int(math.floor(math.log2(2.0 ** STREAM_BITS / _pow2_range(out)))),
                    reach(_flat(conv)[0], mx))
        put(f"res.mid.{i}", quantise_layer(f"res.mid.{i}", *_flat(conv), prev, mx, ms, a_out))
        prev = a_out
    mx, ms, _ = rr.get("out")
    ow, ob = _flat(net.out)
    put("res.out", quantise_layer("res.out", ow * 255.0, ob * 255.0, prev, mx, ms, 0))
    meta = {"format": "aigif-nvtc-int-1", "config": json.dumps(cfg, sort_keys=True),
            "restore_config": json.dumps(net.config, sort_keys=True), "stream_frac": str(ax),
            "stream_clamp": str(limit), "gelu_frac": str(ah)}
    return arrays, meta


def main(argv=None) -> None:
    from safetensors.numpy import save_file

    from aigif.fileio import sha256_of_file
    from aigif.codec import zoo

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="glob of the training photos (never a benchmark set)")
    ap.add_argument("--photos", type=int, default=8, help="training photos to calibrate on (evenly spaced)")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--stats", help="JSON file caching the calibration statistics (read when present)")
    ap.add_argument("--out", default=os.path.join(zoo.ASSET_DIR, zoo.INT_FILES[6]))
    args = ap.parse_args(argv)
    files = sorted(glob.glob(args.data))
    photos = files[:: max(1, len(files) // args.photos)][: args.photos]
    model, net = zoo.load_model(1), zoo.load_restorer(5)  # id 6 is id 5 in integers
    if args.stats and os.path.exists(args.stats):
        with open(args.stats) as f:
            stats = json.load(f)
    else:
        stats = [r.stats for r in calibrate(model, net, photos, args.crop)]
        if args.stats:
            with open(args.stats, "w") as f:
                json.dump(stats, f)
    arrays, meta = quantise(model, net, *(Recorder.of(st) for st in stats))
    save_file(arrays, args.out, metadata=meta)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes, sha256 {sha256_of_file(args.out)}); "
          f"stream 2**-{meta['stream_frac']}, GELU 2**-{meta['gelu_frac']}")


if __name__ == "__main__":
    main()
