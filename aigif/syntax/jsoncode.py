"""A compact, lossless binary form of JSON values, coded against a prediction.

Used by the ``comfyui-graph`` extension (normative text: ``spec/extensions.md``,
section 8.1). Each value is a tag byte and its data. A caller may pass a
*prediction* of the value (what it most likely is): an exact match costs one byte
(``SAME``), an object or a list of the right length is coded member by member
against the predicted members (``PATCH_*``). Strings come from a table of known
names, from the strings already seen (a back-reference), or are new and coded with
the prompt coder (``aigif.text``); integers are zigzag varints; floats keep the
digits of their shortest decimal form (or the 4 bytes of a float32 they equal).
Object keys keep their order, so a decoded value is the same JSON, key for key.
"""
from __future__ import annotations

import math
import struct
from typing import Any

from ..container.varint import decode_uvarint, encode_uvarint
from ..errors import CorruptError, LimitError, TruncatedError
from ..limits import DEFAULT_LIMITS, Limits

(NULL, FALSE, TRUE, INT, NEG_INT, FLOAT, F32, NEG_ZERO, POS_INF, NEG_INF, NAN,
 NAME, SEEN_STR, NEW_STR, DIGITS, LIST, OBJECT, SAME, PATCH_OBJ, PATCH_LIST, BIG_INT, PATCH_KEYS, SAME_INT) = range(23)
MISSING = object()                 # "no prediction"
_SPECIAL = {NEG_ZERO: -0.0, POS_INF: math.inf, NEG_INF: -math.inf, NAN: math.nan}
NEXT_KEY, NEW_KEY = 0, 1           # object keys: the predicted one after the last, a new name, or 2 + index


def same(a: Any, b: Any) -> bool:
    """Equal as JSON *and* in form: types (1 vs 1.0 vs true), key order, the sign of zero; NaN is never same."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return a == b


def shortest_decimal(v: float) -> tuple[int, int]:
    """(m, e) with ``float(f"{m}e{e}") == v``, m's digits those of ``repr(v)`` (the shortest round trip)."""
    mant, _, exp = repr(v).partition("e")
    whole, _, frac = mant.partition(".")
    frac = frac.rstrip("0")
    m, e = int(whole + frac), (int(exp) if exp else 0) - len(frac)
    while m and m % 10 == 0:
        m, e = m // 10, e + 1
    return m, e


def _zigzag(n: int) -> int:
    return n * 2 if n >= 0 else -n * 2 - 1


def _unzigzag(n: int) -> int:
    return -((n + 1) >> 1) if n & 1 else n >> 1


def _is_digits(s: str) -> bool:
    return 0 < len(s) <= 19 and s.isascii() and s.isdigit() and (s == "0" or s[0] != "0")


