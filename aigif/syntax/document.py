"""A whole .aigif document: elements <-> segments <-> bytes.

``dumps``/``loads`` are the public API; segment handlers live in one explicit
table (no ``getattr`` dispatch), one entry per core segment type.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..container import Segment, read_container, write_container
from ..errors import AigifError, ConfigError, CorruptError
from ..limits import DEFAULT_LIMITS, Limits
from . import registry
from .defaults import with_defaults
from .elements import Fingerprint, Generation, ModelRef, Platform, Source, bytes_from_json, bytes_to_json, from_dict, to_dict
from .extensions import check_extension_segment, extension_for
from .img2img import Img2Img
from .detail import Detail
from .passes import HiresFix, Refiner
from .schema import decode_element, encode_element
from .stamp import decode_stamp, encode_stamp

# attribute, element class (None = raw payload bytes), segment type -- in writing order
CORE = (
    ("platform", Platform, registry.SEG_PLATFORM),
    ("model", ModelRef, registry.SEG_MODEL),
    ("generation", Generation, registry.SEG_GENERATION),
    ("hires", HiresFix, registry.SEG_HIRES),
    ("refiner", Refiner, registry.SEG_REFINER),
    ("img2img", Img2Img, registry.SEG_IMG2IMG),
    ("detail", Detail, registry.SEG_DETAIL),
    ("fingerprint", Fingerprint, registry.SEG_FINGERPRINT),
    ("source", Source, registry.SEG_SOURCE),
    ("residual", None, registry.SEG_RESIDUAL),
    ("pixels", None, registry.SEG_PIXELS),
    ("c2pa", None, registry.SEG_C2PA),
)
# raw payloads: base64 in the JSON form, shown by size where a summary is wanted
PAYLOAD_ATTRS = ("residual", "pixels", "c2pa")
_BY_TYPE = {t: (attr, cls) for attr, cls, t in CORE}
_BY_TYPE[registry.SEG_STAMP] = ("stamp", None)    # platform + fingerprint in one compact segment (.stamp)
_BY_TYPE[registry.SEG_STAMP_V1] = ("stamp", None)


@dataclass(frozen=True)
class Document:
    """Everything one .aigif file holds. ``extensions`` keeps extension and unknown ancillary segments, in order.
    ``c2pa``: the C2PA manifest store of the imported image, verbatim."""

    generation: Generation | None = None
    model: ModelRef | None = None
    platform: Platform | None = None
    fingerprint: Fingerprint | None = None
    source: Source | None = None
    residual: bytes | None = None
    pixels: bytes | None = None
    c2pa: bytes | None = None
    hires: HiresFix | None = None      # a second pass over the enlarged first one (hires fix)
    refiner: Refiner | None = None     # a second model finishing the first pass's schedule
    img2img: Img2Img | None = None     # the generation starts from an init image (and a mask: inpainting)
    detail: Detail | None = None       # detector + inpainting passes over the finished image (ADetailer)
    extensions: tuple[Segment, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "extensions", tuple(self.extensions))
        if self.pixels is None and (self.generation is None or self.model is None):
            raise ConfigError("a document needs a model and a generation syntax, or pixels")
        if self.residual is not None and self.generation is None:
            raise ConfigError("a residual needs a generation syntax to be relative to")
        if (self.hires is not None or self.refiner is not None) and self.generation is None:
            raise ConfigError("a hires pass or a refiner needs a generation syntax (its first pass)")
        if self.img2img is not None and self.generation is None:
            raise ConfigError("an image-to-image pass needs a generation syntax (its prompt and schedule)")
        if self.detail is not None and self.generation is None:
            raise ConfigError("a detail pass needs a generation syntax (the image it details)")

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(width, height) of the image the syntax makes: the hires pass's output size when there is one."""
        if self.generation is None:
            return None
        gen = self.generation
        return self.hires.output_size(gen.width, gen.height) if self.hires is not None else (gen.width, gen.height)

    def replace(self, **changes: Any) -> "Document":
        return dataclasses.replace(self, **changes)

    @property
    def unknown_segments(self) -> list[Segment]:
        return [s for s in self.extensions if extension_for(s.type) is None]


# --- bytes ---------------------------------------------------------------------
def dumps(doc: Document) -> bytes:
    """The file's bytes; platform and fingerprint go in one stamp segment when it can hold them exactly."""
    stamp = encode_stamp(doc.platform, doc.fingerprint, doc.image_size)
    segments = []
    for attr, cls, type_code in CORE:
        value = getattr(doc, attr)
        if stamp is not None and attr in ("platform", "fingerprint"):
            if attr == "fingerprint":
                segments.append(Segment(*stamp))
            continue
        if value is None:
            continue
        segments.append(Segment(type_code, encode_element(value) if cls else bytes(value)))
    segments.extend(doc.extensions)
    return write_container(segments)


