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

Operations: ``decode`` (``*.aigif`` -> ``*.png``, regenerated through the
engine) and ``encode`` (``*.png|jpg|jpeg|webp`` with embedded A1111/ComfyUI/...
metadata -> ``*.aigif``: syntax only if the engine regenerates the image
exactly, else syntax + residual, else pixels; see :mod:`aigif.importers`).
Relative folders are kept: ``in/a/b.aigif`` -> ``out/a/b.png``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .errors import AigifError, ConfigError
from .fileio import atomic_write, keep_existing, read_limited, write_output
from .limits import DEFAULT_LIMITS

SUMMARY_NAME = "aigif-batch-summary.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass
class FileResult:
    input: str                 # relative to the input folder (posix)
    output: str                # relative to the output folder
    status: str                # ok | skipped | error
    kind: str = ""             # decode: exact/close/mismatch/unverified; encode: exact/residual/pixels/syntax-only
    bytes: int = 0
    seconds: float = 0.0
    error: str = ""
    rank: int = 0


@dataclass
class BatchSummary:
    op: str
    processes: int
    seconds: float
    results: list[FileResult] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(r.status for r in self.results))

    @property
    def kinds(self) -> dict[str, int]:
        return dict(sorted(Counter(r.kind for r in self.results if r.status == "ok" and r.kind).items()))

    @property
    def errors(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "error"]

    def to_dict(self) -> dict:
        return {"op": self.op, "processes": self.processes, "seconds": round(self.seconds, 3), "files": len(self.results),
                "counts": self.counts, "kinds": self.kinds, "results": [asdict(r) for r in self.results]}

    def table(self) -> str:
        c = self.counts
        done = c.get("ok", 0)
        rate = done / self.seconds if self.seconds > 0 else 0.0
        rows = [("operation", self.op), ("processes", self.processes), ("files", len(self.results)), ("converted", done),
                ("skipped (valid output exists)", c.get("skipped", 0)), ("errors", c.get("error", 0)),
                ("kinds", ", ".join(f"{k} {v}" for k, v in self.kinds.items()) or "-"),
                ("wall time", f"{self.seconds:.1f} s"), ("files/s", f"{rate:.2f}")]
        lines = ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
        for r in self.errors[:20]:
            lines.append(f"| error: {r.input} | {r.error} |")
        return "\n".join(lines)


# --- the file list and its split -------------------------------------------------------
def list_inputs(in_dir: str | os.PathLike, suffixes: tuple[str, ...]) -> list[str]:
    """Sorted relative posix paths of the regular files under *in_dir* with one of *suffixes* (symlinks skipped)."""
    root = Path(in_dir)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder")
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            p = Path(dirpath) / name
            if name.lower().endswith(suffixes) and not name.startswith(".") and not p.is_symlink():
                out.append(p.relative_to(root).as_posix())
    return sorted(out)


def shard(items: list, num_processes: int, index: int) -> list:
    """Process *index*'s contiguous slice, the same split as ``accelerate``'s ``split_between_processes``."""
    if not (isinstance(num_processes, int) and num_processes >= 1 and 0 <= index < num_processes):
        raise ConfigError(f"process index {index} of {num_processes} is invalid")
    per, extra = divmod(len(items), num_processes)
    start = index * per + min(index, extra)
    return items[start:start + per + (1 if index < extra else 0)]


# --- one file -----------------------------------------------------------------------------
def _doc_size(src: Path) -> tuple[int, int]:
    from .pillow_plugin import _image_size
    from .syntax import loads

    return _image_size(loads(read_limited(src, DEFAULT_LIMITS.max_file_bytes)))


def _valid_png(dst: Path, src: Path) -> bool:
    """A complete PNG of the size the .aigif says (a file cut short by a crash fails verify())."""
    from PIL import Image

    try:
        with Image.open(dst) as im:
            size = im.size
            im.verify()
        return size == _doc_size(src)
    except Exception:
        return False


def _valid_aigif(dst: Path, src: Path) -> bool:
    from .syntax import loads

    try:
        loads(read_limited(dst, DEFAULT_LIMITS.max_file_bytes))
        return True
    except (AigifError, OSError):
        return False


def _decode_one(src: Path, engine, options: dict) -> tuple[bytes, str]:
    from .syntax import loads

    from .provenance import document_image_bytes

    doc = loads(read_limited(src, DEFAULT_LIMITS.max_file_bytes))
    res = engine.decode(doc)
    data = document_image_bytes(res.image, "PNG", doc, ai_label=options.get("ai_label", True),
                                credentials=options.get("c2pa"), title=src.with_suffix(".png").name,
                                exact=res.report is not None and res.report.status == "exact")
    return data, res.report.status if res.report is not None else "unverified"


