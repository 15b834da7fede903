"""CUDA determinism check of the engine (on a machine with a GPU).

For each (model, dtype, attention, scheduler) it generates an image on CUDA,
regenerates it twice in the same process and once in a fresh process, and
prints a table of pixel hashes and statuses. Everything must read 'exact'.
Also reports whether CUDA output equals CPU output (not expected; informative).
Then (or alone, with ``--codec-only``) it decodes every exact NVTC conformance vector
(model id 6, ``spec/codec-nvtc.md`` §5c) with the integer synthesis and restoration
network on the device and compares the bytes with the CPU reference PNGs: they must be
identical. The engine cases cover every embedded model: SD 1.x, SDXL, FLUX.1, Chroma
and Qwen-Image (packed latents), SD 3.5, Z-Image (float32 latents), FLUX.2 and
FLUX.2-klein (patchified latents), with their flow schedulers.

    .venv/bin/python benchmarks/cuda_determinism.py [--device cuda] [--size 64] [--steps 4] [--codec-only | --engine-only]
    .venv/bin/python benchmarks/cuda_determinism.py [--only TEXT ...]      # the engine cases whose label has TEXT
    .venv/bin/python benchmarks/cuda_determinism.py --cpu --engine-only --only float32   # the same checks on the CPU
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CASES = [
    ("aigif-tiny-sd", "float32", "sdpa", None),
    ("aigif-tiny-sd", "float16", "sdpa", "euler-a"),
    ("aigif-tiny-sd", "float32", "sdpa-math", "dpmpp-2m-karras"),
    ("aigif-tiny-sd", "float16", "classic", "ddim"),
    ("aigif-tiny-sd", "bfloat16", "sdpa", "unipc"),
    ("aigif-tiny-sdxl", "float32", "sdpa", "euler"),
    ("aigif-tiny-sdxl", "float16", "sdpa", "dpmpp-2m"),
    ("aigif-tiny-sdxl", "bfloat16", "sdpa-math", "euler-a"),
    ("aigif-tiny-flux", "float32", "sdpa", None),
    ("aigif-tiny-flux", "bfloat16", "sdpa", "flow-euler-karras"),
    ("aigif-tiny-flux", "float16", "sdpa-math", "flow-euler-beta"),
    ("aigif-tiny-sd3", "float32", "sdpa", None),
    ("aigif-tiny-sd3", "float16", "sdpa", "flow-dpmpp-2m"),
    ("aigif-tiny-sd3", "bfloat16", "sdpa-math", "flow-heun"),
    ("aigif-tiny-chroma", "float32", "sdpa", None),
    ("aigif-tiny-chroma", "float16", "sdpa", "flow-euler-karras"),
    ("aigif-tiny-chroma", "bfloat16", "sdpa-math", None),
    ("aigif-tiny-qwen-image", "float32", "sdpa", None),
    ("aigif-tiny-qwen-image", "bfloat16", "sdpa", "flow-euler-karras"),
    ("aigif-tiny-qwen-image", "float16", "sdpa-math", None),
    ("aigif-tiny-z-image", "float32", "sdpa", None),
    ("aigif-tiny-z-image", "bfloat16", "sdpa", "flow-euler-beta"),
    ("aigif-tiny-z-image", "float16", "sdpa-math", None),
    ("aigif-tiny-flux2-klein", "float32", "sdpa", None),
    ("aigif-tiny-flux2-klein", "bfloat16", "sdpa", "flow-euler-karras"),
    ("aigif-tiny-flux2-klein", "float16", "sdpa-math", None),
    ("aigif-tiny-flux2", "float32", "sdpa", None),
    ("aigif-tiny-flux2", "bfloat16", "sdpa-math", "flow-euler-karras"),
    ("aigif-tiny-flux2", "float16", "sdpa", None),
]


def label(case) -> str:
    model, dtype, attention, sched = case
    return f"{model} {dtype} {attention} {sched or 'default'}"


def child(files: list[str], device: str) -> None:
    """Decode each file in this (fresh) process and print one JSON line per file."""
    from aigif.engine import Engine
    from aigif.fidelity import pixel_sha256
    from aigif.fileio import load

    e = Engine(device=device)
    for f in files:
        r = e.decode(load(f))
        print(json.dumps({"file": f, "sha": pixel_sha256(r.image), "status": r.report.status}))


def codec_vectors(device: str) -> bool:
    """Decode the model-id-6 conformance vectors' symbols on ``device``; print one row each; all identical?"""
    import copy

    import numpy as np
    import torch
    from PIL import Image

    from aigif.codec import api, payload, postfilter, zoo
    from aigif.codec.intsynth import exact_matmul
    from aigif.codec.model import pad_multiple
    from aigif.codec.restore import restore

    root = Path(__file__).resolve().parent.parent / "spec" / "conformance" / "codec"
    ops, net = (copy.deepcopy(x).to(device) for x in zoo.load_integer(6))
    ok = True
    print(f"\nNVTC model id 6 conformance vectors decoded on {device} vs the CPU reference PNGs")
    for path in sorted(root.glob("*.json")):
        e = json.loads(path.read_text())
        if e.get("max_abs_diff") != 0 or e["flags"] & payload.FLAG_EMPTY:
            continue
        data = path.with_suffix(".nvtc").read_bytes()
        _, quality, flags, h, w, stream, post = payload.read_header(data)
        ch, cw = (w, h) if flags & payload.FLAG_TRANSPOSED else (h, w)
        model = zoo.load_model(quality)
        m = pad_multiple(model.config)
        shape = (ch + (-ch % m), cw + (-cw % m))
        idx = model.decode_indices([stream], shape, bool(flags & payload.FLAG_ADAPTIVE),
                                   bool(flags & payload.FLAG_DIRECTIONS))[0]
        with exact_matmul():
            x = model.run(lambda s, l, r, i, sh: (idx[(s, l)].to(device), None), (1, *shape), ops=ops)[0]
            img = np.ascontiguousarray(x[0].to(torch.uint8).permute(1, 2, 0).cpu().numpy()[:ch, :cw])
            pf = postfilter.unpack(post, ch, cw) if post else None
            if isinstance(pf, postfilter.Restored):
                img, pf = restore(net, img, quality), pf.inner
        img = img if pf is None else postfilter.apply(img, pf)
        img = api._transposed(img) if flags & payload.FLAG_TRANSPOSED else img
        if "reference" in e:
            img = api._apply_residual(np.asarray(Image.open(root / e["reference"]).convert("RGB")), img,
                                      (flags >> 2) & 3)
        want = np.asarray(Image.open(root / e["pixels"]).convert("RGB"))
        same = img.shape == want.shape and np.array_equal(img, want)
        ok &= same
        diff = "" if same or img.shape != want.shape else f" (max diff {np.abs(img.astype(int) - want).max()})"
        print(f"{path.stem:<45} {'identical' if same else 'DIFFERS' + diff}")
    return ok


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--cpu", action="store_true", help="run the checks on the CPU (same as --device cpu)")
    ap.add_argument("--only", action="append", default=[], help="run the cases whose label contains this text (repeatable)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--child", nargs="*")
    ap.add_argument("--codec-only", action="store_true", help="only the NVTC conformance vectors on the device")
    ap.add_argument("--engine-only", action="store_true", help="only the engine cases, not the NVTC vectors")
    args = ap.parse_args()
    if args.cpu:
        args.device = "cpu"
    os.environ.setdefault("AIGIF_HOME", tempfile.mkdtemp(prefix="aigif-cuda-"))
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if args.child is not None:
        child(args.child, args.device)
        return

    import torch

    from aigif import Generation, ModelRef, dumps
    from aigif.engine import Engine
    from aigif.fidelity import pixel_sha256, psnr
    from aigif.syntax.defaults import default_guidance

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA device: run this on a machine with a GPU")
    if args.codec_only:
        sys.exit(0 if codec_vectors(args.device) else 1)
    out = Path(tempfile.mkdtemp(prefix="aigif-cuda-files-"))
    rows, files = [], []
    cases = [c for c in CASES if not args.only or any(t in label(c) for t in args.only)]
    if not cases:
        sys.exit(f"no case matches {args.only}; cases: " + "; ".join(map(label, CASES)))
    for i, (model, dtype, attention, sched) in enumerate(cases):
        e = Engine(device=args.device, dtype=dtype, attention=attention)
        g = Generation(prompt="a red lighthouse at dawn, detailed", seed=4242 + i, num_inference_steps=args.steps,
                       guidance_scale=default_guidance(ModelRef(name=model)), width=args.size, height=args.size,
                       scheduler=sched)
        res = e.generate(g, ModelRef(name=model))
        again = [e.regenerate(res.document) for _ in range(2)]
        cpu = Engine(device="cpu", dtype="float32").generate(g, ModelRef(name=model)).image
        f = out / f"case{i}.aigif"
        f.write_bytes(dumps(res.document))
        files.append(str(f))
        rows.append(dict(case=label((model, dtype, attention, sched)), sha=pixel_sha256(res.image),
                         in_process=all((a == res.image).all() for a in again),
                         vs_cpu=f"{psnr(cpu, res.image):.1f} dB"))
    proc = subprocess.run([sys.executable, __file__, "--device", args.device, "--child", *files],
                          capture_output=True, text=True, env=dict(os.environ))
    if proc.returncode:
        sys.exit(proc.stderr)
    other = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    for row, o in zip(rows, other):
        row["other_process"] = "exact" if o["sha"] == row["sha"] else o["status"]
    plat = Engine(device=args.device).current_platform()
    print(f"\n{plat.gpu or args.device} (cc {plat.compute_capability}), driver {plat.driver}, CUDA {plat.cuda}, "
          f"cuDNN {plat.cudnn}, torch {plat.torch}, diffusers {plat.diffusers}")
    w = max(len(r["case"]) for r in rows)
    print(f"{'case':<{w}}  {'pixel sha256[:32]':<32}  {'2x in-process':<13}  {'other process':<13}  CPU vs CUDA")
    for r in rows:
        print(f"{r['case']:<{w}}  {r['sha']:<32}  {'exact' if r['in_process'] else 'DIFFERS':<13}  "
              f"{r['other_process']:<13}  {r['vs_cpu']}")
    ok = all(r["in_process"] and r["other_process"] == "exact" for r in rows)
    if not args.engine_only:
        ok = codec_vectors(args.device) and ok
    print("\nALL EXACT" if ok else "\nNOT DETERMINISTIC: see rows above")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
