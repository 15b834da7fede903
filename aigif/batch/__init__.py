"""Batch conversion of large collections over many GPUs or machines with Hugging Face ``accelerate``.

One process per GPU (``accelerate launch``), each taking a contiguous slice of
the *sorted* list of input files (``PartialState.split_between_processes``: the
split depends only on the file list and the process count, so a rerun gives
every process the same files), writing its outputs atomically and skipping
outputs that already exist and are valid (a killed job is resumed by running
the same command again). The per-file results are gathered on the main
process, which prints a table and writes ``aigif-batch-summary.json``.

    python -m aigif.batch decode in/ out/                                  # one process (CPU or 1 GPU)
    accelerate launch --multi_gpu --num_processes 8 -m aigif.batch decode in/ out/   # 8 GPUs
    torchrun --nproc_per_node 4 -m aigif.batch decode in/ out/ --cpu        # 4 CPU processes (gloo)
    accelerate launch --multi_gpu --num_machines 2 --machine_rank 0 --main_process_ip HOST \\
        --num_processes 16 -m aigif.batch decode in/ out/                   # 2 machines x 8 GPUs (shared out/)

Operations (:mod:`aigif.batch.ops`, one table): ``decode`` (``*.aigif`` -> ``*.png``)
and ``encode`` (images with generation metadata -> ``*.aigif``). Relative folders are
kept: ``in/a/b.aigif`` -> ``out/a/b.png``; naming, walking and resuming follow one set of
rules (:mod:`aigif.batch.plan`), shared with ``aigif encode DIR``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import AigifError
from .ops import IMAGE_SUFFIXES, OPS, BatchOp, Converted, Settings
from .plan import JOURNAL_NAME, SUMMARY_NAME, BatchSummary, FileResult, append_journal, list_inputs, output_names, plan, \
    shard, walk
from .runner import convert_all, convert_one, run_batch, run_files, shutdown

__all__ = ["IMAGE_SUFFIXES", "JOURNAL_NAME", "OPS", "SUMMARY_NAME", "BatchOp", "BatchSummary", "Converted", "FileResult",
           "Settings", "append_journal", "convert_all", "convert_one", "list_inputs", "main", "output_names", "plan",
           "run_batch", "run_files", "shard", "shutdown", "walk"]


# --- python -m aigif.batch ---------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m aigif.batch", description=__doc__.split("\n\n")[0],
                                 epilog="multi-GPU: accelerate launch --multi_gpu --num_processes 8 -m aigif.batch decode in/ out/; "
                                        "CPU processes: torchrun --nproc_per_node 4 -m aigif.batch decode in/ out/ --cpu")
    ap.add_argument("op", choices=sorted(OPS))
    ap.add_argument("in_dir", type=Path)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--force", action="store_true", help="redo outputs that exist and are valid")
    ap.add_argument("--model-dir", action="append", type=Path, default=[], help="folder holding local models (repeatable)")
    ap.add_argument("--quality", type=int, default=None, help="codec quality for residuals/pixels (encode)")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--cpu", action="store_true", default=None, help="CPU processes even when GPUs are present")
    args = ap.parse_args(argv)
    try:
        summary = run_batch(args.op, args.in_dir, args.out_dir, force=args.force, model_dirs=args.model_dir,
                            quality=args.quality, progress=args.progress, cpu=args.cpu)
    except AigifError as exc:
        print(f"aigif batch: error: {exc}", file=sys.stderr)
        return 1
    finally:
        shutdown()
    return 1 if summary.errors else 0