class Writer:
    """Appends values to ``out``; ``names`` is the registry (name -> index)."""

    def __init__(self, names: dict[str, int]):
        self.names, self.out = names, bytearray()
        self.strings: dict[str, int] = {}

    def uvarint(self, n: int) -> None:
        self.out += encode_uvarint(n)

    def string(self, s: str) -> None:
        from ..text import encode_text

        if s in self.names:
            self.out.append(NAME)
            self.uvarint(self.names[s])
        elif _is_digits(s):
            self.out.append(DIGITS)
            self.uvarint(int(s))
        elif s in self.strings:
            self.out.append(SEEN_STR)
            self.uvarint(len(self.strings) - 1 - self.strings[s])        # 0 = the latest new string
        else:
            if len(s) > DEFAULT_LIMITS.max_text_chars:
                raise ValueError(f"a string of {len(s)} characters; a reader accepts at most {DEFAULT_LIMITS.max_text_chars}")
            data = encode_text(s)
            self.out.append(NEW_STR)
            self.uvarint(len(data))
            self.out += data
            self.strings[s] = len(self.strings)

    def value(self, v: Any, pred: Any = MISSING) -> None:
        if pred is not MISSING and same(v, pred):
            self.out.append(SAME)
        elif type(v) is int and type(pred) is float and v == pred:
            self.out.append(SAME_INT)                    # 1 where 1.0 was predicted (the UI writes ints)
        elif isinstance(v, dict) and isinstance(pred, dict) and list(v) == list(pred) and v:
            self.out.append(PATCH_KEYS)                  # the predicted keys, in order: only the values follow
            for k, x in v.items():
                self.value(x, pred[k])
        elif isinstance(v, dict) and isinstance(pred, dict):
            self.out.append(PATCH_OBJ)
            self.uvarint(len(v))
            keys, expect = list(pred), 0
            for k, x in v.items():
                if expect < len(keys) and keys[expect] == k:
                    self.uvarint(NEXT_KEY)
                elif k in pred:
                    self.uvarint(2 + keys.index(k))
                else:
                    self.uvarint(NEW_KEY)
                    self.string(k)
                expect = keys.index(k) + 1 if k in pred else expect
                self.value(x, pred.get(k, MISSING))
        elif isinstance(v, list) and isinstance(pred, list) and len(v) == len(pred) and v:
            self.out.append(PATCH_LIST)
            for x, p in zip(v, pred):
                self.value(x, p)
        else:
            self.plain(v)

    def plain(self, v: Any) -> None:
        if v is None or isinstance(v, bool):
            self.out.append({None: NULL, False: FALSE, True: TRUE}[v])
        elif isinstance(v, int):
            if abs(v) > 2**64 - 1:
                digits = str(abs(v)).encode("ascii")
                self.out.append(BIG_INT)
                self.uvarint(_zigzag(len(digits)) if v > 0 else _zigzag(-len(digits)))
                self.out += digits
            else:
                self.out.append(INT if v >= 0 else NEG_INT)
                self.uvarint(abs(v))
        elif isinstance(v, float):
            self.real(v)
        elif isinstance(v, str):
            self.string(v)
        elif isinstance(v, list):
            self.out.append(LIST)
            self.uvarint(len(v))
            for x in v:
                self.value(x)
        elif isinstance(v, dict):
            self.out.append(OBJECT)
            self.uvarint(len(v))
            for k, x in v.items():
                self.string(str(k))
                self.value(x)
        else:
            raise TypeError(f"not a JSON value: {type(v).__name__}")

    def real(self, v: float) -> None:
        if math.isnan(v) or math.isinf(v) or (v == 0 and math.copysign(1.0, v) < 0):
            self.out.append(NAN if math.isnan(v) else NEG_ZERO if v == 0 else POS_INF if v > 0 else NEG_INF)
            return
        m, e = shortest_decimal(v)
        f32 = struct.pack("<f", v) if abs(v) < 3.4e38 else b""
        if len(str(abs(m))) > 9 and f32 and struct.unpack("<f", f32)[0] == v:
            self.out.append(F32)                 # a float32 printed as a double: 4 bytes beat ~17 digits
            self.out += f32
            return
        self.out.append(FLOAT)
        self.uvarint(_zigzag(m))
        self.uvarint(_zigzag(e))


