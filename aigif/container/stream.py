"""The container: magic, version, typed segments, CRC-32 trailer.

Layout (normative text in ``spec/aigif-v1.md``)::

    magic    4 bytes  89 41 49 47  ("\\x89AIG")
    version  1 byte   major format version (1)
    segment* type varint | length varint | payload[length]
    crc32    4 bytes  CRC-32 (ISO-HDLC, as zlib.crc32) of everything before it, little-endian

Like PNG, the lowest bit of the type code marks a segment *critical* (1) or
*ancillary* (0), so a reader that knows nothing else can decide whether it may
skip a segment.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

from ..errors import CorruptError, FormatError, TruncatedError, UnsupportedVersionError
from ..limits import DEFAULT_LIMITS, Limits
from .varint import decode_uvarint, encode_uvarint

MAGIC = b"\x89AIG"
VERSION = 1
TRAILER_BYTES = 4
MIN_FILE_BYTES = len(MAGIC) + 1 + TRAILER_BYTES


def is_critical(type_code: int) -> bool:
    return bool(type_code & 1)


@dataclass(frozen=True)
class Segment:
    """One raw segment: its type code and undecoded payload."""

    type: int
    payload: bytes

    @property
    def critical(self) -> bool:
        return is_critical(self.type)


def write_segment(out: bytearray, seg: Segment) -> None:
    """The one place a segment is serialized (Pillow's ``putchunk``)."""
    if seg.type < 2:
        raise ValueError(f"segment type {seg.type} is reserved")
    out += encode_uvarint(seg.type)
    out += encode_uvarint(len(seg.payload))
    out += seg.payload


def write_container(segments: list[Segment], version: int = VERSION) -> bytes:
    out = bytearray(MAGIC)
    out.append(version)
    for seg in segments:
        write_segment(out, seg)
    out += zlib.crc32(out).to_bytes(4, "little")
    return bytes(out)


def sniff(prefix: bytes) -> bool:
    """True if *prefix* starts like an .aigif file (Pillow's ``_accept``)."""
    return prefix[:4] == MAGIC


def read_container(data: bytes, limits: Limits = DEFAULT_LIMITS) -> tuple[int, list[Segment]]:
    """Split *data* into segments, checking magic, version, CRC and every length.

    A CRC mismatch is reported as truncation when the segment structure itself
    runs past the end of the file (an interrupted download), else as corruption.
    """
    data = bytes(data)
    limits.check("file size", len(data), "max_file_bytes")
    if len(data) < len(MAGIC):
        if MAGIC.startswith(data):
            raise TruncatedError(f"file is {len(data)} bytes, shorter than the 4-byte magic")
        raise FormatError(f"not an .aigif file: starts with {data.hex() or 'nothing'}, expected {MAGIC.hex()}")
    if data[:4] != MAGIC:
        raise FormatError(f"not an .aigif file: magic is {data[:4].hex()}, expected {MAGIC.hex()}")
    if len(data) < MIN_FILE_BYTES:
        raise TruncatedError(f"file is {len(data)} bytes; the smallest .aigif file is {MIN_FILE_BYTES} bytes")
    version = data[4]
    body_end = len(data) - TRAILER_BYTES
    stored = int.from_bytes(data[body_end:], "little")
    actual = zlib.crc32(data[:body_end])
    if stored != actual:
        try:
            _split(data, body_end, limits)
        except TruncatedError as exc:
            raise TruncatedError(f"file is truncated (CRC-32 mismatch and {exc})") from None
        except CorruptError:
            pass
        raise CorruptError(f"CRC-32 mismatch: file says {stored:08x}, contents give {actual:08x}; the file is corrupted")
    if version != VERSION:
        raise UnsupportedVersionError(f"format version {version} is not supported (this decoder reads version {VERSION}); upgrade aigif")
    return version, _split(data, body_end, limits)


def _split(data: bytes, body_end: int, limits: Limits) -> list[Segment]:
    segments: list[Segment] = []
    pos = len(MAGIC) + 1
    while pos < body_end:
        start = pos
        type_code, pos = decode_uvarint(data, pos, body_end, f"segment type at offset {start}")
        length, pos = decode_uvarint(data, pos, body_end, f"segment length at offset {start}")
        if type_code < 2:
            raise CorruptError(f"segment at offset {start} has reserved type code {type_code}")
        if length > body_end - pos:
            raise TruncatedError(f"segment type {type_code:#x} at offset {start} declares {length} bytes but only {body_end - pos} remain")
        limits.check("segment count", len(segments) + 1, "max_segments")
        segments.append(Segment(type_code, data[pos : pos + length]))
        pos += length
    return segments
