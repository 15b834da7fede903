"""A compact, lossless binary form of JSON values, coded against a prediction.

Used by the ``comfyui-graph`` extension (normative text: ``spec/extensions.md``,
section 8.1). Each value is a tag and its data, written as symbols to a sink of
:mod:`aigif.syntax.graph_coder` (bytes in coding 1, range-coded in coding 2), each in a
context (the key it sits under, how deep in lists, its index). A caller may pass a
*prediction* of the value (what it most likely is): an exact match is one ``SAME`` tag,
an object or a list of the right length is coded member by member against the predicted
members (``PATCH_*``), an integer as its difference from a predicted one (``DELTA``,
coding 2). Strings come from a table of known names, from the strings already seen (a
back-reference), or are new and coded with the prompt coder (``aigif.text``) or, in
coding 2, deflated against the new strings before them; integers are zigzag; floats
keep the digits of their shortest decimal form (or the 4 bytes of a float32 they
equal). In coding 2 an object nothing predicts is coded against the keys of the last
such object in its place. Object keys keep their order, so a decoded value is the same
JSON, key for key.
"""
from __future__ import annotations

import math
import struct
import zlib
from typing import Any

from ..errors import CorruptError, LimitError
from ..limits import DEFAULT_LIMITS, Limits, inflate_limited
from .graph_coder import ByteSink

(NULL, FALSE, TRUE, INT, NEG_INT, FLOAT, F32, NEG_ZERO, POS_INF, NEG_INF, NAN,
 NAME, SEEN_STR, NEW_STR, DIGITS, LIST, OBJECT, SAME, PATCH_OBJ, PATCH_LIST, BIG_INT, PATCH_KEYS, SAME_INT, DELTA,
 NEW_STR_DEFLATED) = range(25)
STRING_TAG_SET = (NAME, DIGITS, SEEN_STR, NEW_STR, NEW_STR_DEFLATED)
HISTORY = 32768                    # bytes of earlier new strings a deflated new string may refer to
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


ROOT = ("", 0, 0)                  # the context of a value outside any object


def member_ctx(names: Any, key: str, ctx: tuple, i: int) -> tuple:
    """Context of member ``i`` of an object in context ``ctx``: its key when the registry holds it (a
    bounded set), else that of item ``i`` of an array there (``{"0": w, "1": h}`` codes like ``[w, h]``)."""
    return (key, 0, 0) if key in names else item_ctx(ctx, i)


def item_ctx(ctx: tuple, i: int) -> tuple:
    """Context of a list item: the key above, how many lists down (at most 2), the index (at most 7)."""
    return (ctx[0], min(ctx[1] + 1, 2), min(i, 7))


def pred_kind(pred: Any) -> int:
    """What the prediction is, for the tag's context: 0 none, 1 object, 2 list, 3 string, 4 int, 5 float, 6 other."""
    if pred is MISSING:
        return 0
    return 1 if isinstance(pred, dict) else 2 if isinstance(pred, list) else 3 if isinstance(pred, str) else \
        4 if type(pred) is int else 5 if isinstance(pred, float) else 6


STRING_TAGS = 7                    # pred_kind slot of a tag that can only be a string tag


