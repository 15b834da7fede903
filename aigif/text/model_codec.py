"""Codecs 3 and 4: a static token-level PPM model driving the integer range coder.

Model (Cleary & Witten 1984, PPM; static, trained once by `tools/train_text_coder.py`):
tokens from `tokenize.split_tokens` are coded with contexts of up to K previous
tokens; a token missing from a context is preceded by an escape and retried one
order lower; tokens outside the vocabulary are the symbol NOVEL followed by
their characters under a second PPM model over characters, whose own last
resort is a uniform code over all Unicode code points. Every probability is an
integer count stored in the model file, so decoding is bit-exact everywhere.

Codec 4 reuses the same model file on ASCII-lowercased tokens and codes a case
class (lower / Capitalized / UPPER) after each letter token from fixed integer
tables: the training prompts are lowercase, real prompts are not.
"""
from __future__ import annotations

import json
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..errors import CorruptError, LimitError
from .rangecoder import BOT, RangeDecoder, RangeEncoder
from .tokenize import CAP, LOWER, UPPER, apply_case, has_lower_letter, split_case_tokens, split_tokens
from .zstd_codecs import shipped_asset

MODEL_ASSETS = {1: "token_ppm_v1.safetensors.zst"}  # model version -> file in aigif/assets/text
MODEL_SHA256 = {1: "c7ad98560e2a00f320b95982ed94083eea392c547834302d738a670b1991245a"}  # frozen identity of each shipped model (also in spec/text-coding.md)
EOS = 0  # token id 0: end of text (and the padding of the start context)
NOVEL = 1  # token id 1: a token outside the vocabulary, spelled by the char model
CHAR_END = 0  # char id 0: end of a spelled token (and the start-context padding)
CHAR_ESC = 1  # char id 1: a code point outside the char alphabet (uniform code)
N_CODEPOINTS = 0x110000

# Codec 4 only (fixed by the spec, not trained: the training prompts are lowercase).
# Case class of a letter token given the previous letter token's class (or START):
CASE_START = 3
CASE_FREQ = {CASE_START: (24, 6, 2), LOWER: (1000, 20, 4), CAP: (40, 22, 2), UPPER: (12, 4, 16)}
# Code point escape: class (ASCII, rest of the BMP, astral) then uniform inside it.
CP_CLASSES = ((0, 0x80, 2), (0x80, 0x10000, 1), (0x10000, N_CODEPOINTS, 1))  # (first, end, freq)
CP_TOTAL = 4
SEEN_CONTEXTS = 1 << 17  # per order and table: looked-up contexts remembered (about 10 MiB at most)


def _encode_table(enc: RangeEncoder, freqs: tuple, s: int) -> None:
    enc.encode(sum(freqs[:s]), freqs[s], sum(freqs))


def _decode_table(dec: RangeDecoder, freqs: tuple) -> int:
    v = dec.target(sum(freqs))
    cum = 0
    for i, f in enumerate(freqs):
        if v < cum + f:
            dec.consume(cum, f)
            return i
        cum += f
    raise AssertionError("unreachable: target() checked v < total")


def encode_codepoint(enc: RangeEncoder, cp: int, classes: bool) -> None:
    if not classes:
        enc.encode(cp, 1, N_CODEPOINTS)
        return
    cum = 0
    for first, end, f in CP_CLASSES:
        if cp < end:
            enc.encode(cum, f, CP_TOTAL)
            enc.encode(cp - first, 1, end - first)
            return
        cum += f


def decode_codepoint(dec: RangeDecoder, classes: bool) -> int:
    if not classes:
        cp = dec.target(N_CODEPOINTS)
        dec.consume(cp, 1)
        return cp
    first, end, _ = CP_CLASSES[_decode_table(dec, tuple(c[2] for c in CP_CLASSES))]
    cp = dec.target(end - first)
    dec.consume(cp, 1)
    return first + cp


def _arr(code: str, a: np.ndarray) -> array:
    """numpy -> array.array: bisect on it runs in C without numpy's per-call overhead."""
    return array(code, np.ascontiguousarray(a, dtype={"Q": "<u8", "q": "<i8"}[code]).tobytes())


