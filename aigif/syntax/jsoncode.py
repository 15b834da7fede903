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

from ..errors import CorruptError, LimitError, TruncatedError
from ..limits import DEFAULT_LIMITS, Limits
from .graph_coder import ByteSink

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


ROOT = ("", 0, 0)                  # the context of a value outside any object


def member_ctx(names: Any, key: str) -> tuple:
    """Context of an object member: its key when the registry holds it (a bounded set), else "?"."""
    return (key if key in names else "?", 0, 0)


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

    def __init__(self, names: dict[str, int], sink: Any = None):
        self.names, self.sink = names, ByteSink() if sink is None else sink
        self.strings: dict[str, int] = {}

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
            data = encode_text(s)
            self.tag(NEW_STR, ctx, kind)
            self.uint(len(data), "length", ctx)
            self.sink.raw(data)
            self.strings[s] = len(self.strings)

    def value(self, v: Any, pred: Any = MISSING, ctx: tuple = ROOT) -> None:
        kind = pred_kind(pred)
        if pred is not MISSING and same(v, pred):
            self.tag(SAME, ctx, kind)
        elif type(v) is int and type(pred) is float and v == pred:
            self.tag(SAME_INT, ctx, kind)                # 1 where 1.0 was predicted (the UI writes ints)
        elif isinstance(v, dict) and isinstance(pred, dict) and list(v) == list(pred) and v:
            self.tag(PATCH_KEYS, ctx, kind)              # the predicted keys, in order: only the values follow
            for k, x in v.items():
                self.value(x, pred[k], member_ctx(self.names, k))
        elif isinstance(v, dict) and isinstance(pred, dict):
            self.tag(PATCH_OBJ, ctx, kind)
            self.uint(len(v), "count", ctx)
            keys, expect = list(pred), 0
            for k, x in v.items():
                if expect < len(keys) and keys[expect] == k:
                    self.uint(NEXT_KEY, "key", ctx)
                elif k in pred:
                    self.uint(2 + keys.index(k), "key", ctx)
                else:
                    self.uint(NEW_KEY, "key", ctx)
                    self.string(k, ctx)
                expect = keys.index(k) + 1 if k in pred else expect
                self.value(x, pred.get(k, MISSING), member_ctx(self.names, k))
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
            for k, x in v.items():
                self.string(str(k), ctx)
                self.value(x, MISSING, member_ctx(self.names, str(k)))
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

    def __init__(self, source: Any, names: list[str], limits: Limits, expansion: int | None = None):
        self.src, self.names, self.limits = source, names, limits
        self.name_set = set(names)
        self.strings: list[str] = []
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
        elif tag == NEW_STR:
            s = decode_text(self.src.raw(self.uint("length", ctx), "a string"), max_chars=self.limits.max_text_chars)
            if s in self.strings or s in self.name_set or _is_digits(s):
                raise CorruptError("comfyui-graph: a new string that the writer would have referenced")
            self.strings.append(s)
        else:
            raise CorruptError(f"comfyui-graph: tag {tag} where a string was expected")
        self.spend(len(s) + 1)
        return s

    def value(self, pred: Any = MISSING, ctx: tuple = ROOT, depth: int = 0) -> Any:
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
        if tag == PATCH_KEYS and isinstance(pred, dict) and pred:
            return {k: self.value(p, member_ctx(self.name_set, k), depth + 1) for k, p in pred.items()}
        if tag == PATCH_OBJ and isinstance(pred, dict):
            keys, expect, out = list(pred), 0, {}
            n = self.uint("count", ctx)
            self.check_count(n)
            for _ in range(n):
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
                out[k] = self.value(pred.get(k, MISSING), member_ctx(self.name_set, k), depth + 1)
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
        if tag in (NAME, DIGITS, SEEN_STR, NEW_STR):
            return self.string(ctx, tag)
        if tag in (LIST, OBJECT):
            n = self.uint("count", ctx)
            self.check_count(n)
            if tag == LIST:
                return [self.value(MISSING, item_ctx(ctx, i), depth + 1) for i in range(n)]
            out = {}
            for _ in range(n):
                k = self.string(ctx)
                if k in out:
                    raise CorruptError(f"comfyui-graph: key {k!r} twice in one object")
                out[k] = self.value(MISSING, member_ctx(self.name_set, k), depth + 1)
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
