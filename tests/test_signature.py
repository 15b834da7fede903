"""Signed .aigif files: the signature segment, its conformance files, the CLI, and bad keys."""
import importlib.util
import json
import zlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from typer.testing import CliRunner

from aigif import Limits
from aigif.cli import app
from aigif.container import read_container
from aigif.errors import AigifError, LimitError, ProvenanceError
from aigif.provenance.signature import check, key_id, sign
from aigif.syntax import loads

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "spec" / "conformance"
SIGNED = sorted((CONF / "signature").glob("*.aigif"))
BASE = (CONF / "valid" / "minimal.aigif").read_bytes()


def make_signature_module():
    spec = importlib.util.spec_from_file_location("make_signature", CONF / "make_signature.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def recrc(body: bytes) -> bytes:
    return body + zlib.crc32(body).to_bytes(4, "little")


@pytest.mark.parametrize("path", SIGNED, ids=lambda p: p.stem)
def test_signature_conformance_file(path):
    expected = json.loads(path.with_suffix(".signature.json").read_text())
    result = check(path.read_bytes())
    assert {"valid": result.valid, "algorithm": result.algorithm, "signer": result.signer} == expected
    assert loads(path.read_bytes()).generation.prompt == loads(BASE).generation.prompt   # decoders need no key


def test_signature_conformance_set_is_complete_and_reproducible():
    stems = {p.stem for p in SIGNED}
    assert {"signed-ed25519", "tampered", "truncated-signature", "signed-with-c2pa-store"} <= stems
    made = make_signature_module().files()     # the documented test seed gives these very bytes
    assert made.keys() == stems and all(made[p.stem] == p.read_bytes() for p in SIGNED)


def test_ed25519_adds_at_most_100_bytes_and_decodes_unchanged():
    key = ed25519.Ed25519PrivateKey.generate()
    signed = sign(BASE, key)
    assert len(signed) - len(BASE) <= 100
    assert loads(signed) == loads(BASE)
    assert check(signed).valid and check(signed).signer == key_id(key)
    assert check(BASE) is None


@pytest.mark.parametrize("make_key", [ed25519.Ed25519PrivateKey.generate, lambda: ec.generate_private_key(ec.SECP256R1())],
                         ids=["ed25519", "es256"])
def test_key_and_certificate_schemes_and_resigning(make_key):
    mk = make_signature_module()
    key = make_key()
    cert = mk.test_certificate(key) if isinstance(key, ed25519.Ed25519PrivateKey) else _ec_cert(key)
    for signed in (sign(BASE, key), sign(BASE, key, cert)):
        res = check(signed)
        assert res.valid and res.algorithm == ("ed25519" if isinstance(key, ed25519.Ed25519PrivateKey) else "es256")
    other = ed25519.Ed25519PrivateKey.generate()
    resigned = sign(sign(BASE, key), other)                 # re-signing replaces, never stacks
    assert [s.type for s in read_container(resigned)[1]].count(0x0A) == 1 and check(resigned).signer == key_id(other)


def _ec_cert(key):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "es256 test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(7)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))


def test_every_changed_byte_is_detected():
    signed = sign(BASE, ed25519.Ed25519PrivateKey.generate())
    body = signed[:-4]
    for i in range(len(body)):
        tampered = bytearray(body)
        tampered[i] ^= 0x04
        try:
            res = check(recrc(bytes(tampered)))
        except AigifError:
            continue                                    # structure broken: not a valid file at all
        assert res is None or not res.valid, f"byte {i}"


def test_signature_segment_limit():
    signed = sign(BASE, ed25519.Ed25519PrivateKey.generate())
    size = len(read_container(signed)[1][-1].payload)
    assert check(signed, Limits(max_signature_bytes=size)).valid
    with pytest.raises(LimitError, match="max_signature_bytes"):
        check(signed, Limits(max_signature_bytes=size - 1))
    with pytest.raises(LimitError):
        sign(BASE, ed25519.Ed25519PrivateKey.generate(), limits=Limits(max_signature_bytes=size - 1))


def _pem(key, path, password=None):
    enc = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc))
    return path


def test_cli_sign_info_verify(tmp_path):
    key = _pem(ed25519.Ed25519PrivateKey.generate(), tmp_path / "key.pem")
    f = tmp_path / "a.aigif"
    f.write_bytes(BASE)
    run = CliRunner().invoke
    r = run(app, ["verify", str(f)])
    assert r.exit_code == 1 and "not signed" in r.output
    r = run(app, ["sign", str(f), "--key", str(key)])
    assert r.exit_code == 0, r.output
    r = run(app, ["info", str(f)])
    assert r.exit_code == 0 and "signature: valid (ed25519, key sha256:" in r.output and "ancillary" in r.output
    r = run(app, ["verify", str(f)])
    assert r.exit_code == 0 and "signature valid" in r.output
    r = run(app, ["sign", str(f), "--key", str(key), "-o", str(f)])
    assert r.exit_code == 1 and "--force" in str(r.exception)       # -o never clobbers without --force
    data = f.read_bytes()
    f.write_bytes(recrc(data[:-4].replace((1234567890).to_bytes(4, "little"), (1234567891).to_bytes(4, "little"))))
    r = run(app, ["verify", str(f)])
    assert r.exit_code == 1 and "signed bytes were changed" in r.output
    r = run(app, ["verify", str(f), str(tmp_path / "whatever.png")])   # checked before any regeneration
    assert r.exit_code == 1 and "INVALID" in r.output
    assert "INVALID" in run(app, ["info", str(f)]).output


def test_bad_keys_and_certificates(tmp_path):
    from aigif.cli.provenance_cmds import cli_sign

    f = tmp_path / "a.aigif"
    f.write_bytes(BASE)
    with pytest.raises(ProvenanceError, match="openssl genpkey"):
        cli_sign(f, tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ProvenanceError, match="not a readable private key"):
        cli_sign(f, tmp_path / "junk.pem")
    with pytest.raises(ProvenanceError, match="Ed25519 or EC P-256"):
        cli_sign(f, _pem(rsa.generate_private_key(65537, 2048), tmp_path / "rsa.pem"))
    with pytest.raises(ProvenanceError, match="use an Ed25519"):
        cli_sign(f, _pem(rsa.generate_private_key(65537, 1024), tmp_path / "rsa1024.pem"))
    with pytest.raises(ProvenanceError, match="decrypt"):
        cli_sign(f, _pem(ed25519.Ed25519PrivateKey.generate(), tmp_path / "enc.pem", b"pw"))
    mk = make_signature_module()
    cert = mk.test_certificate(mk.test_key())
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ProvenanceError, match="does not belong"):
        cli_sign(f, _pem(ed25519.Ed25519PrivateKey.generate(), tmp_path / "k.pem"), cert=tmp_path / "cert.pem")
    (tmp_path / "bad.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(ProvenanceError, match="X.509"):
        cli_sign(f, tmp_path / "k.pem", cert=tmp_path / "bad.pem")
    assert f.read_bytes() == BASE                                       # nothing written on failure


def test_c2pa_segment_json_form_round_trips():
    from aigif.syntax import document_from_dict, document_to_dict, dumps

    doc = loads((CONF / "signature" / "signed-with-c2pa-store.aigif").read_bytes())
    assert doc.c2pa == make_signature_module().C2PA_STORE
    assert document_from_dict(document_to_dict(doc)) == doc and loads(dumps(doc)).c2pa == doc.c2pa
