"""Engine overhead vs a bare diffusers call on the same tiny pipeline, and model load amortised in batches.

    .venv/bin/python benchmarks/bench_engine.py [--n 20] [--size 64] [--steps 4] [--threads 1] [--model aigif-tiny-flux]

Targets: engine overhead <= 5 % per image (SD 1.x and FLUX.1, whose noise the engine packs itself);
a batch loads the model once. Results: benchmarks/results/engine_overhead.md.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", default="aigif-tiny-sd")
    args = ap.parse_args()
    os.environ.setdefault("AIGIF_HOME", tempfile.mkdtemp(prefix="aigif-bench-"))
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

    import numpy as np
    import torch

    from aigif import Generation, ModelRef, dumps, loads
    from aigif.engine import Engine
    from aigif.engine.loader import load_pipeline, resolve
    from aigif.syntax.defaults import default_guidance

    torch.set_num_threads(args.threads)
    ref = ModelRef(name=args.model)
    gens = [Generation(prompt=f"a lighthouse number {i}", seed=1000 + i, num_inference_steps=args.steps,
                       guidance_scale=default_guidance(ref), width=args.size, height=args.size) for i in range(args.n)]

    t0 = time.perf_counter()
    engine = Engine(threads=args.threads)
    engine.generate(gens[0], ref)                      # builds (first use) + loads + warms up
    first = time.perf_counter() - t0

    # bare diffusers on its own copy of the same pipeline
    res = resolve(ref, [], False)
    t0 = time.perf_counter()
    pipe = load_pipeline(res, torch.float32, "cpu")
    load_s = time.perf_counter() - t0
    pipe.set_progress_bar_config(disable=True)

    def bare(g):
        out = pipe(g.prompt, num_inference_steps=g.num_inference_steps, guidance_scale=g.guidance_scale, width=g.width,
                   height=g.height, generator=torch.Generator("cpu").manual_seed(g.seed), output_type="np").images[0]
        return np.round(out * 255).astype(np.uint8)

    bare(gens[0])
    bare_t, eng_t, regen_t, docs = [], [], [], []
    for _round in range(2):                            # interleave to share the machine's noise fairly
        for g in gens:
            t0 = time.perf_counter(); bare(g); bare_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter(); r = engine.generate(g, ref); eng_t.append(time.perf_counter() - t0)
            d = loads(dumps(r.document))
            t0 = time.perf_counter(); engine.decode(d); regen_t.append(time.perf_counter() - t0)
            docs.append(d)

    # batch decode in a fresh engine: one load for the whole batch
    fresh = Engine(threads=args.threads)
    t0 = time.perf_counter()
    for d in docs[: args.n]:
        fresh.decode(d)
    batch_s = time.perf_counter() - t0

    med = statistics.median
    b, e, rg = med(bare_t), med(eng_t), med(regen_t)
    rows = [
        ("first image (build/load/warm-up)", f"{first * 1000:.0f} ms", ""),
        ("pipeline load (from_pretrained)", f"{load_s * 1000:.0f} ms", ""),
        ("bare diffusers call / image", f"{b * 1000:.1f} ms", "baseline"),
        ("engine.generate / image", f"{e * 1000:.1f} ms", f"overhead {100 * (e - b) / b:+.1f} % (target <= 5 %)"),
        ("engine.decode / image (+fidelity)", f"{rg * 1000:.1f} ms", f"overhead {100 * (rg - b) / b:+.1f} %"),
        (f"batch decode {args.n} imgs, fresh engine", f"{batch_s * 1000:.0f} ms", f"{batch_s / args.n * 1000:.1f} ms/img, "
         f"{fresh.pipelines_loaded} load(s); load share {100 * load_s / batch_s:.0f} % vs {100 * load_s / (load_s + rg):.0f} % per-process"),
    ]
    print(f"\nmodel {args.model}, {args.size}x{args.size}, {args.steps} steps, {args.threads} thread(s), n={args.n}, "
          f"torch {torch.__version__}, CPU")
    w = max(len(r[0]) for r in rows)
    print(f"{'what':<{w}}  {'time':>10}  note")
    for name, t, note in rows:
        print(f"{name:<{w}}  {t:>10}  {note}")


if __name__ == "__main__":
    main()
