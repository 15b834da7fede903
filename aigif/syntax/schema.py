"""One generic codec for every syntax element: a table of fields per dataclass.

Elements declare ``FIELDS`` (number, attribute, kind); this module turns them
into payload bytes and back. Adding a field to an element is one table row,
never a new reader or writer.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import msgpack

from ..container.varint import U64_MAX, unzigzag, zigzag
from ..errors import ConfigError, CorruptError, LimitError
from ..limits import DEFAULT_LIMITS, Limits
from . import registry
from .fields import (
    FIXED32_FROM,
    WIRE_BYTES,
    WIRE_FIXED32,
    WIRE_NAMES,
    WIRE_SINT,
    WIRE_UINT,
    decode_hexstr,
    decode_number,
    decode_px,
    decode_utf8,
    decode_version,
    encode_hexstr,
    encode_number,
    encode_px,
    encode_version,
    iter_fields,
    write_field,
)


@dataclass(frozen=True)
class F:
    """One field of an element: wire number, attribute name, kind."""

    no: int
    name: str
    kind: str
    msg: Any = None
    repeated: bool = False
    required: bool = False
    same_as: str | None = None      # absent means "equal to that field"; writers omit it then


def _defaults(cls) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
    return out


# --- encode --------------------------------------------------------------------
def encode_element(obj: Any) -> bytes:
    out = bytearray()
    defaults = _defaults(type(obj))
    for f in type(obj).FIELDS:
        value = getattr(obj, f.name)
        if f.name in defaults and value == defaults[f.name] and not f.required:
            continue
        if f.same_as is not None and value == getattr(obj, f.same_as):
            continue
        for item in (value if f.repeated else (value,)):
            wire, raw = _encode_value(f, item)
            write_field(out, f.no, wire, raw)
    return bytes(out)


def _encode_value(f: F, v: Any) -> tuple[int, Any]:
    k = f.kind
    if k in ("uint", "bool"):
        v = int(v)
        if not 0 <= v <= U64_MAX:
            raise ConfigError(f"{f.name} = {v} is outside 0..2**64-1")
        return (WIRE_FIXED32, v) if k == "uint" and FIXED32_FROM <= v < 1 << 32 else (WIRE_UINT, v)
    if k == "sint":
        return WIRE_SINT, zigzag(int(v))
    if k == "str":
        return WIRE_BYTES, v.encode("utf-8")
    if k == "bytes":
        return WIRE_BYTES, bytes(v)
    if k == "text":
        from ..text import encode_text

        return WIRE_BYTES, encode_text(v)
    if k == "number":
        try:
            return encode_number(v)
        except ValueError as exc:
            raise ConfigError(f"{f.name}: {exc}") from None
    if k == "px":
        return WIRE_UINT, encode_px(int(v))
    if k == "version":
        return WIRE_BYTES, encode_version(v)
    if k == "hex":
        return WIRE_BYTES, encode_hexstr(v)
    if k.startswith("enum:"):
        code = registry.code_of(k[5:], v)
        return (WIRE_UINT, code) if code is not None else (WIRE_BYTES, v.encode("utf-8"))
    if k == "map":
        return WIRE_BYTES, msgpack.packb(v, use_bin_type=True)
    if k == "msg":
        return WIRE_BYTES, encode_element(v)
    raise AssertionError(f"unknown field kind {k}")  # pragma: no cover


# --- decode --------------------------------------------------------------------
def decode_element(cls: type, payload: bytes, where: str, limits: Limits = DEFAULT_LIMITS, depth: int = 0) -> Any:
    if depth > limits.max_nesting:
        raise LimitError(f"{where}: nesting deeper than {limits.max_nesting}")
    by_no = {f.no: f for f in cls.FIELDS}
    values: dict[str, Any] = {}
    for count, raw in enumerate(iter_fields(payload, where), 1):
        if count > limits.max_fields:  # checked while parsing: a payload of millions of tiny fields costs nothing
            raise LimitError(f"{where}: more than {limits.max_fields} fields")
        f = by_no.get(raw.number)
        if f is None:
            continue  # unknown field of a known element: skip (spec: forward compatibility)
        value = _decode_value(f, raw.wire, raw.value, f"{where}.{f.name}", limits, depth)
        if f.repeated:
            values.setdefault(f.name, []).append(value)
            limits.check(f"{where}: the number of '{f.name}' entries", len(values[f.name]), "max_loras")
        elif f.name in values:
            raise CorruptError(f"{where}: field {f.name!r} (number {f.no}) appears twice")
        else:
            values[f.name] = value
    for f in cls.FIELDS:
        if f.same_as is not None and f.name not in values and f.same_as in values:
            values[f.name] = values[f.same_as]
        if f.required and f.name not in values:
            raise CorruptError(f"{where}: required field {f.name!r} (number {f.no}) is missing")
        if f.repeated and f.name in values:
            values[f.name] = tuple(values[f.name])
    try:
        return cls(**values)
    except ConfigError as exc:
        raise CorruptError(f"{where}: {exc}") from None


def _want(wire: int, expected: int, where: str) -> None:
    if wire != expected:
        raise CorruptError(f"{where}: wire type {WIRE_NAMES.get(wire, wire)}, expected {WIRE_NAMES[expected]}")


def _decode_value(f: F, wire: int, raw: Any, where: str, limits: Limits, depth: int) -> Any:
    k = f.kind
    if k == "uint":
        if wire != WIRE_FIXED32:
            _want(wire, WIRE_UINT, where)
        return raw
    if k == "bool":
        _want(wire, WIRE_UINT, where)
        if raw > 1:
            raise CorruptError(f"{where}: boolean is {raw}, expected 0 or 1")
        return bool(raw)
    if k == "sint":
        _want(wire, WIRE_SINT, where)
        return unzigzag(raw)
    if k == "number":
        return decode_number(wire, raw, where)
    if k == "px":
        _want(wire, WIRE_UINT, where)
        return decode_px(raw, where)
    if k.startswith("enum:"):
        if wire == WIRE_UINT:
            name = registry.name_of(k[5:], raw)
            if name is None:
                raise CorruptError(f"{where}: unknown {k[5:]} code {raw} (newer file? upgrade aigif)")
            return name
        _want(wire, WIRE_BYTES, where)
        return _short_str(raw, where, limits)
    _want(wire, WIRE_BYTES, where)
    if k in ("str", "version", "hex") or k.startswith("enum:"):
        _check_str_bytes(raw, where, limits)
    if k == "str":
        return _short_str(raw, where, limits)
    if k == "bytes":
        return raw
    if k == "text":
        from ..text import decode_text

        return decode_text(raw, max_chars=limits.max_text_chars)
    if k == "version":
        return decode_version(raw, where)
    if k == "hex":
        return decode_hexstr(raw, where)
    if k == "map":
        return decode_map(raw, where, limits)
    if k == "msg":
        return decode_element(f.msg, raw, where, limits, depth + 1)
    raise AssertionError(k)  # pragma: no cover


def _check_str_bytes(raw: bytes, where: str, limits: Limits) -> None:
    """Refuse before decoding: a str of n UTF-8 bytes can cost 4n bytes of memory."""
    if len(raw) > 4 * limits.max_text_chars:
        raise LimitError(f"{where}: string of {len(raw)} bytes, above 4 x max_text_chars ({limits.max_text_chars})")


def _short_str(raw: bytes, where: str, limits: Limits) -> str:
    _check_str_bytes(raw, where, limits)
    s = decode_utf8(raw, where)
    if len(s) > limits.max_text_chars:
        raise LimitError(f"{where}: string of {len(s)} characters, limit {limits.max_text_chars}")
    return s


def decode_map(raw: bytes, where: str, limits: Limits) -> dict:
    """msgpack map with bounded sizes; only JSON-like values (no ext types, no bytes keys)."""
    cap = len(raw)
    if cap > limits.max_map_bytes:  # msgpack can expand ~60x into Python objects (b"\x80" -> {}): refuse first
        raise LimitError(f"{where}: msgpack map of {cap} bytes, limit {limits.max_map_bytes}")
    try:
        value = msgpack.unpackb(
            raw, raw=False, strict_map_key=True, max_str_len=cap, max_bin_len=cap,
            max_array_len=cap, max_map_len=cap, max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises several unrelated types on bad data
        raise CorruptError(f"{where}: invalid msgpack map ({type(exc).__name__}: {exc})") from None
    if not isinstance(value, dict):
        raise CorruptError(f"{where}: expected a msgpack map, got {type(value).__name__}")
    check_json_like(value, where, limits.max_nesting)
    return value


def check_json_like(value: Any, where: str, max_depth: int, depth: int = 0, err: type = CorruptError) -> None:
    """*value* holds only JSON types (string keys, finite numbers), nested at most *max_depth* deep.

    *err* is the error for a wrong value: :class:`CorruptError` when reading, :class:`ConfigError` when writing.
    """
    if depth > max_depth:
        raise LimitError(f"{where}: nested deeper than {max_depth}")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise err(f"{where}: map key {key!r} is not a string")
            check_json_like(item, where, max_depth, depth + 1, err)
    elif isinstance(value, (list, tuple)):
        for item in value:
            check_json_like(item, where, max_depth, depth + 1, err)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise err(f"{where}: non-finite number in map")
    elif not (value is None or isinstance(value, (str, int, bool))):
        raise err(f"{where}: value of type {type(value).__name__} is not allowed in a map")
