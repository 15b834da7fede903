"""The gallery's HTTP endpoints (Starlette TestClient): listing, search, detail, images, events, safety."""
import io
import os

import numpy as np
import pytest
from PIL import Image

from starlette.testclient import TestClient

from aigif.cli import main
from aigif.library import connect, index_folders
from aigif.library.server import MAX_QUERY_BYTES, create_app, is_loopback
from aigif.library.thumbs import Rendered, ThumbCache, ThumbWorker
from aigif.syntax import Document, Fingerprint, Generation, ModelRef, Source, dumps


def make(path, prompt, seed=1, model="sd15", **kw):
    doc = Document(generation=Generation(prompt=prompt, seed=seed, num_inference_steps=20, guidance_scale=7.0,
                                         width=kw.pop("width", 512), height=512), model=ModelRef(name=model), **kw)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(dumps(doc))
    return path


def gradient_renderer():
    """Stands in for the engine in HTTP tests (the engine path has its own test in test_library_thumbs.py)."""
    def render(doc):
        g = doc.generation
        img = np.zeros((g.height, g.width, 3), np.uint8)
        img[..., 0] = g.seed % 256
        return Rendered(img, "exact", "regenerated")
    return render


@pytest.fixture
def site(tmp_path):
    lib = tmp_path / "lib"
    make(lib / "fox.aigif", "a red fox in the snow", seed=42,
         fingerprint=Fingerprint(pixel_sha256="00" * 8, width=512, height=512, perceptual="10" * 8 + "f0" * 8))
    make(lib / "sub" / "castle.aigif", "a castle at dusk", seed=7, model="sdxl", width=1024)
    make(lib / "imported.aigif", "a cat", seed=3, source=Source(tool="ComfyUI"))
    (lib / "readme.txt").write_text("not served")
    other = tmp_path / "other"
    make(other / "secret.aigif", "a secret prompt", seed=9)
    db = tmp_path / "lib.sqlite"
    conn = connect(db)
    index_folders(conn, [lib, other])  # the database knows a folder that is not served
    conn.close()
    cache = ThumbCache(tmp_path / "thumbs", 10 * 2**20)
    worker = ThumbWorker(cache, db, renderer=gradient_renderer)
    client = TestClient(create_app(db, [lib], cache, worker), base_url="http://127.0.0.1")
    yield client, lib, other, worker
    worker.close()


def ids(client, **params):
    r = client.get("/api/files", params={"render": "0", **params})
    assert r.status_code == 200, r.text
    return {os.path.basename(i["path"]): i["id"] for i in r.json()["items"]}


def test_home_and_static(site):
    client = site[0]
    r = client.get("/")
    assert r.status_code == 200 and "aigif gallery" in r.text and "text/html" in r.headers["content-type"]
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert client.get("/static/%2e%2e/server.py").status_code == 404


def test_listing_search_and_filters(site):
    client = site[0]
    r = client.get("/api/files", params={"render": "0", "limit": 2})
    page = r.json()
    assert page["total"] == 3 and len(page["items"]) == 2 and page["next_offset"] == 2
    assert client.get("/api/files", params={"render": "0", "offset": 2}).json()["next_offset"] is None
    assert set(ids(client)) == {"fox.aigif", "castle.aigif", "imported.aigif"}  # not the other folder's file
    assert set(ids(client, q="fox")) == {"fox.aigif"}
    assert set(ids(client, q="secret")) == set()
    assert set(ids(client, model="sdxl")) == {"castle.aigif"}
    assert set(ids(client, family="sd1")) == {"fox.aigif", "imported.aigif"}
    assert set(ids(client, size="1024x512")) == {"castle.aigif"}
    assert set(ids(client, tool="comfyui")) == {"imported.aigif"}
    assert set(ids(client, regenerable="1", seed="42")) == {"fox.aigif"}
    assert set(ids(client, **{"from": "2000-01-01", "to": "2999-12-31"})) == {"fox.aigif", "castle.aigif", "imported.aigif"}
    assert set(ids(client, to="2000-01-01")) == set()


@pytest.mark.parametrize("params,kind", [({"q": '"open'}, "query"), ({"q": "fox AND"}, "query"), ({"seed": "x"}, "query"),
                                         ({"size": "big"}, "query"), ({"from": "yesterday"}, "query"),
                                         ({"limit": "100000"}, "query"), ({"regenerable": "maybe"}, "query")])
def test_bad_queries_are_400(site, params, kind):
    r = site[0].get("/api/files", params=params)
    assert r.status_code == 400 and r.json()["kind"] == kind and r.json()["error"]


