"""The two symbol codings of the ``comfyui-graph`` value stream (``spec/extensions.md`` section 8.1).

The value stream (:mod:`aigif.syntax.jsoncode`) is a sequence of three kinds of symbols: tags,
unsigned integers and raw bytes, each written in a *context* (where in the JSON it sits and what it
is). Coding 1 writes them as bytes (a tag byte, an LEB128 varint, the bytes); coding 2 codes them
with the integer range coder of :mod:`aigif.text.rangecoder` and adaptive integer frequency tables,
one per context, so that what a context usually holds (a ``SAME`` tag for predicted node fields, a
small link id, a position near the last) costs a fraction of a bit. Models are integer-only, so
every machine decodes the same.
"""
from __future__ import annotations

from typing import Hashable

from ..container.varint import decode_uvarint, encode_uvarint
from ..errors import CorruptError, TruncatedError
from ..text.rangecoder import CODE_BYTES, RangeDecoder, RangeEncoder, terminate

TAGS = 25                   # tag alphabet of a tag model (jsoncode tags 0..24)
WIDTHS = 65                 # bit lengths 0..64 of an unsigned integer
SYM_INC, SYM_LIMIT = 128, 1 << 12    # symbol models: +128 per use, halved when the total passes 4096
SHARE = 5                   # a new symbol model starts as 1 + its shared model's frequencies / 2**SHARE
LIKELY = 33                 # added - 1 to the likely symbol of a new tag model (SAME where a prediction exists)
BIT_ONE, BIT_SHIFT = 1 << 12, 2      # binary models: 12-bit probability of a 0, moved by 1/4 per use
TOP_BITS = 3                # bits under the leading 1 of an integer coded with adaptive models


class ByteSink:
    """Coding 1: a tag is a byte, an integer an LEB128 varint, raw bytes are themselves."""

    def __init__(self) -> None:
        self.out = bytearray()

    def tag(self, t: int, ctx: Hashable, likely: int | None = None) -> None:
        self.out.append(t)

    def uint(self, n: int, ctx: Hashable) -> None:
        self.out += encode_uvarint(n)

    def raw(self, data: bytes) -> None:
        self.out += data

    def finish(self) -> bytes:
        return bytes(self.out)


class ByteSource:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def tag(self, ctx: Hashable, likely: int | None = None) -> int:
        if self.pos >= len(self.data):
            raise TruncatedError("comfyui-graph: the value stream ends before a value")
        self.pos += 1
        return self.data[self.pos - 1]

    def uint(self, ctx: Hashable, what: str) -> int:
        v, self.pos = decode_uvarint(self.data, self.pos, what=f"comfyui-graph {what}")
        return v

    def raw(self, n: int, what: str) -> bytes:
        if n > len(self.data) - self.pos:
            raise TruncatedError(f"comfyui-graph: {what} of {n} bytes runs past the end")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def check_count(self, n: int) -> None:
        """Every item takes at least one byte: a count beyond the bytes left is a cut stream."""
        if n > len(self.data) - self.pos:
            raise TruncatedError(f"comfyui-graph: {n} items announced, {len(self.data) - self.pos} bytes left")

    def check_end(self) -> None:
        if self.pos != len(self.data):
            raise CorruptError(f"comfyui-graph: {len(self.data) - self.pos} bytes after the last value")


class _Models:
    """Adaptive integer models by context, created on first use (the same on both sides).

    Most contexts see a handful of symbols in one graph, so every symbol model has a *shared*
    model (all tags of one prediction kind, all widths of one integer kind) that learns from
    every symbol of its contexts and gives a new context its first frequencies."""

    def __init__(self) -> None:
        self.freqs: dict[Hashable, list[int]] = {}
        self.bits: dict[Hashable, int] = {}

    def table(self, ctx: Hashable, size: int, likely: int | None = None, parent: Hashable = None) -> list[int]:
        f = self.freqs.get(ctx)
        if f is None:
            p = self.freqs.get(parent) if parent is not None else None
            if p is not None:
                f = [1 + (x >> SHARE) for x in p[:-1]]
                f.append(sum(f))
                self.freqs[ctx] = f
            else:
                f = self.freqs[ctx] = [1] * size + [size]          # the last entry is the total
            if likely is not None:
                f[likely] += LIKELY - 1
                f[-1] += LIKELY - 1
        return f

    @staticmethod
    def learn(f: list[int], s: int) -> None:
        f[s] += SYM_INC
        f[-1] += SYM_INC
        if f[-1] > SYM_LIMIT:
            for i in range(len(f) - 1):
                f[i] = (f[i] + 1) >> 1
            f[-1] = sum(f[:-1])

    def p0(self, ctx: Hashable) -> int:
        return self.bits.get(ctx, BIT_ONE >> 1)

    def learn_bit(self, ctx: Hashable, p: int, bit: int) -> None:
        self.bits[ctx] = p + ((BIT_ONE - p) >> BIT_SHIFT) if bit == 0 else p - (p >> BIT_SHIFT)


