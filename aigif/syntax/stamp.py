"""The stamp segment: platform and fingerprint of a generated image in about 20 bytes (spec/aigif-v1.md §4.6).

The full ``platform`` and ``fingerprint`` elements spell GPU names, CPU models
and library versions as text (~110 bytes). The stamp keeps only what changes
the pixels, as registry codes, and takes the image size from the syntax (the
``generation`` element, or its ``hires`` pass). Stamp 0x0E names library
versions by release-table codes; the older 0x08 packs version numbers
arithmetically and remains the fallback for versions the tables do not list.
A writer uses a stamp only when it gives back exactly the same elements;
anything neither can express goes in the full elements.
"""
from __future__ import annotations

import re

from ..container.varint import decode_uvarint, encode_uvarint
from ..errors import CorruptError, LimitError, TruncatedError
from ..limits import DEFAULT_LIMITS, Limits
from . import registry
from .elements import Fingerprint, Platform

HASH_BYTES = 8
PERCEPTUAL_BYTES = 4
HEAD = HASH_BYTES + PERCEPTUAL_BYTES

# the values after the 12 fixed bytes, in order, per stamp segment type; 0 always means "not recorded".
# 0x0E names library versions by release-table codes (1 byte each); 0x08, the older stamp, packs them arithmetically.
VALUES = {
    registry.SEG_STAMP: ("setup", "device", "cpu", "torch", "diffusers", "transformers", "cuda", "cudnn", "onednn", "threads"),
    registry.SEG_STAMP_V1: ("setup", "device", "cpu", "cuda", "torch", "cudnn", "diffusers", "transformers", "onednn", "threads"),
}
VERSION_FIELDS = ("cuda", "torch", "cudnn", "diffusers", "transformers")   # decoded in this order: torch's +cu names cuda
# 0x08 version packing per platform field: (parts, radix of the minor, radix of the patch)
VERSION_PACKING = {"torch": (3, 64, 16), "cuda": (2, 32, 1), "cudnn": (3, 64, 16), "diffusers": (3, 128, 16),
                   "transformers": (3, 128, 16)}
TORCH_BUILDS = 4                     # torch local version: 0 none, 1 "+cpu", 2 "+cu<cuda digits>", 3 reserved
_VER = re.compile(r"^(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})(?:\.(0|[1-9]\d{0,5}))?(\+[\x21-\x7e]+)?$")


# --- versions --------------------------------------------------------------------
def _torch_build(local: str | None, cuda: str | None) -> int | None:
    """The torch local-version code (TORCH_BUILDS), or None when it has none."""
    if local is None:
        return 0
    if local == "+cpu":
        return 1
    if cuda is not None and local == "+cu" + cuda.replace(".", ""):
        return 2
    return None


def _torch_local(build: int, cuda: str | None, where: str) -> str:
    if build == 3 or (build == 2 and cuda is None):
        raise CorruptError(f"{where}: torch build code {build} is not valid here (newer file? upgrade aigif)")
    return ("", "+cpu", f"+cu{(cuda or '').replace('.', '')}")[build]


def release_code(field: str, version: str, cuda: str | None = None) -> int | None:
    """0x0E: the release-table code of *version* + 1 (torch: ``code * 4 + build + 1``), or None when it is not listed."""
    base, plus, local = version.partition("+")
    table = registry.RELEASES[field]
    if base not in table or (plus and field != "torch"):
        return None
    if field != "torch":
        return table.index(base) + 1
    build = _torch_build(plus + local if plus else None, cuda)
    return None if build is None else table.index(base) * TORCH_BUILDS + build + 1


def release_name(field: str, v: int, cuda: str | None, where: str) -> str:
    table = registry.RELEASES[field]
    code, build = divmod(v - 1, TORCH_BUILDS) if field == "torch" else (v - 1, None)
    if code >= len(table):
        raise CorruptError(f"{where}: unknown {field} release code {code} (newer file? upgrade aigif)")
    return table[code] + (_torch_local(build, cuda, where) if build is not None else "")


def pack_version(field: str, version: str, cuda: str | None = None) -> int | None:
    """0x08: the packed number of *version* (0 is reserved for 'not recorded'), or None when it does not fit."""
    parts, rb, rc = VERSION_PACKING[field]
    m = _VER.match(version)
    if not m or (m.group(3) is None) != (parts == 2):
        return None
    a, b, c = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if b >= rb or c >= rc:
        return None
    if field == "torch":
        build = _torch_build(m.group(4), cuda)
        return None if build is None else (((a * rb + b) * rc + c) * TORCH_BUILDS + build) + 1
    if m.group(4) is not None:
        return None
    return (a * rb + b) * rc + c + 1


def unpack_version(field: str, v: int, cuda: str | None, where: str) -> str:
    parts, rb, rc = VERSION_PACKING[field]
    v -= 1
    local = ""
    if field == "torch":
        v, build = divmod(v, TORCH_BUILDS)
        local = _torch_local(build, cuda, where)
    ab, c = divmod(v, rc)
    a, b = divmod(ab, rb)
    return f"{a}.{b}" + (f".{c}" if parts == 3 else "") + local


VERSION_CODERS = {registry.SEG_STAMP: (release_code, release_name), registry.SEG_STAMP_V1: (pack_version, unpack_version)}


# --- encode ----------------------------------------------------------------------
def _code(table: str, name: str | None) -> int | None:
    """code + 1 (0 = not recorded), or None when the name has no code."""
    if name is None:
        return 0
    code = registry.code_of(table, name)
    return None if code is None else code + 1


