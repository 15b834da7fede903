"""Write the signature conformance files: signature/*.aigif + the document JSON + the expected signature check.

Run from the repository root: ``python spec/conformance/make_signature.py``.

The signing key is a TEST KEY derived from a published seed (``TEST_SEED`` below,
also in ``spec/aigif-v1.md`` section 2.4): its private half is public, so these
files show the byte layout and nothing about who made them. Ed25519 signatures
are deterministic, so the files are reproducible byte for byte.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import sys
import zlib
from pathlib import Path

from aigif.container import Segment, read_container, write_container
from aigif.provenance.signature import check, sign
from aigif.syntax import document_to_dict, loads
from aigif.syntax.elements import Source
from aigif.syntax.registry import SEG_C2PA, SEG_SIGNATURE, SEG_SOURCE
from aigif.syntax.schema import encode_element

HERE = Path(__file__).parent
OUT = HERE / "signature"
TEST_SEED = b"aigif conformance test key 1 (public; never trust it)"
# A c2pa segment's payload is kept verbatim; this stand-in is the start of a JUMBF manifest store box.
C2PA_STORE = bytes.fromhex("00000026" "6a756d62" "0000001e" "6a756d64") + b"c2pa" + bytes(12) + b"c2pa\x00"


def test_key():
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(TEST_SEED).digest())


def test_certificate(key):
    """A self-signed certificate with fixed names, serial and dates (so the bytes never change)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aigif conformance test signer")])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))
            .not_valid_after(datetime.datetime(2036, 1, 1, tzinfo=datetime.timezone.utc))
            .sign(key, None))


def recrc(body: bytes) -> bytes:
    return body + zlib.crc32(body).to_bytes(4, "little")


def with_last_segment(data: bytes, payload: bytes) -> bytes:
    segs = read_container(data)[1]
    return write_container([*segs[:-1], Segment(segs[-1].type, payload)])


def files() -> dict[str, bytes]:
    base = (HERE / "valid" / "minimal.aigif").read_bytes()
    key = test_key()
    signed = sign(base, key)
    segs = read_container(signed)[1]
    tampered = bytearray(signed[:-4])
    tampered[signed.index((1234567890).to_bytes(4, "little"))] ^= 0x01    # seed 1234567890 -> 1234567891 (fixed32)
    return {
        "signed-ed25519": signed,
        "signed-ed25519-certificate": sign(base, key, test_certificate(key)),
        "tampered": recrc(bytes(tampered)),
        "truncated-signature": with_last_segment(signed, segs[-1].payload[:-1]),
        "unknown-scheme": with_last_segment(signed, b"\x09" + segs[-1].payload[1:]),
        "segment-after-signature": write_container([*segs, Segment(SEG_SOURCE, encode_element(Source(tool="a1111")))]),
        "signed-with-c2pa-store": sign(write_container([*read_container(base)[1], Segment(SEG_C2PA, C2PA_STORE)]), key),
    }


def expected_check(data: bytes) -> dict:
    result = check(data)
    return {"valid": result.valid, "algorithm": result.algorithm, "signer": result.signer}


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, data in files().items():
        assert read_container(data)[1][-1].type in (SEG_SIGNATURE, SEG_SOURCE)
        (OUT / f"{name}.aigif").write_bytes(data)
        doc = document_to_dict(loads(data))
        (OUT / f"{name}.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        (OUT / f"{name}.signature.json").write_text(json.dumps(expected_check(data), indent=1) + "\n", encoding="utf-8")
        print(f"{name}: {len(data)} bytes, {expected_check(data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
