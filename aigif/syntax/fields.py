"""Field coding inside a segment payload: a protobuf-like tag stream.

Each field is ``key = field_no << 3 | wire`` (a varint) followed by its value.
Wire types: 0 uvarint, 1 zigzag svarint, 2 length-delimited bytes, 3 decimal,
4 float64 (little-endian). A decoder skips unknown field numbers (so minor
additions stay readable) but refuses unknown wire types (it could not skip them).

*Kinds* map Python values onto wire types, chosen so that common values cost
one or two bytes (registry codes, sizes in units of 64 px, decimal numbers
that give 7.5 back as exactly 7.5).
"""
from __future__ import annotations

import decimal
import math
import re
import struct
from dataclasses import dataclass
from typing import Any, Callable

from ..container.varint import decode_uvarint, encode_uvarint
from ..errors import CorruptError, TruncatedError

WIRE_UINT, WIRE_SINT, WIRE_BYTES, WIRE_DECIMAL, WIRE_F64, WIRE_FIXED32 = range(6)
WIRE_NAMES = {0: "uvarint", 1: "svarint", 2: "bytes", 3: "decimal", 4: "float64", 5: "fixed32"}
FIXED32_FROM = 1 << 28     # a uint from here to 2**32 - 1 takes 4 bytes as fixed32, 5 as uvarint (10-digit seeds)


@dataclass(frozen=True)
class RawField:
    number: int
    wire: int
    value: Any  # int for varint and fixed32 wires, bytes for WIRE_BYTES / WIRE_F64


def encode_key(number: int, wire: int) -> bytes:
    return encode_uvarint(number << 3 | wire)


def write_field(out: bytearray, number: int, wire: int, value: Any) -> None:
    out += encode_key(number, wire)
    if wire in (WIRE_UINT, WIRE_SINT, WIRE_DECIMAL):
        out += encode_uvarint(value)
    elif wire == WIRE_BYTES:
        out += encode_uvarint(len(value))
        out += value
    elif wire == WIRE_F64:
        out += value
    elif wire == WIRE_FIXED32:
        out += value.to_bytes(4, "little")
    else:  # pragma: no cover - programming error
        raise ValueError(wire)


def read_fields(payload: bytes, where: str) -> list[RawField]:
    """Split a payload into raw fields; never reads past the payload."""
    return list(iter_fields(payload, where))


def iter_fields(payload: bytes, where: str):
    """Yield raw fields one by one, so a reader can stop (field-count limit) before parsing them all."""
    pos, end = 0, len(payload)
    while pos < end:
        start = pos
        key, pos = decode_uvarint(payload, pos, end, f"{where}: field key at offset {start}")
        number, wire = key >> 3, key & 7
        if number == 0:
            raise CorruptError(f"{where}: field number 0 at offset {start} is invalid")
        if wire in (WIRE_UINT, WIRE_SINT, WIRE_DECIMAL):
            value, pos = decode_uvarint(payload, pos, end, f"{where}: field {number} value")
        elif wire == WIRE_BYTES:
            length, pos = decode_uvarint(payload, pos, end, f"{where}: field {number} length")
            if length > end - pos:
                raise TruncatedError(f"{where}: field {number} declares {length} bytes but only {end - pos} remain")
            value, pos = payload[pos : pos + length], pos + length
        elif wire == WIRE_F64:
            if end - pos < 8:
                raise TruncatedError(f"{where}: float64 field {number} needs 8 bytes, {end - pos} remain")
            value, pos = payload[pos : pos + 8], pos + 8
        elif wire == WIRE_FIXED32:
            if end - pos < 4:
                raise TruncatedError(f"{where}: fixed32 field {number} needs 4 bytes, {end - pos} remain")
            value, pos = int.from_bytes(payload[pos : pos + 4], "little"), pos + 4
        else:
            raise CorruptError(f"{where}: field {number} has unknown wire type {wire} (offset {start})")
        yield RawField(number, wire, value)


