"""The img2img extension: entry point, schema, hostile payloads, adapter on a tiny pipeline."""
from __future__ import annotations

import struct
import tomllib
import zlib
from pathlib import Path

import msgpack
import numpy as np
import pytest

import aigif
import aigif_img2img as m
from aigif.container import Segment
from aigif.errors import ConfigError, CorruptError, ModelError
from aigif.syntax import extensions as X

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    monkeypatch.setattr(X, "_BY_TYPE", {})
    monkeypatch.setattr(X, "_BY_NAME", {})
    monkeypatch.setattr(X, "_discovered", True)
    m.register()
    m._PROVIDED.clear()


def _image(seed=0, size=32):
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_entry_point_resolves_to_the_extension():
    eps = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["entry-points"]["aigif.extensions"]
    module, attr = eps["img2img"].split(":")
    exts = getattr(__import__(module), attr)()
    assert exts == [m.EXTENSION] and m.EXTENSION.types == (0x41,) and m.EXTENSION.critical_types == (0x41,)
    assert X.ASSIGNED_EXTENSIONS[0x41].name == m.EXTENSION.name


def test_data_round_trip_embedded_and_referenced():
    img = _image()
    for embed in (True, False):
        data = m.init_image_data(img, 0.3, embed=embed)
        seg = X.extension_segment("img2img", data)
        back = m.EXTENSION.load(seg.payload)
        assert back == {k: (float(v) if k == "strength" else v) for k, v in data.items()}
        assert ("png" in back) is embed and back["image_sha256"] == m.pixel_sha256(img)
    doc = aigif.Document(generation=aigif.Generation(prompt="p", seed=1, num_inference_steps=2, guidance_scale=1.0,
                                                     width=32, height=32),
                         model=aigif.ModelRef(name="aigif-tiny-sd"), extensions=(seg,))
    data = aigif.dumps(doc)
    assert aigif.dumps(aigif.loads(data)) == data
    j = aigif.document_to_dict(aigif.loads(data))["extensions"][0]
    assert j["name"] == "img2img" and j["critical"] is True and j["data"]["strength"] == 0.3


@pytest.mark.parametrize("change", [
    {"strength": -0.01}, {"strength": 1.01}, {"width": 0}, {"height": 16385}, {"image_sha256": "A" * 64},
    {"image_sha256": "a" * 63}, {"png": b"not a png"},
])
def test_bad_data_is_refused_on_encode_and_decode(change):
    data = {**m.init_image_data(_image(), 0.5), **change}
    with pytest.raises(ConfigError):
        m.EXTENSION.encode(data)
    wire = {k: bytes.fromhex(v) if k == "image_sha256" and len(v) == 64 and v.islower() else v for k, v in data.items()}
    with pytest.raises(CorruptError):
        m.EXTENSION.decode(msgpack.packb(wire, use_bin_type=True))


def test_the_digest_is_binary_on_the_wire():
    data = m.init_image_data(_image(), 0.5, embed=False)
    raw = msgpack.unpackb(m.EXTENSION.encode(data))
    assert raw["image_sha256"] == bytes.fromhex(data["image_sha256"])
    assert len(m.EXTENSION.encode(data)) == 81      # 32-byte digest as bin, not 64 hex characters


def _png_header_only(w: int, h: int) -> bytes:
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


def test_hostile_png_is_refused_before_decoding():
    for w, h in ((16384, 16384), (64, 64)):
        data = {"strength": 0.5, "width": w, "height": h, "image_sha256": bytes(32), "png": _png_header_only(w, h)}
        with pytest.raises(CorruptError, match="PNG"):
            m.EXTENSION.decode(msgpack.packb(data, use_bin_type=True))


def test_adapter_on_a_tiny_pipeline(tmp_path):
    import torch

    torch.set_num_threads(1)
    from tiny_pipeline import run, tiny_sd_pipeline

    pipe = tiny_sd_pipeline(tmp_path)
    gen = aigif.Generation(prompt="a cat", seed=5, num_inference_steps=4, guidance_scale=4.0, width=32, height=32)
    base, _ = run(pipe, gen)
    seg = X.extension_segment("img2img", m.init_image_data(_image(1), 0.6))
    out, call = run(pipe, gen, [seg])
    assert type(call.pipe).__name__ == "StableDiffusionImg2ImgPipeline" and call.pipe.unet is pipe.unet
    assert call.call_kwargs["strength"] == 0.6 and "width" not in call.call_kwargs
    again, _ = run(pipe, gen, [seg])
    assert np.array_equal(out, again) and not np.array_equal(out, base)

    wrong_size = aigif.Generation(prompt="a cat", seed=5, num_inference_steps=4, guidance_scale=4.0, width=64, height=64)
    with pytest.raises(ConfigError, match="differs"):
        run(pipe, wrong_size, [seg])
    ref = X.extension_segment("img2img", m.init_image_data(_image(1), 0.6, embed=False))
    with pytest.raises(ModelError):
        run(pipe, gen, [ref])
    m.provide_image(_image(1))
    assert np.array_equal(run(pipe, gen, [ref])[0], out)


def test_adapter_refuses_unsupported_pipelines():
    class FluxPipeline:
        pass

    with pytest.raises(ConfigError, match="no image-to-image pipeline"):
        m.Img2ImgAdapter().adapt(FluxPipeline(), {}, {})


def test_without_the_extension_the_file_is_refused():
    seg = X.extension_segment("img2img", m.init_image_data(_image(), 0.5))
    doc = aigif.Document(generation=aigif.Generation(prompt="p", seed=1, num_inference_steps=2, guidance_scale=1.0,
                                                     width=32, height=32), model=aigif.ModelRef(name="sd15"),
                         extensions=(Segment(seg.type, seg.payload),))
    data = aigif.dumps(doc)
    X.unregister_extension("img2img")
    with pytest.raises(aigif.UnknownSegmentError, match="0x41"):
        aigif.loads(data)
