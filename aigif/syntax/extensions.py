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

The payload schema language lives in :mod:`.msgpack_schema` (re-exported here).
An extension may carry a pipeline *adapter* for the engine: an object with
``pipeline`` (the class name(s) it may hand back) and ``adapt(pipe,
call_kwargs, data) -> (pipe, call_kwargs)``. This module only checks its shape;
the engine checks its classes against its allowlist and runs it
(:mod:`aigif.engine.adapters`).
"""
from __future__ import annotations

import dataclasses
import os
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from ..container.stream import Segment, is_critical
from ..errors import (  # noqa: F401  (the warnings and ExtensionError stay importable from here)
    AigifError, AigifWarning, ConfigError, CorruptError, ExtensionError, ExtensionLoadWarning, ExtensionPayloadWarning,
    LimitError, RegistryError, UnknownExtensionWarning, UnknownSegmentError,
)
from ..limits import DEFAULT_LIMITS, Limits
from . import registry
from .msgpack_schema import DEFAULT_MAX_PAYLOAD, Field, MsgpackSchema, to_json

ENTRY_POINT_GROUP = "aigif.extensions"
NO_PLUGINS_ENV = "AIGIF_NO_PLUGINS"      # set to 1 to skip entry point discovery
MAX_TYPE_CODE = 2**32 - 1

# Extension type codes assigned in spec/registry.md (public range 0x40..0x3FFF).
# A code is never reused or repurposed; deprecated codes stay here, reserved.
@dataclass(frozen=True)
class Assignment:
    name: str
    package: str
    status: str = "active"       # active | deprecated


ASSIGNED_EXTENSIONS: dict[int, Assignment] = {
    0x41: Assignment("img2img", "aigif-img2img", "deprecated"),    # core segment 0x0f says the same
    0x42: Assignment("comfyui-graph", "aigif"),
    0x43: Assignment("partial-syntax", "aigif"),
}


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
        return adapter_pipelines(self.adapter)

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

    Each entry point resolves to an :class:`Extension` or an object with a
    ``register()`` method (a generator family), an iterable of them, or a
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
            _register_builtins()
            if os.environ.get(NO_PLUGINS_ENV, "") not in ("", "0"):
                return []
            entry_points = _installed_entry_points()
        loaded = []
        for ep in entry_points:
            loaded.extend(_load_one(ep))
        return loaded


def _register_builtins() -> None:
    """The extensions aigif ships (``aigif.syntax.builtin``); an explicit registration of the same name wins."""
    from .builtin import BUILTIN_EXTENSIONS

    for ext in BUILTIN_EXTENSIONS:
        if ext.name not in _BY_NAME:
            register_extension(ext)


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
        if callable(obj) and not isinstance(obj, Extension) and not _is_registration(obj):
            obj = obj()
        items = [obj] if isinstance(obj, Extension) or _is_registration(obj) else list(obj or ())
        bad = [type(e).__name__ for e in items if not (isinstance(e, Extension) or _is_registration(e))]
        if bad or not items:
            raise TypeError(f"expected an aigif.Extension, an object with register() (e.g. a generator family) "
                            f"or a list of them, got {', '.join(bad) or 'nothing'}")
    except (Exception, SystemExit) as exc:  # any failure of third-party code: warn and go on
        _warn_load(f"extension plugin {label} failed to load: {type(exc).__name__}: {exc}")
        return []
    out = []
    for ext in items:
        if not isinstance(ext, Extension):   # a registration of another layer (generator family, ...): it registers itself
            try:
                ext.register()
            except (Exception, SystemExit) as exc:
                _warn_load(f"extension plugin {label}: {type(ext).__name__}.register() failed: {type(exc).__name__}: {exc}")
            continue
        if ext.name in _BY_NAME:  # registered in code already: the explicit registration wins
            continue
        ext = dataclasses.replace(ext, source=ext.source or source, version=ext.version or version)
        try:
            out.append(register_extension(ext))
        except AigifError as exc:
            _warn_load(f"extension plugin {label}: {exc}")
    return out


def _is_registration(obj: Any) -> bool:
    """An object of another layer that registers itself (``aigif.engine.families.GeneratorFamily``)."""
    return not isinstance(obj, (type, Extension)) and callable(getattr(obj, "register", None))


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


# --- schema-checked msgpack extensions ---------------------------------------------
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
        native = codec.validate(data)
        _checked(native, ConfigError)
        return codec.pack(native)

    def load(payload: bytes) -> dict:
        return _checked(codec.unpack(payload), CorruptError)

    def decode(payload: bytes) -> dict:
        return to_json(load(payload))

    return Extension(name=name, types=types, decode=decode, encode=encode, description=description,
                     adapter=adapter, load=load, schema=dict(schema), version=version,
                     meta={"payload": "msgpack", "max_payload": max_payload})


# --- adapters: their shape (the engine checks their classes and runs them) ----------
def adapter_pipelines(adapter: Any) -> tuple[str, ...]:
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
