"""Thumbnails: the LRU disk cache, model-grouped rendering, and the real engine on the embedded model."""
import io
import os
import threading

import numpy as np
import pytest
from PIL import Image

import aigif
from aigif.library import connect, index_folders
from aigif.library.thumbs import Rendered, ThumbCache, ThumbWorker, engine_renderer
from aigif.syntax import Document, Generation, ModelRef, dumps


def test_cache_evicts_least_recently_used(tmp_path):
    cache = ThumbCache(tmp_path / "c", cap_bytes=3000)
    for i, name in enumerate("abc"):
        cache.put(name * 64, "thumb", bytes(1000))
        os.utime(cache.folder / f"{name * 64}.thumb.png", (1000 + i, 1000 + i))
    assert cache.get("a" * 64) == bytes(1000)  # touched: now the most recent
    cache.put("d" * 64, "thumb", bytes(1000))
    assert [cache.has(n * 64) for n in "abcd"] == [True, False, True, True]
    assert cache.total_bytes == 3000 and cache.get("b" * 64) is None
    assert ThumbCache(tmp_path / "c", 3000).total_bytes == 3000  # sizes are found again on restart
    with pytest.raises(ValueError):
        cache.get("../../etc/passwd")


def test_worker_renders_one_model_at_a_time(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    order = [("m1", 1), ("m2", 2), ("m1", 3), ("m2", 4), ("m1", 5)]
    paths = []
    for model, seed in order:
        doc = Document(generation=Generation(prompt=f"p{seed}", seed=seed, num_inference_steps=1, guidance_scale=1,
                                             width=8, height=8), model=ModelRef(repo=f"owner/{model}"))
        paths.append(lib / f"{seed}.aigif")
        paths[-1].write_bytes(dumps(doc))
    db = tmp_path / "db.sqlite"
    conn = connect(db)
    index_folders(conn, [lib])
    rows = {r["path"]: (r["id"], r["content_hash"]) for r in conn.execute("SELECT id, path, content_hash FROM files")}
    conn.close()
    go, rendered = threading.Event(), []

    def factory():
        go.wait(10)  # hold the first job until every file is queued

        def render(doc):
            rendered.append(doc.model.repo)
            return Rendered(np.full((8, 8, 3), doc.generation.seed, np.uint8), None, "regenerated")
        return render

    worker = ThumbWorker(ThumbCache(tmp_path / "c"), db, renderer=factory)
    try:
        for p in paths:
            worker.request(*rows[str(p)], str(p))
        go.set()
        for p in paths:
            assert worker.wait(rows[str(p)][1], 10)
    finally:
        worker.close()
    assert rendered == ["owner/m1", "owner/m1", "owner/m1", "owner/m2", "owner/m2"]
    assert worker.progress() == {"queued": 0, "done": 5, "failed": 0}


@pytest.mark.usefixtures("aigif_home")
def test_engine_thumbnails_regenerated_and_from_pixels(tmp_path, monkeypatch):
    from aigif.codec import compress_image

    lib = tmp_path / "lib"
    lib.mkdir()
    gen = aigif.generate("a lighthouse at dusk", seed=5, steps=3, output=str(lib / "regen.aigif"))
    rgb = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    (lib / "pixels.aigif").write_bytes(dumps(Document(pixels=compress_image(rgb, quality=4))))
    db = tmp_path / "db.sqlite"
    conn = connect(db)
    index_folders(conn, [lib])
    rows = {os.path.basename(r["path"]): r for r in conn.execute("SELECT id, path, content_hash FROM files")}
    cache = ThumbCache(tmp_path / "thumbs")
    worker = ThumbWorker(cache, db, renderer=engine_renderer)
    try:
        for r in rows.values():
            worker.request(r["id"], r["content_hash"], r["path"])
        for r in rows.values():
            assert worker.wait(r["content_hash"], 600)
    finally:
        worker.close()
    full = np.asarray(Image.open(io.BytesIO(cache.get(rows["regen.aigif"]["content_hash"], "full"))))
    assert np.array_equal(full, np.asarray(gen.image))  # the thumbnail is the regenerated picture itself
    renders = {r[0]: (r[1], r[2]) for r in conn.execute("SELECT content_hash, status, source FROM renders")}
    assert renders[rows["regen.aigif"]["content_hash"]] == ("exact", "regenerated")
    assert renders[rows["pixels.aigif"]["content_hash"]][1] == "pixels"
    thumb = Image.open(io.BytesIO(cache.get(rows["pixels.aigif"]["content_hash"])))
    assert thumb.size == (48, 32)
    conn.close()
