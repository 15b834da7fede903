"""The msgpack payload schema language of extensions (spec/extensions.md, 'Payload schema').

A schema maps field names to :class:`Field` (type, required, bounds); a
:class:`MsgpackSchema` checks data against it on encode (:class:`ConfigError`)
and on decode (:class:`CorruptError`, :class:`LimitError`), over a msgpack map
unpacked with hard limits. Free-form ``map`` fields are checked like the core
syntax's maps (:func:`aigif.syntax.schema.check_json_like`).
"""
from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Any, Mapping

import msgpack

from ..errors import ConfigError, CorruptError, LimitError
from ..limits import DEFAULT_LIMITS, Limits
from .schema import check_json_like

DEFAULT_MAX_PAYLOAD = 1 << 20            # per-extension payload cap unless the extension says otherwise

FIELD_TYPES = ("int", "number", "bool", "str", "bytes", "hex", "list", "object", "map")


@dataclass(frozen=True)
class Field:
    """One schema entry. Bounds: ``min``/``max`` for int and number (inclusive);
    ``max_len``/``min_len`` for str (characters), bytes and hex (bytes), list (items) and map (keys);
    ``choices`` for int/str; ``items`` (a Field) for list; ``fields`` (a schema) for object."""

    type: str
    required: bool = False
    min: float | None = None
    max: float | None = None
    min_len: int = 0
    max_len: int | None = None
    choices: tuple | None = None
    items: "Field | None" = None
    fields: Mapping[str, "Field"] | None = None
    doc: str = ""

    def __post_init__(self):
        if self.type not in FIELD_TYPES:
            raise ConfigError(f"schema field type {self.type!r} is not one of {', '.join(FIELD_TYPES)}")
        if self.type == "list" and not isinstance(self.items, Field):
            raise ConfigError("a list field needs items=Field(...)")
        if self.type == "object":
            _check_schema(self.fields)
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))

    def describe(self) -> dict:
        d: dict[str, Any] = {"type": self.type}
        if self.required:
            d["required"] = True
        for k in ("min", "max", "max_len", "choices"):
            if getattr(self, k) is not None:
                d[k] = list(getattr(self, k)) if k == "choices" else getattr(self, k)
        if self.min_len:
            d["min_len"] = self.min_len
        if self.items is not None:
            d["items"] = self.items.describe()
        if self.fields is not None:
            d["fields"] = {k: f.describe() for k, f in self.fields.items()}
        return d


def _check_schema(schema: Any) -> None:
    if not isinstance(schema, Mapping) or not schema:
        raise ConfigError("a schema is a non-empty mapping of field name -> Field")
    for k, f in schema.items():
        if not isinstance(k, str) or not k or not isinstance(f, Field):
            raise ConfigError(f"schema entry {k!r}: names are strings and values aigif Field objects")


DEFAULT_STR_LEN = 65536
DEFAULT_LIST_LEN = 1024


def _validate(f: Field, v: Any, where: str, depth: int, max_depth: int, mode: str) -> Any:
    """Check *v* against *f*; return its canonical native value. *mode* is 'encode' or 'decode'."""
    err = ConfigError if mode == "encode" else CorruptError
    if depth > max_depth:
        raise LimitError(f"{where}: nested deeper than {max_depth}")
    t = f.type
    if t == "bool":
        if not isinstance(v, bool):
            raise err(f"{where} must be a boolean, got {v!r}")
        return v
    if t == "int":
        if not isinstance(v, int) or isinstance(v, bool):
            raise err(f"{where} must be an integer, got {_short(v)}")
        if not -(2**63) <= v < 2**64:
            raise err(f"{where} = {v} does not fit 64 bits")
        _bounds(f, v, where, err)
        return v
    if t == "number":
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise err(f"{where} must be a number, got {_short(v)}")
        v = float(v)
        if not math.isfinite(v):
            raise err(f"{where} must be finite, got {v}")
        _bounds(f, v, where, err)
        return v
    if t == "str":
        if not isinstance(v, str):
            raise err(f"{where} must be a string, got {_short(v)}")
        _length(f, len(v), where, err, DEFAULT_STR_LEN, "characters")
        if f.choices is not None and v not in f.choices:
            raise err(f"{where} = {v!r}; allowed: {', '.join(map(str, f.choices))}")
        return v
    if t == "bytes":
        if mode == "encode" and isinstance(v, Mapping):
            v = _from_b64(v, where)
        if not isinstance(v, (bytes, bytearray)):
            raise err(f"{where} must be bytes (or {{\"base64\": ...}} in JSON), got {_short(v)}")
        _length(f, len(v), where, err, None, "bytes")
        return bytes(v)
    if t == "hex":
        # digests: lower-case hex in Python and JSON, raw bytes (msgpack bin) on the wire
        if mode == "encode":
            if not (isinstance(v, str) and len(v) % 2 == 0 and all(c in "0123456789abcdef" for c in v)):
                raise err(f"{where} must be lower-case hex digits, got {_short(v)}")
            raw = bytes.fromhex(v)
        else:
            if not isinstance(v, bytes):
                raise err(f"{where} must be binary (a hex field), got {_short(v)}")
            raw = v
        _length(f, len(raw), where, err, None, "bytes")
        return raw.hex()
    if t == "list":
        if not isinstance(v, (list, tuple)):
            raise err(f"{where} must be a list, got {_short(v)}")
        _length(f, len(v), where, err, DEFAULT_LIST_LEN, "items")
        return [_validate(f.items, x, f"{where}[{i}]", depth + 1, max_depth, mode) for i, x in enumerate(v)]  # type: ignore[arg-type]
    if t == "object":
        return _validate_map(f.fields, v, where, depth + 1, max_depth, mode)  # type: ignore[arg-type]
    # free-form JSON-like map with string keys
    if not isinstance(v, Mapping):
        raise err(f"{where} must be an object, got {_short(v)}")
    _length(f, len(v), where, err, DEFAULT_LIST_LEN, "keys")
    v = dict(v)
    check_json_like(v, where, max_depth, depth + 1, err)
    return v


