"""The NVTC payload's bytes: header, flags, validation and a one-line description (no torch, no decoding).

Payload (all integers little-endian, ``spec/codec-nvtc.md`` §1)::

    magic  4s  b"NVTC"
    version u8 1
    model_id u8   (zoo.MODEL_IDS)
    quality u8    (zoo.MODELS)
    flags  u8     bit0 residual, bit1 empty residual, bits2-3 residual shift, bit4 post filter,
                  bit5 adaptive entropy coding (rows that learn the image, :class:`.entropy.CoderRows`),
                  bit6 transposed (the stream codes the image's transpose: rows run down its columns),
                  bit7 layer directions (a symbol in front of every layer: the way the coder walks it)
    height u16, width u16
    length u32    byte length of the range-coded stream (multiple of 4)
    stream        constriction RangeEncoder words (u32 LE)
    [post  u16 length + block, only with flag bit4: the per-image filter of :mod:`.postfilter`]
    crc32  u32    zlib.crc32 of everything before it

:func:`pack` writes it and :func:`read_header` reads it back, checking every
length against the data and every field against the registries before
anything is decoded.
"""
from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

from ..errors import AigifError, CorruptError, FormatError, LimitError, TruncatedError, UnknownCodecError
from . import postfilter, zoo

MAGIC = b"NVTC"
VERSION = 1
HEADER = struct.Struct("<4sBBBBHHI")
FLAG_RESIDUAL = 1
FLAG_EMPTY = 2
FLAG_POST = 16
FLAG_ADAPTIVE = 32
FLAG_TRANSPOSED = 64
FLAG_DIRECTIONS = 128
#: flags that make no sense on an empty residual
NOT_ON_EMPTY = FLAG_POST | FLAG_ADAPTIVE | FLAG_TRANSPOSED | FLAG_DIRECTIONS


class Payload(NamedTuple):
    """A validated payload: header fields, the range-coded stream and the post-filter block (or b"")."""

    model_id: int
    quality: int
    flags: int
    height: int
    width: int
    stream: bytes
    post: bytes

    @property
    def coded_shape(self) -> tuple[int, int]:
        """(rows, columns) of what the stream codes: the transpose of the image with flag bit6 (§5b)."""
        return (self.width, self.height) if self.flags & FLAG_TRANSPOSED else (self.height, self.width)

    @property
    def residual_shift(self) -> int:
        return (self.flags >> 2) & 3


def size(stream: bytes, post: bytes = b"") -> int:
    """Byte length of the payload :func:`pack` writes around ``stream`` and ``post``."""
    return HEADER.size + len(stream) + (2 + len(post) if post else 0) + 4


def pack(model_id: int, quality: int, flags: int, height: int, width: int, stream: bytes, post: bytes = b"") -> bytes:
    """The payload bytes (flag bit4 is set when ``post`` is not empty)."""
    if post:
        flags |= FLAG_POST
    post_block = struct.pack("<H", len(post)) + post if post else b""
    body = HEADER.pack(MAGIC, VERSION, model_id, quality, flags, height, width, len(stream)) + stream + post_block
    return body + struct.pack("<I", zlib.crc32(body))


def _framing(data: bytes) -> tuple:
    """(header fields, end of the post block): lengths and crc checked, never trusted."""
    if len(data) < 4:
        raise TruncatedError(f"NVTC payload: {len(data)} bytes, header needs {HEADER.size + 4}")
    if data[:4] != MAGIC:
        raise FormatError(f"NVTC payload: bad magic {data[:4]!r} at offset 0, expected {MAGIC!r}")
    if len(data) < HEADER.size + 4:
        raise TruncatedError(f"NVTC payload: {len(data)} bytes, header needs {HEADER.size + 4}")
    fields = HEADER.unpack_from(data)
    end = HEADER.size + fields[-1]
    if len(data) < end + 4:
        raise TruncatedError(f"NVTC payload: stream of {fields[-1]} bytes announced at offset 12, only "
                             f"{max(len(data) - HEADER.size - 4, 0)} present")
    if fields[4] & FLAG_POST:
        post_at = end
        if len(data) < end + 2 + 4:
            raise TruncatedError(f"NVTC payload: post-filter length missing at offset {end}")
        (post_len,) = struct.unpack_from("<H", data, end)
        end += 2 + post_len
        if len(data) < end + 4:
            raise TruncatedError(f"NVTC payload: post filter of {post_len} bytes announced at offset {post_at}, "
                                 f"only {max(len(data) - post_at - 2 - 4, 0)} present")
    if len(data) > end + 4:
        raise CorruptError(f"NVTC payload: {len(data) - end - 4} trailing bytes after the crc at offset {end}")
    (crc,) = struct.unpack_from("<I", data, end)
    if zlib.crc32(data[:end]) != crc:
        raise CorruptError(f"NVTC payload: crc32 mismatch at offset {end}")
    return fields, end


