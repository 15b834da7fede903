"""Resource limits applied to untrusted input.

Every reader takes a :class:`Limits`; the defaults are the normative limits of
``spec/aigif-v1.md`` section "Limits". Like msgpack's ``max_str_len``, they are
parameters so tests can check that ``limit`` passes and ``limit + 1`` raises.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

import zlib

from .errors import CorruptError, LimitError, TruncatedError

# Regeneration cost a file may ask for, in pixel-steps (width x height x steps), per model family:
# a 32-byte file can ask for 2048x2048 in 50 steps, minutes of compute even on the tiny model.
# sd1/sd2: 1024x1024 in 100 steps; sdxl: 1024x1024 in 150 steps. Unknown families get the smallest.
REGENERATION_BUDGET = MappingProxyType({"sd1": 100 * 2**20, "sd2": 100 * 2**20, "sdxl": 150 * 2**20})


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 64 * 2**20
    max_segments: int = 1024
    max_text_chars: int = 65536
    max_decompressed_bytes: int = 16 * 2**20
    max_image_pixels: int = 64 * 2**20    # width x height of an image aigif reads (importers, images to encode)
    max_render_pixels: int = 16 * 2**20   # width x height aigif renders or decodes (engine, NVTC codec): ~64 B/pixel
    max_nesting: int = 32
    max_loras: int = 16                   # LoRAs of one model reference (parsed and applied)
    max_fields: int = 1024          # fields in one element payload (unknown ones included)
    max_map_bytes: int = 2**20      # one msgpack map field (scheduler_config, source.extra)
    max_metadata_bytes: int = 4 * 2**20   # metadata text an importer reads from one image (all fields, UTF-8)
    max_graph_nodes: int = 10_000   # nodes of one ComfyUI graph read by an importer
    max_signature_bytes: int = 16384  # one signature segment (scheme, key or certificate, signature)
    max_manifest_bytes: int = 8 * 2**20  # one C2PA manifest store kept from an imported image
    # pixel-steps per model family; a partial mapping raises only the families it names
    regeneration_budget: Mapping[str, int] = field(default_factory=lambda: REGENERATION_BUDGET)

    def __post_init__(self):
        object.__setattr__(self, "regeneration_budget",
                           MappingProxyType({**REGENERATION_BUDGET, **dict(self.regeneration_budget)}))

    def __hash__(self):
        return hash(tuple(getattr(self, f) if f != "regeneration_budget" else tuple(sorted(self.regeneration_budget.items()))
                          for f in self.__dataclass_fields__))

    def check(self, what: str, value: int, field: str) -> None:
        """Raise LimitError when *value* exceeds the limit named *field*; the message names the knob to turn."""
        limit = getattr(self, field)
        if value > limit:
            raise LimitError(f"{what} is {value}, above the limit of {limit}; raise aigif.Limits.{field} if you trust this file")

    def check_regeneration(self, family: str | None, width: int, height: int, steps: int, more: int = 0) -> None:
        """Raise LimitError when regenerating width x height in *steps* steps (plus *more* pixel-steps of later
        passes) costs more pixel-steps than *family*'s budget (the smallest budget for an unknown family);
        checked before any model loads."""
        known = family in self.regeneration_budget
        budget = self.regeneration_budget[family] if known else min(self.regeneration_budget.values())
        cost = width * height * steps + more
        if cost > budget:
            label = f"the {family} regeneration budget" if known else "the regeneration budget for an unknown model family"
            key = family if known else "FAMILY"
            raise LimitError(f"regenerating {width}x{height} in {steps} steps{' and a second pass' if more else ''} costs {cost} pixel-steps, above {label} "
                             f"of {budget}; if you trust this file, raise it: aigif.Limits(regeneration_budget="
                             f"{{{key!r}: {cost}}}) passed to aigif.decode(..., limits=...) or Engine(limits=...)")


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
