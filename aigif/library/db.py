"""The library database: one SQLite file, its schema versioned by an ordered list of migrations.

Each migration runs in its own transaction and records itself in ``migrations``, so a process
killed while upgrading leaves the database at the previous version and the next open resumes.
A database written by a newer aigif (a version this code does not know) is refused, never
guessed at.
"""
from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from ..engine.paths import aigif_home
from ..errors import LibraryError

# (version, what it adds, SQL). Append only: a shipped migration never changes.
MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "files, LoRAs and the full-text index", """
CREATE TABLE files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    root TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    file_size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    indexed_at REAL NOT NULL,
    error TEXT,
    prompt TEXT, negative_prompt TEXT, seed TEXT, num_inference_steps INTEGER, guidance_scale REAL,
    width INTEGER, height INTEGER, scheduler TEXT, scheduler_config TEXT, eta REAL, clip_skip INTEGER,
    batch_index INTEGER, guidance_rescale REAL,
    model TEXT, model_family TEXT, model_repo TEXT, model_revision TEXT, model_sha256 TEXT, model_local TEXT,
    model_variant TEXT, model_weights_file TEXT, model_vae TEXT, loras TEXT, lora_names TEXT,
    platform TEXT, device TEXT, gpu TEXT, dtype TEXT,
    source_tool TEXT, source_version TEXT,
    pixel_sha256 TEXT, perceptual TEXT,
    has_pixels INTEGER NOT NULL DEFAULT 0, has_residual INTEGER NOT NULL DEFAULT 0,
    regenerable INTEGER NOT NULL DEFAULT 0,
    extensions TEXT, signature_status TEXT, provenance TEXT,
    syntax TEXT
);
CREATE INDEX files_root ON files(root);
CREATE INDEX files_hash ON files(content_hash);
CREATE INDEX files_mtime ON files(mtime_ns);
CREATE INDEX files_model ON files(model);
CREATE INDEX files_family ON files(model_family);
CREATE INDEX files_seed ON files(seed);
CREATE INDEX files_tool ON files(source_tool);
CREATE INDEX files_size ON files(width, height);
CREATE TABLE loras (
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    weight REAL
);
CREATE INDEX loras_name ON loras(name);
CREATE INDEX loras_file ON loras(file_id);
CREATE VIRTUAL TABLE files_fts USING fts5(
    prompt, negative_prompt, model, lora_names, source_tool,
    content='files', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER files_fts_insert AFTER INSERT ON files BEGIN
    INSERT INTO files_fts(rowid, prompt, negative_prompt, model, lora_names, source_tool)
    VALUES (new.id, new.prompt, new.negative_prompt, new.model, new.lora_names, new.source_tool);
END;
CREATE TRIGGER files_fts_delete AFTER DELETE ON files BEGIN
    INSERT INTO files_fts(files_fts, rowid, prompt, negative_prompt, model, lora_names, source_tool)
    VALUES ('delete', old.id, old.prompt, old.negative_prompt, old.model, old.lora_names, old.source_tool);
END;
CREATE TRIGGER files_fts_update AFTER UPDATE OF prompt, negative_prompt, model, lora_names, source_tool ON files BEGIN
    INSERT INTO files_fts(files_fts, rowid, prompt, negative_prompt, model, lora_names, source_tool)
    VALUES ('delete', old.id, old.prompt, old.negative_prompt, old.model, old.lora_names, old.source_tool);
    INSERT INTO files_fts(rowid, prompt, negative_prompt, model, lora_names, source_tool)
    VALUES (new.id, new.prompt, new.negative_prompt, new.model, new.lora_names, new.source_tool);
END;
"""),
    (2, "renders: the gallery's regeneration results; full-text rows of new files written per batch", """
DROP TRIGGER files_fts_insert;
ALTER TABLE files ADD COLUMN regenerable_reason TEXT;
CREATE TABLE renders (
    content_hash TEXT PRIMARY KEY,
    status TEXT,
    source TEXT,
    error TEXT,
    rendered_at REAL NOT NULL
);
"""),
    (3, "an index for the gallery's listing: served folders, readable files, newest first", """
CREATE INDEX files_live ON files(root, error, mtime_ns);
"""),
    (4, "searches answered from indexes: by id (for full-text matches) and by folder and date, both with the model", """
CREATE INDEX files_order ON files(id, error, root, mtime_ns, model, model_repo, model_local, model_family);
DROP INDEX files_live;
CREATE INDEX files_live ON files(root, error, mtime_ns, id, model, model_repo, model_local, model_family);
CREATE INDEX loras_name_nocase ON loras(name COLLATE NOCASE, file_id);
"""),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]
CACHE_KIB = 64 * 1024  # SQLite page cache per connection: a 100,000-file library's indexes stay in memory
FTS_COLUMNS = "prompt, negative_prompt, model, lora_names, source_tool"  # files_fts, mirrored from files


def default_db_path() -> Path:
    """``$AIGIF_HOME/library.sqlite``: outside every library folder."""
    return aigif_home() / "library.sqlite"


def schema_version(conn: sqlite3.Connection) -> int:
    """The highest migration applied (0 for an empty database)."""
    has = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='migrations'").fetchone()
    if not has:
        return 0
    return conn.execute("SELECT COALESCE(MAX(version), 0) FROM migrations").fetchone()[0]


def migrate(conn: sqlite3.Connection, migrations=MIGRATIONS) -> int:
    """Bring *conn* to the newest version in *migrations*; each step is one transaction."""
    current = schema_version(conn)
    newest = migrations[-1][0]
    if current > newest:
        raise LibraryError(f"the library database has schema version {current}, newer than this aigif "
                           f"understands ({newest}); upgrade aigif or pass another --db")
    for version, what, sql in migrations:
        if version <= current:
            continue
        # executescript would commit on its own; run the statements inside one explicit transaction instead
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at REAL NOT NULL)")
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO migrations(version, description, applied_at) VALUES (?, ?, ?)", (version, what, time.time()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return newest


def _statements(sql: str) -> list[str]:
    """Split a migration into statements (triggers hold ';' inside BEGIN ... END)."""
    out, buf = [], ""
    for line in sql.strip().splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


def connect(path: str | os.PathLike | None = None, *, create: bool = True) -> sqlite3.Connection:
    """Open (creating and migrating as needed) the library database; every problem is a :class:`LibraryError`."""
    path = Path(path) if path is not None else default_db_path()
    if not create and not path.exists():
        raise LibraryError(f"{path}: no library database; build one with 'aigif index DIR --db {path}'")
    conn = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        migrate(conn)
        return conn
    except (sqlite3.DatabaseError, OSError, LibraryError) as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, LibraryError):
            raise
        raise LibraryError(f"{path}: not a usable library database ({exc})") from None
