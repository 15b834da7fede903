"""Issue 2 benchmark: .aigif file size and parse/serialize time on real prompts.

Configs follow the issue: each dev prompt at 512x512, 50 steps, guidance 7,
a random 32-bit seed, a registry model (sd15) and ddim. Prints a table, then the
syntax-only median per family at its usual settings (FLUX.1-dev 1024x1024 28 steps
guidance 3.5; SD 3.5 Large Turbo 1024x1024 4 steps guidance 0; target <= 60 bytes).

    python benchmarks/bench_syntax.py [--n 10000] [--dev ../shared/data/prompts/dev.txt.gz]
"""
from __future__ import annotations

import argparse
import gzip
import random
import statistics
import time
from pathlib import Path

import aigif

RAW_BYTES = 512 * 512 * 3  # 786,432


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/prompts/dev.txt.gz"))
    ap.add_argument("--n", type=int, default=10000)
    args = ap.parse_args()
    prompts = gzip.open(args.dev, "rt", encoding="utf-8").read().split("\n")[: args.n]
    prompts = [p for p in prompts if p]
    rng = random.Random(0)
    docs = [aigif.document_from_dict({"model": "sd15", "prompt": p, "seed": rng.getrandbits(32), "num_inference_steps": 50,
                                      "guidance_scale": 7.0, "width": 512, "height": 512, "scheduler": "ddim"}) for p in prompts]
    t0 = time.perf_counter()
    blobs = [aigif.dumps(d) for d in docs]
    t1 = time.perf_counter()
    back = [aigif.loads(b) for b in blobs]
    t2 = time.perf_counter()
    assert back == docs, "round trip failed"
    sizes = sorted(len(b) for b in blobs)
    median = statistics.median(sizes)
    p90 = sizes[int(0.9 * (len(sizes) - 1))]
    rows = [
        ("files", f"{len(sizes)}"),
        ("mean file size (bytes)", f"{statistics.mean(sizes):.1f}"),
        ("median file size (bytes)", f"{median:.1f}"),
        ("p90 file size (bytes)", f"{p90}"),
        ("median ratio vs raw 512x512x3 (786,432 B)", f"1/{RAW_BYTES / median:,.0f}"),
        ("files <= 79 bytes (ratio >= 1/10,000)", f"{sum(s <= 79 for s in sizes) / len(sizes):.1%}"),
        ("mean prompt UTF-8 bytes", f"{statistics.mean(len(p.encode()) for p in prompts):.1f}"),
        ("serialize (us/file)", f"{(t1 - t0) / len(docs) * 1e6:.0f}"),
        ("parse (us/file)", f"{(t2 - t1) / len(docs) * 1e6:.0f}"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'metric'.ljust(width)} | value\n{'-' * width}-|------")
    for k, v in rows:
        print(f"{k.ljust(width)} | {v}")
    print()
    print("family | model | settings | seed | median bytes | p90 bytes | <= 60 bytes")
    print("---|---|---|---|---|---|---")
    for family, model, steps, guidance in FAMILY_CONFIGS:
        for seed_bits in (32, 50):   # 50 bits: ComfyUI's 15-digit seeds
            sizes = sorted(len(aigif.dumps(aigif.document_from_dict(
                {"model": model, "prompt": p, "seed": rng.getrandbits(seed_bits), "num_inference_steps": steps,
                 "guidance_scale": guidance, "width": 1024, "height": 1024}))) for p in prompts)
            print(f"{family} | {model} | 1024x1024, {steps} steps, guidance {guidance} | {seed_bits}-bit | "
                  f"{statistics.median(sizes):.1f} | {sizes[int(0.9 * (len(sizes) - 1))]} | "
                  f"{sum(x <= 60 for x in sizes) / len(sizes):.1%}")


FAMILY_CONFIGS = [("flux1", "flux1-dev", 28, 3.5), ("sd3", "sd35-large-turbo", 4, 0.0), ("sd3", "sd35-large", 28, 3.5)]


if __name__ == "__main__":
    main()
