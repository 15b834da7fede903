"""Model identity as the tools record it: Civitai resources and AIR URNs, file hashes, InvokeAI keys.

* Civitai's generator writes ``Civitai resources: [{"type": "checkpoint", "modelVersionId": 128078,
  "modelName": "SD XL", "modelVersionName": "v1.0 VAE fix"}, {"type": "lora", "weight": 0.85, ...}]``
  into the A1111 infotext, often with no ``Model:`` key at all; newer entries carry
  ``"air": "urn:air:sdxl:checkpoint:civitai:827184@2514310"`` (ecosystem, type, source,
  model id @ version id).
* Hashes: A1111 ``Model hash`` (AutoV1: 8 hex of sha256 over part of the file, AutoV2: the
  first 10 hex of the file's sha256), AutoV3 (12 hex, LoRAs), full sha256, InvokeAI 4 ``blake3:``.

:func:`identity_lines` renders what a document holds for ``aigif info``.
"""
from __future__ import annotations

import json
import re
from typing import Any

RE_AIR = re.compile(r"^urn:air:(?P<ecosystem>[\w.-]+):(?P<type>[\w.-]+):(?P<source>[\w.-]+):"
                    r"(?P<id>[^@\s]+?)(?:@(?P<version>[^\s.]+))?(?:\.(?P<format>\w+))?$")


def parse_air(urn: str) -> dict | None:
    """``urn:air:sdxl:checkpoint:civitai:827184@2514310`` -> its parts, or None when it is not an AIR."""
    m = RE_AIR.match(urn.strip()) if isinstance(urn, str) else None
    return {k: v for k, v in m.groupdict().items() if v is not None} if m else None


def civitai_resources(value: Any) -> list[dict]:
    """The ``Civitai resources`` list (JSON text or already parsed); [] when it is not a list of objects."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            return []
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


def checkpoint(resources: list[dict]) -> dict | None:
    """The checkpoint entry: ``{"name", "version_name", "version_id", "air"}`` (what is known)."""
    for r in resources:
        air = parse_air(r.get("air", "")) if r.get("air") else None
        kind = r.get("type") or (air or {}).get("type")
        if kind == "checkpoint":
            out = {"name": r.get("modelName"), "version_name": r.get("modelVersionName") or r.get("versionName"),
                   "version_id": r.get("modelVersionId") or (air or {}).get("version"), "air": r.get("air")}
            return {k: v for k, v in out.items() if v not in (None, "")}
    return None


def hash_kind(h: str) -> str:
    h = h.lower()
    if h.startswith("blake3:"):
        return "blake3"
    return {8: "AutoV1", 10: "AutoV2", 12: "AutoV3", 64: "sha256"}.get(len(h), "hash")


def identity_lines(doc) -> list[str]:
    """``model identity: ...`` lines for ``aigif info`` (empty when the file records none)."""
    out = []
    m = doc.model
    extra = (doc.source.extra or {}) if doc.source is not None else {}
    if m is not None and m.sha256:
        out.append(f"{hash_kind(m.sha256)} {m.sha256}")
    if isinstance(extra.get("model_hash"), str):
        h = extra["model_hash"]
        out.append(h if ":" in h else f"{hash_kind(h)} {h}")
    if isinstance(extra.get("model_key"), str):
        out.append(f"InvokeAI key {extra['model_key']}")
    ck = extra.get("civitai_checkpoint")
    if isinstance(ck, dict):
        if ck.get("version_id") is not None:
            out.append(f"Civitai model-version {ck['version_id']}")
        if ck.get("air"):
            out.append(str(ck["air"]))
    for kind, items in (("LoRA", m.loras if m is not None else ()), ("embedding", m.embeddings if m is not None else ())):
        out += [f"{kind} {x.name}: {hash_kind(x.sha256)} {x.sha256}" for x in items if x.sha256]
    return out