class PPMTable:
    """Static PPM contexts of orders 0..K over 16-bit symbol ids (see spec section 4)."""

    def __init__(self, arrays: dict, prefix: str, max_order: int) -> None:
        self.K = max_order
        self.keys, self.start, self.esc, self.sym, self.cum = [], [], [], [], []
        for k in range(max_order + 1):
            cnt = arrays[f"{prefix}.o{k}.count"].astype(np.int64)
            cum = np.zeros(len(cnt) + 1, dtype=np.int64)
            np.cumsum(cnt, out=cum[1:])
            self.keys.append(_arr("Q", arrays[f"{prefix}.o{k}.keys"]))
            self.start.append(_arr("q", arrays[f"{prefix}.o{k}.start"]))
            self.esc.append(_arr("q", arrays[f"{prefix}.o{k}.esc"]))
            self.sym.append(_arr("q", arrays[f"{prefix}.o{k}.sym"]))
            self.cum.append(_arr("q", cum))
        self.masks = [(1 << (16 * k)) - 1 for k in range(max_order + 1)]
        # contexts already looked up (key -> index or -1), per order: one hash lookup instead of a bisect
        # over boxed integers; filled as texts are coded and capped, so memory follows use, not the model size
        self.seen: list[dict[int, int]] = [{} for _ in range(max_order + 1)]
        self.orders = [(k, self.seen[k], self.masks[k], self.start[k], self.cum[k], self.esc[k], self.sym[k])
                       for k in range(max_order, -1, -1)]  # highest order first, as the coder tries them

    def key(self, hist: list[int]) -> int:
        """The last K symbols of *hist* packed 16 bits each; the key of order k is its low 16*k bits."""
        key = 0
        for h in hist[len(hist) - self.K :] if self.K else ():
            key = (key << 16) | h
        return key

    def find(self, k: int, hist: list[int]) -> int:
        """Index of the context keyed by the last k symbols of *hist*, or -1."""
        return self.context(k, self.key(hist) & self.masks[k])

    def context(self, k: int, key: int) -> int:
        """Index of the order-*k* context with *key*, or -1."""
        seen = self.seen[k]
        c = seen.get(key)
        if c is None:
            keys = self.keys[k]
            c = bisect_left(keys, key)
            if c == len(keys) or keys[c] != key:
                c = -1
            if len(seen) < SEEN_CONTEXTS:
                seen[key] = c
        return c

    def encode(self, enc: RangeEncoder, hist: list[int], s: int) -> bool:
        """Code *s* after *hist*; False when it escaped below order 0 (caller codes it)."""
        key = self.key(hist)
        for k in range(self.K, -1, -1):
            c = self.context(k, key & self.masks[k])
            if c < 0:
                continue
            start, cum, sym = self.start[k], self.cum[k], self.sym[k]
            a, b = start[c], start[c + 1]
            base = cum[a]
            tot_sym = cum[b] - base
            esc = self.esc[k][c]
            j = bisect_left(sym, s, a, b)
            if j < b and sym[j] == s:
                enc.encode(cum[j] - base, cum[j + 1] - cum[j], tot_sym + esc)
                return True
            if esc == 0:
                raise AssertionError("symbol missing from a context that cannot escape")
            enc.encode(tot_sym, esc, tot_sym + esc)
        return False

    def decode(self, dec: RangeDecoder, hist: list[int]) -> int:
        """Return the next symbol id, or -1 when it escaped below order 0."""
        key = self.key(hist)
        for k, seen, mask, start, cum, esc, sym in self.orders:
            c = seen.get(key & mask)
            if c is None:
                c = self.context(k, key & mask)
            if c < 0:
                continue
            a, b = start[c], start[c + 1]
            base = cum[a]
            tot_sym = cum[b] - base
            e = esc[c]
            r = dec.range // (tot_sym + e)  # dec.target and dec.consume, inlined (the hot loop of text decoding)
            code = dec.code
            v = code // r
            if v >= tot_sym:
                if v >= tot_sym + e:
                    raise CorruptError(f"text stream: range decoder value {v} outside total {tot_sym + e}")
                dec.r = r
                dec.consume(tot_sym, e)
                continue
            j = bisect_right(cum, base + v, a, b + 1) - 1
            lo = cum[j]
            code -= r * (lo - base)
            rng = r * (cum[j + 1] - lo)
            if rng < BOT:
                data, pos = dec.data, dec.pos
                while rng < BOT:
                    rng <<= 8
                    code = (code << 8) | (data[pos] if pos < len(data) else 0)
                    pos += 1
                dec.pos = pos
            dec.code, dec.range = code, rng
            return sym[j]
        return -1


@dataclass
class TokenModel:
    """Vocabulary + token PPM + char PPM, loaded from one shipped asset."""

    vocab: list[str]
    index: dict[str, int]
    chars: list[int]
    char_index: dict[int, int]
    tokens: PPMTable
    spell: PPMTable
    meta: dict = field(default_factory=dict)