class Reader:
    """Reads what :class:`Writer` wrote; every count and reference is checked, output is budgeted."""

    def __init__(self, data: bytes, names: list[str], limits: Limits):
        self.data, self.pos, self.names, self.limits = data, 0, names, limits
        self.strings: list[str] = []
        self.budget = limits.max_metadata_bytes          # characters + items the decoded JSON may hold

    def spend(self, n: int) -> None:
        self.budget -= n
        if self.budget < 0:
            raise LimitError(f"comfyui-graph: the decoded graph is larger than {self.limits.max_metadata_bytes} "
                             "characters; raise aigif.Limits.max_metadata_bytes if you trust this file")

    def uvarint(self, what: str) -> int:
        v, self.pos = decode_uvarint(self.data, self.pos, what=f"comfyui-graph {what}")
        return v

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise TruncatedError("comfyui-graph: the value stream ends before a value")
        self.pos += 1
        return self.data[self.pos - 1]

    def take(self, n: int, what: str) -> bytes:
        if n > len(self.data) - self.pos:
            raise TruncatedError(f"comfyui-graph: {what} of {n} bytes runs past the end")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def string(self, tag: int | None = None) -> str:
        from ..text import decode_text

        tag = self.byte() if tag is None else tag
        if tag == NAME:
            i = self.uvarint("name index")
            if i >= len(self.names):
                raise CorruptError(f"comfyui-graph: name index {i}; the registry has {len(self.names)} names")
            s = self.names[i]
        elif tag == DIGITS:
            s = str(self.uvarint("digits"))
        elif tag == SEEN_STR:
            i = self.uvarint("string reference")
            if i >= len(self.strings):
                raise CorruptError(f"comfyui-graph: string reference {i}, only {len(self.strings)} strings seen")
            s = self.strings[len(self.strings) - 1 - i]
        elif tag == NEW_STR:
            s = decode_text(self.take(self.uvarint("string length"), "a string"), max_chars=self.limits.max_text_chars)
            if s in self.strings or s in self.names or _is_digits(s):
                raise CorruptError("comfyui-graph: a new string that the writer would have referenced")
            self.strings.append(s)
        else:
            raise CorruptError(f"comfyui-graph: tag {tag} at offset {self.pos - 1} where a string was expected")
        self.spend(len(s) + 1)
        return s

    def value(self, pred: Any = MISSING, depth: int = 0) -> Any:
        if depth > self.limits.max_nesting:
            raise LimitError(f"comfyui-graph: nested deeper than {self.limits.max_nesting}")
        self.spend(1)
        tag = self.byte()
        if tag == SAME:
            if pred is MISSING:
                raise CorruptError(f"comfyui-graph: 'same as predicted' at offset {self.pos - 1} where nothing is predicted")
            return self.copy(pred)
        if tag == SAME_INT and type(pred) is float and pred.is_integer():
            return int(pred)
        if tag == PATCH_KEYS and isinstance(pred, dict) and pred:
            return {k: self.value(p, depth + 1) for k, p in pred.items()}
        if tag == PATCH_OBJ and isinstance(pred, dict):
            keys, expect, out = list(pred), 0, {}
            for _ in range(self.uvarint("key count")):
                code = self.uvarint("key")
                if code == NEW_KEY:
                    k = self.string()
                elif code == NEXT_KEY and expect < len(keys):
                    k = keys[expect]
                elif 2 <= code < 2 + len(keys):
                    k = keys[code - 2]
                else:
                    raise CorruptError(f"comfyui-graph: key code {code} with {len(keys)} predicted keys")
                if k in out:
                    raise CorruptError(f"comfyui-graph: key {k!r} twice in one object")
                expect = keys.index(k) + 1 if k in pred else expect
                out[k] = self.value(pred.get(k, MISSING), depth + 1)
            return out
        if tag == PATCH_LIST and isinstance(pred, list) and pred:
            return [self.value(p, depth + 1) for p in pred]
        return self.plain(tag, depth)

    def plain(self, tag: int, depth: int) -> Any:
        if tag in (NULL, FALSE, TRUE):
            return (None, False, True)[tag]
        if tag in (INT, NEG_INT):
            v = self.uvarint("integer")
            return v if tag == INT else -v
        if tag == BIG_INT:
            n = _unzigzag(self.uvarint("digit count"))
            raw = self.take(abs(n), "an integer") if abs(n) <= 4300 else b""
            if not raw.isdigit() or raw[:1] == b"0" or int(raw) <= 2**64 - 1:
                raise CorruptError("comfyui-graph: a big integer that is not 20 to 4300 decimal digits above 2**64 - 1")
            return int(raw) * (1 if n > 0 else -1)
        if tag == FLOAT:
            m, e = _unzigzag(self.uvarint("mantissa")), _unzigzag(self.uvarint("exponent"))
            if abs(e) > 400 or not math.isfinite(v := float(f"{m}e{e}")):
                raise CorruptError(f"comfyui-graph: float {m}e{e} is out of range")
            return v
        if tag == F32:
            v = struct.unpack("<f", self.take(4, "a float32"))[0]
            if not math.isfinite(v):
                raise CorruptError("comfyui-graph: a float32 that is not finite")
            return v
        if tag in _SPECIAL:
            return _SPECIAL[tag]
        if tag in (NAME, DIGITS, SEEN_STR, NEW_STR):
            return self.string(tag)
        if tag in (LIST, OBJECT):
            n = self.uvarint("count")
            if n > len(self.data) - self.pos:
                raise TruncatedError(f"comfyui-graph: {n} items announced, {len(self.data) - self.pos} bytes left")
            if tag == LIST:
                return [self.value(MISSING, depth + 1) for _ in range(n)]
            out = {}
            for _ in range(n):
                k = self.string()
                if k in out:
                    raise CorruptError(f"comfyui-graph: key {k!r} twice in one object")
                out[k] = self.value(MISSING, depth + 1)
            return out
        raise CorruptError(f"comfyui-graph: unexpected tag {tag} at offset {self.pos - 1}")

    def copy(self, v: Any) -> Any:
        """A fresh copy of a predicted value, charged to the output budget."""
        if v is MISSING:
            raise CorruptError("comfyui-graph: 'same as predicted' for a value nothing predicts")
        if isinstance(v, dict):
            self.spend(len(v))
            return {k: self.copy(x) for k, x in v.items()}
        if isinstance(v, list):
            self.spend(len(v))
            return [self.copy(x) for x in v]
        self.spend(len(v) if isinstance(v, str) else 1)
        return v
