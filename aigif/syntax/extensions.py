"""Registry of syntax extensions: segment types outside the v1 core.

An extension owns one or more segment type codes (the lowest bit of a code is
the critical flag, as in PNG) and knows how to turn its payload into JSON-like
data and back. Most extensions are declared with :func:`msgpack_extension`: a
small declarative schema (field -> type, required, bounds) checked on encode
and on decode, over a msgpack map unpacked with hard limits.

Extensions come from two places: ``register_extension(...)`` in code, and the
``aigif.extensions`` entry point group, loaded lazily on the first lookup (a
broken plugin is a warning, never a crash). Unregistered extension segments
still round-trip byte for byte; a critical one makes the file undecodable
(``UnknownSegmentError``). The normative text is ``spec/extensions.md``.

An extension may carry a pipeline *adapter* for the engine: an object with
``pipeline`` (the diffusers class name(s) it needs, from
:data:`PIPELINE_ALLOWLIST`) and ``adapt(pipe, call_kwargs, data) -> (pipe,
call_kwargs)``; the engine runs them through :func:`apply_adapters`.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import math
import os
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import msgpack

from ..container.stream import Segment, is_critical
from ..errors import AigifError, ConfigError, CorruptError, LimitError, RegistryError, UnknownSegmentError
from ..limits import DEFAULT_LIMITS, Limits
from . import registry

ENTRY_POINT_GROUP = "aigif.extensions"
NO_PLUGINS_ENV = "AIGIF_NO_PLUGINS"      # set to 1 to skip entry point discovery
MAX_TYPE_CODE = 2**32 - 1
DEFAULT_MAX_PAYLOAD = 1 << 20            # per-extension payload cap unless the extension says otherwise

# Diffusers pipeline classes an adapter may ask for: loadable without remote code,
# every one a plain text-to-image / image-to-image pipeline of the supported families.
PIPELINE_ALLOWLIST = frozenset({
    "StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline",
    "StableDiffusionControlNetPipeline", "StableDiffusionControlNetImg2ImgPipeline",
    "StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline",
    "StableDiffusionXLControlNetPipeline", "StableDiffusion3Pipeline", "StableDiffusion3Img2ImgPipeline",
    "FluxPipeline", "FluxImg2ImgPipeline",
})

# Extension type codes assigned in spec/registry.md (public range 0x40..0x3FFF).
# A code is never reused or repurposed; deprecated codes stay here, reserved.
@dataclass(frozen=True)
class Assignment:
    name: str
    package: str
    status: str = "active"       # active | deprecated


ASSIGNED_EXTENSIONS: dict[int, Assignment] = {
    0x41: Assignment("img2img", "aigif-img2img"),
}


# --- warnings and errors ---------------------------------------------------------
class AigifWarning(UserWarning):
    """Base of every warning aigif emits (filter with ``warnings.simplefilter(..., aigif.AigifWarning)``)."""


class UnknownExtensionWarning(AigifWarning):
    """An ancillary segment of an extension this decoder does not have: kept as raw bytes."""


class ExtensionPayloadWarning(AigifWarning):
    """An ancillary extension segment whose payload its extension refuses: kept as raw bytes."""


class ExtensionLoadWarning(AigifWarning):
    """An ``aigif.extensions`` entry point could not be loaded or registered; it is skipped."""


class ExtensionError(AigifError):
    """An extension cannot be applied (missing adapter, adapter broke its contract)."""

    kind = "extension"


# --- the extension record ----------------------------------------------------------
@dataclass(frozen=True)
class Extension:
    """A registered extension. ``decode(payload) -> data`` (JSON-ready) and ``encode(data) -> payload``.

    ``load(payload)`` gives the native values an adapter sees (bytes stay bytes);
    it defaults to ``decode``.
    """

    name: str
    types: tuple[int, ...]
    decode: Callable[[bytes], Any]
    encode: Callable[[Any], bytes]
    description: str = ""
    adapter: Any = None          # optional engine hook, see apply_adapters
    meta: dict = field(default_factory=dict)
    load: Callable[[bytes], Any] | None = None
    schema: Mapping[str, "Field"] | None = None
    source: str | None = None    # distribution that provided it (entry points) or None (in code)
    version: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "types", tuple(self.types))

    def critical(self, type_code: int) -> bool:
        return is_critical(type_code)

    @property
    def critical_types(self) -> tuple[int, ...]:
        return tuple(t for t in self.types if is_critical(t))

    def data(self, payload: bytes) -> Any:
        """Native values of *payload* (what an adapter receives)."""
        return (self.load or self.decode)(payload)

    @property
    def pipelines(self) -> tuple[str, ...]:
        return _adapter_pipelines(self.adapter)

    def describe(self) -> dict:
        """JSON summary for ``aigif extensions --json``."""
        return {
            "name": self.name,
            "types": [f"{t:#06x}" for t in self.types],
            "critical": [is_critical(t) for t in self.types],
            "description": self.description,
            "source": self.source or "(registered in code)",
            "version": self.version,
            "adapter": self.adapter is not None,
            "pipelines": list(self.pipelines),
            "schema": {k: f.describe() for k, f in (self.schema or {}).items()},
        }


_BY_TYPE: dict[int, Extension] = {}
_BY_NAME: dict[str, Extension] = {}
_LOCK = threading.RLock()
_discovered = False
_load_failures: list[str] = []


def _check_type_code(name: str, t: Any) -> None:
    if not isinstance(t, int) or isinstance(t, bool):
        raise ConfigError(f"extension {name!r}: type code {t!r} is not an integer")
    if t < 2 or t in registry.CORE_RANGE:
        raise ConfigError(f"extension {name!r}: type {t:#x} is in the core range {registry.CORE_RANGE.start:#x}..{registry.CORE_RANGE.stop - 1:#x}")
    if t > MAX_TYPE_CODE:
        raise ConfigError(f"extension {name!r}: type {t:#x} is above {MAX_TYPE_CODE:#x}")
    assigned = ASSIGNED_EXTENSIONS.get(t)
    if assigned is not None and assigned.name != name:
        raise ConfigError(f"extension {name!r}: type {t:#x} is assigned to {assigned.name!r} ({assigned.package}) in spec/registry.md; "
                          f"use a private code >= {registry.PRIVATE_EXTENSION_START:#x} or request a public one")


def register_extension(ext: Extension, *, replace: bool = False) -> Extension:
    """Make *ext* known to the reader and writer. Type codes must lie outside the core range."""
    if not isinstance(ext, Extension):
        raise ConfigError(f"register_extension needs an aigif.Extension, got {type(ext).__name__}")
    if not isinstance(ext.name, str) or not ext.name or len(ext.name) > 64:
        raise ConfigError(f"extension name must be a non-empty string of at most 64 characters, got {ext.name!r}")
    if not ext.types:
        raise ConfigError(f"extension {ext.name!r} declares no segment type code")
    if not (callable(ext.decode) and callable(ext.encode)):
        raise ConfigError(f"extension {ext.name!r}: decode and encode must be callables")
    for t in ext.types:
        _check_type_code(ext.name, t)
    _check_adapter(ext)
    with _LOCK:
        for t in ext.types:
            other = _BY_TYPE.get(t)
            if other and other.name != ext.name and not replace:
                raise ConfigError(f"extension {ext.name!r}: type {t:#x} is already registered by {other.name!r}")
        old = _BY_NAME.get(ext.name)
        if old is not None:
            for t in old.types:
                _BY_TYPE.pop(t, None)
        for t in ext.types:
            displaced = _BY_TYPE.get(t)
            if displaced is not None and displaced.name != ext.name:
                _drop(displaced.name)
            _BY_TYPE[t] = ext
        _BY_NAME[ext.name] = ext
    return ext


def _drop(name: str) -> None:
    ext = _BY_NAME.pop(name, None)
    if ext:
        for t in ext.types:
            if _BY_TYPE.get(t) is ext:
                _BY_TYPE.pop(t, None)


def unregister_extension(name: str) -> None:
    with _LOCK:
        _drop(name)


def extension_for(type_code: int) -> Extension | None:
    _ensure_discovered()
    return _BY_TYPE.get(type_code)


def extension_named(name: str) -> Extension | None:
    _ensure_discovered()
    return _BY_NAME.get(name)


def registered_extensions() -> list[Extension]:
    _ensure_discovered()
    return list(_BY_NAME.values())


def extension_segment(name: str, data: Any, type_code: int | None = None) -> Segment:
    """A segment of the registered extension *name* holding *data* (validated by its encoder)."""
    ext = extension_named(name)
    if ext is None:
        raise RegistryError(f"unknown extension {name!r}; registered: {', '.join(sorted(_BY_NAME)) or 'none'}")
    t = ext.types[0] if type_code is None else type_code
    if t not in ext.types:
        raise ConfigError(f"extension {name!r} has no type {t:#x}; its types: {', '.join(f'{x:#x}' for x in ext.types)}")
    payload = ext.encode(data)
    if not isinstance(payload, (bytes, bytearray)):
        raise ExtensionError(f"extension {name!r}: encode returned {type(payload).__name__}, expected bytes")
    return Segment(t, bytes(payload))


# --- entry point discovery ----------------------------------------------------------
def _ensure_discovered() -> None:
    if not _discovered:
        load_entry_points()


def load_entry_points(entry_points: Iterable[Any] | None = None, *, force: bool = False) -> list[Extension]:
    """Register the extensions of the ``aigif.extensions`` entry points, once.

    Each entry point resolves to an :class:`Extension`, an iterable of them, or a
    zero-argument callable returning either. A plugin that fails to import, returns
    something else or clashes with a registered code gives an
    :class:`ExtensionLoadWarning` and is skipped. *entry_points* replaces the
    installed ones (tests); ``AIGIF_NO_PLUGINS=1`` disables discovery.
    """
    global _discovered
    with _LOCK:
        if _discovered and not force and entry_points is None:
            return []
        _discovered = True
        if entry_points is None:
            if os.environ.get(NO_PLUGINS_ENV, "") not in ("", "0"):
                return []
            entry_points = _installed_entry_points()
        loaded = []
        for ep in entry_points:
            loaded.extend(_load_one(ep))
        return loaded


def _installed_entry_points() -> list[Any]:
    from importlib.metadata import entry_points

    try:
        return list(entry_points(group=ENTRY_POINT_GROUP))
    except Exception as exc:  # a broken installed distribution must not break reading files
        _warn_load(f"cannot list the {ENTRY_POINT_GROUP!r} entry points: {type(exc).__name__}: {exc}")
        return []


def _load_one(ep: Any) -> list[Extension]:
    label = f"{getattr(ep, 'name', '?')} = {getattr(ep, 'value', '?')}"
    dist = getattr(ep, "dist", None)
    source = getattr(dist, "name", None) or (getattr(ep, "value", "") or "").split(":")[0].split(".")[0] or None
    version = getattr(dist, "version", None)
    try:
        obj = ep.load()
        if callable(obj) and not isinstance(obj, Extension):
            obj = obj()
        exts = [obj] if isinstance(obj, Extension) else list(obj or ())
        bad = [type(e).__name__ for e in exts if not isinstance(e, Extension)]
        if bad or not exts:
            raise TypeError(f"expected an aigif.Extension or a list of them, got {', '.join(bad) or 'nothing'}")
    except (Exception, SystemExit) as exc:  # any failure of third-party code: warn and go on
        _warn_load(f"extension plugin {label} failed to load: {type(exc).__name__}: {exc}")
        return []
    out = []
    for ext in exts:
        if ext.name in _BY_NAME:  # registered in code already: the explicit registration wins
            continue
        ext = dataclasses.replace(ext, source=ext.source or source, version=ext.version or version)
        try:
            out.append(register_extension(ext))
        except AigifError as exc:
            _warn_load(f"extension plugin {label}: {exc}")
    return out


def _warn_load(msg: str) -> None:
    _load_failures.append(msg)
    warnings.warn(msg, ExtensionLoadWarning, stacklevel=4)


def load_failures() -> list[str]:
    """Messages of the plugins that could not be loaded (for ``aigif extensions``)."""
    _ensure_discovered()
    return list(_load_failures)


# --- reading: the decision for every non-core segment --------------------------------
def check_extension_segment(seg: Segment, where: str = "", limits: Limits = DEFAULT_LIMITS) -> None:
    """What a reader does with an extension segment (spec/extensions.md, 'Reading').

    Unknown critical: :class:`UnknownSegmentError` naming the type code. Unknown
    ancillary: :class:`UnknownExtensionWarning`, kept. Known: its payload is
    validated; a bad critical payload is :class:`CorruptError`, a bad ancillary one
    an :class:`ExtensionPayloadWarning` (kept byte for byte either way).
    """
    where = where or f"segment type {seg.type:#x}"
    ext = extension_for(seg.type)
    if ext is None:
        if seg.critical:
            assigned = ASSIGNED_EXTENSIONS.get(seg.type)
            hint = f" ({assigned.name!r} from package {assigned.package})" if assigned else ""
            raise UnknownSegmentError(
                f"{where} is a critical extension{hint} unknown to this decoder; "
                f"install the extension that defines type {seg.type:#x} or upgrade aigif")
        warnings.warn(f"{where}: ancillary extension type {seg.type:#x} is not installed; "
                      f"its {len(seg.payload)} bytes are kept unchanged", UnknownExtensionWarning, stacklevel=3)
        return
    try:
        ext.decode(seg.payload)
    except Exception as exc:
        msg = f"{where}: extension {ext.name!r} (type {seg.type:#x}) refuses its payload: {exc}"
        if seg.critical:
            if isinstance(exc, LimitError):
                raise LimitError(msg) from None
            raise CorruptError(msg) from None
        warnings.warn(msg + "; the segment is kept unchanged", ExtensionPayloadWarning, stacklevel=3)


# --- declarative payload schema --------------------------------------------------------
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
    return _free(v, where, depth + 1, max_depth, err)


def _free(v: Any, where: str, depth: int, max_depth: int, err: type) -> Any:
    if depth > max_depth:
        raise LimitError(f"{where}: nested deeper than {max_depth}")
    if isinstance(v, Mapping):
        out = {}
        for k, x in v.items():
            if not isinstance(k, str):
                raise err(f"{where}: key {_short(k)} is not a string")
            out[k] = _free(x, f"{where}.{k}", depth + 1, max_depth, err)
        return out
    if isinstance(v, (list, tuple)):
        return [_free(x, where, depth + 1, max_depth, err) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        raise err(f"{where}: non-finite number")
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    raise err(f"{where}: a value of type {type(v).__name__} is not allowed in a map")


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

    def pack(self, data: Any) -> bytes:
        native = _validate_map(self.schema, data, "data", 0, self.limits.max_nesting, "encode")
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

    def decode_json(self, payload: bytes) -> dict:
        return to_json(self.unpack(payload))


def msgpack_extension(name: str, type_code: int | Iterable[int], schema: Mapping[str, Field], *,
                      critical: bool | None = None, adapter: Any = None, description: str = "",
                      max_payload: int = DEFAULT_MAX_PAYLOAD, version: str | None = None,
                      check: Callable[[dict], None] | None = None) -> Extension:
    """An :class:`Extension` whose payload is a schema-checked msgpack map.

    *critical*, when given, must agree with the lowest bit of every type code.
    *check(native_data)* may add cross-field checks (raise ``ValueError`` or an
    ``AigifError``); it runs on encode and on decode.
    """
    types = (type_code,) if isinstance(type_code, int) else tuple(type_code)
    for t in types:
        if critical is not None and isinstance(t, int) and is_critical(t) != critical:
            raise ConfigError(f"extension {name!r}: type {t:#x} is {'critical' if is_critical(t) else 'ancillary'} "
                              f"(lowest bit {t & 1}) but critical={critical}; critical codes are odd, ancillary even")
    codec = MsgpackSchema(schema, max_payload)

    def _checked(native: dict, err: type) -> dict:
        if check is not None:
            try:
                check(native)
            except AigifError:
                raise
            except ValueError as exc:
                raise err(f"{name}: {exc}") from None
        return native

    def encode(data: Any) -> bytes:
        native = _validate_map(codec.schema, data, "data", 0, codec.limits.max_nesting, "encode")
        _checked(native, ConfigError)
        return codec.pack(native)

    def load(payload: bytes) -> dict:
        return _checked(codec.unpack(payload), CorruptError)

    def decode(payload: bytes) -> dict:
        return to_json(load(payload))

    return Extension(name=name, types=types, decode=decode, encode=encode, description=description,
                     adapter=adapter, load=load, schema=dict(schema), version=version,
                     meta={"payload": "msgpack", "max_payload": max_payload})


# --- engine side: pipeline adapters --------------------------------------------------------
def _adapter_pipelines(adapter: Any) -> tuple[str, ...]:
    if adapter is None:
        return ()
    p = getattr(adapter, "pipeline", None)
    if p is None:
        return ()
    return (p,) if isinstance(p, str) else tuple(p)


def _check_adapter(ext: Extension) -> None:
    a = ext.adapter
    if a is None:
        return
    if not callable(getattr(a, "adapt", None)):
        raise ConfigError(f"extension {ext.name!r}: its adapter needs a method adapt(pipe, call_kwargs, data) -> (pipe, call_kwargs)")
    p = getattr(a, "pipeline", None)
    if p is not None and not (isinstance(p, str) or (isinstance(p, (tuple, list, frozenset, set)) and all(isinstance(x, str) for x in p))):
        raise ConfigError(f"extension {ext.name!r}: adapter.pipeline must be a class name or a tuple of them")
    bad = [x for x in _adapter_pipelines(a) if x not in PIPELINE_ALLOWLIST]
    if bad:
        raise ConfigError(f"extension {ext.name!r}: pipeline class(es) {', '.join(bad)} are not allowlisted; "
                          f"allowed: {', '.join(sorted(PIPELINE_ALLOWLIST))}")


@dataclass
class AdaptedCall:
    """What :func:`apply_adapters` returns: the pipeline to call, its kwargs, and which extensions ran."""

    pipe: Any
    call_kwargs: dict
    applied: list[str]


def apply_adapters(extensions: Iterable[Segment], pipe: Any, call_kwargs: dict) -> AdaptedCall:
    """Run the adapters of a document's extension segments, in file order.

    Every critical segment must have a registered extension with an adapter (else
    the engine cannot honour it: :class:`ExtensionError` / ``UnknownSegmentError``);
    ancillary segments without one are ignored. The pipeline an adapter returns
    must be an allowlisted class it declared.
    """
    kwargs = dict(call_kwargs)
    applied = []
    for seg in extensions:
        ext = extension_for(seg.type)
        if ext is None:
            if seg.critical:
                raise UnknownSegmentError(f"critical extension type {seg.type:#x} is unknown; install the extension that defines it")
            continue
        if ext.adapter is None:
            if seg.critical:
                raise ExtensionError(f"critical extension {ext.name!r} (type {seg.type:#x}) has no pipeline adapter; "
                                     "this engine cannot regenerate the image")
            continue
        try:
            data = ext.data(seg.payload)
        except AigifError:
            raise
        except Exception as exc:
            raise CorruptError(f"extension {ext.name!r} (type {seg.type:#x}) cannot decode its payload: {exc}") from None
        try:
            result = ext.adapter.adapt(pipe, dict(kwargs), data)
        except AigifError:
            raise
        except Exception as exc:
            raise ExtensionError(f"adapter of extension {ext.name!r} failed: {type(exc).__name__}: {exc}") from exc
        if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict)
                and all(isinstance(k, str) for k in result[1])):
            raise ExtensionError(f"adapter of extension {ext.name!r} must return (pipe, call_kwargs: dict)")
        new_pipe, kwargs = result
        cls = type(new_pipe).__name__
        if new_pipe is not pipe:
            declared = ext.pipelines
            if cls not in PIPELINE_ALLOWLIST or (declared and cls not in declared):
                raise ExtensionError(f"adapter of extension {ext.name!r} returned a {cls}; it declared "
                                     f"{', '.join(declared) or 'no pipeline'} (allowlist: {', '.join(sorted(PIPELINE_ALLOWLIST))})")
        pipe = new_pipe
        applied.append(ext.name)
    return AdaptedCall(pipe, kwargs, applied)
