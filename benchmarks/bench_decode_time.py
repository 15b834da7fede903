"""Decoding time of NVTC payloads on one thread: the float path (model id 5) against the integer path
(model id 6) on the same payload, optionally also against another version of the integer decoder.

    python benchmarks/bench_decode_time.py                      # kodim23, quality 2
    python benchmarks/bench_decode_time.py --images kodim01,kodim23 --quality 3 --runs 7
    git show REV:aigif/codec/intsynth.py > /tmp/intsynth_rev.py
    python benchmarks/bench_decode_time.py --reference /tmp/intsynth_rev.py   # + that decoder, same payloads

Each image is encoded once (the encoder writes model id 6); every run then decodes the whole payload
(range decoding, synthesis, restoration network, post filters) with each path in turn, rotating the order
between runs, so a machine shared with other work loads every path alike. Prints the medians (and minima)
with the load average, and writes benchmarks/results/decode_time.json. The reference decoder must give the
same pixels as the shipped one (checked).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import sys
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

KODAK = "/work/shared/data/images/kodak/{}.png"


@contextlib.contextmanager
def integer_decoder(pair):
    """Decode model id 6 with ``pair`` = (synthesis ops, restoration network) for the duration."""
    from aigif.codec import zoo

    saved = zoo.load_integer
    zoo.load_integer = lambda _model_id: pair
    try:
        yield
    finally:
        zoo.load_integer = saved


def reference_pair(path: str) -> tuple:
    """(ops, net) of the integer decoder module at ``path``, on the shipped integer weights."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    from aigif.codec import zoo

    spec = importlib.util.spec_from_file_location("intsynth_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    weights = zoo._checked(zoo.INT_FILES[6])
    with safe_open(weights, framework="numpy") as f:
        meta = f.metadata()
    arrays = load_file(weights)
    return module.IntSynthesis(arrays, json.loads(meta["config"]), meta), module.IntRestore(arrays, meta)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", default="kodim23", help="comma list of Kodak names")
    ap.add_argument("--quality", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--reference", default="", help="another intsynth.py to time on the same payloads")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                  "decode_time.json"))
    args = ap.parse_args(argv)

    import torch

    from aigif.codec import api, compress_image, decompress_image
    from aigif.codec.payload import read_header

    torch.set_num_threads(1)
    paths = {"float (id 5)": lambda d: api._decode_payload(read_header(d)._replace(model_id=5)),
             "integer (id 6)": decompress_image}
    if args.reference:
        pair = reference_pair(args.reference)

        def reference(d):
            with integer_decoder(pair):
                return decompress_image(d)
        paths["integer, reference"] = reference
    rows, load = [], [os.getloadavg()[0]]
    for name in args.images.split(","):
        img = np.asarray(Image.open(KODAK.format(name)).convert("RGB"))
        data = compress_image(img, args.quality)
        out = {k: f(data) for k, f in paths.items()}  # warm-up (weights, caches)
        if args.reference:
            assert np.array_equal(out["integer, reference"], out["integer (id 6)"]), "reference decoder differs"
        times = {k: [] for k in paths}
        order = list(paths)
        for r in range(args.runs):
            for k in order[r % len(order):] + order[: r % len(order)]:
                t0 = time.perf_counter()
                paths[k](data)
                times[k].append(time.perf_counter() - t0)
        load.append(os.getloadavg()[0])
        rows.append({"image": name, "width": img.shape[1], "height": img.shape[0], "bytes": len(data),
                     **{k: {"median_s": float(np.median(v)), "min_s": float(min(v))} for k, v in times.items()}})
    keys = list(paths)
    print(f"one thread, quality {args.quality}, {args.runs} runs each (interleaved); load average "
          f"{min(load):.2f}-{max(load):.2f} on {os.cpu_count()} cores")
    ratios = [f"{k.split(' (')[0]} / float" for k in keys[1:]]
    print(f"{'image':10}" + "".join(f"{k:>24}" for k in keys) + "".join(f"{r:>28}" for r in ratios))
    for row in rows:
        cells = "".join(f"{row[k]['median_s']:.3f} s (min {row[k]['min_s']:.3f})".rjust(24) for k in keys)
        ratio = "".join(f"{row[k]['median_s'] / row[keys[0]]['median_s']:.2f}".rjust(28) for k in keys[1:])
        print(f"{row['image']:10}{cells}{ratio}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"quality": args.quality, "runs": args.runs, "threads": 1, "load_average": load,
                   "cores": os.cpu_count(), "machine": platform.machine(), "torch": torch.__version__,
                   "reference": os.path.basename(args.reference) or None, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
