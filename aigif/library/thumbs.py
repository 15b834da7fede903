"""Thumbnails by regeneration: a disk cache keyed by content hash and a background render worker.

The worker renders one model's files together (the engine keeps one pipeline loaded), so a
library of many models loads each model once per batch, not once per file. A file with stored
pixels or a residual goes through the same decode and shows what those segments hold.
Listeners (the gallery's server-sent events) get a message after every render.
"""
from __future__ import annotations

import json
import os
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import AigifError
from ..fileio import atomic_write, read_limited
from ..limits import DEFAULT_LIMITS
from ..syntax import Document
from ..syntax.elements import to_dict
from .record import parse

THUMB_SIDE = 256
KINDS = ("thumb", "full")


class ThumbCache:
    """PNG files named by content hash in one folder, at most *cap_bytes* in all; least recently used go first."""

    def __init__(self, folder: str | os.PathLike, cap_bytes: int = 512 * 2**20):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.cap_bytes = cap_bytes
        self._lock = threading.Lock()
        self._sizes = {p.name: p.stat().st_size for p in self.folder.glob("*.png")}

    def _path(self, content_hash: str, kind: str) -> Path:
        if kind not in KINDS or not content_hash.isalnum():
            raise ValueError(f"bad cache key {content_hash!r}/{kind!r}")
        return self.folder / f"{content_hash}.{kind}.png"

    def has(self, content_hash: str, kind: str = "thumb") -> bool:
        return self._path(content_hash, kind).name in self._sizes

    def get(self, content_hash: str, kind: str = "thumb") -> bytes | None:
        path = self._path(content_hash, kind)
        try:
            data = path.read_bytes()
            os.utime(path)  # the modification time is the LRU clock
        except FileNotFoundError:
            with self._lock:
                self._sizes.pop(path.name, None)
            return None
        return data

    def put(self, content_hash: str, kind: str, data: bytes) -> None:
        path = self._path(content_hash, kind)
        atomic_write(path, data, overwrite=True)
        with self._lock:
            self._sizes[path.name] = len(data)
            self._evict()

    @property
    def total_bytes(self) -> int:
        return sum(self._sizes.values())

    def _evict(self) -> None:
        if self.total_bytes <= self.cap_bytes:
            return
        by_age = sorted(self._sizes, key=lambda n: _mtime(self.folder / n))
        for name in by_age:
            if self.total_bytes <= self.cap_bytes:
                break
            (self.folder / name).unlink(missing_ok=True)
            del self._sizes[name]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


@dataclass(frozen=True)
class Rendered:
    image: object          # HxWx3 uint8
    status: str | None     # fidelity: exact / close / mismatch / unverified
    source: str            # regenerated / residual / pixels


def engine_renderer() -> Callable[[Document], Rendered]:
    """Decode with one engine (GPU when there is one), keeping a single pipeline loaded."""
    import torch

    from ..engine import Engine

    engine = Engine(device="cuda" if torch.cuda.is_available() else "cpu", cache_size=1)

    def render(doc: Document) -> Rendered:
        result = engine.decode(doc)
        return Rendered(result.image, result.report.status if result.report else None, result.source)

    return render


def png(image, doc: Document, max_side: int | None = None, exact: bool = False) -> bytes:
    """PNG through aigif's one image writer: the AI mark on generated images, the imported C2PA store when *exact*."""
    from PIL import Image

    from ..provenance.export import document_image_bytes

    im = Image.fromarray(image, "RGB")
    if max_side and max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.LANCZOS)
    return document_image_bytes(im, "PNG", doc, exact=exact)


def model_key(doc: Document) -> str:
    """Jobs with equal keys share a loaded pipeline."""
    if doc.pixels is not None:
        return "pixels"
    return json.dumps(to_dict(doc.model), sort_keys=True) if doc.model else "none"


