"""The ancillary ``signature`` segment (0x0a): who signed an .aigif file and whether its bytes changed since.

Payload (``spec/aigif-v1.md`` section 2.4)::

    scheme   1 byte   SCHEMES below: algorithm and how the signer is given
    key_len  varint   length of the signer field
    signer   bytes    raw public key, or one DER X.509 certificate
    sig      64 bytes Ed25519 signature, or ES256 r||s (big-endian, 32 bytes each)

The signature covers ``CONTEXT`` followed by every byte of the file before the
signature segment (magic, version, all earlier segments). The segment must be
the last one. A decoder that does not check signatures skips it (ancillary).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..container import Segment, read_container, write_container, write_segment
from ..container.varint import decode_uvarint, encode_uvarint
from ..errors import AigifError, ProvenanceError
from ..limits import DEFAULT_LIMITS, Limits
from ..syntax.registry import SEG_SIGNATURE
from .keys import algorithm_of, check_pair, public_bytes

CONTEXT = b"aigif signature v1\x00"
SIGNATURE_BYTES = 64
# scheme code -> (algorithm, signer form); a plain table mirrored in spec/registry.md
SCHEMES = {1: ("ed25519", "key"), 2: ("ed25519", "x509"), 3: ("es256", "key"), 4: ("es256", "x509")}
_KEY_BYTES = {"ed25519": 32, "es256": 65}


@dataclass(frozen=True)
class SignatureCheck:
    """What a signature says: ``valid`` (the signed bytes are unchanged), the algorithm, the signer, and why not."""

    valid: bool
    algorithm: str
    signer: str
    reason: str = ""

    def summary(self) -> str:
        head = f"{'valid' if self.valid else 'INVALID'} ({self.algorithm}, {self.signer})"
        return head if self.valid else f"{head}: {self.reason}"


def _algorithm_of(private_key) -> str:
    algorithm = algorithm_of(private_key)
    if algorithm not in _KEY_BYTES:
        raise ProvenanceError(f"an .aigif signature needs an Ed25519 or EC P-256 key, not {algorithm or 'this key'} "
                              "(make one with: openssl genpkey -algorithm ed25519 -out key.pem)")
    return algorithm


def _raw_sign(private_key, message: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    if _algorithm_of(private_key) == "ed25519":
        return private_key.sign(message)
    r, s = decode_dss_signature(private_key.sign(message, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def strip_signature(data: bytes, limits: Limits = DEFAULT_LIMITS) -> list[Segment]:
    """The file's segments without its signature segment(s) (the CRC and every length checked)."""
    return [s for s in read_container(data, limits)[1] if s.type != SEG_SIGNATURE]


