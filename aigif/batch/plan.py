"""The batch planner: which files, which output names, what a run did.

One set of rules for ``aigif encode DIR``, ``aigif batch-encode`` and ``aigif batch-decode``:
folders are walked sorted, skipping hidden names and symlinks (a named file is taken as given);
``a.png`` becomes ``a.aigif`` unless two inputs would share that name, then each keeps its
suffix (``a.png.aigif``, ``a.jpg.aigif``); an output that is one of the inputs is refused.
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable

from ..errors import ConfigError

SUMMARY_NAME = "aigif-batch-summary.json"
JOURNAL_NAME = ".aigif-batch-journal.jsonl"
OK, SKIPPED, ERROR = "ok", "skipped", "error"


@dataclass
class FileResult:
    """What happened to one input file."""

    input: str                 # relative to its input folder (posix); a named file: its name
    output: str                # relative to the output folder; the output file itself for a one-file run
    status: str                # ok | skipped | error
    kind: str = ""             # decode: exact/close/mismatch/unverified; encode: exact/residual/pixels/syntax-only
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    message: str = ""          # the error, or why an image was stored as it was
    tool: str = ""             # encode: the tool whose metadata was read
    metadata_bytes: int = 0
    notes: str = ""            # encode: about the image's provenance (C2PA manifest kept, invalid, too large)
    rank: int = 0              # the process that converted it


@dataclass
class BatchSummary:
    op: str
    processes: int = 1
    seconds: float = 0.0
    results: list[FileResult] = field(default_factory=list)

    @property
    def counts(self) -> Counter:
        return Counter(r.status for r in self.results)

    @property
    def kinds(self) -> Counter:
        return Counter(r.kind for r in self.results if r.status == OK and r.kind)

    @property
    def errors(self) -> list[FileResult]:
        return [r for r in self.results if r.status == ERROR]

    def totals(self) -> tuple[int, int]:
        done = [r for r in self.results if r.status == OK]
        return sum(r.bytes_in for r in done), sum(r.bytes_out for r in done)

    def to_dict(self) -> dict:
        return {"op": self.op, "processes": self.processes, "seconds": round(self.seconds, 3), "files": len(self.results),
                "counts": dict(self.counts), "kinds": dict(sorted(self.kinds.items())),
                "results": [asdict(r) for r in self.results]}

    def table(self) -> str:
        c, (bin_, bout) = self.counts, self.totals()
        rate = c[OK] / self.seconds if self.seconds > 0 else 0.0
        rows = [("operation", self.op), ("processes", self.processes), ("files", len(self.results)), ("converted", c[OK]),
                ("skipped (valid output exists)", c[SKIPPED]), ("errors", c[ERROR]),
                ("kinds", ", ".join(f"{k} {v}" for k, v in sorted(self.kinds.items())) or "-"),
                ("bytes before / after", f"{bin_:,} / {bout:,}" + (f" ({bin_ / bout:.1f}x)" if bout else "")),
                ("wall time", f"{self.seconds:.1f} s"), ("files/s", f"{rate:.2f}")]
        lines = ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
        lines += [f"| error: {r.input} | {r.message} |" for r in self.errors[:20]]
        return "\n".join(lines)


# --- inputs -------------------------------------------------------------------------------------
def walk(paths: Iterable[str | os.PathLike], suffixes: Iterable[str], *, recursive: bool = True) -> list[tuple[Path, str]]:
    """(file, its path relative to the folder given, posix) for every input; a named file is taken as given."""
    suffixes = tuple(s.lower() for s in suffixes)
    out: list[tuple[Path, str]] = []
    for root in map(Path, paths):
        if root.is_dir():
            found = []
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if recursive and not d.startswith("."))
                for name in filenames:
                    p = Path(dirpath) / name
                    if name.lower().endswith(suffixes) and not name.startswith(".") and not p.is_symlink() and p.is_file():
                        found.append((p, p.relative_to(root).as_posix()))
            out += sorted(found, key=lambda t: t[1])
        elif root.exists():
            out.append((root, root.name))
        else:
            raise ConfigError(f"{root}: no such file or directory")
    return out


def list_inputs(in_dir: str | os.PathLike, suffixes: Iterable[str]) -> list[str]:
    """Sorted relative posix paths of the regular files under the folder *in_dir* with one of *suffixes*."""
    if not Path(in_dir).is_dir():
        raise ConfigError(f"{in_dir} is not a folder")
    return [rel for _, rel in walk([in_dir], suffixes)]


def shard(items: list, num_processes: int, index: int) -> list:
    """Process *index*'s contiguous slice, the same split as ``accelerate``'s ``split_between_processes``."""
    if not (isinstance(num_processes, int) and num_processes >= 1 and 0 <= index < num_processes):
        raise ConfigError(f"process index {index} of {num_processes} is invalid")
    per, extra = divmod(len(items), num_processes)
    start = index * per + min(index, extra)
    return items[start:start + per + (1 if index < extra else 0)]


# --- outputs ------------------------------------------------------------------------------------
def output_names(rels: list[str], out_suffix: str) -> list[str]:
    """``a/b.png`` -> ``a/b.aigif``; inputs that would share a name keep their suffix (``b.png.aigif``)."""
    def plain(rel: str) -> str:
        p = PurePosixPath(rel)
        return str(p.with_suffix(out_suffix)) if p.suffix else rel + out_suffix

    names = [plain(r) for r in rels]
    shared = {n for n, k in Counter(n.lower() for n in names).items() if k > 1}
    return [rel + out_suffix if n.lower() in shared else n for rel, n in zip(rels, names)]


@dataclass(frozen=True)
class Planned:
    src: Path
    rel: str          # input, relative to its folder
    dst: Path
    out_rel: str      # output, relative to the output folder (one-file run: the output path)


def plan(inputs: list[tuple[Path, str]], out: str | os.PathLike, out_suffix: str, *,
         single_file: bool | None = None) -> list[Planned]:
    """Input -> output pairs. *out* is the output file when it ends in *out_suffix* and one input is given."""
    out = Path(out)
    unique: dict[Path, tuple[Path, str]] = {}
    for src, rel in inputs:                 # the same file given twice: once
        unique.setdefault(src.resolve(), (src, rel))
    inputs = list(unique.values())
    if single_file is None:
        single_file = out.suffix.lower() == out_suffix and not out.is_dir()
    if single_file:
        if len(inputs) != 1:
            raise ConfigError(f"{out} is a single {out_suffix} file but {len(inputs)} inputs were given; pass a folder")
        pairs = [Planned(inputs[0][0], inputs[0][1], out, str(out))]
    else:
        pairs = [Planned(src, rel, out / name, name)
                 for (src, rel), name in zip(inputs, output_names([rel for _, rel in inputs], out_suffix))]
    by_dst: dict[Path, Planned] = {}
    for p in pairs:
        seen = by_dst.setdefault(p.dst, p)
        if seen.src.resolve() != p.src.resolve():
            raise ConfigError(f"{seen.src} and {p.src} would both be written to {p.dst}; convert them in separate runs")
    sources = {p.src.resolve() for p in pairs}
    for p in by_dst.values():
        if p.dst.resolve() in sources:
            raise ConfigError(f"refusing to write {p.dst}: it is one of the inputs")
    return pairs


# --- the journal and the progress bar ---------------------------------------------------------------
def append_journal(path: Path, res: FileResult) -> None:
    """One JSON line per converted file; a line torn by a killed run is left and a fresh one started."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"time": round(time.time(), 3), **asdict(res)}, ensure_ascii=False)
    with open(path, "a+b") as fh:
        torn = False
        if fh.seek(0, os.SEEK_END) > 0:
            fh.seek(-1, os.SEEK_END)
            torn = fh.read(1) != b"\n"
        fh.seek(0, os.SEEK_END)
        fh.write((("\n" if torn else "") + line + "\n").encode("utf-8"))


def progress_bar(total: int, enabled: bool, desc: str):
    if not enabled or total <= 1:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="file", desc=desc, leave=False, disable=None)   # None: off when not a TTY
