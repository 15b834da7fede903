"""``aigif index``, ``aigif search`` and ``aigif serve``: a searchable library of .aigif folders."""
from __future__ import annotations

import json
from pathlib import Path

import typer

from .base import app
from .syntax_cmds import printable, printable_json

DB_HELP = "Library database (default: $AIGIF_HOME/library.sqlite)."


@app.command()
def index(
    folders: list[Path] = typer.Argument(..., help="Folders of .aigif files (searched recursively; only read)."),
    db: Path = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Build or update the library database: new, changed, renamed and deleted files."""
    from ..library.db import connect
    from ..library.index import index_folders

    conn = connect(db)
    try:
        report = index_folders(conn, folders)
    finally:
        conn.close()
    typer.echo(f"indexed {report.seen} files: {report.added} new, {report.updated} changed, {report.renamed} renamed, "
               f"{report.unchanged} unchanged; {report.deleted} removed")
    if report.errors:
        typer.echo(f"{len(report.errors)} file(s) could not be read:", err=True)
        for path, error in report.errors:
            typer.echo(printable(f"  {path}: {error}"), err=True)


@app.command()
def search(
    query: str = typer.Argument("", help='Words of the prompt, model, LoRA or tool; "a phrase", prefix*, AND/OR/NOT.'),
    db: Path = typer.Option(None, "--db", help=DB_HELP),
    model: str = typer.Option(None, "--model", help="Model name, repo or local folder."),
    seed: int = typer.Option(None, "--seed", min=0),
    lora: str = typer.Option(None, "--lora", help="LoRA name."),
    family: str = typer.Option(None, "--family", help="Pipeline family (sd1, sd2, sdxl, ...)."),
    tool: str = typer.Option(None, "--tool", help="Source tool of imported files (A1111, ComfyUI, ...)."),
    limit: int = typer.Option(50, "--limit", min=1, max=500),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list of objects (path and the syntax fields)."),
) -> None:
    """Search the library database."""
    from ..library.db import connect
    from ..library.search import COUNT_CAP, Query
    from ..library.search import search as run_search

    conn = connect(db, create=False)
    try:
        items, total = run_search(conn, Query(text=query, model=model, seed=seed, lora=lora, family=family, tool=tool, limit=limit))
    finally:
        conn.close()
    if as_json:
        typer.echo(printable_json(items))
        return
    for item in items:
        prompt = (item["prompt"] or "").replace("\n", " ")
        typer.echo(printable(f"{item['path']}  {item['model']}  seed {item['seed']}  {prompt[:80]}"))
    typer.echo(f"{len(items)} of {total}{'+' if total >= COUNT_CAP else ''} match(es)", err=True)


@app.command()
def serve(
    folders: list[Path] = typer.Argument(..., help="Folders of .aigif files to show (indexed first; only read)."),
    db: Path = typer.Option(None, "--db", help=DB_HELP),
    host: str = typer.Option(None, "--host", help="Address to listen on (default 127.0.0.1: this computer only)."),
    port: int = typer.Option(8188, "--port", min=1, max=65535),
    cache_mb: int = typer.Option(512, "--cache-mb", min=1, help="Size cap of the thumbnail cache ($AIGIF_HOME/thumbs)."),
    render: bool = typer.Option(True, "--render/--no-render", help="Render thumbnails by regeneration in the background."),
) -> None:
    """Browse and search the folders in a web gallery (thumbnails rendered by regeneration)."""
    from ..engine.paths import aigif_home
    from ..library.db import connect, default_db_path
    from ..library.index import index_folders
    from ..library.server import create_app, is_loopback
    from ..library.thumbs import ThumbCache, ThumbWorker

    db = db or default_db_path()
    conn = connect(db)
    try:
        report = index_folders(conn, folders)
    finally:
        conn.close()
    typer.echo(f"{report.seen} files indexed ({len(report.errors)} unreadable)")
    if host is not None and not is_loopback(host):
        typer.echo(f"aigif: warning: serving on {host}: other computers on the network can browse these folders "
                   "and make this one render images; there is no login", err=True)
    host = host or "127.0.0.1"
    cache = ThumbCache(aigif_home() / "thumbs", cache_mb * 2**20)
    worker = ThumbWorker(cache, db) if render else None
    import uvicorn

    typer.echo(f"gallery at http://{host if ':' not in host else f'[{host}]'}:{port}/  (Ctrl+C stops)")
    try:
        uvicorn.run(create_app(db, folders, cache, worker), host=host, port=port, log_level="warning")
    finally:
        if worker is not None:
            worker.close()
