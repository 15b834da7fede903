"""Regeneration engine: determinism across processes, platform pinning, model identity and safety, CLI."""
import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import aigif
from aigif import Document, Generation, ModelRef, dumps, loads
from aigif.errors import AigifError, ModelError, ModelMismatchError, UnsafeModelError
from aigif.fidelity import CLOSE, EXACT, MISMATCH, fingerprint, psnr

from .fresh_process import decode_in_fresh_process

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("aigif_home")  # a fresh $AIGIF_HOME per module (conftest.py)


@pytest.fixture(scope="module")
def engine(aigif_home):
    from aigif.engine import Engine

    return Engine(threads=1)


def gen(prompt="a red lighthouse at dawn", seed=7, steps=3, scheduler=None, **kw):
    return Generation(prompt=prompt, seed=seed, num_inference_steps=steps, guidance_scale=7.5, width=64, height=64,
                      scheduler=scheduler, **kw)


CASES = [
    ("aigif-tiny-sd", None),                 # the pipeline's own scheduler (PNDM)
    ("aigif-tiny-sd", "euler-a"),            # ancestral: per-step noise from the seeded generator
    ("aigif-tiny-sd", "DPM++ 2M Karras"),    # A1111 name, Karras sigmas
    ("aigif-tiny-sdxl", "ddim"),
    ("aigif-tiny-sdxl", "euler"),
]


def test_generate_then_decode_in_another_process_is_bit_identical(engine, tmp_path, aigif_home):
    files, images = [], []
    for i, (model, sched) in enumerate(CASES):
        res = engine.generate(gen(scheduler=sched, seed=100 + i), ModelRef(name=model))
        assert res.image.dtype == np.uint8 and res.image.shape == (64, 64, 3)
        doc = loads(dumps(res.document))
        assert doc.platform.threads == 1 and doc.platform.dtype == "float32" and doc.fingerprint is not None
        assert doc.model == ModelRef(name=model)            # registry names stay bare: the registry pins the digest
        if sched == "DPM++ 2M Karras":
            assert doc.generation.scheduler == "dpmpp-2m-karras"
        f = tmp_path / f"img{i}.aigif"
        f.write_bytes(dumps(res.document))
        files.append(f)
        images.append(res.image)
    out = tmp_path / "out"
    decode_in_fresh_process(files, out, aigif_home, images)


def test_engine_equals_a_bare_diffusers_call(engine):
    """The engine adds nothing to the numerics: same pixels as pipe(prompt, generator=CPU seed)."""
    import torch

    g = gen(seed=11)
    ours = engine.generate(g).image
    loaded = engine._loaded(ModelRef(name="aigif-tiny-sd"), "float32", "sdpa")
    pipe = loaded.pipe
    torch.set_num_threads(1)
    from aigif.engine.schedulers import make_scheduler

    pipe.scheduler = make_scheduler(loaded.scheduler_cls, loaded.scheduler_config, None, None)
    out = pipe(g.prompt, num_inference_steps=3, guidance_scale=7.5, width=64, height=64,
               generator=torch.Generator("cpu").manual_seed(11), output_type="np").images[0]
    assert np.array_equal(np.round(out * 255).astype(np.uint8), ours)


def test_batch_index_is_the_kth_image_of_a_seeded_batch():
    import torch

    from aigif.engine.noise import initial_latents

    lat, _ = initial_latents(5, 2, (4, 8, 8))
    ref = torch.randn((3, 4, 8, 8), generator=torch.Generator().manual_seed(5))[2:3]
    assert torch.equal(lat, ref)
    lat0, _ = initial_latents(2**64 - 1, None, (4, 8, 8))      # the full 64-bit seed range
    assert lat0.shape == (1, 4, 8, 8)


