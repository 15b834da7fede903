"""``aigif index``: bring the library database in line with folders of .aigif files.

Incremental: a file whose size and modification time match its row is skipped; a new path whose
content hash matches a row whose file is gone is that file renamed (the row moves, nothing is
parsed again); rows of files no longer under a folder are deleted at the end. Work is committed
in batches, so a run killed mid-way keeps what it finished and the next run resumes from there.
Library folders are only read.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sqlite3
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from ..errors import AigifError, LibraryError
from ..fileio import read_limited
from ..limits import DEFAULT_LIMITS
from .db import FTS_COLUMNS
from .record import SYNTAX_COLUMNS, parse, syntax_row

SUFFIX = ".aigif"
BATCH = 2000  # files per transaction: fewer commits rewrite fewer index pages; a killed run loses at most one
PARALLEL_MIN_FILES = 5000  # below this, worker processes cost more to start than they save
_FILE_COLUMNS = ("path", "root", "content_hash", "file_size", "mtime_ns", "indexed_at", "error") + SYNTAX_COLUMNS


@dataclass
class IndexReport:
    """What one run did; ``errors`` lists every unreadable file under the folders, with its error."""

    added: int = 0
    updated: int = 0
    renamed: int = 0
    deleted: int = 0
    unchanged: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def seen(self) -> int:
        return self.added + self.updated + self.renamed + self.unchanged


def library_root(folder: str | os.PathLike) -> Path:
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise LibraryError(f"{folder}: not a folder")
    return root


def walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every regular ``*.aigif`` file under *root*; symbolic links (files or folders) are not followed."""
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.name.lower().endswith(SUFFIX) and entry.is_file(follow_symlinks=False):
                    yield entry.path, entry.stat(follow_symlinks=False)
            except OSError:
                continue


def index_folders(conn: sqlite3.Connection, folders, progress: Callable[[int], None] | None = None) -> IndexReport:
    """Index every folder in *folders* into *conn* (see the module docstring)."""
    report = IndexReport()
    for folder in folders:
        _index_root(conn, library_root(folder), report, progress)
    # fresh statistics let the planner choose between the full-text, date and field indexes (sampled: milliseconds)
    conn.execute("PRAGMA analysis_limit = 400")
    conn.execute("ANALYZE")
    roots = [str(library_root(f)) for f in folders]
    marks = ",".join("?" * len(roots))
    report.errors = [(r["path"], r["error"]) for r in conn.execute(
        f"SELECT path, error FROM files WHERE error IS NOT NULL AND root IN ({marks}) ORDER BY path", roots)]
    return report


def _index_root(conn: sqlite3.Connection, root: Path, report: IndexReport, progress) -> None:
    known = {r[0]: (r[1], r[2], r[3]) for r in conn.execute(
        "SELECT path, id, file_size, mtime_ns FROM files WHERE root = ?", (str(root),))}
    seen: set[str] = set()
    pending: list[tuple[str, os.stat_result]] = []
    for path, st in walk(root):
        seen.add(path)
        row = known.get(path)
        if row is not None and row[1] == st.st_size and row[2] == st.st_mtime_ns:
            report.unchanged += 1
        else:
            pending.append((path, st))
    for batch, results in _scanned([pending[i:i + BATCH] for i in range(0, len(pending), BATCH)]):
        _store_batch(conn, root, batch, results, known, report)
        if progress:
            progress(report.seen)
    gone = [(known[p][0],) for p in known if p not in seen]
    with _transaction(conn):
        conn.executemany("DELETE FROM files WHERE id = ?", gone)
    report.deleted += len(gone)


def scan(path: str) -> tuple[str, dict | None, str | None]:
    """(content hash, syntax row or None, error or None) of one file: the part that may run in another process."""
    try:
        data = read_limited(path, DEFAULT_LIMITS.max_file_bytes)
    except AigifError as exc:
        return "", None, str(exc)
    row, error = _parse(data)
    return hashlib.sha256(data).hexdigest(), row, error


def _scan_batch(paths: list[str]) -> list:
    return [scan(p) for p in paths]


def _parse(data: bytes) -> tuple[dict | None, str | None]:
    try:
        return syntax_row(parse(data), data), None
    except AigifError as exc:
        return None, str(exc)
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:  # a reader bug must not stop the run
        return None, f"unreadable: {type(exc).__name__}: {exc}"