def _validate_map(schema: Mapping[str, Field], v: Any, where: str, depth: int, max_depth: int, mode: str) -> dict:
    err = ConfigError if mode == "encode" else CorruptError
    if not isinstance(v, Mapping):
        raise err(f"{where} must be an object, got {_short(v)}")
    if depth > max_depth:
        raise LimitError(f"{where}: nested deeper than {max_depth}")
    for k in v:
        if not isinstance(k, str):
            raise err(f"{where}: key {_short(k)} is not a string")
    unknown = [k for k in v if k not in schema]
    if unknown and mode == "encode":
        raise err(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(schema)}")
    out = {}
    for name, f in schema.items():  # schema order = byte order
        x = v.get(name)
        if x is None:
            if f.required:
                raise err(f"{where}: required key {name!r} is missing")
            continue
        out[name] = _validate(f, x, f"{where}.{name}", depth, max_depth, mode)
    return out  # on decode, keys the schema does not name are ignored (forward compatible)


def _to_wire(schema: Mapping[str, Field], native: dict) -> dict:
    """Validated native data -> what msgpack packs (hex fields become bin)."""
    return {k: _wire_value(schema[k], v) for k, v in native.items()}


def _wire_value(f: Field, v: Any) -> Any:
    if f.type == "hex":
        return bytes.fromhex(v)
    if f.type == "object":
        return _to_wire(f.fields, v)  # type: ignore[arg-type]
    if f.type == "list":
        return [_wire_value(f.items, x) for x in v]  # type: ignore[arg-type]
    return v


def _bounds(f: Field, v: float, where: str, err: type) -> None:
    if f.min is not None and v < f.min:
        raise err(f"{where} = {v} is below the minimum {f.min}")
    if f.max is not None and v > f.max:
        raise err(f"{where} = {v} is above the maximum {f.max}")
    if f.choices is not None and v not in f.choices:
        raise err(f"{where} = {v}; allowed: {', '.join(map(str, f.choices))}")


def _length(f: Field, n: int, where: str, err: type, default_max: int | None, unit: str) -> None:
    cap = f.max_len if f.max_len is not None else default_max
    if cap is not None and n > cap:
        raise (LimitError if err is CorruptError else err)(f"{where} has {n} {unit}, above the limit of {cap}")
    if n < f.min_len:
        raise err(f"{where} has {n} {unit}, fewer than {f.min_len}")


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def _from_b64(v: Mapping, where: str) -> bytes:
    if set(v) != {"base64"} or not isinstance(v["base64"], str):
        raise ConfigError(f"{where} must be {{\"base64\": \"...\"}}")
    try:
        return base64.b64decode(v["base64"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{where}.base64 is not valid base64: {exc}") from None


def _unique_keys(pairs: list) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("a map repeats a key")
    return out


def to_json(value: Any) -> Any:
    """Native schema values -> JSON-ready (bytes become ``{"base64": ...}``)."""
    if isinstance(value, (bytes, bytearray)):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Mapping):
        return {k: to_json(x) for k, x in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(x) for x in value]
    return value


@dataclass(frozen=True)
class MsgpackSchema:
    """A schema-checked msgpack map codec: ``pack(data) -> bytes``, ``unpack(bytes) -> data``.

    Encoding is canonical: keys in schema order, absent optional fields omitted,
    numbers as float64, integers in their shortest msgpack form.
    """

    schema: Mapping[str, Field]
    max_payload: int = DEFAULT_MAX_PAYLOAD
    limits: Limits = DEFAULT_LIMITS

    def __post_init__(self):
        _check_schema(self.schema)

    def validate(self, data: Any) -> dict:
        """*data* checked for writing (:class:`ConfigError` naming the field); its canonical native values."""
        return _validate_map(self.schema, data, "data", 0, self.limits.max_nesting, "encode")

    def pack(self, data: Any) -> bytes:
        native = self.validate(data)
        payload = msgpack.packb(_to_wire(self.schema, native), use_bin_type=True)
        if len(payload) > self.max_payload:
            raise LimitError(f"payload is {len(payload)} bytes, above this extension's limit of {self.max_payload}")
        return payload

    def unpack(self, payload: bytes) -> dict:
        if len(payload) > self.max_payload:
            raise LimitError(f"payload is {len(payload)} bytes, above this extension's limit of {self.max_payload}")
        cap = len(payload)
        try:
            value = msgpack.unpackb(
                payload, raw=False, strict_map_key=True, use_list=True, object_pairs_hook=_unique_keys,
                max_str_len=min(cap, self.limits.max_text_chars * 4), max_bin_len=cap,
                max_array_len=min(cap, DEFAULT_LIST_LEN), max_map_len=min(cap, DEFAULT_LIST_LEN), max_ext_len=0,
            )
        except Exception as exc:  # msgpack raises several unrelated types on bad data
            raise CorruptError(f"invalid msgpack payload ({type(exc).__name__}: {exc})") from None
        return _validate_map(self.schema, value, "data", 0, self.limits.max_nesting, "decode")
