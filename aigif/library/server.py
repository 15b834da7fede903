"""``aigif serve``: the web gallery, a Starlette app over the library database.

Read-only: only GET routes; it writes nothing into the library folders (thumbnails go to the
cache folder, render results to the database). Only files indexed under the served folders are
reachable, and every file is re-checked to resolve inside its folder before it is read, so a
symbolic link planted after indexing cannot lead outside. Query strings, paths and request
bodies are size-limited before any route runs.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import queue
import sqlite3
import threading
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import AigifError, QueryError
from ..fileio import read_limited
from ..limits import DEFAULT_LIMITS
from .record import parse
from .search import COUNT_CAP, MAX_LIMIT, Query, detail, search
from .thumbs import ThumbCache, ThumbWorker

STATIC = Path(__file__).parent / "static"
MAX_QUERY_BYTES = 2048
MAX_PATH_BYTES = 1024
MAX_BODY_BYTES = 16 * 1024
PAGE = 60
FULL_RENDER_TIMEOUT_S = 600.0
SSE_LIFETIME_S = 300.0  # EventSource reconnects by itself
MMAP_BYTES = 256 * 2**20  # read-only connections map this much of the database


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class RequestLimits:
    """ASGI middleware: refuse long paths and query strings (414) and any request body over the limit (413)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            length = headers.get(b"content-length", b"0")
            if len(scope.get("query_string", b"")) > MAX_QUERY_BYTES or len(scope.get("raw_path") or scope["path"].encode()) > MAX_PATH_BYTES:
                return await PlainTextResponse("request URI too long", 414)(scope, receive, send)
            if b"transfer-encoding" in headers or not length.isdigit() or int(length) > MAX_BODY_BYTES:
                return await PlainTextResponse("request body too large", 413)(scope, receive, send)
        await self.app(scope, receive, send)


class Gallery:
    """The state behind the routes: database path, served folders, thumbnail cache and worker."""

    def __init__(self, db_path, roots: list[Path], cache: ThumbCache, worker: ThumbWorker | None):
        self.db_path = str(db_path)
        self.roots = [Path(r).resolve() for r in roots]
        self.cache = cache
        self.worker = worker
        self._local = threading.local()

    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(Path(self.db_path).resolve().as_uri() + "?mode=ro", uri=True, check_same_thread=False, timeout=30)
            conn.row_factory = sqlite3.Row
            # pages read through a shared mapping: one copy for all request threads instead of a cache in each
            conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
            self._local.conn = conn
        return conn

    def row(self, file_id: int) -> sqlite3.Row | None:
        """The file's row when it is indexed under a served folder and still resolves inside it."""
        row = self.conn().execute("SELECT id, path, root, content_hash, perceptual, error FROM files WHERE id = ?", (file_id,)).fetchone()
        if row is None or row["error"] is not None:
            return None
        return row if self.inside(Path(row["path"])) is not None else None

    def inside(self, path: Path) -> Path | None:
        """*path* resolved, if it is a regular file inside one of the served folders."""
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not real.is_file() or not any(real.is_relative_to(root) for root in self.roots):
            return None
        return real


def _int(request: Request, name: str, default=None, lo: int = 0, hi: int = 2**64 - 1):
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise QueryError(f"{name} must be an integer, got {raw[:40]!r}") from None
    if not lo <= value <= hi:
        raise QueryError(f"{name} must be {lo}..{hi}")
    return value


def _date(request: Request, name: str, end: bool = False) -> float | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        raise QueryError(f"{name} must be a date YYYY-MM-DD, got {raw[:40]!r}") from None
    start = dt.datetime.combine(day, dt.time(), dt.timezone.utc).timestamp()
    return start + 86400 if end else start


def query_limit(request: Request) -> int:
    return _int(request, "limit", PAGE, 1, MAX_LIMIT)