def test_facets(site):
    f = site[0].get("/api/facets").json()
    assert f["models"] == ["sd15", "sdxl"] and f["families"] == ["sd1", "sdxl"]
    assert f["tools"] == ["ComfyUI"] and set(f["sizes"]) == {"512x512", "1024x512"}


def test_detail_parameters_placeholder(site):
    client = site[0]
    fox = ids(client)["fox.aigif"]
    d = client.get(f"/api/files/{fox}").json()
    assert d["syntax"]["prompt"] == "a red fox in the snow" and d["seed"] == 42 and d["relative_path"] == "fox.aigif"
    assert d["render"] is None and d["thumb"] is False and d["root_index"] == 0
    text = client.get(f"/api/files/{fox}/parameters").text
    assert text.startswith("a red fox in the snow\n") and "Seed: 42" in text and "Steps: 20" in text
    ph = Image.open(io.BytesIO(client.get(f"/api/files/{fox}/placeholder.png").content))
    assert ph.size == (4, 4) and ph.getpixel((0, 0)) == 0x10 and ph.getpixel((0, 3)) == 0xF0
    castle = ids(client)["castle.aigif"]
    assert Image.open(io.BytesIO(client.get(f"/api/files/{castle}/placeholder.png").content)).size == (1, 1)
    for path in ("/api/files/999999", "/api/files/999999/parameters", "/api/files/999999/thumb.png"):
        assert client.get(path).status_code == 404


def test_other_folder_and_planted_symlink_are_404(site, tmp_path):
    client, lib, other, _ = site
    conn = connect(tmp_path / "lib.sqlite")
    secret_id = conn.execute("SELECT id FROM files WHERE path LIKE '%secret.aigif'").fetchone()[0]
    conn.close()
    for suffix in ("", "/parameters", "/thumb.png", "/image.png", "/placeholder.png"):
        assert client.get(f"/api/files/{secret_id}{suffix}").status_code == 404
    fox = ids(client)["fox.aigif"]
    (lib / "fox.aigif").unlink()
    (lib / "fox.aigif").symlink_to(other / "secret.aigif")  # planted after indexing
    assert client.get(f"/api/files/{fox}/parameters").status_code == 404
    assert client.get("/files/0/fox.aigif").status_code == 404