def sign(data: bytes, private_key, certificate=None, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """*data* (an .aigif file) with a signature segment appended; an existing signature is replaced.

    *certificate*: an X.509 certificate of *private_key* to carry instead of the bare public key.
    """
    from cryptography.hazmat.primitives import serialization

    algorithm = _algorithm_of(private_key)
    if certificate is not None:
        check_pair(private_key, certificate, "given")
        signer, form = certificate.public_bytes(serialization.Encoding.DER), "x509"
    else:
        signer, form = public_bytes(private_key.public_key()), "key"
    scheme = next(code for code, value in SCHEMES.items() if value == (algorithm, form))
    segments = strip_signature(data, limits)
    signature = _raw_sign(private_key, CONTEXT + write_container(segments)[:-4])   # everything but the CRC
    payload = bytes([scheme]) + encode_uvarint(len(signer)) + signer + signature
    limits.check("signature segment", len(payload), "max_signature_bytes")
    return write_container([*segments, Segment(SEG_SIGNATURE, payload)])


def check(data: bytes, limits: Limits = DEFAULT_LIMITS) -> SignatureCheck | None:
    """Check the signature of an .aigif file; None when it has none. Broken files raise their AigifError."""
    _, segments = read_container(data, limits)
    found = [i for i, s in enumerate(segments) if s.type == SEG_SIGNATURE]
    if not found:
        return None
    seg = segments[found[-1]]
    limits.check("signature segment", len(seg.payload), "max_signature_bytes")
    try:
        algorithm, signer_form, signer, sig = _parse(seg.payload)
    except ProvenanceError as exc:
        return SignatureCheck(False, "unknown", "unknown signer", str(exc))
    try:
        public_key, who = _public_key(algorithm, signer_form, signer)
    except ProvenanceError as exc:
        return SignatureCheck(False, algorithm, "unreadable signer", str(exc))
    if len(found) > 1 or found[-1] != len(segments) - 1:
        return SignatureCheck(False, algorithm, who, "segments follow the signature or there are several signatures: "
                              "not every byte is covered")
    signed_end = len(data) - 4 - _segment_bytes(seg)
    ok = _raw_verify(algorithm, public_key, sig, CONTEXT + data[:signed_end])
    return SignatureCheck(ok, algorithm, who, "" if ok else "the signed bytes were changed after signing")


def _segment_bytes(seg: Segment) -> int:
    out = bytearray()
    write_segment(out, seg)
    return len(out)


def _parse(payload: bytes) -> tuple[str, str, bytes, bytes]:
    if not payload:
        raise ProvenanceError("signature segment is empty")
    if payload[0] not in SCHEMES:
        raise ProvenanceError(f"signature scheme {payload[0]} is unknown (known: {', '.join(map(str, SCHEMES))})")
    algorithm, form = SCHEMES[payload[0]]
    try:
        key_len, pos = decode_uvarint(payload, 1, what="signature key length")
    except AigifError as exc:
        raise ProvenanceError(f"signature segment: {exc}") from None
    if len(payload) - pos != key_len + SIGNATURE_BYTES:
        raise ProvenanceError(f"signature segment holds {len(payload) - pos} bytes after its header, expected "
                              f"{key_len} (signer) + {SIGNATURE_BYTES} (signature): truncated or padded")
    return algorithm, form, payload[pos:pos + key_len], payload[pos + key_len:]


def _public_key(algorithm: str, form: str, signer: bytes):
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if form == "x509":
        try:
            cert = x509.load_der_x509_certificate(signer)
            key = cert.public_key()
        except ValueError as exc:
            raise ProvenanceError(f"the signer certificate is unreadable ({exc})") from None
        expected = ed25519.Ed25519PublicKey if algorithm == "ed25519" else ec.EllipticCurvePublicKey
        if not isinstance(key, expected):
            raise ProvenanceError(f"the signer certificate holds a {type(key).__name__}, not an {algorithm} key")
        fp = hashlib.sha256(signer).hexdigest()[:16]
        return key, f"certificate {cert.subject.rfc4514_string() or '(no subject)'}, sha256:{fp}"
    if len(signer) != _KEY_BYTES[algorithm]:
        raise ProvenanceError(f"an {algorithm} public key is {_KEY_BYTES[algorithm]} bytes, the file gives {len(signer)}")
    try:
        key = (ed25519.Ed25519PublicKey.from_public_bytes(signer) if algorithm == "ed25519"
               else ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), signer))
    except ValueError as exc:
        raise ProvenanceError(f"the signer's {algorithm} public key is invalid ({exc})") from None
    return key, f"key sha256:{hashlib.sha256(signer).hexdigest()[:16]}"


def _raw_verify(algorithm: str, public_key, sig: bytes, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    try:
        if algorithm == "ed25519":
            public_key.verify(sig, message)
        else:
            der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
            public_key.verify(der, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def key_id(private_key) -> str:
    """The signer name :func:`check` reports for a bare key (``key sha256:`` + 16 hex digits)."""
    return f"key sha256:{hashlib.sha256(public_bytes(private_key.public_key())).hexdigest()[:16]}"