class Writer:
    """Writes values as symbols to ``sink`` (a :mod:`~aigif.syntax.graph_coder` sink); ``names`` is the registry (name -> index)."""

    def __init__(self, names: dict[str, int], sink: Any = None, deltas: bool = False):
        self.names, self.sink, self.deltas = names, ByteSink() if sink is None else sink, deltas
        self.strings: dict[str, int] = {}
        self.history = bytearray()                   # the UTF-8 of the new strings so far, in order
        self.shapes: dict[tuple, dict] = {}          # coding 2: (key, depth) -> keys of the last unpredicted object there

    def uint(self, n: int, what: str, ctx: tuple = ROOT) -> None:
        self.sink.uint(n, (what, ctx))

    def tag(self, t: int, ctx: tuple, kind: int) -> None:
        self.sink.tag(t, (ctx, kind), SAME if 0 < kind < STRING_TAGS else None)

    def string(self, s: str, ctx: tuple = ROOT, kind: int = STRING_TAGS) -> None:
        from ..text import encode_text

        if s in self.names:
            self.tag(NAME, ctx, kind)
            self.uint(self.names[s], "name", ctx)
        elif _is_digits(s):
            self.tag(DIGITS, ctx, kind)
            self.uint(int(s), "digits", ctx)
        elif s in self.strings:
            self.tag(SEEN_STR, ctx, kind)
            self.uint(len(self.strings) - 1 - self.strings[s], "seen", ctx)     # 0 = the latest new string
        else:
            if len(s) > DEFAULT_LIMITS.max_text_chars:
                raise ValueError(f"a string of {len(s)} characters; a reader accepts at most {DEFAULT_LIMITS.max_text_chars}")
            data, tag = encode_text(s), NEW_STR
            if self.deltas and self.history:             # coding 2: deflated against the earlier new strings
                c = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, bytes(self.history[-HISTORY:]))
                packed = c.compress(s.encode("utf-8")) + c.flush()
                if len(packed) < len(data):
                    data, tag = packed, NEW_STR_DEFLATED
            self.tag(tag, ctx, kind)
            self.uint(len(data), "length", ctx)
            self.sink.raw(data)
            self.strings[s] = len(self.strings)
            self.history += s.encode("utf-8")

    def value(self, v: Any, pred: Any = MISSING, ctx: tuple = ROOT) -> None:
        if pred is not MISSING or not self.deltas:
            return self.predicted(v, pred, ctx)
        self.predicted(v, self.shapes.get(ctx[:2], MISSING), ctx)     # coding 2: keys of the last such object
        if isinstance(v, dict):
            self.shapes[ctx[:2]] = dict.fromkeys(v, MISSING)

    def predicted(self, v: Any, pred: Any, ctx: tuple) -> None:
        kind = pred_kind(pred)
        if pred is not MISSING and same(v, pred):
            self.tag(SAME, ctx, kind)
        elif type(v) is int and type(pred) is float and v == pred:
            self.tag(SAME_INT, ctx, kind)                # 1 where 1.0 was predicted (the UI writes ints)
        elif self.deltas and type(v) is int and type(pred) is int and abs(v) < 2**64 and _zigzag(v - pred) < 2**64:
            self.tag(DELTA, ctx, kind)                   # an integer near the predicted one
            self.uint(_zigzag(v - pred), "delta", ctx)
        elif isinstance(v, dict) and isinstance(pred, dict) and list(v) == list(pred) and v:
            self.tag(PATCH_KEYS, ctx, kind)              # the predicted keys, in order: only the values follow
            for i, (k, x) in enumerate(v.items()):
                self.value(x, pred[k], member_ctx(self.names, k, ctx, i))
        elif isinstance(v, dict) and isinstance(pred, dict):
            self.tag(PATCH_OBJ, ctx, kind)
            self.uint(len(v), "count", ctx)
            keys, expect = list(pred), 0
            for i, (k, x) in enumerate(v.items()):
                if expect < len(keys) and keys[expect] == k:
                    self.uint(NEXT_KEY, "key", ctx)
                elif k in pred:
                    self.uint(2 + keys.index(k), "key", ctx)
                else:
                    self.uint(NEW_KEY, "key", ctx)
                    self.string(k, ctx)
                expect = keys.index(k) + 1 if k in pred else expect
                self.value(x, pred.get(k, MISSING), member_ctx(self.names, k, ctx, i))
        elif isinstance(v, list) and isinstance(pred, list) and len(v) == len(pred) and v:
            self.tag(PATCH_LIST, ctx, kind)
            for i, (x, p) in enumerate(zip(v, pred)):
                self.value(x, p, item_ctx(ctx, i))
        else:
            self.plain(v, ctx, kind)

    def plain(self, v: Any, ctx: tuple, kind: int) -> None:
        if v is None or isinstance(v, bool):
            self.tag({None: NULL, False: FALSE, True: TRUE}[v], ctx, kind)
        elif isinstance(v, int):
            if abs(v) > 2**64 - 1:
                digits = str(abs(v)).encode("ascii")
                self.tag(BIG_INT, ctx, kind)
                self.uint(_zigzag(len(digits)) if v > 0 else _zigzag(-len(digits)), "big", ctx)
                self.sink.raw(digits)
            else:
                self.tag(INT if v >= 0 else NEG_INT, ctx, kind)
                self.uint(abs(v), "int", ctx)
        elif isinstance(v, float):
            self.real(v, ctx, kind)
        elif isinstance(v, str):
            self.string(v, ctx, kind)
        elif isinstance(v, list):
            self.tag(LIST, ctx, kind)
            self.uint(len(v), "count", ctx)
            for i, x in enumerate(v):
                self.value(x, MISSING, item_ctx(ctx, i))
        elif isinstance(v, dict):
            self.tag(OBJECT, ctx, kind)
            self.uint(len(v), "count", ctx)
            for i, (k, x) in enumerate(v.items()):
                self.string(str(k), ctx)
                self.value(x, MISSING, member_ctx(self.names, str(k), ctx, i))
        else:
            raise TypeError(f"not a JSON value: {type(v).__name__}")

    def real(self, v: float, ctx: tuple, kind: int) -> None:
        if math.isnan(v) or math.isinf(v) or (v == 0 and math.copysign(1.0, v) < 0):
            self.tag(NAN if math.isnan(v) else NEG_ZERO if v == 0 else POS_INF if v > 0 else NEG_INF, ctx, kind)
            return
        m, e = shortest_decimal(v)
        f32 = struct.pack("<f", v) if abs(v) < 3.4e38 else b""
        if len(str(abs(m))) > 9 and f32 and struct.unpack("<f", f32)[0] == v:
            self.tag(F32, ctx, kind)                     # a float32 printed as a double: 4 bytes beat ~17 digits
            self.sink.raw(f32)
            return
        self.tag(FLOAT, ctx, kind)
        self.uint(_zigzag(m), "mantissa", ctx)
        self.uint(_zigzag(e), "exponent", ctx)