def test_thumbnails_render_in_background(site):
    client, _, _, worker = site
    fox = ids(client)["fox.aigif"]
    r = client.get(f"/api/files/{fox}/thumb.png")
    assert r.status_code == 202 and r.json() == {"queued": True}
    d = client.get(f"/api/files/{fox}").json()
    assert worker.wait(d["content_hash"], 30)
    r = client.get(f"/api/files/{fox}/thumb.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    im = Image.open(io.BytesIO(r.content))
    assert im.size == (256, 256) and im.getpixel((5, 5))[0] == 42
    assert client.get(f"/api/files/{fox}").json()["render"]["status"] == "exact"
    items = client.get("/api/files", params={"q": "fox"}).json()["items"]
    assert items[0]["thumb"] is True
    listed = client.get("/api/files").json()  # listing queues what has no thumbnail yet
    assert any(not i["thumb"] for i in listed["items"])
    for i in listed["items"]:
        worker.wait(i["content_hash"], 30)
    assert all(i["thumb"] for i in client.get("/api/files", params={"render": "0"}).json()["items"])


def test_full_image_and_download(site):
    client = site[0]
    castle = ids(client)["castle.aigif"]
    r = client.get(f"/api/files/{castle}/image.png", params={"download": "1"})
    assert r.status_code == 200 and 'filename="castle.regenerated.png"' in r.headers["content-disposition"]
    assert Image.open(io.BytesIO(r.content)).size == (1024, 512)


def test_events_stream(site):
    client, _, _, worker = site
    fox = ids(client)["fox.aigif"]
    worker.request(fox, "0" * 64, "/nonexistent.aigif")  # fails: a thumb event with ok false
    worker.wait("0" * 64, 10)
    with client.stream("GET", "/api/events", params={"max": "1", "seconds": "5"}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        first = "".join(r.iter_text())
    assert first.startswith("event: progress\ndata: {") and '"queued"' in first
    q = worker.listen()
    client.get(f"/api/files/{fox}/thumb.png")
    worker.wait(client.get(f"/api/files/{fox}").json()["content_hash"], 30)
    messages = [q.get(timeout=5) for _ in range(2)]
    worker.unlisten(q)
    assert messages[0]["event"] == "progress" and messages[1] == {"event": "thumb", "ids": [fox], "ok": True, **worker.progress()}


def test_original_file_and_traversal(site):
    client, lib, other, _ = site
    r = client.get("/files/0/sub/castle.aigif")
    assert r.status_code == 200 and r.content == (lib / "sub" / "castle.aigif").read_bytes()
    (lib / "escape.aigif").symlink_to(other / "secret.aigif")
    for path in ("/files/0/..%2Fother%2Fsecret.aigif", "/files/0/%2e%2e/other/secret.aigif", "/files/0/readme.txt",
                 "/files/0//etc/passwd", "/files/0/escape.aigif", "/files/1/secret.aigif", "/files/0/sub",
                 "/files/0/%2Fetc%2Fpasswd", "/files/0/sub/..%2F..%2Fother/secret.aigif"):
        assert client.get(path).status_code == 404, path


def test_read_only_and_request_limits(site):
    client = site[0]
    assert client.post("/api/files", content=b"{}").status_code == 405
    assert client.delete(f"/api/files/{ids(client)['fox.aigif']}").status_code == 405
    assert client.post("/api/files", content=b"x" * 100_000).status_code == 413
    assert client.get("/api/files", params={"q": "a" * (MAX_QUERY_BYTES + 10)}).status_code == 414
    assert client.get("/" + "a" * 2000).status_code == 414


def test_loopback_and_serve_warning(tmp_path, monkeypatch, capsys):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: calls.append((host, port)))
    monkeypatch.setenv("AIGIF_HOME", str(tmp_path / "home"))
    lib = tmp_path / "lib"
    make(lib / "a.aigif", "a")
    assert main(["serve", str(lib), "--db", str(tmp_path / "s.sqlite"), "--no-render"]) == 0
    assert calls[-1] == ("127.0.0.1", 8188) and "warning" not in capsys.readouterr().err
    assert main(["serve", str(lib), "--db", str(tmp_path / "s.sqlite"), "--host", "0.0.0.0", "--port", "9000", "--no-render"]) == 0
    assert calls[-1] == ("0.0.0.0", 9000) and "warning: serving on 0.0.0.0" in capsys.readouterr().err


def test_totals_stop_at_the_count_cap(site, monkeypatch):
    import importlib

    searchmod = importlib.import_module("aigif.library.search")  # the package re-exports the function of that name
    servermod = importlib.import_module("aigif.library.server")

    monkeypatch.setattr(searchmod, "COUNT_CAP", 2)
    monkeypatch.setattr(servermod, "COUNT_CAP", 2)
    page = site[0].get("/api/files", params={"render": "0", "limit": 2}).json()
    assert page["total"] == 2 and page["total_capped"] is True and page["next_offset"] == 2
    rest = site[0].get("/api/files", params={"render": "0", "limit": 2, "offset": 2}).json()
    assert len(rest["items"]) == 1 and rest["next_offset"] is None


def test_comfyui_graph_of_an_imported_file(tmp_path):
    from aigif.container import Segment
    from aigif.syntax.graph_segment import TYPE_CODE, encode_graph

    graph = {"prompt": {"3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 20, "model": ["4", 0]}},
                        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}}}}
    lib = tmp_path / "lib"
    make(lib / "comfy.aigif", "a comfy fox", source=Source(tool="ComfyUI"), extensions=(Segment(TYPE_CODE, encode_graph(graph)),))
    make(lib / "plain.aigif", "a plain fox")
    db = tmp_path / "lib.sqlite"
    conn = connect(db)
    index_folders(conn, [lib])
    conn.close()
    client = TestClient(create_app(db, [lib], ThumbCache(tmp_path / "thumbs"), None), base_url="http://127.0.0.1")
    found = ids(client)
    comfy, plain = found["comfy.aigif"], found["plain.aigif"]
    assert client.get(f"/api/files/{comfy}").json()["comfyui"] is True
    assert client.get(f"/api/files/{plain}").json()["comfyui"] is False
    r = client.get(f"/api/files/{comfy}/comfyui")
    assert r.status_code == 200 and r.json() == graph["prompt"]
    assert client.get(f"/api/files/{comfy}/comfyui", params={"part": "workflow"}).status_code == 404  # none kept
    assert client.get(f"/api/files/{comfy}/comfyui", params={"part": "../etc"}).status_code == 400
    r = client.get(f"/api/files/{plain}/comfyui")
    assert r.status_code == 404 and "no ComfyUI graph" in r.json()["error"]
    assert client.get("/api/files/999999/comfyui").status_code == 404
