"""Signing an exported image with a C2PA manifest: ``c2pa.created`` by a trained model, plus the generation syntax.

The manifest holds a ``c2pa.actions`` assertion (``c2pa.created``, digital source
type ``trainedAlgorithmicMedia``, the model as ``softwareAgent``) and an
``org.aigif.generation`` assertion with the document's JSON form (what
``aigif info --json`` prints). c2pa-python hard-binds it to the image bytes
(a data hash over everything but the manifest), so changing a pixel invalidates it.
"""
from __future__ import annotations

import io

from ..errors import ProvenanceError
from .c2pa_credentials import PROFILE_HINT, C2paCredentials
from .xmp import TRAINED_ALGORITHMIC_MEDIA

GENERATION_LABEL = "org.aigif.generation"
MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
# No thumbnail: it would add ~100 KB-1 MB to every image, and the image is right there.
SETTINGS = {"builder": {"thumbnail": {"enabled": False}}}


def model_name(doc) -> str:
    m = doc.model
    return (m.name or m.repo or m.local or "unknown model") if m is not None else "unknown model"


def manifest_definition(doc, title: str) -> dict:
    """The manifest definition c2pa's Builder takes, for a document that records a generation."""
    from .. import __version__
    from ..syntax import document_to_dict

    return {
        "claim_generator_info": [{"name": "aigif", "version": __version__}],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [{
                "action": "c2pa.created",
                "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                "softwareAgent": {"name": model_name(doc)},
            }]}},
            {"label": GENERATION_LABEL, "data": document_to_dict(doc)},
        ],
    }


def sign_image(data: bytes, fmt: str, doc, credentials: C2paCredentials, title: str = "image") -> bytes:
    """*data* (an encoded PNG/JPEG/WebP image) with a signed C2PA manifest embedded."""
    import c2pa

    fmt = fmt.upper()
    if fmt not in MIME:
        raise ProvenanceError(f"C2PA signing supports PNG, JPEG and WebP, not {fmt}")
    out = io.BytesIO()
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(credentials.algorithm, credentials.chain_pem,
                                                           credentials.key_pem, None))
        with c2pa.Builder(manifest_definition(doc, title), context=c2pa.Context.from_dict(SETTINGS)) as builder:
            builder.sign(signer, MIME[fmt], io.BytesIO(data), out)
    except c2pa.C2paError as exc:
        raise ProvenanceError(f"C2PA signing with {credentials.signer} failed ({exc}); {PROFILE_HINT}") from None
    return out.getvalue()
