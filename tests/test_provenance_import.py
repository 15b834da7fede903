"""Import keeps provenance: an image's C2PA manifest store is kept verbatim and goes back on an identical decode."""
import io
import struct
import zlib

import numpy as np
import pytest
from typer.testing import CliRunner

import aigif
from aigif import Limits
from aigif.cli import app
from aigif.provenance.c2pa_credentials import load_credentials
from aigif.provenance.c2pa_read import read_credentials
from aigif.provenance.c2pa_store import embed_in_png, find_manifest_store
from aigif.provenance.export import image_bytes

from tests.c2pa_certs import make_chain

MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return make_chain(tmp_path_factory.mktemp("pki"))


def signed_with_store(fmt, chain):
    """An image signed by c2pa-python directly, and the manifest store bytes c2pa says it embedded."""
    import c2pa

    from aigif.provenance.c2pa_sign import SETTINGS

    creds = load_credentials(chain.chain, chain.key)
    rgb = (np.arange(16 * 16 * 3) % 251).astype(np.uint8).reshape(16, 16, 3)
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(creds.algorithm, creds.chain_pem, creds.key_pem, None))
    out = io.BytesIO()
    created = {"action": "c2pa.created", "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"}
    with c2pa.Builder({"claim_generator_info": [{"name": "other tool"}],
                       "assertions": [{"label": "c2pa.actions", "data": {"actions": [created]}}]},
                      context=c2pa.Context.from_dict(SETTINGS)) as b:
        store = b.sign(signer, MIME[fmt], io.BytesIO(image_bytes(rgb, fmt, ai_label=False)), out)
    return out.getvalue(), store


def chunks(png):
    pos, out = 8, []
    while pos < len(png):
        n, kind = struct.unpack(">I4s", png[pos:pos + 8])
        out.append((kind, png[pos + 8:pos + 8 + n]))
        pos += 12 + n
    return out


def build_png(parts):
    return b"\x89PNG\r\n\x1a\n" + b"".join(struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))
                                           for k, d in parts)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_store_found_verbatim_in_each_format(chain, fmt):
    data, store = signed_with_store(fmt, chain)
    found = find_manifest_store(data)
    assert found.data == store and found.problems == ()
    assert find_manifest_store(image_bytes(np.zeros((4, 4, 3), np.uint8), fmt)) is None


def test_store_limit_and_png_embedding(chain):
    data, store = signed_with_store("PNG", chain)
    assert find_manifest_store(data, Limits(max_manifest_bytes=len(store))).data == store
    with pytest.raises(aigif.LimitError, match="max_manifest_bytes"):
        find_manifest_store(data, Limits(max_manifest_bytes=len(store) - 1))
    stripped = build_png([(k, d) for k, d in chunks(data) if k != b"caBX"])
    assert embed_in_png(stripped, store) == data          # put back where C2PA writers put it: byte-identical


def test_truncated_and_garbage_framing_never_raise():
    png = build_png([(b"IHDR", b"\x00" * 13)]) + struct.pack(">I4s", 1000, b"caBX") + b"short"
    assert find_manifest_store(png).problems
    jpeg = b"\xff\xd8\xff\xeb\x00\x20JP\x00\x01\x00\x00\x00\x01\x00\x00\x10\x00jumb" + b"\x00" * 4 + b"c2pa" + b"\x00" * 6
    assert "JUMBF box declares" in find_manifest_store(jpeg).problems[0]
    for junk in (b"", b"\xff\xd8", b"RIFF\x00\x00\x00\x00WEBP", b"\x89PNG\r\n\x1a\n\xff\xff\xff\xff"):
        assert find_manifest_store(junk) is None


def test_encode_keeps_store_and_identical_decode_reattaches_it(chain, tmp_path):
    """aigif's own signed export -> encode (exact regeneration) -> decode: the very same bytes, credentials valid."""
    from aigif.api import generate

    run = CliRunner().invoke
    res = generate("a lighthouse at dusk", seed=9, steps=2)
    aigif.dump(res.document, tmp_path / "orig.aigif")
    r = run(app, ["decode", str(tmp_path / "orig.aigif"), "-o", str(tmp_path / "signed.png"), "-q", "--embed-parameters",
                  "--c2pa-cert", str(chain.chain), "--c2pa-key", str(chain.key)])
    assert r.exit_code == 0, r.output
    signed = (tmp_path / "signed.png").read_bytes()
    r = run(app, ["encode", str(tmp_path / "signed.png"), "-o", str(tmp_path / "imported.aigif"), "--no-progress"])
    assert r.exit_code == 0, r.output
    doc = aigif.load(tmp_path / "imported.aigif")
    assert doc.c2pa == find_manifest_store(signed).data and doc.generation is not None
    assert "C2PA manifest store of the imported image" in run(app, ["info", str(tmp_path / "imported.aigif")]).output
    r = run(app, ["decode", str(tmp_path / "imported.aigif"), "-o", str(tmp_path / "back.png"), "-q", "--embed-parameters"])
    assert r.exit_code == 0 and "manifest re-attached" in r.output, r.output
    back = (tmp_path / "back.png").read_bytes()
    assert back == signed
    assert read_credentials(back).state == "untrusted signer"
    # the same file decoded as JPEG: not the original's bytes, so the store is not re-attached
    r = run(app, ["decode", str(tmp_path / "imported.aigif"), "-o", str(tmp_path / "back.jpg"), "-q"])
    assert "not re-attached" in r.output and find_manifest_store((tmp_path / "back.jpg").read_bytes()) is None


def test_broken_or_oversized_manifest_never_stops_the_import(chain, tmp_path):
    from aigif.importers import Options, encode_image

    data, store = signed_with_store("PNG", chain)
    params = (b"tEXt", b"parameters\x00a cat\nSteps: 2, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 16x16, Model: sd15")
    parts = chunks(data)
    parts.insert(2, params)          # A1111 text after IHDR and caBX: the store's hash no longer matches, which is fine here
    data = build_png(parts)
    broken_store = bytearray(store)
    broken_store[len(broken_store) // 2] ^= 0xFF
    broken = build_png([(k, bytes(broken_store) if k == b"caBX" else d) for k, d in parts])
    enc = encode_image(broken, options=Options(quality=1))
    assert enc.kind == "pixels" and enc.document.c2pa == bytes(broken_store)
    assert any("invalid" in n and "kept verbatim" in n for n in enc.notes)
    enc = encode_image(data, options=Options(quality=1), limits=Limits(max_manifest_bytes=len(store) - 1))
    assert enc.document.c2pa is None and "not kept" in enc.notes[0] and "max_manifest_bytes" in enc.notes[0]
    enc = encode_image(data, options=Options(quality=1), limits=Limits(max_manifest_bytes=len(store)))
    assert enc.document.c2pa == store and "kept" in enc.notes[-1]
    # pixels-only (lossy) document: decoded pixels are not the original's, so nothing is re-attached
    out = aigif.decode(aigif.loads(enc.data))
    out.save(tmp_path / "p.png")
    assert find_manifest_store((tmp_path / "p.png").read_bytes()) is None