def _encode_one(src: Path, engine, options: dict) -> tuple[bytes, str]:
    from .importers import Options, encode_image

    opts = Options(quality=options["quality"]) if options.get("quality") else Options()
    enc = encode_image(src, engine=engine, options=opts)
    return enc.data, enc.kind


@dataclass(frozen=True)
class BatchOp:
    suffixes: tuple[str, ...]
    out_suffix: str
    run: Callable
    valid: Callable


OPS = {
    "decode": BatchOp((".aigif",), ".png", _decode_one, _valid_png),
    "encode": BatchOp(IMAGE_SUFFIXES, ".aigif", _encode_one, _valid_aigif),
}


def _output_name(rel: str, out_suffix: str) -> str:
    stem, dot, _ = rel.rpartition(".")
    return (stem if dot else rel) + out_suffix


def convert_one(op: str, in_dir: Path, out_dir: Path, rel: str, engine, *, force: bool = False, rank: int = 0,
                options: dict | None = None) -> FileResult:
    spec = OPS[op]
    src, out_rel = in_dir / rel, _output_name(rel, spec.out_suffix)
    dst = out_dir / out_rel
    t = time.perf_counter()
    try:
        if keep_existing(dst, force=force, is_valid=lambda p: spec.valid(p, src)):
            return FileResult(rel, out_rel, "skipped", rank=rank)
        data, kind = spec.run(src, engine, options or {})
        write_output(dst, data, force=force)
    except Exception as exc:  # one bad file must not stop a million-file job: recorded in the summary
        msg = str(exc) if isinstance(exc, AigifError) else f"{type(exc).__name__}: {exc}"
        return FileResult(rel, out_rel, "error", error=msg[:500], seconds=time.perf_counter() - t, rank=rank)
    return FileResult(rel, out_rel, "ok", kind, len(data), time.perf_counter() - t, rank=rank)


# --- the job ----------------------------------------------------------------------------------
def run_batch(op: str, in_dir: str | os.PathLike, out_dir: str | os.PathLike, *, force: bool = False, engine=None,
              state=None, model_dirs: list | None = None, quality: int | None = None, progress: bool = False,
              cpu: bool | None = None, echo: Callable[[str], None] | None = print, ai_label: bool = True,
              c2pa=None) -> BatchSummary:
    """Convert this process's share of *in_dir* into *out_dir*; every process returns the gathered summary.

    *ai_label*: decoded images of generated files carry the IPTC AI mark (XMP); False leaves it out.
    *c2pa*: :class:`aigif.provenance.c2pa_credentials.C2paCredentials` to sign them with a C2PA manifest.

    *state*: an ``accelerate.PartialState`` (made here when None; one process when not launched).
    *cpu*: run on CPU processes (gloo); default: when no CUDA device is present or ``accelerate launch --cpu``.
    The main process writes ``out_dir/aigif-batch-summary.json`` and echoes the table.
    """
    if op not in OPS:
        raise ConfigError(f"unknown batch operation {op!r}; choose one of {', '.join(OPS)}")
    if quality is not None:
        from .codec import QUALITIES

        if quality not in QUALITIES:
            raise ConfigError(f"quality {quality!r}; choose one of {', '.join(map(str, QUALITIES))}")
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    files = list_inputs(in_dir, OPS[op].suffixes)
    from accelerate import PartialState

    if state is None:
        state = PartialState(cpu=_want_cpu() if cpu is None else cpu)
    if engine is None:
        from .engine import Engine

        engine = Engine(model_dirs=model_dirs, device=str(state.device))
    t0 = time.perf_counter()
    with state.split_between_processes(files) as mine:
        results = [convert_one(op, in_dir, out_dir, rel, engine, force=force, rank=state.process_index,
                               options={"quality": quality, "ai_label": ai_label, "c2pa": c2pa}) for rel in _progress(mine, progress and state.is_local_main_process)]
    if state.num_processes > 1:
        from accelerate.utils import gather_object

        results = gather_object(results)
    summary = BatchSummary(op, state.num_processes, time.perf_counter() - t0, sorted(results, key=lambda r: r.input))
    if state.is_main_process:
        atomic_write(out_dir / SUMMARY_NAME, json.dumps(summary.to_dict(), indent=1, ensure_ascii=False).encode("utf-8"))
        if echo is not None:
            echo(summary.table())
    state.wait_for_everyone()
    return summary


def _want_cpu() -> bool:
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return True
    import torch

    return not torch.cuda.is_available()


def _progress(items, enabled: bool):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, unit="file")


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
        _shutdown()
    return 1 if summary.errors else 0


def _shutdown() -> None:
    """Leave the process group cleanly (torch warns about a leaked one at exit)."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