def test_prompt_and_seed_change_the_image(engine):
    a = engine.generate(gen("a red lighthouse at dawn")).image
    b = engine.generate(gen("portrait of an old fisherman, oil painting")).image
    c = engine.generate(gen("a red lighthouse at dawn", seed=8)).image
    assert psnr(a, b) < 25 and psnr(a, c) < 25
    assert np.array_equal(a, engine.generate(gen("a red lighthouse at dawn")).image)


def test_platform_change_is_not_reported_exact(engine):
    import torch

    res = engine.generate(gen(seed=21, negative_prompt="blurry", clip_skip=1, guidance_rescale=0.3))
    doc = res.document
    threads_before = torch.get_num_threads()
    exact = engine.decode(doc)
    assert exact.report.status == EXACT and exact.report.exit_code == 0
    changed = doc.replace(platform=dataclasses.replace(doc.platform, dtype="bfloat16"))
    out = engine.decode(changed)
    assert not np.array_equal(out.image, res.image)
    assert out.report.status in (CLOSE, MISMATCH) and out.report.exit_code in (3, 4)
    # fields the engine cannot pin (library versions, device, CPU) are reported as differences
    older = doc.replace(platform=dataclasses.replace(doc.platform, torch="1.0.0"))
    assert any(d.startswith("torch 1.0.0 ->") for d in engine.decode(older).report.platform_diffs)
    assert torch.get_num_threads() == threads_before      # pinned settings are restored


def test_decode_with_reference_and_tampered_fingerprint(engine):
    res = engine.generate(gen(seed=31))
    other = engine.generate(gen("a green forest", seed=32)).image
    doc = res.document.replace(fingerprint=fingerprint(other))
    assert engine.decode(doc).report.status == MISMATCH
    r = engine.verify(res.document, res.image)
    assert r.status == EXACT and r.reference == "image"


def test_model_digest_mismatch(engine):
    doc = engine.generate(gen(seed=41)).document
    bad = doc.replace(model=ModelRef(name="aigif-tiny-sd", sha256="0" * 64))
    with pytest.raises(ModelMismatchError, match="trust-model-mismatch"):
        engine.regenerate(bad)
    from aigif.engine import Engine

    trusting = Engine(threads=1, verify_weights=False)
    assert trusting.decode(bad).report.status == EXACT
    # the A1111 AutoV2 short hash (10 hex) of the right digest is accepted
    full = aigif.syntax.registry.model_entry("aigif-tiny-sd").sha256
    assert engine.decode(doc.replace(model=ModelRef(name="aigif-tiny-sd", sha256=full[:10]))).report.status == EXACT


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, aigif_home):
    from aigif.engine.tiny import ensure_tiny

    d = tmp_path_factory.mktemp("models")
    shutil.copytree(ensure_tiny("aigif-tiny-sd"), d / "mytiny")
    return d


def test_local_model_in_model_dir(model_dir):
    from aigif.engine import Engine

    e = Engine(model_dirs=[model_dir], threads=1)
    res = e.generate(gen(seed=51), ModelRef(local="mytiny"))
    assert res.document.model.sha256 == aigif.syntax.registry.model_entry("aigif-tiny-sd").sha256
    assert res.document.model.family == "sd1"
    assert e.decode(loads(dumps(res.document))).report.status == EXACT
    assert e.pipelines_loaded == 1                       # cached across images
    with pytest.raises(UnsafeModelError, match="model dir"):
        Engine(model_dirs=[], threads=1).regenerate(res.document)


def _variant(model_dir: Path, name: str) -> Path:
    dst = model_dir / name
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(model_dir / "mytiny", dst)
    return dst


