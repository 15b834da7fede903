"""Text field coder: round trips, codec choice, errors, limits, conformance vectors."""
from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigif.errors import AigifError, ConfigError, CorruptError, LimitError, TruncatedError, UnknownCodecError
from aigif.text import TEXT_CODECS, decode_text, encode_text
from aigif.text.rangecoder import RangeDecoder, RangeEncoder

ROOT = Path(__file__).resolve().parents[1]
VECTORS = sorted((ROOT / "spec" / "conformance" / "text").glob("*.json"))

SAMPLES = [
    "",
    " ",
    "a",
    "portrait of a cyberpunk woman, highly detailed, digital painting, artstation, concept art, smooth, "
    "sharp focus, illustration, art by artgerm and greg rutkowski and alphonse mucha",
    "(masterpiece:1.2), best quality, <lora:detail_tweaker:0.7>, [cat|dog], {a|b}, ((red hair))",
    "Ein Hund im Schnee, 東京の夜景, Москва ночью, مدينة, 🐱‍👤🚀✨ emoji",
    "line one\nline two\r\n\ttabbed  double  spaces  ",
    "\x00\x01\x7f control \u200b zero-width \ufeff",
    "xyzzyqqq zorblax frumious bandersnatch",
    "\U0010ffff\U00010000\ue000",
    "4 k, 8k, 1920s, 35mm, f/1.8, 1/250s, 99.9%",
]
LONG = ("highly detailed, " * 3000) + "end"


def test_every_codec_round_trips_samples():
    for cid, codec in TEXT_CODECS.items():
        for s in SAMPLES:
            data = encode_text(s, codec=cid)
            assert data[0] == cid
            assert decode_text(data) == s, (cid, s)


def test_long_text_round_trips_and_is_small():
    data = encode_text(LONG)
    assert decode_text(data) == LONG
    assert len(data) < len(LONG.encode()) // 20


def test_auto_picks_the_smallest_codec():
    for s in SAMPLES:
        data = encode_text(s)
        sizes = {cid: len(encode_text(s, codec=cid)) for cid in TEXT_CODECS}
        assert len(data) == min(sizes.values())
        assert sizes[data[0]] == len(data)
        assert decode_text(data) == s


def test_empty_string_costs_one_byte():
    assert len(encode_text("")) == 1
    assert decode_text(encode_text("")) == ""


def test_case_codec_handles_capitals_cheaply():
    lower = "a photo of an astronaut riding a horse on mars, greg rutkowski, octane render"
    title = "A photo of an astronaut riding a horse on Mars, Greg Rutkowski, Octane Render"
    shout = "EasyNegative, BREAK, SDXL score_9 McDonald iPhone HDRi"
    for s in (lower, title, shout):
        assert decode_text(encode_text(s, codec=4)) == s
    assert len(encode_text(title, codec=4)) <= len(encode_text(lower, codec=3)) + 4
    assert len(encode_text(title, codec=4)) < len(encode_text(title, codec=3)) // 3
    assert encode_text(title)[0] == 4


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="aAbBzZ _-1é", max_size=40))
def test_property_case_split_round_trips(s):
    assert decode_text(encode_text(s, codec=4)) == s


def test_model_codec_beats_raw_on_a_typical_prompt():
    s = SAMPLES[3]
    assert encode_text(s)[0] == 3
    assert len(encode_text(s)) < len(s) // 3


def test_registry_objects_have_the_documented_shape():
    assert {0, 1, 2, 3, 4} <= set(TEXT_CODECS)
    names = set()
    for cid, c in TEXT_CODECS.items():
        assert isinstance(c.name, str) and c.name not in names
        names.add(c.name)
        assert c.decode(c.encode("hello"), 100) == "hello"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_property_any_unicode_round_trips(s):
    data = encode_text(s)
    assert decode_text(data, max_chars=len(s)) == s
    assert decode_text(encode_text(s, codec=3), max_chars=len(s)) == s
    assert decode_text(encode_text(s, codec=4), max_chars=len(s)) == s


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=80), st.sampled_from([0, 1, 2, 3, 4]))
def test_property_forced_codecs_round_trip(s, cid):
    assert decode_text(encode_text(s, codec=cid)) == s


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_property_garbage_never_escapes_as_another_exception(data):
    try:
        out = decode_text(data, max_chars=1000)
    except AigifError:
        return
    assert isinstance(out, str) and len(out) <= 1000


