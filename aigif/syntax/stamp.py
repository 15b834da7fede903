"""The stamp segment: platform and fingerprint of a generated image in about 25 bytes (spec/aigif-v1.md §4.6).

The full ``platform`` and ``fingerprint`` elements spell GPU names, CPU models
and library versions as text (~110 bytes). The stamp keeps only what changes
the pixels, as registry codes and packed version numbers, and takes the image
size from the syntax (the ``generation`` element, or its ``hires`` pass). A writer uses it only when it gives back
exactly the same elements; anything it cannot express goes in the full elements.
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

# version packing per platform field: (parts, radix of the minor, radix of the patch)
VERSION_PACKING = {"torch": (3, 64, 16), "cuda": (2, 32, 1), "cudnn": (3, 64, 16), "diffusers": (3, 128, 16),
                   "transformers": (3, 128, 16)}
TORCH_BUILDS = 4                     # torch local version: 0 none, 1 "+cpu", 2 "+cu<cuda digits>", 3 reserved
# the values after the 12 fixed bytes, in order; 0 always means "not recorded"
VALUES = ("setup", "device", "cpu", "cuda", "torch", "cudnn", "diffusers", "transformers", "onednn", "threads")
_VER = re.compile(r"^(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})(?:\.(0|[1-9]\d{0,5}))?(\+[\x21-\x7e]+)?$")


# --- versions --------------------------------------------------------------------
def pack_version(field: str, version: str, cuda: str | None = None) -> int | None:
    """The packed number of *version* (0 is reserved for 'not recorded'), or None when it does not fit."""
    parts, rb, rc = VERSION_PACKING[field]
    m = _VER.match(version)
    if not m or (m.group(3) is None) != (parts == 2):
        return None
    a, b, c = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if b >= rb or c >= rc:
        return None
    build = 0
    if field == "torch":
        local = m.group(4)
        if local is None:
            build = 0
        elif local == "+cpu":
            build = 1
        elif cuda is not None and local == "+cu" + cuda.replace(".", ""):
            build = 2
        else:
            return None
        return (((a * rb + b) * rc + c) * TORCH_BUILDS + build) + 1
    if m.group(4) is not None:
        return None
    return (a * rb + b) * rc + c + 1


def unpack_version(field: str, v: int, cuda: str | None, where: str) -> str:
    parts, rb, rc = VERSION_PACKING[field]
    v -= 1
    local = ""
    if field == "torch":
        v, build = divmod(v, TORCH_BUILDS)
        if build == 3 or (build == 2 and cuda is None):
            raise CorruptError(f"{where}: torch build code {build} is not valid here (newer file? upgrade aigif)")
        local = ("", "+cpu", f"+cu{(cuda or '').replace('.', '')}")[build]
    ab, c = divmod(v, rc)
    a, b = divmod(ab, rb)
    return f"{a}.{b}" + (f".{c}" if parts == 3 else "") + local


# --- encode ----------------------------------------------------------------------
def _code(table: str, name: str | None) -> int | None:
    """code + 1 (0 = not recorded), or None when the name has no code."""
    if name is None:
        return 0
    code = registry.code_of(table, name)
    return None if code is None else code + 1


def _values(p: Platform) -> list[int] | None:
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
    out = [dtype | det << 3 | attention << 5, device, cpu]
    for field in ("cuda", "torch", "cudnn", "diffusers", "transformers"):
        version = getattr(p, field)
        packed = 0 if version is None else pack_version(field, version, p.cuda)
        if packed is None:
            return None
        out.append(packed)
    out += [onednn, p.threads or 0]
    while out and out[-1] == 0:
        out.pop()
    return out


def encode_stamp(platform: Platform | None, fp: Fingerprint | None, size: tuple[int, int] | None) -> bytes | None:
    """The stamp payload, or None when the full elements are needed to say the same thing.
    *size*: the image size the syntax makes (``Document.image_size``)."""
    if platform is None or fp is None or size is None or len(fp.pixel_sha256) != 2 * HASH_BYTES \
            or fp.perceptual is None or len(fp.perceptual) != 2 * PERCEPTUAL_BYTES \
            or (fp.width, fp.height) != tuple(size):
        return None
    values = _values(platform)
    if values is None:
        return None
    payload = bytes.fromhex(fp.pixel_sha256) + bytes.fromhex(fp.perceptual) + b"".join(encode_uvarint(v) for v in values)
    try:
        back = decode_stamp(payload, size, "stamp")
    except (CorruptError, LimitError):  # pragma: no cover - a value outside what the reader accepts
        return None
    return payload if back == (platform, fp) else None


# --- decode ----------------------------------------------------------------------
def _name(table: str, v: int, where: str) -> str | None:
    if v == 0:
        return None
    name = registry.name_of(table, v - 1)
    if name is None:
        raise CorruptError(f"{where}: unknown {table} code {v - 1} (newer file? upgrade aigif)")
    return name


def decode_stamp(payload: bytes, size: tuple[int, int] | None, where: str,
                 limits: Limits = DEFAULT_LIMITS) -> tuple[Platform, Fingerprint]:
    """Platform and fingerprint from a stamp payload; the image size is *size*, the one the syntax makes."""
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
        if n <= len(VALUES):
            raw[VALUES[n - 1]] = v          # values past the known ones: a newer writer's, skipped
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
    cuda = None
    for field in ("cuda", "torch", "cudnn", "diffusers", "transformers"):
        v = raw.get(field, 0)
        if v:
            kw[field] = unpack_version(field, v, cuda, where)
            cuda = kw.get("cuda")
    if kw["threads"] is not None and kw["threads"] >= 65536:
        raise CorruptError(f"{where}: threads {kw['threads']} outside 1..65535")
    fp = Fingerprint(pixel_sha256=payload[:HASH_BYTES].hex(), width=size[0], height=size[1],
                     perceptual=payload[HASH_BYTES:HEAD].hex())
    return Platform(**kw), fp