class ThumbWorker:
    """One background thread rendering requested files, grouped by model; results go to the cache and ``renders``."""

    def __init__(self, cache: ThumbCache, db_path: str | os.PathLike, renderer: Callable[[], Callable] = engine_renderer):
        self.cache = cache
        self.db_path = str(db_path)
        self._make_renderer = renderer
        self._render = None
        self._jobs: dict[str, dict] = {}          # content hash -> job (path, key, file ids)
        self._cond = threading.Condition()
        self._listeners: list[queue.Queue] = []
        self._current_key: str | None = None
        self.done = self.failed = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="aigif-thumbs", daemon=True)
        self._thread.start()

    # --- requests ------------------------------------------------------------------
    def request(self, file_id: int, content_hash: str, path: str) -> None:
        """Queue *path* (idempotent per content hash)."""
        with self._cond:
            job = self._jobs.get(content_hash)
            if job is None:
                self._jobs[content_hash] = {"path": path, "ids": {file_id}, "key": None, "at": time.monotonic()}
                self._cond.notify_all()
            else:
                job["ids"].add(file_id)
        self._publish({"event": "progress"})

    def wait(self, content_hash: str, timeout: float) -> bool:
        """Block until *content_hash* is no longer queued; True when its render is in the cache."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while content_hash in self._jobs and time.monotonic() < deadline:
                self._cond.wait(timeout=max(0.0, deadline - time.monotonic()))
        return self.cache.has(content_hash, "full")

    def progress(self) -> dict:
        with self._cond:
            return {"queued": len(self._jobs), "done": self.done, "failed": self.failed}

    def listen(self) -> queue.Queue:
        q: queue.Queue = queue.Queue(maxsize=1000)
        with self._cond:
            self._listeners.append(q)
        return q

    def unlisten(self, q: queue.Queue) -> None:
        with self._cond:
            if q in self._listeners:
                self._listeners.remove(q)

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def _publish(self, message: dict) -> None:
        message = {**message, **self.progress()}
        with self._cond:
            listeners = list(self._listeners)
        for q in listeners:
            try:
                q.put_nowait(message)
            except queue.Full:
                pass

    # --- the worker ------------------------------------------------------------------
    def _next(self) -> tuple[str, dict] | None:
        """The next job: one for the loaded model if any, else the oldest (which switches the model)."""
        with self._cond:
            while not self._jobs and not self._stop:
                self._cond.wait()
            if self._stop:
                return None
            for content_hash, job in self._jobs.items():
                if job["key"] is None:
                    job["key"] = _job_key(job["path"])
            same = [(h, j) for h, j in self._jobs.items() if j["key"] == self._current_key]
            content_hash, job = same[0] if same else min(self._jobs.items(), key=lambda hj: hj[1]["at"])
            self._current_key = job["key"]
            return content_hash, job

    def _run(self) -> None:
        conn = None
        while True:
            item = self._next()
            if item is None:
                break
            content_hash, job = item
            status, error = self._render_one(content_hash, job["path"])
            if conn is None:
                conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
            try:
                conn.execute("INSERT OR REPLACE INTO renders(content_hash, status, source, error, rendered_at) VALUES (?, ?, ?, ?, ?)",
                             (content_hash, *status, error, time.time()))
            except sqlite3.Error:
                pass  # the cache still holds the picture; the status is shown on the next render
            with self._cond:
                self._jobs.pop(content_hash, None)
                if error:
                    self.failed += 1
                else:
                    self.done += 1
                self._cond.notify_all()
            self._publish({"event": "thumb", "ids": sorted(job["ids"]), "ok": error is None})
        if conn is not None:
            conn.close()

    def _render_one(self, content_hash: str, path: str) -> tuple[tuple[str | None, str | None], str | None]:
        try:
            if self._render is None:
                self._render = self._make_renderer()
            doc = parse(read_limited(path, DEFAULT_LIMITS.max_file_bytes))
            out = self._render(doc)
            self.cache.put(content_hash, "full", png(out.image, doc, exact=out.status == "exact"))
            self.cache.put(content_hash, "thumb", png(out.image, doc, THUMB_SIDE))
            return (out.status, out.source), None
        except AigifError as exc:
            return (None, None), str(exc)
        except Exception as exc:  # a renderer failure must not kill the worker
            return (None, None), f"{type(exc).__name__}: {exc}"


def _job_key(path: str) -> str:
    try:
        return model_key(parse(read_limited(path, DEFAULT_LIMITS.max_file_bytes)))
    except AigifError:
        return "none"
