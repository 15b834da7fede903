"""Search the library database: full text over prompts, models, LoRAs and tools, plus field filters.

The text is free text the way people type prompts ("red fox, oil painting"): words are matched
as words (punctuation between them is ignored), ``"..."`` is a phrase, a trailing ``*`` a prefix,
and upper-case ``AND``/``OR``/``NOT`` and parentheses combine them (SQLite FTS5 semantics). Values
only ever reach SQL as bound parameters.
"""
from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

from ..errors import QueryError
from .record import GEN_COLUMNS

MAX_QUERY_CHARS = 1000
MAX_LIMIT = 500
SORT_MATCHES = 5000  # full-text matches up to this many are sorted by date; for more, files are walked by date
COUNT_CAP = 1000  # totals stop here ("1000+"): counting every match of a common word costs more than the page
_INT64 = 2**63 - 1
_TOKEN = re.compile(r'"[^"]*"?|\(|\)|[\w]+\*?', re.UNICODE)
_OPERATORS = {"AND", "OR", "NOT"}
SUMMARY_COLUMNS = ("id", "path", "root", "content_hash", "file_size", "mtime_ns", "error", "model", "model_family",
                   "source_tool", "regenerable", "has_pixels", "has_residual", "perceptual", "lora_names") + GEN_COLUMNS


@dataclass(frozen=True)
class Query:
    """One search: free *text* plus exact-match filters; ``None`` means "any"."""

    text: str = ""
    model: str | None = None
    family: str | None = None
    seed: int | None = None
    lora: str | None = None
    tool: str | None = None
    width: int | None = None
    height: int | None = None
    regenerable: bool | None = None
    date_from: float | None = None   # file modification time, seconds since the epoch
    date_to: float | None = None
    roots: tuple[str, ...] = ()      # only files under these library folders
    include_errors: bool = False
    limit: int = 50
    offset: int = 0


def fts_expression(text: str) -> str:
    """The FTS5 expression for free *text* (see module docstring); raises QueryError on unbalanced quotes."""
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"the search text is {len(text)} characters; the limit is {MAX_QUERY_CHARS}")
    parts = []
    for tok in _TOKEN.findall(text):
        if tok.startswith('"'):
            if len(tok) < 2 or not tok.endswith('"'):
                raise QueryError(f"unbalanced quote in search text {text!r}: close the phrase with '\"'")
            words = re.findall(r"\w+", tok[1:-1])
            if words:
                parts.append('"' + " ".join(words) + '"')
        elif tok in ("(", ")") or tok in _OPERATORS:
            parts.append(tok)
        elif tok.endswith("*"):
            parts.append(f'"{tok[:-1]}"*')
        else:
            parts.append(f'"{tok}"')
    return " ".join(parts)


def _where(q: Query, *, text: bool = True) -> tuple[list[str], list[Any]]:
    """SQL conditions for *q* (the full-text one only with *text*) and their bound values."""
    clauses, args = [], []
    if not q.include_errors:
        clauses.append("f.error IS NULL")
    expr = fts_expression(q.text) if q.text and text else ""
    if expr:
        clauses.append("f.id IN (SELECT rowid FROM files_fts WHERE files_fts MATCH ?)")
        args.append(expr)
    if q.model is not None:
        clauses.append("(f.model = ? OR f.model_repo = ? OR f.model_local = ?)")
        args += [q.model] * 3
    for column, value in (("model_family", q.family), ("source_tool", q.tool), ("width", q.width), ("height", q.height)):
        if isinstance(value, int) and not 0 <= value < _INT64:
            raise QueryError(f"{column} must be 0..{_INT64 - 1}")
        if value is not None:
            clauses.append(f"f.{column} = ? COLLATE NOCASE" if isinstance(value, str) else f"f.{column} = ?")
            args.append(value)
    if q.seed is not None:
        clauses.append("f.seed = ?")
        args.append(str(q.seed))
    if q.lora is not None:  # a list the planner may also start from (a LoRA's files are often few)
        clauses.append("f.id IN (SELECT file_id FROM loras WHERE name = ? COLLATE NOCASE)")
        args.append(q.lora)
    if q.regenerable is not None:
        clauses.append("f.regenerable = ?")
        args.append(int(q.regenerable))
    for op, seconds in ((">=", q.date_from), ("<", q.date_to)):
        if seconds is not None:
            clauses.append(f"f.mtime_ns {op} ?")
            args.append(max(-_INT64, min(_INT64, int(seconds * 1e9))))
    if q.roots:
        clauses.append(f"f.root IN ({', '.join('?' * len(q.roots))})")
        args += list(q.roots)
    return clauses, args


