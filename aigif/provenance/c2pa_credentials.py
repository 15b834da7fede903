"""The C2PA signing credentials: a certificate chain and its key, from options or AIGIF_C2PA_CERT / AIGIF_C2PA_KEY.

C2PA accepts only end-entity certificates issued by a CA (not self-signed), with
the digitalSignature key usage and the emailProtection or documentSigning
extended key usage; the chain file lists the signer first, then intermediates,
without the root.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import ProvenanceError
from .keys import algorithm_of, check_pair, load_certificates, load_private_key

ENV_CERT, ENV_KEY = "AIGIF_C2PA_CERT", "AIGIF_C2PA_KEY"
PROFILE_HINT = ("C2PA needs an end-entity certificate issued by a CA (not self-signed) with key usage digitalSignature "
                "and extended key usage emailProtection or documentSigning; list it first, then its intermediates, "
                "without the root")


@dataclass(frozen=True)
class C2paCredentials:
    """PEM bytes of the chain and key, and the algorithm the key signs with."""

    chain_pem: bytes
    key_pem: bytes
    algorithm: str
    signer: str           # the leaf certificate's subject, for messages


def load_credentials(cert: str | os.PathLike | None = None, key: str | os.PathLike | None = None) -> C2paCredentials | None:
    """Credentials from *cert*/*key*, else from the environment; None when neither names any."""
    cert = cert or os.environ.get(ENV_CERT) or None
    key = key or os.environ.get(ENV_KEY) or None
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        missing = "--c2pa-cert (or AIGIF_C2PA_CERT)" if cert is None else "--c2pa-key (or AIGIF_C2PA_KEY)"
        raise ProvenanceError(f"C2PA signing needs a certificate chain and its key; {missing} is missing")
    private_key = load_private_key(key)
    chain = load_certificates(cert)
    check_pair(private_key, chain[0], cert)
    if _self_signed(chain[0]):
        raise ProvenanceError(f"certificate {cert} is self-signed; {PROFILE_HINT}")
    algorithm = algorithm_of(private_key)
    return C2paCredentials(_pem(chain), _key_pem(private_key), algorithm, chain[0].subject.rfc4514_string())


def _self_signed(cert) -> bool:
    return cert.issuer == cert.subject


def _pem(chain) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)


def _key_pem(private_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