class Reader:
    """Reads what :class:`Writer` wrote from ``source``; every count and reference is checked, output is budgeted."""

    def __init__(self, source: Any, names: list[str], limits: Limits, expansion: int | None = None, deltas: bool = False):
        self.src, self.names, self.limits, self.deltas = source, names, limits, deltas
        self.name_set = set(names)
        self.strings: list[str] = []
        self.history = bytearray()
        self.shapes: dict[tuple, dict] = {}
        self.budget = limits.max_metadata_bytes          # characters + items the decoded JSON may hold
        self.expansion = expansion                       # a lower bound a hostile payload meets first, or None
        if expansion is not None and expansion < self.budget:
            self.budget = expansion

    def spend(self, n: int) -> None:
        self.budget -= n
        if self.budget < 0:
            if self.expansion is not None and self.expansion < self.limits.max_metadata_bytes:
                raise LimitError(f"comfyui-graph: the payload decodes to more than {self.expansion} characters and "
                                 "items, more than its size allows (a hostile payload)")
            raise LimitError(f"comfyui-graph: the decoded graph is larger than {self.limits.max_metadata_bytes} "
                             "characters; raise aigif.Limits.max_metadata_bytes if you trust this file")

    def uint(self, what: str, ctx: tuple = ROOT) -> int:
        return self.src.uint((what, ctx), what)

    def tag(self, ctx: tuple, kind: int) -> int:
        return self.src.tag((ctx, kind), SAME if 0 < kind < STRING_TAGS else None)

    def string(self, ctx: tuple = ROOT, tag: int | None = None) -> str:
        from ..text import decode_text

        tag = self.tag(ctx, STRING_TAGS) if tag is None else tag
        if tag == NAME:
            i = self.uint("name", ctx)
            if i >= len(self.names):
                raise CorruptError(f"comfyui-graph: name index {i}; the registry has {len(self.names)} names")
            s = self.names[i]
        elif tag == DIGITS:
            s = str(self.uint("digits", ctx))
        elif tag == SEEN_STR:
            i = self.uint("seen", ctx)
            if i >= len(self.strings):
                raise CorruptError(f"comfyui-graph: string reference {i}, only {len(self.strings)} strings seen")
            s = self.strings[len(self.strings) - 1 - i]
        elif tag == NEW_STR or (tag == NEW_STR_DEFLATED and self.deltas and self.history):
            data = self.src.raw(self.uint("length", ctx), "a string")
            if tag == NEW_STR:
                s = decode_text(data, max_chars=self.limits.max_text_chars)
            else:
                s = self.inflate(data)
            if s in self.strings or s in self.name_set or _is_digits(s):
                raise CorruptError("comfyui-graph: a new string that the writer would have referenced")
            self.strings.append(s)
            self.history += s.encode("utf-8")
        else:
            raise CorruptError(f"comfyui-graph: tag {tag} where a string was expected")
        self.spend(len(s) + 1)
        return s

    def inflate(self, data: bytes) -> str:
        limit = 4 * self.limits.max_text_chars
        raw = inflate_limited(data, limit, wbits=-15, zdict=bytes(self.history[-HISTORY:]), what="comfyui-graph string")
        try:
            s = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptError("comfyui-graph: a deflated string that is not UTF-8") from None
        if len(s) > self.limits.max_text_chars:
            raise LimitError(f"comfyui-graph: a string of {len(s)} characters, above the limit of "
                             f"{self.limits.max_text_chars}; raise aigif.Limits.max_text_chars if you trust this file")
        return s

    def value(self, pred: Any = MISSING, ctx: tuple = ROOT, depth: int = 0) -> Any:
        if pred is not MISSING or not self.deltas:
            return self.predicted(pred, ctx, depth)
        out = self.predicted(self.shapes.get(ctx[:2], MISSING), ctx, depth)
        if isinstance(out, dict):
            self.shapes[ctx[:2]] = dict.fromkeys(out, MISSING)
        return out

    def predicted(self, pred: Any, ctx: tuple, depth: int) -> Any:
        if depth > self.limits.max_nesting:
            raise LimitError(f"comfyui-graph: nested deeper than {self.limits.max_nesting}")
        self.spend(1)
        kind = pred_kind(pred)
        tag = self.tag(ctx, kind)
        if tag == SAME:
            if pred is MISSING:
                raise CorruptError("comfyui-graph: 'same as predicted' where nothing is predicted")
            return self.copy(pred)
        if tag == SAME_INT and type(pred) is float and pred.is_integer():
            return int(pred)
        if tag == DELTA and type(pred) is int and self.deltas:
            v = pred + _unzigzag(self.uint("delta", ctx))
            if v == pred or abs(v) >= 2**64:
                raise CorruptError(f"comfyui-graph: an integer delta giving {v} from {pred}, which a writer codes otherwise")
            return v
        if tag == PATCH_KEYS and isinstance(pred, dict) and pred:
            return {k: self.value(p, member_ctx(self.name_set, k, ctx, i), depth + 1) for i, (k, p) in enumerate(pred.items())}
        if tag == PATCH_OBJ and isinstance(pred, dict):
            keys, expect, out = list(pred), 0, {}
            n = self.uint("count", ctx)
            self.check_count(n)
            for i in range(n):
                code = self.uint("key", ctx)
                if code == NEW_KEY:
                    k = self.string(ctx)
                elif code == NEXT_KEY and expect < len(keys):
                    k = keys[expect]
                elif 2 <= code < 2 + len(keys):
                    k = keys[code - 2]
                else:
                    raise CorruptError(f"comfyui-graph: key code {code} with {len(keys)} predicted keys")
                if k in out:
                    raise CorruptError(f"comfyui-graph: key {k!r} twice in one object")
                expect = keys.index(k) + 1 if k in pred else expect
                out[k] = self.value(pred.get(k, MISSING), member_ctx(self.name_set, k, ctx, i), depth + 1)
            return out
        if tag == PATCH_LIST and isinstance(pred, list) and pred:
            return [self.value(p, item_ctx(ctx, i), depth + 1) for i, p in enumerate(pred)]
        return self.plain(tag, ctx, depth)

    def check_count(self, n: int) -> None:
        if n > self.budget:
            self.spend(n)                                # refused before any item is read
        self.src.check_count(n)

    def plain(self, tag: int, ctx: tuple, depth: int) -> Any:
        if tag in (NULL, FALSE, TRUE):
            return (None, False, True)[tag]
        if tag in (INT, NEG_INT):
            v = self.uint("int", ctx)
            return v if tag == INT else -v
        if tag == BIG_INT:
            n = _unzigzag(self.uint("big", ctx))
            raw = self.src.raw(abs(n), "an integer") if abs(n) <= 4300 else b""
            if not raw.isdigit() or raw[:1] == b"0" or int(raw) <= 2**64 - 1:
                raise CorruptError("comfyui-graph: a big integer that is not 20 to 4300 decimal digits above 2**64 - 1")
            return int(raw) * (1 if n > 0 else -1)
        if tag == FLOAT:
            m, e = _unzigzag(self.uint("mantissa", ctx)), _unzigzag(self.uint("exponent", ctx))
            if abs(e) > 400 or not math.isfinite(v := float(f"{m}e{e}")):
                raise CorruptError(f"comfyui-graph: float {m}e{e} is out of range")
            return v
        if tag == F32:
            v = struct.unpack("<f", self.src.raw(4, "a float32"))[0]
            if not math.isfinite(v):
                raise CorruptError("comfyui-graph: a float32 that is not finite")
            return v
        if tag in _SPECIAL:
            return _SPECIAL[tag]
        if tag in STRING_TAG_SET:
            return self.string(ctx, tag)
        if tag in (LIST, OBJECT):
            n = self.uint("count", ctx)
            self.check_count(n)
            if tag == LIST:
                return [self.value(MISSING, item_ctx(ctx, i), depth + 1) for i in range(n)]
            out = {}
            for i in range(n):
                k = self.string(ctx)
                if k in out:
                    raise CorruptError(f"comfyui-graph: key {k!r} twice in one object")
                out[k] = self.value(MISSING, member_ctx(self.name_set, k, ctx, i), depth + 1)
            return out
        raise CorruptError(f"comfyui-graph: unexpected tag {tag}")

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
