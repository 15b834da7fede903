"""Unsigned LEB128 varints (as in protobuf), canonical form only.

A reader never trusts the input: at most 10 bytes, at most 64 bits, and a
non-minimal encoding is refused so every value has exactly one byte form.
"""
from __future__ import annotations

from ..errors import CorruptError, TruncatedError

MAX_VARINT_BYTES = 10
U64_MAX = 2**64 - 1


def encode_uvarint(value: int) -> bytes:
    if value < 0 or value > U64_MAX:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_uvarint(data: bytes, pos: int, end: int | None = None, what: str = "varint") -> tuple[int, int]:
    """Return ``(value, new_pos)``; ``end`` bounds the read (defaults to ``len(data)``)."""
    end = len(data) if end is None else end
    value = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            raise TruncatedError(f"{what} at offset {start} runs past the end of its data")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if pos - start >= MAX_VARINT_BYTES:
            raise CorruptError(f"{what} at offset {start} is longer than {MAX_VARINT_BYTES} bytes")
    if value > U64_MAX:
        raise CorruptError(f"{what} at offset {start} exceeds 64 bits")
    if pos - start > 1 and byte == 0:
        raise CorruptError(f"{what} at offset {start} is not in canonical (shortest) form")
    return value, pos


def zigzag(value: int) -> int:
    return (value << 1) if value >= 0 else ((-value << 1) - 1)


def unzigzag(value: int) -> int:
    return (value >> 1) if not value & 1 else -((value + 1) >> 1)
