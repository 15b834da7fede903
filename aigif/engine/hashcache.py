"""File hashes of every kind the tools record, cached in ``$AIGIF_HOME/hashes.sqlite`` so large folders are hashed once.

Kinds (spec/engine.md 1.3 and 1.8):

* ``sha256`` of the whole file (A1111 "AutoV2" is its first 10 hex digits);
* ``autov1``: A1111's old "Model hash", the first 8 hex of the sha256 of the 64 KiB
  at offset 1 MiB (sha256 of nothing for a smaller file);
* ``autov3``: sha256 of a ``.safetensors`` file after its header (A1111's "addnet"
  hash, Civitai's AutoV3; A1111 writes its first 12 hex as ``Lora hashes``).

A row is keyed by (resolved path, size, mtime in ns, kind): a file that changes is
hashed again. A cache that cannot be written (read-only home, locked database)
only costs re-hashing; it never fails a lookup.
"""
from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
from pathlib import Path
from typing import Callable

from ..errors import ModelError
from ..fileio import sha256_of_file
from .paths import aigif_home

AUTOV1_OFFSET, AUTOV1_SIZE = 0x100000, 0x10000
_LOCK = threading.Lock()
_MEMO: dict[tuple, str] = {}


def autov1(path: Path) -> str:
    with open(path, "rb") as fh:
        fh.seek(AUTOV1_OFFSET)
        return hashlib.sha256(fh.read(AUTOV1_SIZE)).hexdigest()[:8]


def autov3(path: Path) -> str:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
    n = int.from_bytes(head, "little") if len(head) == 8 else -1
    if n < 0 or n > size - 8:
        raise ModelError(f"{path} is not a safetensors file (bad header length)")
    return sha256_of_file(path, offset=8 + n)


KINDS: dict[str, Callable[[Path], str]] = {"sha256": sha256_of_file, "autov1": autov1, "autov3": autov3}


@contextlib.contextmanager
def _db():
    conn = sqlite3.connect(str(aigif_home() / "hashes.sqlite"), timeout=10)
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS hashes (path TEXT NOT NULL, size INTEGER NOT NULL, "
                     "mtime_ns INTEGER NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL, "
                     "PRIMARY KEY (path, size, mtime_ns, kind))")
        yield conn
        conn.commit()
    finally:
        conn.close()


def _read(key: tuple) -> str | None:
    try:
        with _db() as conn:
            row = conn.execute("SELECT value FROM hashes WHERE path = ? AND size = ? AND mtime_ns = ? AND kind = ?",
                               key).fetchone()
        return row[0] if row else None
    except (sqlite3.Error, OSError):
        return None


def _write(key: tuple, value: str) -> None:
    try:
        aigif_home().mkdir(parents=True, exist_ok=True)
        with _db() as conn:
            conn.execute("DELETE FROM hashes WHERE path = ? AND kind = ?", (key[0], key[3]))   # older versions of the file
            conn.execute("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?)", key + (value,))
    except (sqlite3.Error, OSError):
        pass


def file_hash(path: str | Path, kind: str = "sha256") -> str:
    """The *kind* hash of a file (lower-case hex), from the cache when the file is unchanged."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, kind)
    with _LOCK:
        if key in _MEMO:
            return _MEMO[key]
    value = _read(key)
    if value is None:
        value = KINDS[kind](path)
        _write(key, value)
    with _LOCK:
        _MEMO[key] = value
    return value


def forget_memo() -> None:
    """Drop the in-process memo (the database stays): the next lookup reads the cache file."""
    with _LOCK:
        _MEMO.clear()