def _run(conn: sqlite3.Connection, sql: str, args: list) -> list[sqlite3.Row]:
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError as exc:
        if "fts5" in str(exc) or "syntax error" in str(exc) or "malformed MATCH" in str(exc):
            raise QueryError(f"cannot search for this text ({exc}); check AND/OR/NOT, parentheses and quotes") from None
        raise


def search(conn: sqlite3.Connection, q: Query) -> tuple[list[dict], int]:
    """(one page of matching files, newest first, as dicts; the number of matches, counted up to COUNT_CAP).

    The page's ids come first, from covering indexes (files_live, files_order) rather than the rows, then the
    rows of the page alone; the total is counted only when the page is full. SQLite cannot tell how many
    files a full-text match has, so it always starts from the match and sorts it by date: fine for a few
    thousand, slow for a common word. Then the page is found by walking the files newest first instead
    (about N / m index entries per result for m matches of N files), and the total is counted from the match
    (or the LoRA's files) without sorting, stopping at COUNT_CAP.
    """
    if not (0 < q.limit <= MAX_LIMIT) or q.offset < 0:
        raise QueryError(f"limit must be 1..{MAX_LIMIT} and offset at least 0")
    expr = fts_expression(q.text) if q.text else ""
    common = bool(expr) and q.seed is None and _count(conn, "files_fts WHERE files_fts MATCH ?", [expr], SORT_MATCHES + 1) > SORT_MATCHES
    clauses, args = _where(q)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    if common and len(q.roots) > 1:
        common = False  # several folders have no single date order to walk
    # explicit indexes: the planner's statistics are sampled and cannot size a full-text match either
    if common:
        source = "files f INDEXED BY " + ("files_live" if q.roots else "files_mtime")
    elif expr and q.seed is None:
        source = "files f INDEXED BY files_order"  # start from the match, look its files up in the covering index
    else:
        source = "files f"
    page = [r[0] for r in _run(conn, f"SELECT f.id FROM {source} {where} ORDER BY f.mtime_ns DESC, f.id DESC LIMIT ? OFFSET ?",
                               args + [q.limit, q.offset])]
    if len(page) < q.limit and (page or q.offset == 0):
        total = min(q.offset + len(page), COUNT_CAP)  # the last page: nothing more to count
    elif not common:
        total = _count(conn, f"files f {where}", args, COUNT_CAP)
    elif q.lora is not None and _count(conn, "loras WHERE name = ? COLLATE NOCASE", [q.lora], SORT_MATCHES + 1) <= SORT_MATCHES:
        total = _count(conn, "(SELECT DISTINCT file_id FROM loras WHERE name = ? COLLATE NOCASE) l "
                             f"CROSS JOIN files f ON f.id = l.file_id {where}", [q.lora] + args, COUNT_CAP)
    else:
        others, other_args = _where(q, text=False)
        total = _count(conn, "files_fts CROSS JOIN files f ON f.id = files_fts.rowid WHERE files_fts MATCH ?"
                             + "".join(" AND " + c for c in others), [expr] + other_args, COUNT_CAP)
    rows = {r["id"]: r for r in conn.execute(f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM files "
                                             "WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(page),))}
    return [summary(rows[i]) for i in page if i in rows], total


def _count(conn: sqlite3.Connection, source: str, args: list, cap: int) -> int:
    """Rows of ``SELECT 1 FROM source``, counted up to *cap*."""
    return _run(conn, f"SELECT COUNT(*) FROM (SELECT 1 FROM {source} LIMIT ?)", args + [cap])[0][0]


def summary(row: sqlite3.Row) -> dict:
    """A row as JSON-ready dict: syntax fields under their diffusers names, seed as an integer."""
    d = {k: row[k] for k in row.keys()}
    if d.get("seed") is not None:
        d["seed"] = int(d["seed"])
    if d.get("scheduler_config") is not None:
        d["scheduler_config"] = json.loads(d["scheduler_config"])
    for flag in ("regenerable", "has_pixels", "has_residual"):
        if flag in d:
            d[flag] = bool(d[flag])
    d["loras"] = d.pop("lora_names", None).split(" ") if d.get("lora_names") else []
    return d


def detail(conn: sqlite3.Connection, file_id: int) -> dict | None:
    """Everything the index holds about one file (JSON columns decoded), or None."""
    row = conn.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()
    if row is None:
        return None
    d = summary(row)
    for key in ("platform", "model_vae", "extensions", "syntax"):
        if d.get(key) is not None:
            d[key] = json.loads(d[key])
    d["loras"] = json.loads(row["loras"]) if row["loras"] else []
    return d