def parse_model(blob: bytes) -> TokenModel:
    """Parse a model file: a zstd frame holding a safetensors file."""
    import zstandard as zstd
    from safetensors.numpy import load

    raw = zstd.ZstdDecompressor().decompress(blob)
    arrays = load(raw)
    hdr_len = int.from_bytes(raw[:8], "little")
    meta = json.loads(raw[8 : 8 + hdr_len]).get("__metadata__", {})
    vb = arrays["vocab.utf8"].tobytes()
    vo = arrays["vocab.offsets"].astype(np.int64)
    vocab = [vb[vo[i] : vo[i + 1]].decode("utf-8") for i in range(len(vo) - 1)]
    chars = [int(c) for c in arrays["chars.codepoints"]]
    return TokenModel(
        vocab=vocab,
        index={t: i for i, t in enumerate(vocab) if i > NOVEL},
        chars=chars,
        char_index={c: i for i, c in enumerate(chars) if i > CHAR_ESC},
        tokens=PPMTable(arrays, "tok", int(meta["token_order"])),
        spell=PPMTable(arrays, "chr", int(meta["char_order"])),
        meta=meta,
    )


@lru_cache(maxsize=None)
def load_model(version: int) -> TokenModel:
    return parse_model(shipped_asset(MODEL_ASSETS, MODEL_SHA256, version, "text model"))


def encode_with(model: TokenModel, text: str, case: bool = False) -> bytes:
    """Codec 3 (case=False) or codec 4 (case=True: case classes + cheaper code point escapes)."""
    enc = RangeEncoder()
    K, CK = model.tokens.K, model.spell.K
    hist = [EOS] * K
    prev_case = CASE_START
    pairs = split_case_tokens(text) if case else [(t, None) for t in split_tokens(text)]
    for tok, cls in pairs + [(None, None)]:
        t = EOS if tok is None else model.index.get(tok, NOVEL)
        if not model.tokens.encode(enc, hist, t):
            raise AssertionError("token model cannot escape below order 0")
        if t == NOVEL:
            chist = [CHAR_END] * CK
            for ch in [ord(x) for x in tok] + [None]:
                c = CHAR_END if ch is None else model.char_index.get(ch, CHAR_ESC)
                if not model.spell.encode(enc, chist, c):
                    raise AssertionError("char model cannot escape below order 0")
                if c == CHAR_ESC:
                    encode_codepoint(enc, ch, case)
                if CK:
                    chist = chist[1:] + [c]
        if cls is not None:
            _encode_table(enc, CASE_FREQ[prev_case], cls)
            prev_case = cls
        if K:
            hist = hist[1:] + [t]
    return enc.finish()


def decode_with(model: TokenModel, data: bytes, max_chars: int, name: str, case: bool = False) -> str:
    dec = RangeDecoder(data)
    prev_case = CASE_START
    K, CK = model.tokens.K, model.spell.K
    hist = [EOS] * K
    out: list[str] = []
    n = 0
    while True:
        t = model.tokens.decode(dec, hist)
        if t < 0:
            raise CorruptError(f"{name}: token escaped below order 0")
        if t == EOS:
            break
        if t == NOVEL:
            chist = [CHAR_END] * CK
            buf = []
            while True:
                c = model.spell.decode(dec, chist)
                if c < 0:
                    raise CorruptError(f"{name}: character escaped below order 0")
                if c == CHAR_END:
                    break
                if c == CHAR_ESC:
                    cp = decode_codepoint(dec, case)
                    if 0xD800 <= cp < 0xE000:
                        raise CorruptError(f"{name}: surrogate code point {cp:#x}")
                    buf.append(chr(cp))
                else:
                    buf.append(chr(model.chars[c]))
                if len(buf) + n > max_chars:
                    raise LimitError(f"{name}: decoded text exceeds max_chars={max_chars}")
                if CK:
                    chist = chist[1:] + [c]
            if not buf:
                raise CorruptError(f"{name}: empty spelled token")
            s = "".join(buf)
        else:
            s = model.vocab[t]
        if case and has_lower_letter(s):
            prev_case = _decode_table(dec, CASE_FREQ[prev_case])
            s = apply_case(s, prev_case)
        out.append(s)
        n += len(s)
        if n > max_chars:
            raise LimitError(f"{name}: decoded text exceeds max_chars={max_chars}")
        if K:
            hist = hist[1:] + [t]
    dec.check_end()
    return "".join(out)