def test_unsafe_models_are_refused(model_dir):
    from aigif.engine import Engine

    e = Engine(model_dirs=[model_dir], threads=1)
    # a path from the file that leaves the model dirs
    for local in ("../../etc", "/etc", "mytiny/../../.."):
        with pytest.raises(UnsafeModelError):
            e.generate(gen(), ModelRef(local=local))
    # pickle weights only
    d = _variant(model_dir, "pickled")
    (d / "unet" / "diffusion_pytorch_model.safetensors").rename(d / "unet" / "diffusion_pytorch_model.bin")
    with pytest.raises(UnsafeModelError, match="pickle"):
        e.generate(gen(), ModelRef(local="pickled"))
    # a pipeline class outside the allowlist / custom component code
    d = _variant(model_dir, "custom")
    idx = json.loads((d / "model_index.json").read_text())
    (d / "model_index.json").write_text(json.dumps(dict(idx, _class_name="EvilPipeline")))
    with pytest.raises(UnsafeModelError, match="not allowed"):
        e.generate(gen(), ModelRef(local="custom"))
    (d / "model_index.json").write_text(json.dumps(dict(idx, unet=["evil_module", "EvilUNet"])))
    with pytest.raises(UnsafeModelError, match="allowlisted"):
        e.generate(gen(), ModelRef(local="custom"))
    (d / "model_index.json").write_text(json.dumps(idx))
    (d / "unet" / "evil_module.py").write_text("raise SystemExit('ran code')\n")
    with pytest.raises(UnsafeModelError, match="code"):
        e.generate(gen(), ModelRef(local="custom"))
    # a single-file checkpoint that is not safetensors
    (model_dir / "model.ckpt").write_bytes(b"\x80\x04pickle")
    with pytest.raises(UnsafeModelError, match="safetensors"):
        e.generate(gen(), ModelRef(local="model.ckpt", family="sd1"))


def test_tampered_local_weights_mismatch(model_dir):
    from aigif.engine import Engine

    e = Engine(model_dirs=[model_dir], threads=1)
    doc = e.generate(gen(seed=61), ModelRef(local="mytiny")).document
    d = _variant(model_dir, "tampered")
    w = d / "vae" / "diffusion_pytorch_model.safetensors"
    blob = bytearray(w.read_bytes())
    blob[-1] ^= 0x01
    w.write_bytes(bytes(blob))
    with pytest.raises(ModelMismatchError):
        e.regenerate(doc.replace(model=dataclasses.replace(doc.model, local="tampered")))


def test_missing_model_offline_says_how_to_get_it(tmp_path, monkeypatch):
    from aigif.engine import Engine

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    e = Engine(threads=1)
    with pytest.raises(ModelError) as info:
        e.generate(gen(), ModelRef(repo="aigif-test/does-not-exist", revision="main"))
    msg = str(info.value)
    assert "huggingface-cli download aigif-test/does-not-exist" in msg and "--allow-network" in msg and "--model-dir" in msg


def test_tiny_build_is_reproducible(tmp_path):
    from aigif.engine.digest import folder_digest
    from aigif.engine.tiny import build_tiny

    folder = build_tiny("aigif-tiny-sd", tmp_path / "t")
    assert folder_digest(folder) == aigif.syntax.registry.model_entry("aigif-tiny-sd").sha256
    assert not list(folder.rglob("*.bin"))


class _FakeCodec:
    @staticmethod
    def decompress_pixels(data, *, max_pixels):
        assert max_pixels == aigif.DEFAULT_LIMITS.max_render_pixels
        return np.frombuffer(data, np.uint8).reshape(8, 8, 3)

    @staticmethod
    def decompress_residual(data, reference, *, max_pixels):
        return (reference.astype(np.int16) + data[0]).clip(0, 255).astype(np.uint8)


def test_decode_pixels_and_residual_segments(engine, monkeypatch):
    import aigif.engine.engine as eng

    monkeypatch.setattr(eng, "_codec", lambda: _FakeCodec)
    pix = np.arange(192, dtype=np.uint8).reshape(8, 8, 3)
    out = engine.decode(Document(pixels=pix.tobytes(), fingerprint=fingerprint(pix)))
    assert out.source == "pixels" and np.array_equal(out.image, pix) and out.report.status == EXACT
    res = engine.generate(gen(seed=71))
    target = (res.image.astype(np.int16) + 3).clip(0, 255).astype(np.uint8)
    doc = res.document.replace(residual=bytes([3]), fingerprint=fingerprint(target))
    out = engine.decode(doc)
    assert out.source == "residual" and np.array_equal(out.image, target) and out.report.status == EXACT