def _scanned(batches: list[list]) -> Iterator[tuple[list, list]]:
    """Each batch with its scan results, in order; large runs are parsed by worker processes a few batches ahead."""
    workers = _cpus()
    if sum(map(len, batches)) < PARALLEL_MIN_FILES or workers < 2:
        for batch in batches:
            yield batch, [scan(path) for path, _ in batch]
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        ahead: deque = deque()
        todo = iter(batches)
        for batch in todo:
            ahead.append((batch, pool.submit(_scan_batch, [path for path, _ in batch])))
            if len(ahead) > 2 * workers:
                done, future = ahead.popleft()
                yield done, future.result()
        while ahead:
            done, future = ahead.popleft()
            yield done, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _cpus() -> int:
    """Cores this process may run on (one worker each: parsing is pure Python, more workers only queue)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def _store_batch(conn, root: Path, batch, results, known: dict, report: IndexReport) -> None:
    """One transaction and one statement per kind of change for the whole batch (per-row statements cost more)."""
    now = time.time()
    with _transaction(conn):
        moved = _adopt_renamed(conn, root, [(path, st, digest) for (path, st), (digest, _, _) in zip(batch, results)
                                            if path not in known and digest], now)
        for old in moved.values():
            known.pop(old, None)  # the row moved: not a deletion at the end of this run
        report.renamed += len(moved)
        next_id = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM files").fetchone()[0]
        inserts, updates, loras, added = [], [], [], []
        for (path, st), (digest, row, error) in zip(batch, results):
            if path in moved:
                continue
            values = dict(dict.fromkeys(SYNTAX_COLUMNS), has_pixels=0, has_residual=0, regenerable=0) if row is None else row
            loras_of = values.pop("_loras", [])
            values.update(path=path, root=str(root), content_hash=digest, file_size=st.st_size,
                          mtime_ns=st.st_mtime_ns, indexed_at=now, error=error)
            if path in known:
                file_id = known[path][0]
                updates.append([values[c] for c in _FILE_COLUMNS] + [file_id])
                report.updated += 1
            else:
                file_id, next_id = next_id, next_id + 1
                inserts.append([file_id] + [values[c] for c in _FILE_COLUMNS])
                added.append(file_id)
                report.added += 1
            loras += [(file_id, name, weight) for name, weight in loras_of]
        conn.executemany("DELETE FROM loras WHERE file_id = ?", [(u[-1],) for u in updates])
        conn.executemany(f"UPDATE files SET {', '.join(f'{c} = ?' for c in _FILE_COLUMNS)} WHERE id = ?", updates)
        conn.executemany(f"INSERT INTO files(id, {', '.join(_FILE_COLUMNS)}) VALUES ({', '.join('?' * (len(_FILE_COLUMNS) + 1))})",
                         inserts)
        conn.executemany("INSERT INTO loras(file_id, name, weight) VALUES (?, ?, ?)", loras)
        # the full-text rows of new files (updated ones are kept in line by a trigger)
        conn.execute(f"INSERT INTO files_fts(rowid, {FTS_COLUMNS}) SELECT id, {FTS_COLUMNS} FROM files "
                     "WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(added),))


def _adopt_renamed(conn, root: Path, new: list[tuple[str, os.stat_result, str]], now: float) -> dict[str, str]:
    """New paths whose bytes equal a row whose file is gone: move that row (keeps its id and renders).

    Returns {new path: old path}. One query for the batch; each gone row is adopted by one path at most.
    """
    if not new:
        return {}
    gone: dict[str, list] = {}
    for row in conn.execute("SELECT id, path, content_hash FROM files WHERE error IS NULL AND content_hash IN "
                            "(SELECT value FROM json_each(?)) ORDER BY id", (json.dumps([d for _, _, d in new]),)):
        if not os.path.lexists(row["path"]):
            gone.setdefault(row["content_hash"], []).append(row)
    moved: dict[str, str] = {}
    for path, st, digest in new:
        if gone.get(digest):
            row = gone[digest].pop(0)
            conn.execute("UPDATE files SET path = ?, root = ?, mtime_ns = ?, file_size = ?, indexed_at = ? WHERE id = ?",
                         (path, str(root), st.st_mtime_ns, st.st_size, now, row["id"]))
            moved[path] = row["path"]
    return moved


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (including KeyboardInterrupt)."""

    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb):
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
