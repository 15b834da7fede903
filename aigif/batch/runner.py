"""Running a planned batch: in this process (``aigif encode DIR``) or over processes with ``accelerate``.

Both share one loop: skip an existing valid output (resume), never replace another file
without ``force``, write atomically, journal each converted file, count one file's error and
go on. The accelerate runner gives every process a contiguous slice of the *sorted* plan
(the split depends only on the file list and the process count, so a rerun gives every
process the same files) and gathers the results on the main process, which writes
``aigif-batch-summary.json``.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, Iterable

from ..errors import AigifError, ConfigError
from ..fileio import atomic_write, keep_existing, write_output
from .ops import OPS, BatchOp, Settings
from .plan import ERROR, JOURNAL_NAME, OK, SKIPPED, SUMMARY_NAME, BatchSummary, FileResult, Planned, append_journal, plan, \
    progress_bar, walk


def operation(op: str) -> BatchOp:
    if op not in OPS:
        raise ConfigError(f"unknown batch operation {op!r}; choose one of {', '.join(OPS)}")
    return OPS[op]


def convert_one(spec: BatchOp, item: Planned, settings: Settings, *, force: bool = False, rank: int = 0) -> FileResult:
    t = time.perf_counter()
    size = 0
    try:
        size = item.src.stat().st_size
        if keep_existing(item.dst, force=force, is_valid=lambda p: spec.valid(p, item.src, settings)):
            return FileResult(item.rel, item.out_rel, SKIPPED, bytes_in=size, bytes_out=item.dst.stat().st_size,
                              message="valid output exists (resume)", rank=rank)
        out = spec.run(item.src, settings)
        write_output(item.dst, out.data, force=force)
    except Exception as exc:  # one bad file must not stop a million-file job: recorded in the summary
        msg = str(exc) if isinstance(exc, AigifError) else f"{type(exc).__name__}: {exc}"
        return FileResult(item.rel, item.out_rel, ERROR, bytes_in=size, seconds=time.perf_counter() - t,
                          message=msg[:500], rank=rank)
    return FileResult(item.rel, item.out_rel, OK, out.kind, size, len(out.data), time.perf_counter() - t, out.message,
                      out.tool, out.metadata_bytes, out.notes, rank)


def convert_all(spec: BatchOp, items: list[Planned], settings: Settings, *, force: bool = False, rank: int = 0,
                journal: Path | None = None, progress: bool = False, desc: str = "",
                on_result: Callable[[FileResult], None] | None = None) -> list[FileResult]:
    """The shared loop; *journal* gets one line per file converted or failed."""
    bar = progress_bar(len(items), progress, desc)
    results = []
    try:
        for item in items:
            if bar is not None:
                bar.set_postfix_str(item.src.name[-30:], refresh=False)
            res = convert_one(spec, item, settings, force=force, rank=rank)
            results.append(res)
            if journal is not None and res.status != SKIPPED:
                append_journal(journal, res)
            if on_result is not None:
                on_result(res)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return results


def run_files(op: str, paths: Iterable[str | os.PathLike], out: str | os.PathLike, settings: Settings, *,
              force: bool = False, recursive: bool = True, progress: bool = True,
              on_result: Callable[[FileResult], None] | None = None) -> BatchSummary:
    """Convert files and folders *paths* into *out* (a folder, or the output file for one input) in this process."""
    spec = operation(op)
    items = plan(walk(paths, spec.suffixes, recursive=recursive), out, spec.out_suffix)
    one_file = len(items) == 1 and items[0].out_rel == str(out)
    t0 = time.perf_counter()
    results = convert_all(spec, items, settings, force=force, journal=None if one_file else Path(out) / JOURNAL_NAME,
                          progress=progress, desc=op, on_result=on_result)
    return BatchSummary(op, 1, time.perf_counter() - t0, results)


def run_batch(op: str, in_dir: str | os.PathLike, out_dir: str | os.PathLike, *, force: bool = False, engine=None,
              state=None, model_dirs: list | None = None, quality: int | None = None, progress: bool = False,
              cpu: bool | None = None, echo: Callable[[str], None] | None = print, ai_label: bool = True,
              c2pa=None) -> BatchSummary:
    """Convert this process's share of the folder *in_dir* into *out_dir*; every process returns the gathered summary.

    *ai_label*: decoded images of generated files carry the IPTC AI mark (XMP); False leaves it out.
    *c2pa*: :class:`aigif.provenance.c2pa_credentials.C2paCredentials` to sign them with a C2PA manifest.

    *state*: an ``accelerate.PartialState`` (made here when None; one process when not launched).
    *cpu*: run on CPU processes (gloo); default: when no CUDA device is present or ``accelerate launch --cpu``.
    The main process writes ``out_dir/aigif-batch-summary.json`` and echoes the table.
    """
    spec = operation(op)
    settings = Settings(ai_label=ai_label, c2pa=c2pa)
    if quality is not None:
        from ..codec import QUALITIES
        from ..importers import Options

        if quality not in QUALITIES:
            raise ConfigError(f"quality {quality!r}; choose one of {', '.join(map(str, QUALITIES))}")
        settings.options = Options(quality=quality)
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise ConfigError(f"{in_dir} is not a folder")
    items = plan(walk([in_dir], spec.suffixes), out_dir, spec.out_suffix, single_file=False)
    from accelerate import PartialState

    if state is None:
        state = PartialState(cpu=_want_cpu() if cpu is None else cpu)
    if engine is None:
        from ..engine import Engine

        engine = Engine(model_dirs=model_dirs, device=str(state.device))
    settings.engine = engine
    t0 = time.perf_counter()
    with state.split_between_processes(items) as mine:
        results = convert_all(spec, mine, settings, force=force, rank=state.process_index,
                              progress=progress and state.is_local_main_process, desc=op)
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


def shutdown() -> None:
    """Leave the process group cleanly (torch warns about a leaked one at exit)."""
    import sys

    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
