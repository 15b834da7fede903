"""C2PA Content Credentials on exported images: signed with a chain made here, read back with c2pa-python's Reader."""
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import aigif
from aigif.cli import app
from aigif.errors import ProvenanceError
from aigif.provenance import TRAINED_ALGORITHMIC_MEDIA, digital_source_type, document_image_bytes
from aigif.provenance.c2pa_credentials import load_credentials
from aigif.provenance.c2pa_read import read_credentials
from aigif.syntax import Document, document_to_dict, dumps

from tests.c2pa_certs import make_chain


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return make_chain(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    from aigif.api import generate

    root = tmp_path_factory.mktemp("c2pa")
    res = generate("a lighthouse at dusk", seed=5, steps=2)
    aigif.dump(res.document, root / "gen.aigif")
    return root, res


def one_pixel_changed(png: bytes) -> bytes:
    """The same PNG (every other chunk, the manifest included, byte for byte) with one pixel value changed."""
    chunks, pos = [], 8
    while pos < len(png):
        n, kind = struct.unpack(">I4s", png[pos:pos + 8])
        chunks.append((kind, png[pos + 8:pos + 8 + n]))
        pos += 12 + n
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).copy()
    pixels[0, 0, 0] ^= 0x01
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)      # filter type 0 on every row
    out, done = bytearray(png[:8]), False
    for kind, data in chunks:
        if kind == b"IDAT":
            if done:
                continue
            data, done = zlib.compress(raw), True
        out += struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return bytes(out)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_signed_export_reads_back(chain, made, fmt):
    _, res = made
    creds = load_credentials(chain.chain, chain.key)
    data = document_image_bytes(res.image, fmt, res.document, credentials=creds)
    assert Image.open(io.BytesIO(data)).format == fmt and digital_source_type(data) == TRAINED_ALGORITHMIC_MEDIA
    report = read_credentials(data)
    assert report.state == "untrusted signer" and report.issues == ()          # signature fine, root not trusted
    assert report.digital_source_type == TRAINED_ALGORITHMIC_MEDIA and report.software_agent == "aigif-tiny-sd"
    assert report.generation == document_to_dict(res.document)
    assert "aigif test signer" in report.signer
    assert read_credentials(data, trust_anchors=chain.root.read_bytes()).state == "valid"


def test_one_changed_pixel_is_detected(chain, made):
    _, res = made
    data = document_image_bytes(res.image, "PNG", res.document, credentials=load_credentials(chain.chain, chain.key))
    tampered = one_pixel_changed(data)
    a, b = np.asarray(Image.open(io.BytesIO(data))), np.asarray(Image.open(io.BytesIO(tampered)))
    assert (a != b).sum() == 1
    report = read_credentials(tampered, trust_anchors=chain.root.read_bytes())
    assert report.state == "invalid" and any("dataHash.mismatch" in i for i in report.issues)


