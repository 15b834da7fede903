"""Batch-decode a folder of .aigif files; the same job scales to many GPUs with accelerate.

    python examples/batch_accelerate.py [OUT_DIR]

This example runs one process. For 8 GPUs (or 2 machines x 8 GPUs) run the same job as:

    accelerate launch --multi_gpu --num_processes 8 -m aigif.batch decode in/ out/
    torchrun --nproc_per_node 4 -m aigif.batch decode in/ out/ --cpu       # 4 CPU processes

Each process takes a contiguous slice of the sorted file list, writes its PNGs atomically,
skips outputs that already exist (rerun the command to resume), and the main process
writes out/aigif-batch-summary.json.
"""
import json
import sys
from pathlib import Path

import aigif
from aigif.api import generate
from aigif.batch import SUMMARY_NAME, run_batch

root = Path(sys.argv[1] if len(sys.argv) > 1 else "aigif-examples-out") / "batch"
src, dst = root / "in", root / "out"
for i, subject in enumerate(["a lighthouse", "a fox", "a boat", "a castle", "a forest"]):
    path = src / ("night" if i % 2 else "day") / f"{i:03d}.aigif"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        aigif.dump(generate(subject, seed=i, steps=3).document, path)

summary = run_batch("decode", src, dst)          # prints a summary table
again = run_batch("decode", src, dst, echo=None)  # resumable: everything is skipped now
print(f"second run: {again.counts}")
print("summary file:", json.loads((dst / SUMMARY_NAME).read_text())["counts"])
assert not summary.errors