def query_of(request: Request, roots: list[Path]) -> Query:
    p = request.query_params
    size = p.get("size") or ""
    width = height = None
    if size:
        w, _, h = size.partition("x")
        if not (w.isdigit() and h.isdigit()):
            raise QueryError(f"size must be WIDTHxHEIGHT, got {size[:40]!r}")
        width, height = int(w), int(h)
    regen = p.get("regenerable")
    if regen not in (None, "", "0", "1"):
        raise QueryError("regenerable must be 0 or 1")
    return Query(text=p.get("q", ""), model=p.get("model") or None, family=p.get("family") or None,
                 seed=_int(request, "seed"), lora=p.get("lora") or None, tool=p.get("tool") or None,
                 width=width, height=height, regenerable=None if regen in (None, "") else regen == "1",
                 date_from=_date(request, "from"), date_to=_date(request, "to", end=True),
                 roots=tuple(str(r) for r in roots), limit=query_limit(request),
                 offset=_int(request, "offset", 0, 0, 2**31))


def create_app(db_path, roots, cache: ThumbCache, worker: ThumbWorker | None = None) -> Starlette:
    """The gallery app for the files of *roots* indexed in *db_path*."""
    g = Gallery(db_path, roots, cache, worker)

    def files(request: Request):
        items, total = search(g.conn(), query_of(request, g.roots))
        for item in items:
            item["thumb"] = g.cache.has(item["content_hash"])
            if not item["thumb"] and g.worker is not None and request.query_params.get("render", "1") == "1":
                g.worker.request(item["id"], item["content_hash"], item["path"])
        offset = _int(request, "offset", 0)
        nxt = offset + len(items)
        capped = total >= COUNT_CAP
        return JSONResponse({"items": items, "total": total, "total_capped": capped,
                             "next_offset": nxt if (capped and len(items) == query_limit(request)) or nxt < total else None})

    def facets(request: Request):
        marks = ",".join("?" * len(g.roots))
        base = f"FROM files WHERE error IS NULL AND root IN ({marks})"
        args = [str(r) for r in g.roots]

        def distinct(expr):
            return [r[0] for r in g.conn().execute(f"SELECT DISTINCT {expr} {base} AND {expr} IS NOT NULL ORDER BY 1 LIMIT 200", args)]

        return JSONResponse({"models": distinct("model"), "families": distinct("model_family"), "tools": distinct("source_tool"),
                             "sizes": distinct("width || 'x' || height")})

    def one(request: Request):
        row = _row_or_404(g, request)
        d = detail(g.conn(), row["id"])
        render = g.conn().execute("SELECT status, source, error, rendered_at FROM renders WHERE content_hash = ?",
                                  (row["content_hash"],)).fetchone()
        d["render"] = dict(render) if render else None
        d["thumb"] = g.cache.has(row["content_hash"])
        d["comfyui"] = "comfyui-graph" in (d.get("extensions") or [])
        d["relative_path"] = Path(row["path"]).relative_to(row["root"]).as_posix()
        d["root_index"] = next((i for i, r in enumerate(g.roots) if str(r) == row["root"]), None)
        return JSONResponse(d)

    def parameters(request: Request):
        from ..importers.a1111_write import a1111_parameters

        row = _row_or_404(g, request)
        doc = parse(read_limited(row["path"], DEFAULT_LIMITS.max_file_bytes))
        return PlainTextResponse(a1111_parameters(doc))

    def comfyui(request: Request):
        """The ComfyUI API graph (``?part=workflow``: the UI workflow) an imported file keeps, as JSON."""
        from ..syntax.builtin import comfyui_graph

        part = request.query_params.get("part", "prompt")
        if part not in ("prompt", "workflow"):
            raise QueryError(f"part must be prompt or workflow, got {part[:40]!r}")
        row = _row_or_404(g, request)
        graph = comfyui_graph(parse(read_limited(row["path"], DEFAULT_LIMITS.max_file_bytes)))
        if graph is None or part not in graph:
            return JSONResponse({"error": f"the file keeps no ComfyUI {'graph' if part == 'prompt' else part}", "kind": "missing"}, 404)
        return JSONResponse(graph[part])

    def placeholder(request: Request):
        row = _row_or_404(g, request)
        return Response(placeholder_png(row["perceptual"]), media_type="image/png", headers={"Cache-Control": "max-age=86400"})

    def thumb(request: Request):
        row = _row_or_404(g, request)
        data = g.cache.get(row["content_hash"], "thumb")
        if data is not None:
            return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})
        if g.worker is None:
            return JSONResponse({"error": "no thumbnail and rendering is off"}, 404)
        g.worker.request(row["id"], row["content_hash"], row["path"])
        return JSONResponse({"queued": True}, 202)

    async def image(request: Request):
        row = await run_in_threadpool(_row_or_404, g, request)
        data = g.cache.get(row["content_hash"], "full")
        if data is None:
            if g.worker is None:
                return JSONResponse({"error": "no rendered image and rendering is off"}, 404)
            g.worker.request(row["id"], row["content_hash"], row["path"])
            await run_in_threadpool(g.worker.wait, row["content_hash"], FULL_RENDER_TIMEOUT_S)
            data = g.cache.get(row["content_hash"], "full")
        if data is None:
            err = g.conn().execute("SELECT error FROM renders WHERE content_hash = ?", (row["content_hash"],)).fetchone()
            return JSONResponse({"error": (err and err[0]) or "the image could not be rendered"}, 503)
        headers = {"Cache-Control": "private, max-age=86400"}
        if request.query_params.get("download") == "1":
            name = Path(row["path"]).stem.encode("ascii", "replace").decode().replace('"', "_")
            headers["Content-Disposition"] = f'attachment; filename="{name}.regenerated.png"'
        return Response(data, media_type="image/png", headers=headers)

    def original(request: Request):
        index = request.path_params["root"]
        if index >= len(g.roots):
            return JSONResponse({"error": "no such folder"}, 404)
        real = g.inside(g.roots[index] / request.path_params["path"])
        if real is None or not real.is_relative_to(g.roots[index]) or real.suffix.lower() != ".aigif":
            return JSONResponse({"error": "no such file"}, 404)
        return FileResponse(real, media_type="application/octet-stream", filename=real.name)

    async def events(request: Request):
        if g.worker is None:
            return JSONResponse({"error": "rendering is off"}, 404)
        limit = _int(request, "max", 10**9, 1, 10**9)
        lifetime = _int(request, "seconds", int(SSE_LIFETIME_S), 1, int(SSE_LIFETIME_S))

        async def stream():
            q = g.worker.listen()
            sent = 0
            try:
                yield f"event: progress\ndata: {json.dumps(g.worker.progress())}\n\n"
                loop_end = asyncio.get_running_loop().time() + lifetime
                while sent < limit and asyncio.get_running_loop().time() < loop_end:
                    try:
                        msg = q.get_nowait()
                    except queue.Empty:
                        if await request.is_disconnected():
                            break
                        await asyncio.sleep(0.2)
                        continue
                    sent += 1
                    data = {k: v for k, v in msg.items() if k != "event"}
                    yield f"event: {msg['event']}\ndata: {json.dumps(data)}\n\n"
            finally:
                g.worker.unlisten(q)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    def home(request: Request):
        return FileResponse(STATIC / "index.html", media_type="text/html")

    routes = [
        Route("/", home),
        Route("/api/files", files),
        Route("/api/facets", facets),
        Route("/api/files/{id:int}", one),
        Route("/api/files/{id:int}/parameters", parameters),
        Route("/api/files/{id:int}/comfyui", comfyui),
        Route("/api/files/{id:int}/placeholder.png", placeholder),
        Route("/api/files/{id:int}/thumb.png", thumb),
        Route("/api/files/{id:int}/image.png", image),
        Route("/api/events", events),
        Route("/files/{root:int}/{path:path}", original),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={AigifError: _aigif_error})
    app.state.gallery = g
    return RequestLimits(app)


async def _aigif_error(request: Request, exc: AigifError):
    return JSONResponse({"error": str(exc), "kind": exc.kind}, 400)


def _row_or_404(g: Gallery, request: Request):
    from starlette.exceptions import HTTPException

    row = g.row(request.path_params["id"])
    if row is None:
        raise HTTPException(404, "no such file in the served folders")
    return row


def placeholder_png(perceptual: str | None) -> bytes:
    """The 4x4 luma fingerprint as a tiny grey PNG (the browser scales it up smoothly); not a picture, so no AI mark."""
    from PIL import Image

    from ..provenance.export import image_bytes

    try:
        grid = bytes.fromhex(perceptual) if perceptual else b""
    except ValueError:
        grid = b""
    im = Image.frombytes("L", (4, 4), grid) if len(grid) == 16 else Image.new("L", (1, 1), 128)
    return image_bytes(im, "PNG", ai_label=False)
