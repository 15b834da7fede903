"""Reading any image's Content Credentials with c2pa-python: valid / invalid / untrusted signer / none.

A manifest whose signature and hard binding check out but whose certificate
chain does not lead to a trusted anchor is ``untrusted signer``; pass
``trust_anchors`` (PEM roots) to make such a signer trusted. Whatever the
image holds, reading never raises on bad manifest bytes: they give ``invalid``.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field

UNTRUSTED = "signingCredential.untrusted"
# leading bytes -> MIME type; anything else is left to c2pa's own detection
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8", "image/jpeg"))


@dataclass(frozen=True)
class CredentialsReport:
    """``state``: valid | invalid | untrusted signer | none; the signer, the problems, and what the manifest says."""

    state: str
    signer: str | None = None
    issues: tuple[str, ...] = ()
    software_agent: str | None = None
    digital_source_type: str | None = None
    generation: dict | None = field(default=None, compare=False)

    def summary(self) -> str:
        parts = [self.state]
        if self.signer:
            parts.append(f"signer: {self.signer}")
        if self.digital_source_type:
            parts.append(f"source: {self.digital_source_type.rsplit('/', 1)[-1]}")
        if self.software_agent:
            parts.append(f"by: {self.software_agent}")
        if self.issues:
            parts.append("issues: " + ", ".join(self.issues))
        return "; ".join(parts)


def mime_of(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in _MAGIC if data.startswith(magic)), None)


def read_credentials(data: bytes, *, trust_anchors: bytes | None = None, manifest_store: bytes | None = None) -> CredentialsReport:
    """The Content Credentials of the image *data* (or of a detached *manifest_store* for it)."""
    import c2pa

    settings: dict = {"verify": {"remote_manifest_fetch": False}}
    if trust_anchors is not None:
        settings["trust"] = {"user_anchors": trust_anchors.decode("utf-8", "replace")}
    try:
        context = c2pa.Context.from_dict(settings)
        reader = c2pa.Reader.try_create(mime_of(data), io.BytesIO(data), manifest_store, context=context)
        if reader is None:
            return CredentialsReport("none")
        with reader:
            return _report(reader)
    except c2pa.C2paError as exc:   # malformed or truncated manifest, unparseable asset
        return CredentialsReport("invalid", issues=(f"unreadable: {str(exc)[:300]}",))


def _report(reader) -> CredentialsReport:
    state = reader.get_validation_state()
    results = reader.get_validation_results() or {}
    failures = [f.get("code", "?") for f in (results.get("activeManifest") or {}).get("failure", [])]
    manifest = reader.get_active_manifest() or {}
    info = manifest.get("signature_info") or {}
    signer = ", ".join(str(info[k]) for k in ("common_name", "issuer") if info.get(k)) or None
    agent = source = generation = None
    for assertion in manifest.get("assertions", []):
        label, data = assertion.get("label", ""), assertion.get("data") or {}
        if label.startswith("c2pa.actions"):
            for action in data.get("actions", []):
                if action.get("action") == "c2pa.created":
                    source = action.get("digitalSourceType")
                    sa = action.get("softwareAgent")
                    agent = sa.get("name") if isinstance(sa, dict) else sa
        elif label == "org.aigif.generation":
            generation = data
    if state == "Trusted" and not failures:
        verdict = "valid"
    elif state in ("Valid", "Trusted") and set(failures) <= {UNTRUSTED}:
        verdict = "untrusted signer"
    else:
        verdict = "invalid"
    issues = tuple(f for f in failures if f != UNTRUSTED)
    return CredentialsReport(verdict, signer, issues, agent, source, generation)

