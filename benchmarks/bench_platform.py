"""How far a regeneration moves when one platform field differs: PSNR per kind of difference.

    .venv/bin/python benchmarks/bench_platform.py [--out benchmarks/results/platform_psnr.md]

Renders the same syntaxes with the embedded tiny models (SD and SDXL, three
schedulers, two seeds, 64x64, 10 steps) in fresh processes that differ from a
reference (float32, 1 thread, ``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX2``)
in one field: the CPU instruction set (ATen kernels and/or oneDNN), the thread
count, or the dtype. Prints the PSNR range per kind, the numbers behind
``aigif.engine.expect.EXPECTED_PSNR`` and ``spec/engine.md`` §4.1. CPU vs CUDA
comes from ``cuda_determinism.py`` on a GPU (``results/cuda_determinism_h200.txt``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CASES = [("aigif-tiny-sd", s, seed) for s in ("pndm", "euler-a", "dpmpp-2m-karras") for seed in (7, 1234)] + \
        [("aigif-tiny-sdxl", s, seed) for s in ("euler", "dpmpp-2m") for seed in (7, 1234)]
PROMPT = "a red fox in a snowy forest, watercolor"
REF_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
# kind of difference -> (label, environment, threads, dtype)
VARIANTS = {
    "cpu-isa": [("ATen default + oneDNN SSE41", {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"}, 1, "float32"),
                ("ATen default, oneDNN AVX2", {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "AVX2"}, 1, "float32"),
                ("ATen avx2, oneDNN SSE41", {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "SSE41"}, 1, "float32")],
    "threads": [("2 threads", REF_ENV, 2, "float32"), ("4 threads", REF_ENV, 4, "float32")],
    "dtype-bfloat16": [("bfloat16", REF_ENV, 1, "bfloat16")],
    "dtype-float16": [("float16", REF_ENV, 1, "float16")],
}


def child(out: str, threads: int, dtype: str) -> None:
    """Render every case with these settings (the environment sets the ISA) and save the images."""
    from aigif import Generation, ModelRef
    from aigif.engine import Engine

    engine = Engine(threads=threads, dtype=dtype)
    images = []
    for model, scheduler, seed in CASES:
        gen = Generation(prompt=PROMPT, seed=seed, num_inference_steps=10, guidance_scale=7.5, width=64, height=64,
                         scheduler=scheduler)
        images.append(engine.generate(gen, ModelRef(name=model)).image)
    np.save(out, np.stack(images))


def render(env: dict, threads: int, dtype: str, tmp: Path, name: str) -> np.ndarray:
    out = tmp / f"{name}.npy"
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, __file__, "--child", str(out), "--threads", str(threads), "--dtype", dtype],
                   env=full_env, check=True)
    return np.load(out)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    m = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if m == 0 else 10 * math.log10(255**2 / m)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--child")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "platform_psnr.md")
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.threads, args.dtype)
        return 0
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        ref = render(REF_ENV, 1, "float32", Path(tmp), "ref")
        again = render(REF_ENV, 1, "float32", Path(tmp), "again")
        assert np.array_equal(ref, again), "the reference is not reproducible in a fresh process"
        for kind, variants in VARIANTS.items():
            for i, (label, env, threads, dtype) in enumerate(variants):
                img = render(env, threads, dtype, Path(tmp), f"{kind}-{i}")
                results.setdefault(kind, []).append((label, [psnr(r, x) for r, x in zip(ref, img)]))
    lines = ["# Regeneration PSNR when one platform field differs (`benchmarks/bench_platform.py`)", "",
             f"Reference: float32, 1 thread, ATen avx2 + oneDNN AVX2; {len(CASES)} renders (tiny SD x 6, tiny SDXL x 4, "
             "64x64, 10 steps). Each variant runs in a fresh process. PSNR in dB (inf = bit-identical).", "",
             "| kind | variant | min | median | max |", "|---|---|---:|---:|---:|"]
    summary = {}
    for kind, rows in results.items():
        every = []
        for label, ps in rows:
            every += ps
            lines.append(f"| {kind} | {label} | {_db(min(ps))} | {_db(float(np.median(ps)))} | {_db(max(ps))} |")
        summary[kind] = [round(min(every), 1), None if math.isinf(max(every)) else round(max(every), 1)]
    lines += ["", "Range per kind (min, max; null = identical): `" + json.dumps(summary) + "`", ""]
    text = "\n".join(lines)
    print(text)
    args.out.write_text(text, encoding="utf-8")
    return 0


def _db(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:.1f}"


if __name__ == "__main__":
    sys.exit(main())
