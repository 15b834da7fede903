"""``aigif index``: bring the library database in line with folders of .aigif files.

Incremental: a file whose size and modification time match its row is skipped; a new path whose
content hash matches a row whose file is gone is that file renamed (the row moves, nothing is
parsed again); rows of files no longer under a folder are deleted at the end. Work is committed
in batches, so a run killed mid-way keeps what it finished and the next run resumes from there.
Library folders are only read.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from ..errors import AigifError, LibraryError
from ..fileio import read_limited
from ..limits import DEFAULT_LIMITS
from .record import SYNTAX_COLUMNS, parse, syntax_row

SUFFIX = ".aigif"
BATCH = 500  # files per transaction
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
            continue
        pending.append((path, st))
        if len(pending) >= BATCH:
            _store_batch(conn, root, pending, known, report)
            pending = []
            if progress:
                progress(report.seen)
    _store_batch(conn, root, pending, known, report)
    gone = [(known[p][0],) for p in known if p not in seen]
    with _transaction(conn):
        conn.executemany("DELETE FROM files WHERE id = ?", gone)
    report.deleted += len(gone)
    if progress:
        progress(report.seen)


def _read(path: str) -> tuple[bytes | None, str, str | None]:
    """(bytes, content hash, error) of one file; bytes is None when it cannot be read."""
    try:
        data = read_limited(path, DEFAULT_LIMITS.max_file_bytes)
    except AigifError as exc:
        return None, "", str(exc)
    return data, hashlib.sha256(data).hexdigest(), None


def _parse(data: bytes) -> tuple[dict | None, str | None]:
    try:
        return syntax_row(parse(data)), None
    except AigifError as exc:
        return None, str(exc)
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:  # a reader bug must not stop the run
        return None, f"unreadable: {type(exc).__name__}: {exc}"


def _store_batch(conn, root: Path, pending, known: dict, report: IndexReport) -> None:
    if not pending:
        return
    with _transaction(conn):
        for path, st in pending:
            data, digest, error = _read(path)
            old = _adopt_renamed(conn, root, path, st, digest) if path not in known and data is not None else None
            if old is not None:
                known.pop(old, None)  # the row moved: not a deletion at the end of this run
                report.renamed += 1
                continue
            row = None
            if data is not None:
                row, error = _parse(data)
            values = dict(dict.fromkeys(SYNTAX_COLUMNS), has_pixels=0, has_residual=0, regenerable=0) if row is None else row
            loras = values.pop("_loras", [])
            values.update(path=path, root=str(root), content_hash=digest, file_size=st.st_size,
                          mtime_ns=st.st_mtime_ns, indexed_at=time.time(), error=error)
            file_id = _upsert(conn, values, known.get(path, (None,))[0])
            conn.executemany("INSERT INTO loras(file_id, name, weight) VALUES (?, ?, ?)",
                             [(file_id, name, weight) for name, weight in loras])
            if path in known:
                report.updated += 1
            else:
                report.added += 1


def _adopt_renamed(conn, root: Path, path: str, st: os.stat_result, digest: str) -> str | None:
    """A new path whose bytes equal a row whose file is gone: move that row (keeps its id and renders)."""
    for row in conn.execute("SELECT id, path FROM files WHERE content_hash = ? AND error IS NULL", (digest,)).fetchall():
        if not os.path.lexists(row["path"]):
            conn.execute("UPDATE files SET path = ?, root = ?, mtime_ns = ?, file_size = ?, indexed_at = ? WHERE id = ?",
                         (path, str(root), st.st_mtime_ns, st.st_size, time.time(), row["id"]))
            return row["path"]
    return None


def _upsert(conn, values: dict, file_id: int | None) -> int:
    cols = _FILE_COLUMNS
    if file_id is None:
        cur = conn.execute(f"INSERT INTO files({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                           [values[c] for c in cols])
        return cur.lastrowid
    conn.execute(f"UPDATE files SET {', '.join(f'{c} = ?' for c in cols)} WHERE id = ?", [values[c] for c in cols] + [file_id])
    conn.execute("DELETE FROM loras WHERE file_id = ?", (file_id,))
    return file_id


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (including KeyboardInterrupt)."""

    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb):
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