class RangeSink(_Models):
    """Coding 2: every symbol through the range coder with the model of its context."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = RangeEncoder()

    def symbol(self, s: int, ctx: Hashable, size: int, likely: int | None = None, parent: Hashable = None) -> None:
        f = self.table(ctx, size, likely, parent)
        self.enc.encode(sum(f[:s]), f[s], f[-1])
        self.learn(f, s)
        if parent is not None:
            self.learn(self.table(parent, size), s)

    def bit(self, bit: int, ctx: Hashable) -> None:
        p = self.p0(ctx)
        self.enc.encode(0 if bit == 0 else p, p if bit == 0 else BIT_ONE - p, BIT_ONE)
        self.learn_bit(ctx, p, bit)

    def tag(self, t: int, ctx: Hashable, likely: int | None = None) -> None:
        self.symbol(t, ("tag", ctx), TAGS, likely, ("tags", ctx[1]))

    def uint(self, n: int, ctx: Hashable) -> None:
        if not 0 <= n < 1 << 64:
            raise ValueError(f"comfyui-graph: integer symbol {n} outside 0 .. 2**64 - 1")
        k = n.bit_length()
        self.symbol(k, ("width", ctx), WIDTHS, None, ("widths", ctx[0]))
        for i in range(k - 2, -1, -1):
            if i >= k - 1 - TOP_BITS:
                self.bit((n >> i) & 1, ("bit", ctx, k, n >> (i + 1)))
            else:
                self.enc.encode((n >> i) & 1, 1, 2)

    def raw(self, data: bytes) -> None:
        for b in data:
            self.enc.encode(b, 1, 256)

    def finish(self) -> bytes:
        e = self.enc
        whole = terminate(int.from_bytes(bytes(e.out) + e.low.to_bytes(CODE_BYTES, "big"), "big"), e.range,
                          len(e.out) + CODE_BYTES)
        return whole.ljust(len(e.out), b"\x00")    # only the final CODE_BYTES bytes lose their trailing zeros


class RangeSource(_Models):
    """Mirror of :class:`RangeSink`; reading more than ``CODE_BYTES`` bytes past the end is a cut stream."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.data = data
        self.dec = RangeDecoder(data)

    def _advanced(self) -> None:
        if self.dec.pos > len(self.data) + CODE_BYTES:
            raise TruncatedError("comfyui-graph: the coded value stream ends before its last value")

    def symbol(self, ctx: Hashable, size: int, likely: int | None = None, parent: Hashable = None) -> int:
        f = self.table(ctx, size, likely, parent)
        v, s, cum = self.dec.target(f[-1]), 0, 0
        while cum + f[s] <= v:
            cum += f[s]
            s += 1
        self.dec.consume(cum, f[s])
        self._advanced()
        self.learn(f, s)
        if parent is not None:
            self.learn(self.table(parent, size), s)
        return s

    def bit(self, ctx: Hashable) -> int:
        p = self.p0(ctx)
        bit = int(self.dec.target(BIT_ONE) >= p)
        self.dec.consume(0 if bit == 0 else p, p if bit == 0 else BIT_ONE - p)
        self._advanced()
        self.learn_bit(ctx, p, bit)
        return bit

    def tag(self, ctx: Hashable, likely: int | None = None) -> int:
        return self.symbol(("tag", ctx), TAGS, likely, ("tags", ctx[1]))

    def uint(self, ctx: Hashable, what: str) -> int:
        k = self.symbol(("width", ctx), WIDTHS, None, ("widths", ctx[0]))
        n = 1 if k else 0
        for i in range(k - 2, -1, -1):
            if i >= k - 1 - TOP_BITS:
                n = n << 1 | self.bit(("bit", ctx, k, n))
            else:
                b = self.dec.target(2)
                self.dec.consume(b, 1)
                n = n << 1 | b
        self._advanced()
        return n

    def raw(self, n: int, what: str) -> bytes:
        if n > len(self.data) + CODE_BYTES - self.dec.pos + 1:
            raise TruncatedError(f"comfyui-graph: {what} of {n} bytes runs past the end")
        out = bytearray()
        for _ in range(n):
            b = self.dec.target(256)
            self.dec.consume(b, 1)
            out.append(b)
        self._advanced()
        return bytes(out)

    def check_count(self, n: int) -> None:
        pass                                    # items may cost almost nothing here: the output budget bounds them

    def check_end(self) -> None:
        d = self.dec
        value = int.from_bytes(self.data.ljust(d.pos, b"\x00")[:d.pos], "big")
        whole = terminate(value - d.code, d.range, d.pos)
        if whole.ljust(d.pos - CODE_BYTES, b"\x00") != self.data:
            raise CorruptError("comfyui-graph: bytes after the last value, or not the canonical coding of its values")
