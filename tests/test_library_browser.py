"""The gallery in a real browser: Debian's Chromium driven by Playwright (no browser download)."""
import json
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from playwright.sync_api import sync_playwright

from aigif.container import Segment
from aigif.library import connect, index_folders
from aigif.library.server import create_app
from aigif.library.thumbs import Rendered, ThumbCache, ThumbWorker
from aigif.syntax import Document, Fingerprint, Generation, Lora, ModelRef, Source, dumps
from aigif.syntax.graph_segment import TYPE_CODE as GRAPH_TYPE, encode_graph

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PROMPTS = ["a red fox in the snow, oil painting", "a lighthouse at dawn, watercolor", "a castle on a hill at dusk",
           "portrait of a cat wearing a hat", "a forest path in autumn", "a city street at night, neon"]


def chromium() -> str:
    """Debian's chromium; its absence fails the test (.ci/run installs it)."""
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    assert path, "Chromium is missing: apt-get install -y chromium (.ci/run installs it when missing)"
    return path


def colour_renderer():
    """Each picture a colour gradient from its seed, standing in for the engine (tested in test_library_thumbs.py)."""
    def render(doc):
        g, s = doc.generation, doc.generation.seed
        y, x = np.mgrid[0:g.height, 0:g.width]
        img = np.stack([(x * 255 // g.width + s * 40) % 256, (y * 255 // g.height + s * 90) % 256,
                        np.full_like(x, (s * 70) % 256)], axis=-1).astype(np.uint8)
        return Rendered(img, "exact", "regenerated")
    return render


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gallery(tmp_path):
    lib = tmp_path / "library"
    lib.mkdir()
    for i, prompt in enumerate(PROMPTS * 12):
        model = ModelRef(name="sdxl", loras=(Lora(name="detail-tweaker", weight=0.7),)) if i % 4 == 1 else ModelRef(name="sd15")
        doc = Document(generation=Generation(prompt=prompt, seed=i, num_inference_steps=25, guidance_scale=7.0,
                                             width=512, height=512, scheduler="dpmpp-2m-karras"), model=model,
                       fingerprint=Fingerprint(pixel_sha256="ab" * 8, width=512, height=512, perceptual=f"{i * 3 % 256:02x}" * 16))
        (lib / f"img{i:03d}.aigif").write_bytes(dumps(doc))
    hostile = Document(generation=Generation(prompt='<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>',
                                             seed=999, num_inference_steps=20, guidance_scale=7.0, width=512, height=512),
                       model=ModelRef(name="sd15"))
    (lib / "hostile.aigif").write_bytes(dumps(hostile))
    graph = {"3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 20}}}
    comfy = Document(generation=Generation(prompt="a comfy owl", seed=5, num_inference_steps=20, guidance_scale=7.0,
                                           width=512, height=512), model=ModelRef(name="sd15"), source=Source(tool="ComfyUI"),
                     extensions=(Segment(GRAPH_TYPE, encode_graph({"prompt": graph})),))
    (lib / "comfy.aigif").write_bytes(dumps(comfy))
    db = tmp_path / "lib.sqlite"
    conn = connect(db)
    index_folders(conn, [lib])
    conn.close()
    worker = ThumbWorker(ThumbCache(tmp_path / "thumbs"), db, renderer=colour_renderer)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(db, [lib], worker.cache, worker), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    worker.close()


def test_gallery_search_detail_screenshot(gallery, tmp_path):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(gallery + "/")
        page.wait_for_selector(".card")
        assert page.locator("#count").inner_text() == "74 files"
        first = page.locator(".card").count()
        page.mouse.wheel(0, 20000)  # infinite scroll loads the next page
        page.wait_for_function(f"document.querySelectorAll('.card').length > {first}")
        # thumbnails arrive through server-sent events and replace the blurred placeholders
        page.wait_for_function("document.querySelectorAll('.card img:not(.placeholder)').length >= 6", timeout=30000)

        page.fill("#q", "lighthouse watercolor")
        page.press("#q", "Enter")
        page.wait_for_function("document.querySelector('#count').textContent === '12 files'")
        page.select_option("#f-model", "sdxl")
        page.wait_for_function("document.querySelector('#count').textContent === '6 files'")
        assert "lighthouse" in page.locator(".card .meta").first.inner_text()

        page.locator(".card").first.click()
        page.wait_for_selector("#detail[open]")
        page.wait_for_function("document.querySelector('#fields').textContent.includes('num_inference_steps')")
        fields = page.locator("#fields").inner_text()
        assert "a lighthouse at dawn, watercolor" in fields and "detail-tweaker" in fields and "dpmpp-2m-karras" in fields
        page.locator("#regenerate").click()
        page.wait_for_function("document.querySelector('#detail-caption').textContent.includes('fidelity: exact')", timeout=30000)
        assert page.locator("#copy-comfyui").is_hidden()  # no ComfyUI graph in this file
        page.locator("#copy").click()
        page.wait_for_selector("#copied:not([hidden])")
        shot = tmp_path / "gallery.png"
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 10_000

        page.locator("#close").click()
        page.fill("#q", "comfy owl")
        page.press("#q", "Enter")
        page.select_option("#f-model", "")
        page.wait_for_function("document.querySelector('#count').textContent === '1 file'")
        page.locator(".card").first.click()
        page.wait_for_selector("#copy-comfyui:not([hidden])")
        page.locator("#copy-comfyui").click()
        page.wait_for_selector("#copied:not([hidden])")
        copied = page.evaluate("navigator.clipboard.readText().catch(() => null)")
        assert copied is None or json.loads(copied) == {"3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 20}}}
        page.locator("#close").click()
        page.fill("#q", '"unclosed')
        page.press("#q", "Enter")
        page.wait_for_selector("#error:not([hidden])")
        assert "unbalanced quote" in page.locator("#error").inner_text()
        assert errors == [] and page.evaluate("window.pwned") is None  # prompts are shown as text, never as HTML
        browser.close()
