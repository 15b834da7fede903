"""A throw-away C2PA certificate chain made at test time (root CA -> intermediate CA -> signer); nothing is committed.

C2PA accepts only CA-issued end-entity certificates with digitalSignature and
emailProtection (or documentSigning), each with subject and authority key ids.
"""
import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_USAGE = dict(content_commitment=False, key_encipherment=False, data_encipherment=False, key_agreement=False,
              encipher_only=False, decipher_only=False)


@dataclass
class Chain:
    chain: Path        # signer + intermediate (PEM)
    key: Path          # signer's private key (PEM)
    root: Path         # trust anchor (PEM)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "aigif tests")])


def _cert(cn, key, issuer_cn, issuer_key, *, ca, eku=True):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(issuer_cn)).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=1 if ca else None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
         .add_extension(x509.KeyUsage(digital_signature=not ca, key_cert_sign=ca, crl_sign=ca, **_USAGE), critical=True))
    if not ca and eku:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem(*certs):
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def make_chain(folder: Path, *, eku: bool = True, self_signed: bool = False) -> Chain:
    folder.mkdir(parents=True, exist_ok=True)
    rk, ik, lk = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _cert("aigif test root", rk, "aigif test root", rk, ca=True)
    inter = _cert("aigif test intermediate", ik, "aigif test root", rk, ca=True)
    leaf = (_cert("aigif test signer", lk, "aigif test signer", lk, ca=False) if self_signed
            else _cert("aigif test signer", lk, "aigif test intermediate", ik, ca=False, eku=eku))
    (folder / "chain.pem").write_bytes(_pem(leaf) if self_signed else _pem(leaf, inter))
    (folder / "key.pem").write_bytes(_key_pem(lk))
    (folder / "root.pem").write_bytes(_pem(root))
    return Chain(folder / "chain.pem", folder / "key.pem", folder / "root.pem")