def test_unknown_codec_raises():
    with pytest.raises(UnknownCodecError):
        decode_text(b"\xfehello")
    with pytest.raises(ConfigError):
        encode_text("hello", codec=250)
    with pytest.raises(ConfigError):
        encode_text("\ud800")  # lone surrogate: not UTF-8 encodable
    with pytest.raises(ConfigError):
        encode_text(b"bytes")  # type: ignore[arg-type]


def test_empty_field_is_truncated():
    with pytest.raises(TruncatedError):
        decode_text(b"")


def test_truncated_zstd_raises_and_other_truncations_never_crash():
    s = SAMPLES[3]
    for cid in (1, 2):
        data = encode_text(s, codec=cid)
        for cut in range(1, len(data)):
            with pytest.raises(AigifError):
                decode_text(data[:cut])
    for cid in (0, 3, 4):  # raw/model streams are length-delimited by the container
        data = encode_text(s, codec=cid)
        for cut in range(1, len(data)):
            try:
                assert decode_text(data[:cut]) != s
            except AigifError:
                pass


def test_corrupt_bytes_raise_or_change_the_text():
    rng = random.Random(1)
    s = SAMPLES[4]
    for cid in TEXT_CODECS:
        data = bytearray(encode_text(s, codec=cid))
        for _ in range(40):
            bad = bytearray(data)
            i = rng.randrange(1, len(bad)) if len(bad) > 1 else 0
            bad[i] ^= 1 << rng.randrange(8)
            try:
                out = decode_text(bytes(bad))
            except AigifError:
                continue
            assert isinstance(out, str)


def test_trailing_bytes_are_corrupt():
    for cid in (1, 2, 3, 4):
        data = encode_text(SAMPLES[3], codec=cid)
        with pytest.raises(CorruptError):
            decode_text(data + b"\x01\x02")
    with pytest.raises(CorruptError):
        decode_text(b"\x00\xff\xfe")  # invalid UTF-8 in the raw codec


@pytest.mark.parametrize("cid", [0, 1, 2, 3, 4])
def test_max_chars_limit(cid):
    s = SAMPLES[5]
    data = encode_text(s, codec=cid)
    assert decode_text(data, max_chars=len(s)) == s
    with pytest.raises(LimitError):
        decode_text(data, max_chars=len(s) - 1)


def test_limit_stops_a_decompression_bomb():
    big = encode_text("a" * 200_000, codec=1)
    assert len(big) < 100
    with pytest.raises(LimitError):
        decode_text(big)  # default max_chars=65536
    assert decode_text(big, max_chars=200_000) == "a" * 200_000


def test_range_coder_round_trips_random_tables():
    rng = random.Random(7)
    for _ in range(30):
        syms = []
        enc = RangeEncoder()
        for _ in range(rng.randrange(0, 200)):
            total = rng.choice([1, 2, 3, 255, 1 << 16, (1 << 24) - 1, 1 << 24])
            cum = rng.randrange(total)
            freq = rng.randrange(1, total - cum + 1)
            syms.append((cum, freq, total))
            enc.encode(cum, freq, total)
        data = enc.finish()
        assert not data.endswith(b"\x00")
        dec = RangeDecoder(data)
        for cum, freq, total in syms:
            v = dec.target(total)
            assert cum <= v < cum + freq
            dec.consume(cum, freq)
        dec.check_end()


def test_conformance_vectors():
    assert len(VECTORS) >= 8
    seen = set()
    for path in VECTORS:
        v = json.loads(path.read_text(encoding="utf-8"))
        data = bytes.fromhex(v["hex"])
        assert data[0] == v["codec"]
        assert decode_text(data) == v["text"], path.name
        seen.add(v["codec"])
        if v["codec"] in (0, 3, 4):  # our own coders are byte-exact; zstd output may vary by library version
            assert encode_text(v["text"], codec=v["codec"]) == data, path.name
    assert {0, 1, 2, 3, 4} <= seen


