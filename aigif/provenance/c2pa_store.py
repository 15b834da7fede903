"""The raw C2PA manifest store (JUMBF) of a PNG, JPEG or WebP file, and putting one back into a PNG.

Where each format keeps it (C2PA 2.x, "Embedding manifests"): PNG in a ``caBX``
chunk; JPEG in APP11 segments (``JP``, box instance, packet sequence, then the
box, whose 8-byte header every later packet repeats); WebP in a ``C2PA`` chunk.
Nothing here trusts a length; a store above ``Limits.max_manifest_bytes`` is refused.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from ..limits import DEFAULT_LIMITS, Limits

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNG_CHUNK = b"caBX"


@dataclass(frozen=True)
class FoundStore:
    """The store bytes as found, and what looked wrong about their framing (kept anyway)."""

    data: bytes
    problems: tuple[str, ...] = ()


def find_manifest_store(data: bytes, limits: Limits = DEFAULT_LIMITS) -> FoundStore | None:
    """The C2PA manifest store in an image file's bytes; None when it carries none (or is not PNG/JPEG/WebP)."""
    if data.startswith(PNG_MAGIC):
        found = _png(data)
    elif data[:2] == b"\xff\xd8":
        found = _jpeg(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        found = _webp(data)
    else:
        return None
    if found is not None:
        limits.check("C2PA manifest store", len(found.data), "max_manifest_bytes")
    return found


def _png(data: bytes) -> FoundStore | None:
    pos = len(PNG_MAGIC)
    while pos + 8 <= len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == PNG_CHUNK:
            return FoundStore(body, () if len(body) == n else (f"caBX chunk cut short ({len(body)} of {n} bytes)",))
        if kind in (b"IDAT", b"IEND"):    # the store comes before the image data
            return None
        pos += 12 + n
    return None


def _jpeg(data: bytes) -> FoundStore | None:
    packets: dict[int, list[tuple[int, bytes]]] = {}
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker in (0xDA, 0xD9):        # start of scan / end of image: no more metadata segments
            break
        n = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        seg = data[pos + 4:pos + 2 + n]
        if marker == 0xEB and len(seg) >= 16 and seg[:2] == b"JP":
            instance, seq = struct.unpack(">HI", seg[2:8])
            packets.setdefault(instance, []).append((seq, seg[8:]))
        pos += 2 + n
    for parts in packets.values():
        parts.sort()
        first = parts[0][1]
        if first[4:8] != b"jumb" or b"c2pa" not in first[8:40]:
            continue
        problems = [] if [s for s, _ in parts] == list(range(1, len(parts) + 1)) else ["APP11 packet numbers have gaps"]
        store = first + b"".join(p[8:] for _, p in parts[1:])
        declared = struct.unpack(">I", first[:4])[0]
        if declared != len(store):
            problems.append(f"JUMBF box declares {declared} bytes, the APP11 segments hold {len(store)}")
        return FoundStore(store, tuple(problems))
    return None


def _webp(data: bytes) -> FoundStore | None:
    pos = 12
    while pos + 8 <= len(data):
        kind, n = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if kind == b"C2PA":
            body = data[pos + 8:pos + 8 + n]
            return FoundStore(body, () if len(body) == n else (f"C2PA chunk cut short ({len(body)} of {n} bytes)",))
        pos += 8 + n + (n & 1)
    return None


def embed_in_png(png: bytes, store: bytes) -> bytes:
    """*png* with *store* in a ``caBX`` chunk right after IHDR, where C2PA writers put it (any old one removed)."""
    if not png.startswith(PNG_MAGIC):
        raise ValueError("not a PNG")
    out, pos = bytearray(PNG_MAGIC), len(PNG_MAGIC)
    while pos + 8 <= len(png):
        n, kind = struct.unpack(">I4s", png[pos:pos + 8])
        if kind != PNG_CHUNK:
            out += png[pos:pos + 12 + n]
        if kind == b"IHDR":
            out += struct.pack(">I", len(store)) + PNG_CHUNK + store + struct.pack(">I", zlib.crc32(PNG_CHUNK + store))
        pos += 12 + n
    return bytes(out)