def loads(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Document:
    _, segments = read_container(data, limits)
    values: dict[str, Any] = {}
    extensions = []
    stamp = None
    for index, seg in enumerate(segments):
        where = f"segment {index} ({registry.CORE_SEGMENTS.get(seg.type, f'type {seg.type:#x}')})"
        if seg.type == registry.SEG_SIGNATURE:
            continue  # it signs the bytes, not the document (aigif.provenance.signature checks it)
        handler = _BY_TYPE.get(seg.type)
        if handler is None:
            check_extension_segment(seg, where, limits)  # unknown critical: error; unknown ancillary: warning
            extensions.append(seg)
            continue
        if seg.type in (registry.SEG_STAMP, registry.SEG_STAMP_V1):
            if stamp is not None:
                raise CorruptError(f"{where}: a second stamp segment; at most one is allowed")
            stamp = (seg.type, seg.payload, where)
            continue
        attr, cls = handler
        if attr in values:
            raise CorruptError(f"{where}: a second {attr} segment; at most one is allowed")
        values[attr] = decode_element(cls, seg.payload, where, limits) if cls else seg.payload
    try:
        doc = Document(**values, extensions=tuple(extensions))
        size = doc.image_size      # the stamp's fingerprint has the size of the image the syntax makes
    except ConfigError as exc:
        raise CorruptError(f"file structure: {exc}") from None
    if stamp is None:
        return doc
    seg_type, payload, where = stamp
    if "platform" in values or "fingerprint" in values:
        raise CorruptError(f"{where}: a stamp and a platform or fingerprint segment; the stamp already holds both")
    platform, fp = decode_stamp(seg_type, payload, size, where, limits)
    return doc.replace(platform=platform, fingerprint=fp)


# --- JSON ----------------------------------------------------------------------
_GEN_KEYS = [f.name for f in Generation.FIELDS]
_TOP_KEYS = ["model", *_GEN_KEYS, "hires", "refiner", "img2img", "detail", "platform", "fingerprint", "source", *PAYLOAD_ATTRS, "extensions"]


def document_to_dict(doc: Document) -> dict:
    """The JSON form (``aigif info --json``): diffusers-style keys at top level."""
    out: dict[str, Any] = {}
    if doc.model is not None:
        out["model"] = doc.model.name if doc.model.is_registry_only else to_dict(doc.model)
    if doc.generation is not None:
        out.update(to_dict(doc.generation))
    for attr in ("hires", "refiner", "img2img", "detail", "platform", "fingerprint", "source"):
        if getattr(doc, attr) is not None:
            out[attr] = to_dict(getattr(doc, attr))
    for attr in PAYLOAD_ATTRS:
        if getattr(doc, attr) is not None:
            out[attr] = bytes_to_json(getattr(doc, attr))
    if doc.extensions:
        out["extensions"] = [_extension_to_dict(s) for s in doc.extensions]
    return out


def _extension_to_dict(seg: Segment) -> dict:
    ext = extension_for(seg.type)
    d: dict[str, Any] = {"type": seg.type, "critical": seg.critical}
    if ext is not None:
        d["name"] = ext.name
        try:
            d["data"] = ext.decode(seg.payload)
            return d
        except Exception as exc:  # an extension's decoder failing is the file's fault
            if seg.critical:
                if isinstance(exc, AigifError):
                    raise
                raise CorruptError(f"extension {ext.name!r} (type {seg.type:#x}) cannot decode its payload: {exc}") from None
            # ancillary: loads() kept it with a warning, so show it raw rather than fail
    d["payload_hex"] = seg.payload.hex()
    return d


def document_from_dict(d: Any) -> Document:
    """Build a document from its JSON form; unknown keys are an error."""
    if not isinstance(d, dict):
        raise ConfigError(f"a generation description must be a JSON object, got {type(d).__name__}")
    unknown = sorted(set(d) - set(_TOP_KEYS))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_TOP_KEYS)}")
    model = None
    if "model" in d:
        m = d["model"]
        if isinstance(m, str):
            registry.model_entry(m)  # unknown names fail listing the known ones
            model = ModelRef(name=m)
        else:
            model = from_dict(ModelRef, m, "model")
    gen = None
    gen_part = {k: d[k] for k in _GEN_KEYS if k in d}
    if gen_part:
        gen = from_dict(Generation, with_defaults(gen_part, model), "generation")
    values: dict[str, Any] = {"model": model, "generation": gen}
    for attr, cls in (("hires", HiresFix), ("refiner", Refiner), ("img2img", Img2Img), ("detail", Detail), ("platform", Platform), ("fingerprint", Fingerprint), ("source", Source)):
        if attr in d:
            values[attr] = from_dict(cls, d[attr], attr)
    for attr in PAYLOAD_ATTRS:
        if attr in d:
            values[attr] = bytes_from_json(d[attr], attr)
    if "extensions" in d:
        values["extensions"] = tuple(_extension_from_dict(x, i) for i, x in enumerate(_as_list(d["extensions"], "extensions")))
    return Document(**values)


def _as_list(v: Any, where: str) -> list:
    if not isinstance(v, list):
        raise ConfigError(f"{where} must be a list")
    return v


def _extension_from_dict(x: Any, i: int) -> Segment:
    where = f"extensions[{i}]"
    if not isinstance(x, dict) or not isinstance(x.get("type"), int) or isinstance(x.get("type"), bool):
        raise ConfigError(f"{where} must be an object with an integer 'type'")
    allowed = {"type", "critical", "name", "data", "payload_hex"}
    unknown = sorted(set(x) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    t = x["type"]
    if t in registry.CORE_RANGE or t < 2 or t >= 2**32:
        raise ConfigError(f"{where}: type {t:#x} is not an extension type (core codes are {registry.CORE_RANGE.start:#x}..{registry.CORE_RANGE.stop - 1:#x})")
    if "critical" in x and x["critical"] != bool(t & 1):
        raise ConfigError(f"{where}: 'critical' is {x['critical']} but type {t:#x} says {bool(t & 1)} (the lowest bit of the type is the critical flag)")
    if "payload_hex" in x:
        try:
            return Segment(t, bytes.fromhex(x["payload_hex"]))
        except (ValueError, TypeError):
            raise ConfigError(f"{where}.payload_hex is not hex") from None
    ext = extension_for(t)
    if ext is None:
        raise ConfigError(f"{where}: extension type {t:#x} is not registered; give 'payload_hex' or install the extension")
    return Segment(t, ext.encode(x.get("data")))
