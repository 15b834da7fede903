"""What an import keeps of an image's Content Credentials: the manifest store verbatim, and what is wrong with it.

A broken, invalid or oversized manifest never stops the import of the image
itself: it is reported, and kept verbatim unless it is above
``Limits.max_manifest_bytes``.
"""
from __future__ import annotations

from ..errors import LimitError
from ..limits import DEFAULT_LIMITS, Limits
from .c2pa_store import find_manifest_store


def kept_manifest_store(data: bytes, limits: Limits = DEFAULT_LIMITS) -> tuple[bytes | None, tuple[str, ...]]:
    """(the store to keep or None, notes for the user) for the image file *data*."""
    try:
        found = find_manifest_store(data, limits)
    except LimitError as exc:
        return None, (f"C2PA manifest not kept: {exc}",)
    if found is None:
        return None, ()
    notes = [f"C2PA manifest framing: {p}" for p in found.problems]
    from .c2pa_read import read_credentials

    report = read_credentials(data)
    if report.state == "invalid":
        notes.append(f"C2PA manifest is invalid ({', '.join(report.issues) or 'unreadable'}); kept verbatim")
    else:
        notes.append(f"C2PA manifest kept ({len(found.data)} bytes, {report.state})")
    return found.data, tuple(notes)