def test_cli_generate_decode_verify(tmp_path):
    from PIL import Image

    from aigif.cli.engine_cmds import cli_decode, cli_generate, cli_verify

    lines = []
    out, png = tmp_path / "out.aigif", tmp_path / "out.png"
    assert cli_generate("a small boat", out, png=png, steps=2, seed=3, threads=1, progress=False, echo=lines.append) == 0
    assert out.stat().st_size < 400
    with pytest.raises(AigifError, match="--force"):
        cli_generate("a small boat", out, steps=2, seed=3, threads=1, progress=False, echo=lines.append)
    assert cli_decode([out], tmp_path / "regen.png", progress=False, echo=lines.append) == 0
    assert (tmp_path / "regen.png").read_bytes() == png.read_bytes()
    assert cli_verify(out, png, progress=False, echo=lines.append) == 0
    noisy = np.asarray(Image.open(png)).astype(np.int16)
    noisy[::7, ::5] += 9
    Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(tmp_path / "noisy.png")
    assert cli_verify(out, tmp_path / "noisy.png", progress=False, echo=lines.append) == 3
    assert cli_verify(out, tmp_path / "noisy.png", min_psnr=60, progress=False, echo=lines.append) == 4
    assert any("close (PSNR" in line for line in lines)


def test_cli_pack_and_generate_write_the_same_defaults(tmp_path):
    """`aigif pack` and `aigif generate` fill left-out values alike for the same model (the tiny one: 64 px, 10 steps)."""
    from aigif.cli import main

    desc = tmp_path / "d.json"
    desc.write_text(json.dumps({"model": "aigif-tiny-sd", "prompt": "a small boat", "seed": 3, "scheduler": "Euler a"}))
    assert main(["pack", str(desc), "-o", str(tmp_path / "p.aigif")]) == 0
    assert main(["generate", "-p", "a small boat", "-m", "aigif-tiny-sd", "-s", "3", "--sampler", "Euler a", "-q",
                 "-o", str(tmp_path / "g.aigif")]) == 0
    packed, generated = (aigif.load(tmp_path / n).generation for n in ("p.aigif", "g.aigif"))
    assert packed == generated
    assert (packed.width, packed.height, packed.num_inference_steps, packed.guidance_scale, packed.scheduler) == (64, 64, 10, 7.5, "euler-a")


def test_every_registry_scheduler_renders_or_names_its_missing_package(engine):
    from aigif.errors import ConfigError
    from aigif.syntax.registry import SCHEDULERS

    from aigif.syntax.registry import is_flow_scheduler

    rendered = 0
    for entry in SCHEDULERS.values():
        if is_flow_scheduler(entry):   # flow-matching schedulers: tests/test_engine_flow.py
            with pytest.raises(ConfigError, match="flow-matching"):
                engine.generate(gen(scheduler=entry.name, steps=2, seed=81))
            continue
        try:
            img = engine.generate(gen(scheduler=entry.name, steps=2, seed=81)).image
        except ConfigError as exc:
            assert "pip install" in str(exc) or "requires" in str(exc), (entry.name, str(exc))
            continue
        assert img.std() > 5, entry.name
        rendered += 1
    assert rendered >= 20


def test_sdxl_options(engine):
    base = engine.generate(gen(seed=91), ModelRef(name="aigif-tiny-sdxl")).image
    neg = engine.generate(gen(seed=91, negative_prompt="fog", clip_skip=1), ModelRef(name="aigif-tiny-sdxl"))
    assert not np.array_equal(base, neg.image)
    assert engine.decode(neg.document).report.status == EXACT


