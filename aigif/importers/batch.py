"""Convert many images: directory walk, output naming, resume, journal, summary.

Rules: inputs are never written; an output path equal to an input is refused;
each output is written atomically; an existing valid .aigif output is skipped
(resume) unless ``force``; one file's error is reported and counted, never fatal.
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from ..fileio import keep_existing, write_output
from ..errors import AigifError, ConfigError
from ..limits import DEFAULT_LIMITS, Limits
from .decide import KINDS, Options
from .extract import IMAGE_EXTENSIONS

JOURNAL_NAME = ".aigif-encode-journal.jsonl"
SKIPPED, FAILED = "skipped", "failed"


@dataclass
class FileResult:
    input: str
    output: str | None
    kind: str                  # exact | residual | pixels | syntax-only | skipped | failed
    bytes_in: int = 0
    bytes_out: int = 0
    metadata_bytes: int = 0
    tool: str = ""
    message: str = ""
    notes: str = ""            # about the image's provenance (C2PA manifest kept, invalid, too large)


@dataclass
class Summary:
    results: list[FileResult] = field(default_factory=list)

    @property
    def counts(self) -> Counter:
        return Counter(r.kind for r in self.results)

    @property
    def failed(self) -> int:
        return self.counts[FAILED]

    def totals(self) -> tuple[int, int]:
        done = [r for r in self.results if r.kind not in (FAILED, SKIPPED)]
        return sum(r.bytes_in for r in done), sum(r.bytes_out for r in done)

    def table(self) -> str:
        bin_, bout = self.totals()
        c = self.counts
        rows = [("files", str(len(self.results))),
                ("bytes before", f"{bin_:,}"), ("bytes after", f"{bout:,}"),
                ("ratio", f"{bin_ / bout:.1f}x" if bout else "n/a")]
        rows += [(k, str(c[k])) for k in (*KINDS, SKIPPED, FAILED)]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v:>12}" for k, v in rows)


def collect_inputs(paths: Iterable[str | os.PathLike], recursive: bool = True) -> list[tuple[Path, Path]]:
    """(image file, path relative to its root) for every input; directories are walked."""
    out: list[tuple[Path, Path]] = []
    for p in map(Path, paths):
        if p.is_dir():
            it = p.rglob("*") if recursive else p.glob("*")
            for f in sorted(it):
                if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith("."):
                    out.append((f, f.relative_to(p)))
        elif p.exists():
            out.append((p, Path(p.name)))
        else:
            raise ConfigError(f"{p}: no such file or directory")
    return out


def plan_outputs(inputs: list[tuple[Path, Path]], out: str | os.PathLike, *, single_file: bool | None = None) -> list[tuple[Path, Path]]:
    """(input, output) pairs. ``out`` is a .aigif file for one input, else a directory."""
    out = Path(out)
    if single_file is None:
        single_file = out.suffix.lower() == ".aigif" and not out.is_dir()
    if single_file:
        if len(inputs) != 1:
            raise ConfigError(f"{out} is a single .aigif file but {len(inputs)} images were given; pass a directory to -o")
        pairs = [(inputs[0][0], out)]
    else:
        names = [rel.with_suffix(".aigif") for _, rel in inputs]
        dup = {n for n, k in Counter(names).items() if k > 1}
        pairs = [(src, out / (rel.with_name(rel.name + ".aigif") if rel.with_suffix(".aigif") in dup else rel.with_suffix(".aigif")))
                 for src, rel in inputs]
    seen: dict[Path, Path] = {}
    for src, dst in pairs:
        if dst in seen and seen[dst].resolve() != src.resolve():
            raise ConfigError(f"{seen[dst]} and {src} would both be written to {dst}; convert them in separate runs")
        seen[dst] = src
    pairs = list({dst: (src, dst) for src, dst in pairs}.values())      # the same file given twice: once
    inputs_resolved = {src.resolve() for src, _ in inputs}
    for src, dst in pairs:
        if dst.resolve() in inputs_resolved:
            raise ConfigError(f"refusing to write {dst}: it is one of the inputs")
    return pairs


def is_valid_aigif(path: Path, limits: Limits = DEFAULT_LIMITS) -> bool:
    from ..fileio import load

    try:
        load(path, limits)
        return True
    except AigifError:
        return False


def run_batch(paths: Iterable[str | os.PathLike], out: str | os.PathLike, *, engine=None, codec=None,
              options: Options = Options(), force: bool = False, recursive: bool = True, progress: bool = True,
              limits: Limits = DEFAULT_LIMITS, on_result: Callable[[FileResult], None] | None = None,
              resolver=None) -> Summary:
    """Convert every image under *paths* into *out*; see the module docstring for the rules."""
    from . import encode_image

    pairs = plan_outputs(collect_inputs(paths, recursive), out)
    summary = Summary()
    out_path = Path(out)
    journal = None if (out_path.suffix.lower() == ".aigif" and len(pairs) == 1) else out_path / JOURNAL_NAME
    bar = _progress(len(pairs), progress)
    try:
        for src, dst in pairs:
            if bar is not None:
                bar.set_postfix_str(src.name[-30:], refresh=False)
            res = _one(src, dst, engine, codec, options, force, limits, encode_image, resolver)
            summary.results.append(res)
            if journal is not None and res.kind != SKIPPED:
                _append_journal(journal, res)
            if on_result:
                on_result(res)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return summary


def _one(src, dst, engine, codec, options, force, limits, encode_image, resolver) -> FileResult:
    try:
        size = src.stat().st_size
    except OSError as exc:
        return FileResult(str(src), str(dst), FAILED, message=f"cannot stat: {exc.strerror}")
    try:
        if keep_existing(dst, force=force, is_valid=lambda p: is_valid_aigif(p, limits)):
            return FileResult(str(src), str(dst), SKIPPED, size, dst.stat().st_size, message="output exists (resume)")
        enc = encode_image(src, engine=engine, codec=codec, options=options, limits=limits, resolver=resolver)
        write_output(dst, enc.data, force=force)
    except AigifError as exc:
        return FileResult(str(src), str(dst), FAILED, size, message=str(exc))
    except Exception as exc:  # a bug or an odd file must not stop the batch; it is reported
        return FileResult(str(src), str(dst), FAILED, size, message=f"{type(exc).__name__}: {exc}")
    msg = enc.outcome.reason
    if enc.imported.unsupported and enc.kind != "syntax-only":
        msg = msg or enc.imported.reason
    return FileResult(str(src), str(dst), enc.kind, size, len(enc.data), enc.imported.metadata_bytes,
                      enc.imported.tool, msg, "; ".join(enc.notes))


def _append_journal(path: Path, res: FileResult) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"time": round(time.time(), 3), **res.__dict__}, ensure_ascii=False)
    with open(path, "a+b") as fh:
        # a batch killed mid-line leaves a partial last line: start a fresh one instead of gluing onto it
        torn = False
        if fh.seek(0, os.SEEK_END) > 0:
            fh.seek(-1, os.SEEK_END)
            torn = fh.read(1) != b"\n"
        fh.seek(0, os.SEEK_END)
        fh.write((("\n" if torn else "") + line + "\n").encode("utf-8"))


def _progress(total: int, enabled: bool):
    if not enabled or total <= 1:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, unit="img", desc="encode", leave=False, disable=None)   # None: off when not a TTY
