"""Integer range coder (Martin 1979 / Subbotin style) with exact, float-free decoding.

Why our own coder instead of a library: the spec (`spec/text-coding.md`) must let
another language reproduce every bit, so the whole coder is a few lines of
integer arithmetic. Registers are 64-bit safe: the range stays in
[2**48, 2**56) after renormalisation and frequency totals are at most 2**24,
so every product fits in an unsigned 64-bit word.

Termination writes the shortest byte string whose zero-padded value lies in the
final interval, so a message costs about its information content plus one byte.
The decoder reads zero bytes past the end of its input.
"""
from __future__ import annotations

from ..errors import CorruptError

CODE_BYTES = 7
TOP_SHIFT = 8 * CODE_BYTES  # range < 2**56
BOT = 1 << (TOP_SHIFT - 8)  # renormalise while range < 2**48
MAX_TOTAL = 1 << 24
_FULL = (1 << TOP_SHIFT) - 1


class RangeEncoder:
    """Encode (cum, freq, total) triples; `finish()` returns the bytes."""

    __slots__ = ("low", "range", "out")

    def __init__(self) -> None:
        self.low = 0  # the last CODE_BYTES bytes of the value; bytes before it are in `out`
        self.range = _FULL
        self.out = bytearray()

    def encode(self, cum: int, freq: int, total: int) -> None:
        r = self.range // total
        low = self.low + r * cum
        rng = r * freq
        if low > _FULL:  # carry into the bytes already written
            low &= _FULL
            out = self.out
            i = len(out) - 1
            while out[i] == 0xFF:
                out[i] = 0
                i -= 1
            out[i] += 1
        while rng < BOT:
            self.out.append(low >> (TOP_SHIFT - 8))
            low = (low & (BOT - 1)) << 8
            rng <<= 8
        self.low, self.range = low, rng

    def finish(self) -> bytes:
        n = len(self.out) + CODE_BYTES
        return terminate(int.from_bytes(bytes(self.out) + self.low.to_bytes(CODE_BYTES, "big"), "big"), self.range, n)


def terminate(low: int, rng: int, n: int) -> bytes:
    """The canonical stream: the value in [low, low + rng) with the most trailing
    zero bytes, written as n big-endian bytes, trailing zero bytes removed."""
    high = low + rng
    # rng < 256**CODE_BYTES, so at most one multiple of 256**CODE_BYTES lies in the
    # interval: larger t cannot find another value, only more zeros, stripped below.
    for t in range(min(n, CODE_BYTES), -1, -1):
        m = 1 << (8 * t)
        v = -(-low // m) * m
        if v < high:
            break
    return v.to_bytes(n, "big").rstrip(b"\x00")


class RangeDecoder:
    """Mirror of :class:`RangeEncoder`; reads zeros past the end of *data*."""

    __slots__ = ("data", "pos", "code", "range", "r")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = CODE_BYTES
        self.code = int.from_bytes(data[:CODE_BYTES].ljust(CODE_BYTES, b"\x00"), "big")
        self.range = _FULL
        self.r = 1

    def target(self, total: int) -> int:
        """Return the cumulative value in [0, total) that selects the next symbol."""
        r = self.range // total
        self.r = r
        v = self.code // r
        if v >= total:
            raise CorruptError(f"text stream: range decoder value {v} outside total {total}")
        return v

    def consume(self, cum: int, freq: int) -> None:
        r = self.r
        self.code -= r * cum
        rng = r * freq
        data, pos, code = self.data, self.pos, self.code
        while rng < BOT:
            rng <<= 8
            code = (code << 8) | (data[pos] if pos < len(data) else 0)
            pos += 1
        self.code, self.pos, self.range = code, pos, rng

    def check_end(self) -> None:
        """Accept only the canonical stream of the decoded symbols (one text, one encoding).

        The decoder knows the value it read (V, `pos` bytes) and code = V - low,
        so it can rebuild the encoder's final interval and its termination.
        """
        if len(self.data) > self.pos:
            raise CorruptError("text stream: trailing bytes after the end symbol")
        value = int.from_bytes(self.data.ljust(self.pos, b"\x00"), "big")
        if terminate(value - self.code, self.range, self.pos) != self.data:
            raise CorruptError("text stream: not the canonical encoding (trailing or altered bytes)")