def test_unsigned_pixels_only_and_garbage(chain, made):
    from aigif import codec

    _, res = made
    plain = document_image_bytes(res.image, "PNG", res.document)
    assert read_credentials(plain).state == "none"
    pix = Document(pixels=codec.compress_image(np.asarray(res.image), 4))
    data = document_image_bytes(res.image, "PNG", pix, credentials=load_credentials(chain.chain, chain.key))
    assert read_credentials(data).state == "none" and digital_source_type(data) is None     # no AI claim for a photo
    signed = document_image_bytes(res.image, "PNG", res.document, credentials=load_credentials(chain.chain, chain.key))
    for broken in (signed[: len(signed) // 2], signed[:40], b"\x89PNG\r\n\x1a\n" + b"\x00" * 30):
        assert read_credentials(broken).state in ("invalid", "none")


def test_cli_decode_generate_and_verify_provenance(chain, made, tmp_path, monkeypatch):
    root, _ = made
    run = CliRunner().invoke
    r = run(app, ["decode", str(root / "gen.aigif"), "-o", str(tmp_path / "d.jpg"), "-q",
                  "--c2pa-cert", str(chain.chain), "--c2pa-key", str(chain.key)])
    assert r.exit_code == 0, r.output
    r = run(app, ["verify-provenance", str(tmp_path / "d.jpg")])
    assert r.exit_code == 3 and "untrusted signer" in r.output and "trainedAlgorithmicMedia" in r.output
    r = run(app, ["verify-provenance", str(tmp_path / "d.jpg"), "--trust-anchors", str(chain.root), "--json"])
    assert r.exit_code == 0 and '"state": "valid"' in r.output and '"prompt": "a lighthouse at dusk"' in r.output
    monkeypatch.setenv("AIGIF_C2PA_CERT", str(chain.chain))
    monkeypatch.setenv("AIGIF_C2PA_KEY", str(chain.key))
    r = run(app, ["generate", "-p", "a boat", "-o", str(tmp_path / "g.aigif"), "--png", str(tmp_path / "g.png"),
                  "--seed", "1", "--steps", "2", "-q"])
    assert r.exit_code == 0, r.output
    (tmp_path / "t.png").write_bytes(one_pixel_changed((tmp_path / "g.png").read_bytes()))
    assert run(app, ["verify-provenance", str(tmp_path / "g.png")]).exit_code == 3
    r = run(app, ["verify-provenance", str(tmp_path / "t.png")])
    assert r.exit_code == 1 and "invalid" in r.output
    monkeypatch.delenv("AIGIF_C2PA_CERT")
    monkeypatch.delenv("AIGIF_C2PA_KEY")
    r = run(app, ["decode", str(root / "gen.aigif"), "-o", str(tmp_path / "plain.png"), "-q"])
    assert r.exit_code == 0 and run(app, ["verify-provenance", str(tmp_path / "plain.png")]).exit_code == 4


def test_batch_decode_signs(chain, made, tmp_path):
    from aigif import batch

    root, _ = made
    batch.run_batch("decode", root, tmp_path / "o", echo=None, c2pa=load_credentials(chain.chain, chain.key))
    assert read_credentials((tmp_path / "o" / "gen.png").read_bytes()).state == "untrusted signer"


def test_decoded_save_signs(chain, made, tmp_path):
    root, _ = made
    out = aigif.decode(root / "gen.aigif")
    out.save(tmp_path / "s.webp", c2pa_cert=chain.chain, c2pa_key=chain.key)
    assert read_credentials((tmp_path / "s.webp").read_bytes()).state == "untrusted signer"


def test_pillow_plugin_save_signs(chain, made, tmp_path):
    from PIL import Image

    root, _ = made
    aigif.register_pillow()
    with Image.open(root / "gen.aigif") as im:
        im.save(tmp_path / "p.jpg", c2pa_cert=chain.chain, c2pa_key=chain.key)
        buf = io.BytesIO()
        im.save(buf, format="PNG", c2pa_cert=chain.chain, c2pa_key=chain.key)
    for data in ((tmp_path / "p.jpg").read_bytes(), buf.getvalue()):
        assert read_credentials(data).state == "untrusted signer" and digital_source_type(data) == TRAINED_ALGORITHMIC_MEDIA


def test_bad_credentials_say_what_to_do(tmp_path, chain, monkeypatch):
    monkeypatch.delenv("AIGIF_C2PA_CERT", raising=False)
    monkeypatch.delenv("AIGIF_C2PA_KEY", raising=False)
    assert load_credentials() is None
    with pytest.raises(ProvenanceError, match="--c2pa-key"):
        load_credentials(chain.chain, None)
    monkeypatch.setenv("AIGIF_C2PA_KEY", str(tmp_path / "nope.pem"))
    with pytest.raises(ProvenanceError, match="does not exist"):
        load_credentials(chain.chain)
    monkeypatch.delenv("AIGIF_C2PA_KEY")
    other = make_chain(tmp_path / "other")
    with pytest.raises(ProvenanceError, match="does not belong"):
        load_credentials(chain.chain, other.key)
    selfsigned = make_chain(tmp_path / "self", self_signed=True)
    with pytest.raises(ProvenanceError, match="self-signed"):
        load_credentials(selfsigned.chain, selfsigned.key)
    no_eku = make_chain(tmp_path / "noeku", eku=False)
    creds = load_credentials(no_eku.chain, no_eku.key)
    with pytest.raises(ProvenanceError, match="extended key usage"):
        document_image_bytes(np.zeros((8, 8, 3), np.uint8), "PNG", aigif.loads(
            (Path(__file__).parents[1] / "spec/conformance/valid/minimal.aigif").read_bytes()), credentials=creds)
