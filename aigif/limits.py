"""Resource limits applied to untrusted input.

Every reader takes a :class:`Limits`; the defaults are the normative limits of
``spec/aigif-v1.md`` section "Limits". Like msgpack's ``max_str_len``, they are
parameters so tests can check that ``limit`` passes and ``limit + 1`` raises.
"""
from __future__ import annotations

from dataclasses import dataclass

import zlib

from .errors import CorruptError, LimitError, TruncatedError


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 64 * 2**20
    max_segments: int = 1024
    max_text_chars: int = 65536
    max_decompressed_bytes: int = 16 * 2**20
    max_image_pixels: int = 64 * 2**20
    max_nesting: int = 32
    max_loras: int = 64
    max_fields: int = 1024          # fields in one element payload (unknown ones included)
    max_map_bytes: int = 2**20      # one msgpack map field (scheduler_config, source.extra)
    max_metadata_bytes: int = 4 * 2**20   # metadata text an importer reads from one image (all fields, UTF-8)
    max_graph_nodes: int = 10_000   # nodes of one ComfyUI graph read by an importer
    max_signature_bytes: int = 16384  # one signature segment (scheme, key or certificate, signature)
    max_manifest_bytes: int = 8 * 2**20  # one C2PA manifest store kept from an imported image

    def check(self, what: str, value: int, field: str) -> None:
        """Raise LimitError when *value* exceeds the limit named *field*; the message names the knob to turn."""
        limit = getattr(self, field)
        if value > limit:
            raise LimitError(f"{what} is {value}, above the limit of {limit}; raise aigif.Limits.{field} if you trust this file")


DEFAULT_LIMITS = Limits()


def inflate_limited(data: bytes, limit: int, *, wbits: int, zdict: bytes = b"", what: str = "data",
                    complete: bool = True) -> bytes:
    """Decompress a zlib / raw deflate / gzip stream (*wbits* as in :mod:`zlib`) to at most *limit* bytes.

    The decompression-bomb guard for every compressed input: ``LimitError`` above *limit*,
    ``CorruptError`` for a damaged stream or bytes after it, ``TruncatedError`` when the
    stream ends early (only checked when *complete*).
    """
    d = zlib.decompressobj(wbits, zdict) if zdict else zlib.decompressobj(wbits)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as exc:
        raise CorruptError(f"{what}: the compressed stream is damaged ({exc})") from None
    if len(out) > limit:
        raise LimitError(f"{what} decompresses to more than {limit} bytes")
    if complete and not d.eof:
        raise TruncatedError(f"{what}: the compressed stream ends early")
    if complete and d.unused_data:
        raise CorruptError(f"{what}: bytes after the compressed stream")
    return out