def test_model_digest_definition(tmp_path):
    import hashlib

    from aigif.engine.digest import digest_matches, folder_digest

    (tmp_path / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
        "text_encoder": ["transformers", "CLIPTextModel"], "safety_checker": [None, None]}))
    files = {"unet/diffusion_pytorch_model.safetensors": b"u", "unet/diffusion_pytorch_model.fp16.safetensors": b"h",
             "text_encoder/model.safetensors": b"t", "root.safetensors": b"r", "unet/notes.txt": b"x"}
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    manifest = "".join(f"{rel}\0{hashlib.sha256(files[rel]).hexdigest()}\n"
                       for rel in sorted(["unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"]))
    assert folder_digest(tmp_path) == hashlib.sha256(manifest.encode()).hexdigest()
    fp16 = f"unet/diffusion_pytorch_model.fp16.safetensors\0{hashlib.sha256(b'h').hexdigest()}\n"
    assert folder_digest(tmp_path, "fp16") == hashlib.sha256(fp16.encode()).hexdigest()
    full = folder_digest(tmp_path)
    assert digest_matches(full[:10], full) and digest_matches(full, full) and not digest_matches(full[:9], full)


def test_digest_cache_is_keyed_by_path_size_mtime(tmp_path, monkeypatch):
    import hashlib
    import sqlite3

    from aigif.engine import digest, hashcache

    monkeypatch.setenv("AIGIF_HOME", str(tmp_path / "home"))
    f = tmp_path / "w.safetensors"
    data = b"\1" * (4 * 2**20)
    f.write_bytes(data)
    real = hashlib.sha256(data).hexdigest()
    assert digest.file_sha256(f) == real
    with sqlite3.connect(tmp_path / "home" / "hashes.sqlite") as conn:        # prove the cache is what answers
        assert conn.execute("UPDATE hashes SET value = ? WHERE path = ? AND kind = 'sha256'",
                            ("ab" * 32, str(f.resolve()))).rowcount == 1
    hashcache.forget_memo()
    assert digest.file_sha256(f) == "ab" * 32
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))   # touched: hashed again
    hashcache.forget_memo()
    assert digest.file_sha256(f) == real


def test_real_sd15_layout_is_accepted(model_dir):
    """The model_index.json of stable-diffusion-v1-5 (safety checker named by its diffusers sub-package)."""
    from aigif.engine import Engine

    d = _variant(model_dir, "sd15like")
    idx = json.loads((d / "model_index.json").read_text())
    idx.update(safety_checker=["stable_diffusion", "StableDiffusionSafetyChecker"],
               feature_extractor=["transformers", "CLIPImageProcessor"], requires_safety_checker=True)
    (d / "model_index.json").write_text(json.dumps(idx))
    (d / "feature_extractor").mkdir()
    (d / "feature_extractor" / "preprocessor_config.json").write_text("{}")
    e = Engine(model_dirs=[model_dir], threads=1)
    res = e.generate(gen(seed=101), ModelRef(local="sd15like"))
    assert e.decode(res.document).report.status == EXACT


def test_render_size_limit_needs_consent(engine):
    """A tiny file may not demand a huge render: LimitError, unless the engine is told to allow it."""
    from aigif import Limits
    from aigif.engine import Engine
    from aigif.errors import LimitError

    big = Generation(prompt="x", seed=1, num_inference_steps=1, guidance_scale=1.0, width=8192, height=4096)
    with pytest.raises(LimitError, match="max_render_pixels"):
        engine.generate(big)
    small = Generation(prompt="x", seed=1, num_inference_steps=1, guidance_scale=1.0, width=64, height=64)
    with pytest.raises(LimitError, match="max_render_pixels"):
        Engine(threads=1, limits=Limits(max_render_pixels=64 * 64 - 1)).generate(small)
    assert Engine(threads=1, limits=Limits(max_render_pixels=64 * 64)).generate(small).image.shape == (64, 64, 3)