def test_shipped_assets_match_the_spec_hashes():
    from aigif.text.model_codec import MODEL_ASSETS, MODEL_SHA256
    from aigif.text.zstd_codecs import DICT_SHA256, ZSTD_DICT_ASSETS

    spec = (ROOT / "spec" / "text-coding.md").read_text(encoding="utf-8")
    assets = ROOT / "aigif" / "assets" / "text"
    for table, hashes in ((MODEL_ASSETS, MODEL_SHA256), (ZSTD_DICT_ASSETS, DICT_SHA256)):
        for version, name in table.items():
            digest = hashlib.sha256((assets / name).read_bytes()).hexdigest()
            assert digest == hashes[version]
            assert digest in spec


def test_tampered_model_is_rejected(monkeypatch):
    from aigif.errors import ModelMismatchError
    from aigif.text import model_codec

    monkeypatch.setitem(model_codec.MODEL_SHA256, 1, "0" * 64)  # the shipped bytes no longer match the record
    model_codec.load_model.cache_clear()
    try:
        with pytest.raises(ModelMismatchError, match="text model"):
            model_codec.load_model(1)
    finally:
        model_codec.load_model.cache_clear()


def test_import_is_light():
    code = (
        "import sys, aigif.text as t; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules; "
        "assert 'aigif.text.model_codec' not in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "ok", out.stderr


def test_training_is_deterministic_and_round_trips():
    from aigif.text.model_codec import decode_with, encode_with, parse_model
    from tools.train_text_coder import PARAMS, train_token_ppm

    prompts = [
        "a cat, highly detailed, by greg rutkowski",
        "a dog, highly detailed, trending on artstation",
        "portrait of a cat, digital painting, by greg rutkowski",
    ] * 5 + ["über café 😀", "zzz qqq"]
    a = train_token_ppm(prompts, PARAMS[1])
    b = train_token_ppm(prompts, PARAMS[1])
    assert a == b
    m = parse_model(a)
    for s in prompts + SAMPLES:
        for case in (False, True):
            assert decode_with(m, encode_with(m, s, case), 1 << 20, "t", case) == s


def test_cli_functions():
    from aigif.text.cli import cli_text_codecs, cli_text_decode, cli_text_encode

    line = cli_text_encode("a cat, highly detailed")
    hexfield = line.rsplit("hex=", 1)[1]
    assert cli_text_decode(hexfield) == "a cat, highly detailed"
    assert "token-ppm-v1" in cli_text_codecs()
    with pytest.raises(CorruptError):
        cli_text_decode("zz")
    with pytest.raises(ConfigError):
        encode_text("x", codec=True)  # type: ignore[arg-type]


# --- An independent decoder written from spec/text-coding.md sections 4-5 only ---
# (no import of aigif.text internals: it checks that the spec is complete)


def _spec_model():
    import numpy as np
    import zstandard

    blob = (ROOT / "aigif" / "assets" / "text" / "token_ppm_v1.safetensors.zst").read_bytes()
    raw = zstandard.ZstdDecompressor().decompress(blob)
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    dt = {"U8": "<u1", "U16": "<u2", "U32": "<u4", "U64": "<u8"}
    body = raw[8 + n :]
    t = {
        k: np.frombuffer(body[v["data_offsets"][0] : v["data_offsets"][1]], dtype=dt[v["dtype"]]).tolist()
        for k, v in header.items()
        if k != "__metadata__"
    }
    utf8, off = bytes(t["vocab.utf8"]), t["vocab.offsets"]
    vocab = [utf8[off[i] : off[i + 1]].decode() for i in range(len(off) - 1)]

    def tables(prefix):
        out = []
        for k in range(4):
            keys, start, esc = t[f"{prefix}.o{k}.keys"], t[f"{prefix}.o{k}.start"], t[f"{prefix}.o{k}.esc"]
            sym, cnt = t[f"{prefix}.o{k}.sym"], t[f"{prefix}.o{k}.count"]
            out.append({key: (sym[start[c] : start[c + 1]], cnt[start[c] : start[c + 1]], esc[c]) for c, key in enumerate(keys)})
        return out

    return vocab, t["chars.codepoints"], tables("tok"), tables("chr")


class _SpecRangeDecoder:
    def __init__(self, payload):
        self.p, self.pos = payload, 7
        self.code = int.from_bytes(payload[:7].ljust(7, b"\0"), "big")
        self.range = 2**56 - 1

    def target(self, total):
        self.r = self.range // total
        v = self.code // self.r
        assert v < total, "corrupt"
        return v

    def consume(self, cum, freq):
        self.code -= self.r * cum
        self.range = self.r * freq
        while self.range < 2**48:
            self.range *= 256
            self.code = self.code * 256 + (self.p[self.pos] if self.pos < len(self.p) else 0)
            self.pos += 1

    def table(self, freqs):
        v, cum = self.target(sum(freqs)), 0
        for i, f in enumerate(freqs):
            if v < cum + f:
                self.consume(cum, f)
                return i
            cum += f


def _spec_symbol(dec, tables, h):
    for k in range(3, -1, -1):
        key = 0
        for x in h[len(h) - k :] if k else []:
            key = key * 65536 + x
        if key not in tables[k]:
            continue
        syms, counts, esc = tables[k][key]
        S = sum(counts)
        v = dec.target(S + esc)
        if v >= S:
            dec.consume(S, esc)
            continue
        cum = 0
        for s, f in zip(syms, counts):
            if v < cum + f:
                dec.consume(cum, f)
                return s
            cum += f
    raise AssertionError("corrupt")


def _spec_decode(model, field):
    vocab, cps, tok, chr_ = model
    codec, dec = field[0], _SpecRangeDecoder(field[1:])
    case_freq = {3: (24, 6, 2), 0: (1000, 20, 4), 1: (40, 22, 2), 2: (12, 4, 16)}
    h, out, prev = [0, 0, 0], "", 3
    while True:
        t = _spec_symbol(dec, tok, h)
        if t == 0:
            break
        if t == 1:
            g, s = [0, 0, 0], ""
            while True:
                c = _spec_symbol(dec, chr_, g)
                if c == 0:
                    break
                if c == 1 and codec == 3:
                    p = dec.target(0x110000)
                    dec.consume(p, 1)
                elif c == 1:
                    first, end = [(0, 0x80), (0x80, 0x10000), (0x10000, 0x110000)][dec.table((2, 1, 1))]
                    p = dec.target(end - first)
                    dec.consume(p, 1)
                    p += first
                else:
                    p = cps[c]
                s += chr(p)
                g = g[1:] + [c]
        else:
            s = vocab[t]
        if codec == 4 and any("a" <= x <= "z" for x in s):
            prev = dec.table(case_freq[prev])
            if prev == 2:
                s = "".join(x.upper() if "a" <= x <= "z" else x for x in s)
            elif prev == 1:
                i = next(i for i, x in enumerate(s) if "a" <= x <= "z")
                s = s[:i] + s[i].upper() + s[i + 1 :]
        out += s
        h = h[1:] + [t]
    return out


def test_spec_decoder_agrees_with_the_library():
    import gzip

    model = _spec_model()
    fields = []
    for path in VECTORS:
        v = json.loads(path.read_text(encoding="utf-8"))
        if v["codec"] in (3, 4):
            fields.append((bytes.fromhex(v["hex"]), v["text"]))
    dev = ROOT / ".." / "shared" / "data" / "prompts" / "dev.txt.gz"
    if dev.exists():
        with gzip.open(dev, "rt", encoding="utf-8") as f:
            extra = [next(f).rstrip("\n") for _ in range(40)]
    else:
        extra = SAMPLES
    for s in extra + [p.title() for p in extra[:10]]:
        for cid in (3, 4):
            fields.append((encode_text(s, codec=cid), s))
    assert len(fields) > 40
    for data, text in fields:
        assert _spec_decode(model, data) == text
