"""Reading a signing key and its certificate from PEM/DER files, with errors that say what to do."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import ProvenanceError
from ..fileio import read_limited

MAX_KEY_FILE_BYTES = 1 << 20
KEY_HINT = "make one with: openssl genpkey -algorithm ed25519 -out key.pem"


def load_private_key(path: str | os.PathLike, password: bytes | None = None):
    """An Ed25519, EC P-256/P-384 or RSA (>= 2048 bits) private key from a PEM or DER (PKCS#8 / SEC1) file."""
    from cryptography.hazmat.primitives import serialization

    path = Path(path)
    if not path.exists():
        raise ProvenanceError(f"signing key {path} does not exist; {KEY_HINT}")
    data = read_limited(path, MAX_KEY_FILE_BYTES)
    loader = serialization.load_pem_private_key if b"-----BEGIN" in data else serialization.load_der_private_key
    try:
        key = loader(data, password=password)
    except TypeError as exc:  # encrypted without a password, or a password for a plain key
        raise ProvenanceError(f"signing key {path}: {exc}; decrypt it first (openssl pkey -in KEY -out PLAIN.pem)") from None
    except Exception as exc:  # noqa: BLE001 - cryptography raises several types for bad bytes
        raise ProvenanceError(f"{path} is not a readable private key ({type(exc).__name__}); {KEY_HINT}") from None
    if algorithm_of(key) is None:
        raise ProvenanceError(f"signing key {path} is a {type(key).__name__.replace('_', '')}; use an Ed25519, EC P-256/P-384 "
                              f"or RSA key of at least 2048 bits ({KEY_HINT})")
    return key


def algorithm_of(private_key) -> str | None:
    """The COSE/C2PA algorithm name a key signs with: ed25519, es256, es384, ps256; None for other keys."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return {"secp256r1": "es256", "secp384r1": "es384"}.get(private_key.curve.name)
    if isinstance(private_key, rsa.RSAPrivateKey) and private_key.key_size >= 2048:
        return "ps256"
    return None


def load_certificates(path: str | os.PathLike) -> list:
    """X.509 certificates from a PEM file (leaf first, as a chain file lists them) or one DER certificate."""
    from cryptography import x509

    path = Path(path)
    if not path.exists():
        raise ProvenanceError(f"certificate {path} does not exist")
    data = read_limited(path, MAX_KEY_FILE_BYTES)
    try:
        certs = x509.load_pem_x509_certificates(data) if b"-----BEGIN" in data else [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise ProvenanceError(f"{path} is not a readable X.509 certificate ({exc}); give a PEM chain, leaf first") from None
    if not certs:
        raise ProvenanceError(f"{path} holds no certificate; give a PEM chain, leaf first")
    return certs


def public_bytes(public_key) -> bytes:
    """The raw public key: 32 bytes for Ed25519, the 65-byte uncompressed point for P-256."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def check_pair(private_key, cert, cert_path) -> None:
    """The certificate must be the key's: a mismatch would make every signature look forged."""
    from cryptography.hazmat.primitives import serialization

    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if cert.public_key().public_bytes(*spki) != private_key.public_key().public_bytes(*spki):
        raise ProvenanceError(f"certificate {cert_path} does not belong to the signing key; give the key's own certificate "
                              "(leaf first in a chain file)")