def _settings(p: Platform) -> dict[str, int] | None:
    """The values other than library versions, or None when one has no code."""
    dtype, attention = _code("dtype", p.dtype), _code("attention", p.attention)
    cpu, onednn = _code("cpu", p.cpu), _code("onednn", p.onednn)
    if None in (dtype, attention, cpu, onednn) or dtype >= 8 or p.driver is not None:
        return None
    det = 0 if p.deterministic is None else 1 + bool(p.deterministic)
    device = 0
    if p.device is not None:
        device = registry.hardware_code(p.device, p.gpu, p.compute_capability)
        if device is None:
            return None
    elif p.gpu is not None or p.compute_capability is not None:
        return None
    return {"setup": dtype | det << 3 | attention << 5, "device": device, "cpu": cpu, "onednn": onednn,
            "threads": p.threads or 0}


def stamp_values(p: Platform, seg_type: int) -> list[int] | None:
    """The values a stamp of *seg_type* holds for *p*, trailing zeros dropped, or None when one does not fit."""
    settings = _settings(p)
    if settings is None:
        return None
    pack = VERSION_CODERS[seg_type][0]
    out = []
    for name in VALUES[seg_type]:
        if name in settings:
            value = settings[name]
        else:
            version = getattr(p, name)
            value = 0 if version is None else pack(name, version, p.cuda)
        if value is None:
            return None
        out.append(value)
    while out and out[-1] == 0:
        out.pop()
    return out


def encode_stamp(platform: Platform | None, fp: Fingerprint | None, size: tuple[int, int] | None) -> tuple[int, bytes] | None:
    """(segment type, payload) of the smallest stamp that holds exactly this platform and fingerprint, or None
    when the full elements are needed to say the same thing. *size*: the image size the syntax makes."""
    if platform is None or fp is None or size is None or len(fp.pixel_sha256) != 2 * HASH_BYTES \
            or fp.perceptual is None or len(fp.perceptual) != 2 * PERCEPTUAL_BYTES \
            or (fp.width, fp.height) != tuple(size):
        return None
    for seg_type in VALUES:
        values = stamp_values(platform, seg_type)
        if values is None:
            continue
        payload = bytes.fromhex(fp.pixel_sha256) + bytes.fromhex(fp.perceptual) + b"".join(encode_uvarint(v) for v in values)
        try:
            back = decode_stamp(seg_type, payload, size, "stamp")
        except (CorruptError, LimitError):  # pragma: no cover - a value outside what the reader accepts
            continue
        if back == (platform, fp):
            return seg_type, payload
    return None


# --- decode ----------------------------------------------------------------------
def _name(table: str, v: int, where: str) -> str | None:
    if v == 0:
        return None
    name = registry.name_of(table, v - 1)
    if name is None:
        raise CorruptError(f"{where}: unknown {table} code {v - 1} (newer file? upgrade aigif)")
    return name


def decode_stamp(seg_type: int, payload: bytes, size: tuple[int, int] | None, where: str,
                 limits: Limits = DEFAULT_LIMITS) -> tuple[Platform, Fingerprint]:
    """Platform and fingerprint from a stamp segment (0x0E or 0x08); the image size is *size*, the one the syntax makes."""
    names = VALUES[seg_type]
    if size is None:
        raise CorruptError(f"{where}: a stamp needs a generation segment (it takes the image size from it)")
    if len(payload) < HEAD:
        raise TruncatedError(f"{where}: {len(payload)} bytes, the pixel hash and perceptual hash need {HEAD}")
    raw = {}
    pos, n = HEAD, 0
    while pos < len(payload):
        n += 1
        if n > limits.max_fields:
            raise LimitError(f"{where}: more than {limits.max_fields} values")
        v, pos = decode_uvarint(payload, pos, len(payload), f"{where}: value {n}")
        if n <= len(names):
            raw[names[n - 1]] = v          # values past the known ones: a newer writer's, skipped
    setup = raw.get("setup", 0)
    det = (setup >> 3) & 3
    if det == 3:
        raise CorruptError(f"{where}: deterministic flag 3 is not valid (0 not recorded, 1 false, 2 true)")
    kw = {"dtype": _name("dtype", setup & 7, where), "attention": _name("attention", setup >> 5, where),
          "deterministic": None if det == 0 else det == 2, "cpu": _name("cpu", raw.get("cpu", 0), where),
          "onednn": _name("onednn", raw.get("onednn", 0), where), "threads": raw.get("threads") or None}
    device = raw.get("device", 0)
    if device:
        hw = registry.HARDWARE.get(device)
        if hw is None:
            raise CorruptError(f"{where}: unknown hardware code {device} (newer file? upgrade aigif)")
        kw.update(device=hw.device, gpu=hw.gpu, compute_capability=hw.compute_capability)
    unpack = VERSION_CODERS[seg_type][1]
    for field in VERSION_FIELDS:
        v = raw.get(field, 0)
        if v:
            kw[field] = unpack(field, v, kw.get("cuda"), where)
    if kw["threads"] is not None and kw["threads"] >= 65536:
        raise CorruptError(f"{where}: threads {kw['threads']} outside 1..65535")
    fp = Fingerprint(pixel_sha256=payload[:HASH_BYTES].hex(), width=size[0], height=size[1],
                     perceptual=payload[HASH_BYTES:HEAD].hex())
    return Platform(**kw), fp