def read_header(data: bytes, max_pixels: int = zoo.DEFAULT_MAX_PIXELS) -> Payload:
    """Validate a payload (framing, crc, registries, size limit, post-filter syntax) and return its parts."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FormatError(f"NVTC payload must be bytes, got {type(data).__name__}")
    data = bytes(data)
    (_, version, model_id, quality, flags, h, w, length), end = _framing(data)
    if version != VERSION:
        raise CorruptError(f"NVTC payload: version {version} at offset 4, expected {VERSION}")
    if model_id in zoo.RETIRED_MODEL_IDS:
        raise UnknownCodecError(f"NVTC payload: model id {model_id} at offset 5 is retired "
                                f"({zoo.RETIRED_MODEL_IDS[model_id]}); re-encode the source image with this version")
    if model_id not in zoo.MODEL_IDS:
        raise UnknownCodecError(f"NVTC payload: unknown model id {model_id} at offset 5; known: {sorted(zoo.MODEL_IDS)}")
    if quality not in zoo.MODEL_QUALITIES[model_id]:
        raise UnknownCodecError(f"NVTC payload: unknown quality {quality} at offset 6; known: {list(zoo.QUALITIES)}")
    if h == 0 or w == 0:
        raise CorruptError(f"NVTC payload: empty image {w}x{h} at offset 8")
    if h * w > max_pixels:
        raise LimitError(f"NVTC payload: {w}x{h} = {w * h} pixels exceeds max_pixels={max_pixels}")
    if length % 4:
        raise CorruptError(f"NVTC payload: stream length {length} at offset 12 is not a multiple of 4")
    if flags & FLAG_EMPTY and (length or not flags & FLAG_RESIDUAL or flags & NOT_ON_EMPTY):
        raise CorruptError("NVTC payload: empty flag on a non-empty, post-filtered, adaptive, transposed, "
                           "layer-directed or non-residual payload")
    post_at = HEADER.size + length
    p = Payload(model_id, quality, flags, h, w, data[HEADER.size:post_at], data[post_at + 2:end] if flags & FLAG_POST else b"")
    if p.post:
        postfilter.unpack(p.post, *p.coded_shape)  # validate (exact syntax, bounded sizes) before anything decodes
    return p


def describe(data: bytes) -> str:
    """One line on a payload from its header (for ``aigif info``); never raises, never decodes."""
    try:
        p = read_header(data, max_pixels=0xFFFF * 0xFFFF)
    except AigifError as exc:
        return f"<{len(data)} bytes, invalid: {exc}>"
    flags = p.flags
    kind = "empty residual" if flags & FLAG_EMPTY else "residual" if flags & FLAG_RESIDUAL else "image"
    restored = " (restoration network)" if p.post[:1] == bytes([postfilter.SHAPE_RESTORED]) else ""
    post = ((f" + post filter{restored}" if flags & FLAG_POST else "") + (", adaptive coding" if flags & FLAG_ADAPTIVE else "")
            + (", transposed" if flags & FLAG_TRANSPOSED else "")
            + (", layer directions" if flags & FLAG_DIRECTIONS else ""))
    return (f"NVTC {zoo.MODEL_IDS[p.model_id]} quality {p.quality}, {kind} {p.width}x{p.height}{post}, "
            f"{len(data)} bytes ({len(data) * 8 / (p.width * p.height):.3f} bpp)")