# --- numbers -----------------------------------------------------------------
MAX_DECIMAL_EXP = 15


def encode_number(x: float | int) -> tuple[int, Any]:
    """Shortest exact form: uvarint for whole numbers, decimal ``m * 10**-e`` when repr() allows, else float64."""
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"{x} is not a finite number")
    if x.is_integer() and 0 <= x < 2**53 and math.copysign(1, x) > 0:
        return WIRE_UINT, int(x)
    sign, digits, exp = decimal.Decimal(repr(x)).as_tuple()
    mant = int("".join(map(str, digits)) or "0")
    e = -exp
    while e > 0 and mant % 10 == 0:
        mant //= 10
        e -= 1
    if 0 <= e <= MAX_DECIMAL_EXP and mant < 2**58:
        return WIRE_DECIMAL, mant << 5 | e << 1 | sign
    return WIRE_F64, struct.pack("<d", x)


def decode_number(wire: int, value: Any, where: str) -> float:
    if wire == WIRE_DECIMAL:
        mant, e, sign = value >> 5, (value >> 1) & 15, value & 1
        return float(f"{'-' if sign else ''}{mant}e-{e}")
    if wire == WIRE_F64:
        x = struct.unpack("<d", value)[0]
        if not math.isfinite(x):
            raise CorruptError(f"{where}: number is {x}, expected a finite value")
        return x
    if wire == WIRE_UINT:
        return float(value)
    raise CorruptError(f"{where}: a number cannot use wire type {WIRE_NAMES.get(wire, wire)}")


# --- pixel sizes ---------------------------------------------------------------
def encode_px(n: int) -> int:
    """Sizes cost one byte when a multiple of 64 px (all SD presets up to 1984)."""
    if n % 64 == 0:
        return (n // 64) << 2
    if n % 8 == 0:
        return (n // 8) << 2 | 1
    return n << 2 | 2


def decode_px(v: int, where: str) -> int:
    unit = {0: 64, 1: 8, 2: 1}.get(v & 3)
    if unit is None:
        raise CorruptError(f"{where}: pixel size uses reserved unit code 3")
    return (v >> 2) * unit


# --- compact strings ------------------------------------------------------------
_VERSION_RE = re.compile(r"^(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})(\+[\x21-\x7e]*)?$")
_HEX_RE = re.compile(r"^(?:[0-9a-f]{2})+$")


def encode_version(s: str) -> bytes:
    """``2.13.0+cpu`` -> 00 02 0d 00 '+cpu'; anything else is stored as UTF-8."""
    m = _VERSION_RE.match(s)
    if not m:
        if s.startswith("\0"):
            raise ValueError("version string may not start with NUL")
        return s.encode("utf-8")
    return b"\0" + b"".join(encode_uvarint(int(g)) for g in m.groups()[:3]) + (m.group(4) or "").encode("ascii")


def decode_version(raw: bytes, where: str) -> str:
    if not raw.startswith(b"\0"):
        return decode_utf8(raw, where)
    parts, pos = [], 1
    for _ in range(3):
        v, pos = decode_uvarint(raw, pos, len(raw), f"{where}: version number")
        parts.append(str(v))
    return ".".join(parts) + decode_utf8(raw[pos:], where)


def encode_hexstr(s: str) -> bytes:
    """Lower-case hex (commit ids, sha256) packs to 0x00 + raw bytes; other text stays UTF-8."""
    if _HEX_RE.match(s):
        return b"\0" + bytes.fromhex(s)
    if s.startswith("\0"):
        raise ValueError("string may not start with NUL")
    return s.encode("utf-8")


def decode_hexstr(raw: bytes, where: str) -> str:
    if raw.startswith(b"\0"):
        if len(raw) == 1:
            raise CorruptError(f"{where}: packed hex string is empty")
        return raw[1:].hex()
    return decode_utf8(raw, where)


def decode_utf8(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptError(f"{where}: invalid UTF-8 at byte {exc.start}") from None


Encoder = Callable[[Any], tuple[int, Any]]
