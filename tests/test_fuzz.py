"""Untrusted input: a bounded, reproducible fuzz pass over ``aigif.loads`` and ``aigif info``/``decode``.

Only :class:`aigif.AigifError` subclasses may escape, and memory stays bounded.
Every mutation has a twin with a recomputed CRC-32 so it reaches the segment and
field parsers (see ``tests/fuzz_harness.py``). The long run is
``benchmarks/fuzz_long.py --minutes N``.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import tracemalloc
import zlib
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aigif
from aigif.container import Segment, encode_uvarint, write_container
from aigif.errors import AigifError, CorruptError, LimitError, TruncatedError
from aigif.limits import Limits
from aigif.syntax import Document, Generation, Lora, ModelRef, Source, registry
from aigif.syntax.elements import ComponentRef, Fingerprint, Platform
from aigif.syntax.fields import write_field

from . import fuzz_harness as h
from .strategies import documents

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore::aigif.syntax.extensions.AigifWarning")
def fuzz_settings(n: int) -> settings:
    """Fixed-seed (derandomize) so CI is stable; no example database so runs do not depend on history."""
    return settings(max_examples=n, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
CORPUS, CORPUS_PROBLEMS = h.build_corpus()


@pytest.fixture(autouse=True, scope="module")
def fuzz_extension_registered():
    """The corpus carries a schema-checked extension (critical and ancillary) so its decoder is fuzzed too."""
    with h.registered_fuzz_extension():
        yield
SEEDS = h.seeds(CORPUS)


def mb(n: float) -> int:
    return int(n * 2**20)


def gen_payload(**fields) -> bytes:
    """A generation segment payload with a raw-UTF-8 prompt and the required fields."""
    out = bytearray()
    write_field(out, 1, 2, fields.pop("prompt", b"\x00a cat"))
    for no, wire, value in ((3, 0, 1), (4, 0, 20), (5, 3, 75 << 5 | 1 << 1), (6, 0, 8 << 2), (7, 0, 8 << 2)):
        write_field(out, no, wire, value)
    for no, (wire, value) in fields.items():
        write_field(out, int(no[1:]), wire, value)
    return bytes(out)


def file_with(gen: bytes | None = None, source: bytes | None = None, model: bytes | None = None, extra: list[Segment] = ()) -> bytes:
    m = bytearray()
    write_field(m, 1, 0, registry.code_of("model", "sd15"))
    segs = [Segment(registry.SEG_MODEL, model if model is not None else bytes(m)),
            Segment(registry.SEG_GENERATION, gen if gen is not None else gen_payload())]
    if source is not None:
        segs.append(Segment(registry.SEG_SOURCE, source))
    return write_container([*segs, *extra])


def source_with_extra(blob: bytes) -> bytes:
    out = bytearray()
    write_field(out, 1, 2, b"fuzz")
    write_field(out, 3, 2, blob)
    return bytes(out)


# --- the corpus ----------------------------------------------------------------------
def test_corpus_is_valid_and_uses_every_field():
    assert CORPUS and all(h.check_input(f) == "ok" for f in CORPUS)
    used: dict[type, set] = {}
    for f in CORPUS:
        doc = aigif.loads(f)
        stack = [getattr(doc, a) for a in ("generation", "model", "platform", "fingerprint", "source")]
        while stack:
            el = stack.pop()
            if el is None:
                continue
            for fd in type(el).FIELDS:
                v = getattr(el, fd.name)
                if v not in (None, (), "") or fd.required:
                    used.setdefault(type(el), set()).add(fd.name)
                    stack.extend(v if fd.repeated else [v] if fd.kind == "msg" else [])
    for cls in (Generation, ModelRef, Platform, Fingerprint, Source, ComponentRef, Lora):
        assert {fd.name for fd in cls.FIELDS} - used.get(cls, set()) == set(), cls.__name__
    docs = [aigif.loads(f) for f in CORPUS]
    assert any(d.pixels for d in docs) and any(d.residual for d in docs) and any(d.extensions for d in docs)


def test_corpus_covers_every_text_codec():
    """Each text codec's decoder is reached; a codec that cannot encode here (missing asset) fails this test."""
    assert CORPUS_PROBLEMS == []
    codecs = set()
    for f in CORPUS:
        _, segs = aigif.container.read_container(f)
        for s in segs:
            if s.type == registry.SEG_GENERATION:
                codecs.add(aigif.syntax.fields.read_fields(s.payload, "g")[0].value[0])
    assert codecs == set(h.TEXT_CODEC_IDS)


# --- systematic mutations --------------------------------------------------------------
@pytest.mark.parametrize("index", [0, 1, len(CORPUS) - 1])
def test_every_truncation(index):
    data = CORPUS[index]
    for n in range(len(data)):
        with pytest.raises(AigifError):
            aigif.loads(data[:n])
        h.check_input(h.fix_crc(data[:n]))


def test_every_byte_flip_with_valid_crc():
    data = CORPUS[0]
    outcomes = {}
    for i in range(5, len(data) - 4):
        for mask in (0x01, 0xFF):
            b = bytearray(data)
            b[i] ^= mask
            r = h.check_input(h.fix_crc(bytes(b)))
            outcomes[r] = outcomes.get(r, 0) + 1
    # the CRC repair works: errors come from the segment and field parsers, not only the checksum
    assert outcomes.get("LimitError", 0) + outcomes.get("CorruptError", 0) > 0 and outcomes.get("ok", 0) > 0


def test_crc_detects_every_flip():
    data = CORPUS[0]
    for i in range(len(data)):
        b = bytearray(data)
        b[i] ^= 0x10
        with pytest.raises(AigifError):
            aigif.loads(bytes(b))


# --- hypothesis ---------------------------------------------------------------------------
@fuzz_settings(600)
@given(st.randoms(use_true_random=False), st.integers(0, len(SEEDS) - 1), st.integers(1, 4))
def test_mutated_corpus(rnd, index, rounds):
    data = SEEDS[index]
    for _ in range(rounds):
        data = h.mutate(data, rnd)
    h.check_input(data)


def test_mutated_corpus_fixed_seed():
    """The cheap bulk of the pass: 4000 mutations from a fixed seed (hypothesis adds shrinking above)."""
    counts = h.fuzz(SEEDS, 4000, seed=20261125)
    assert sum(counts.values()) == 4000
    assert counts.get("ok", 0) > 100 and counts.get("CorruptError", 0) > 100 and counts.get("TruncatedError", 0) > 100


@fuzz_settings(100)
@given(documents, st.randoms(use_true_random=False))
def test_mutated_generated_documents(doc, rnd):
    with h.forced_text_codec(0):
        data = aigif.dumps(doc)
    assert aigif.loads(data) == doc
    for _ in range(3):
        h.check_input(h.mutate_structure(data, rnd))
        h.check_input(h.fix_crc(h.mutate_bytes(data, rnd)))


wires = st.one_of(
    st.tuples(st.just(0), st.integers(0, 2**64 - 1)), st.tuples(st.just(1), st.integers(0, 2**64 - 1)),
    st.tuples(st.just(3), st.integers(0, 2**64 - 1)), st.tuples(st.just(2), st.binary(max_size=64)),
    st.tuples(st.just(4), st.binary(min_size=8, max_size=8)),
)
def _fields_bytes(fs: list) -> bytes:
    out = bytearray()
    for n, (w, v) in fs:
        write_field(out, n, w, v)
    return bytes(out)


segment_payloads = st.one_of(st.lists(st.tuples(st.integers(1, 20), wires), max_size=16).map(_fields_bytes), st.binary(max_size=64))


@fuzz_settings(400)
@given(st.lists(st.tuples(st.sampled_from([*registry.CORE_SEGMENTS, 0x08, 0x0E, 0x0A, 0x40, 0x41, 0x4000, 2**63]), segment_payloads), max_size=8),
       st.integers(0, 255))
def test_random_segment_streams_with_valid_crc(segs, version):
    data = write_container([Segment(t, p) for t, p in segs])
    h.check_input(data)
    h.check_input(data[:4] + bytes([version]) + h.fix_crc(data)[5:])


# --- hostile sizes -------------------------------------------------------------------------
@pytest.mark.parametrize("length", [4, 2**31, 2**63, 2**64 - 1])
def test_segment_length_beyond_the_file(length):
    data = h.raw_container([(registry.SEG_GENERATION, length, b"\x00" * 3)])
    with pytest.raises(TruncatedError):
        aigif.loads(data)


@pytest.mark.parametrize("length", [2**31, 2**63, 2**64 - 1])
def test_field_length_beyond_the_segment(length):
    payload = encode_uvarint(1 << 3 | 2) + encode_uvarint(length) + b"abc"
    with pytest.raises(TruncatedError):
        aigif.loads(file_with(gen=payload))


@pytest.mark.parametrize("bad", [b"\xff" * 11 + b"\x01", b"\x80\x00", b"\xff" * 9 + b"\x7f"])
def test_bad_varints(bad):
    with pytest.raises(CorruptError):
        aigif.loads(h.fix_crc(aigif.container.MAGIC + b"\x01" + bad + b"\x00" * 4))


def _peak(fn) -> tuple[str, int]:
    tracemalloc.start()
    try:
        try:
            fn()
            result = "ok"
        except AigifError as exc:
            result = type(exc).__name__
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, peak


rle_zstd_bomb = h.zstd_bomb


@pytest.mark.parametrize("codec", [1, 2])
def test_zstd_bomb_in_prompt_is_refused_without_allocating(codec):
    bomb = rle_zstd_bomb(codec, 1 << 30)  # 32 KiB that expands to 1 GiB
    assert len(bomb) < 40_000
    data = file_with(gen=gen_payload(prompt=bomb))
    result, peak = _peak(lambda: aigif.loads(data))
    assert result == "LimitError"
    assert peak < mb(8)
    # the same frame, cut to what the limit allows, is a valid prompt: the bomb test is not vacuous
    ok = file_with(gen=gen_payload(prompt=rle_zstd_bomb(codec, 1 << 17)))
    assert len(aigif.loads(ok, Limits(max_text_chars=1 << 17)).generation.prompt) == 1 << 17


def _vm_bytes() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux) to read the address-space size")
@pytest.mark.parametrize("codec", [1, 2])
def test_zstd_window_request_is_bounded(codec):
    """A 7-byte text field whose frame header asks for a 128 MiB window must not reserve it
    (the text coder caps the window at 8 MiB; tracemalloc does not see zstd's own malloc, VmSize does)."""
    frame = bytes([codec, 0x00, 17 << 3]) + (1 | 1 << 1 | 1 << 3).to_bytes(3, "little") + b"a"   # windowLog 27
    aigif.text.decode_text(b"\x00warm-up")
    before = _vm_bytes()
    with pytest.raises(AigifError):
        aigif.text.decode_text(frame)
    assert _vm_bytes() - before < mb(16)
    ok = bytes([codec, 0x00, 10 << 3]) + (1 | 1 << 1 | 1 << 3).to_bytes(3, "little") + b"a"        # windowLog 20: fine
    assert aigif.text.decode_text(ok) == "a"


@pytest.mark.parametrize("where", ["scheduler_config", "extra"])
@pytest.mark.parametrize("depth,kind", [(33, "map"), (33, "array"), (1000, "map"), (100_000, "array")])
def test_deep_msgpack_nesting(where, depth, kind):
    blob = b"\x81\xa1k" + h.deep_msgpack(depth, kind)
    data = file_with(gen=gen_payload(f9=(2, blob))) if where == "scheduler_config" else file_with(source=source_with_extra(blob))
    with pytest.raises((LimitError, CorruptError)):
        aigif.loads(data)


@pytest.mark.parametrize("critical", [False, True])
@pytest.mark.parametrize("blob", [h.deep_msgpack(100_000, "map"), h.deep_msgpack(40, "array"),
                                  b"\xdf\xff\xff\xff\xff", b"\xdd\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xff"])
def test_hostile_extension_payloads(critical, blob):
    """Deep nesting / length bombs inside a registered extension's msgpack payload: a clean error (critical) or a kept segment."""
    import warnings

    payload = b"\x82\xa8strength\xcb" + bytes(8) + b"\xa4free" + blob
    data = file_with(extra=[Segment(h.FUZZ_EXT_TYPES[critical], payload)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if critical:
            with pytest.raises((CorruptError, LimitError)):
                aigif.loads(data)
        else:
            assert aigif.loads(data).extensions[0].payload == payload   # kept byte for byte
            assert h.check_input(data) in ("ok", "CorruptError", "LimitError")


@pytest.mark.parametrize("header", [b"\xdf\xff\xff\xff\xff", b"\xdd\xff\xff\xff\xff", b"\xdb\xff\xff\xff\xff",
                                    b"\xc6\xff\xff\xff\xff", b"\xc9\xff\xff\xff\xff\x01"])
def test_msgpack_length_bombs(header):
    data = file_with(source=source_with_extra(b"\x81\xa1k" + header))
    result, peak = _peak(lambda: aigif.loads(data))
    assert result in ("CorruptError", "LimitError") and peak < mb(1)


def test_msgpack_expansion_is_bounded():
    """b'\\x80' is an empty dict (~64 bytes of Python objects): a map field is refused above max_map_bytes."""
    n = Limits().max_map_bytes + 1
    blob = b"\x81\xa1k\xdd" + n.to_bytes(4, "big") + b"\x80" * n
    result, peak = _peak(lambda: aigif.loads(file_with(source=source_with_extra(blob))))
    assert result == "LimitError" and peak < 4 * n


def test_many_tiny_fields_are_refused_early():
    payload = b"\x78\x00" * (mb(8) // 2)  # 4 M unknown fields
    result, peak = _peak(lambda: aigif.loads(file_with(model=payload)))
    assert result == "LimitError" and peak < mb(24)


@pytest.mark.parametrize("kind", ["str", "version", "hex", "enum"])
def test_huge_strings_are_refused_before_decoding(kind):
    big = "é".encode() * mb(2)
    where = {"str": (3, "repo"), "version": None, "hex": (5, "sha256"), "enum": (1, "name")}[kind]
    if kind == "version":
        src = bytearray()
        write_field(src, 1, 2, b"tool")
        write_field(src, 2, 2, big)
        data = file_with(source=bytes(src))
    else:
        m = bytearray()
        write_field(m, where[0], 2, big)
        data = file_with(model=bytes(m))
    result, peak = _peak(lambda: aigif.loads(data))
    assert result == "LimitError" and peak < 3 * len(data) + mb(1)


# --- every limit: the limit passes, limit + 1 raises (as msgpack's test_limits) --------------
def _nested(k: int) -> dict:
    d: dict = {"leaf": 1}
    for _ in range(k - 1):
        d = {"a": d}
    return d


def test_limit_max_file_bytes():
    data = CORPUS[0]
    aigif.loads(data, Limits(max_file_bytes=len(data)))
    with pytest.raises(LimitError):
        aigif.loads(data, Limits(max_file_bytes=len(data) - 1))


def test_limit_max_segments():
    data = file_with(extra=[Segment(0x40, b"x")] * 10)
    aigif.loads(data, Limits(max_segments=12))
    with pytest.raises(LimitError):
        aigif.loads(data, Limits(max_segments=11))


@pytest.mark.parametrize("codec", h.TEXT_CODEC_IDS)
def test_limit_max_text_chars(codec):
    prompt = "a cat sitting on a mat, " * 20
    try:
        raw = aigif.text.encode_text(prompt, codec=codec)
    except AigifError as exc:
        pytest.fail(f"text codec {codec} cannot encode here: {exc}")
    data = file_with(gen=gen_payload(prompt=raw))
    assert aigif.loads(data, Limits(max_text_chars=len(prompt))).generation.prompt == prompt
    with pytest.raises(LimitError):
        aigif.loads(data, Limits(max_text_chars=len(prompt) - 1))


@pytest.mark.parametrize("field", ["scheduler_config", "extra"])
def test_limit_max_nesting(field):
    doc = Document(generation=Generation(prompt="x", seed=1, num_inference_steps=1, guidance_scale=1, width=64, height=64,
                                         scheduler_config=_nested(5) if field == "scheduler_config" else None),
                   model=ModelRef(name="sd15"), source=Source(tool="t", extra=_nested(5)) if field == "extra" else None)
    with h.forced_text_codec(0):
        data = aigif.dumps(doc)
    assert aigif.loads(data, Limits(max_nesting=5)) == doc
    with pytest.raises(LimitError):
        aigif.loads(data, Limits(max_nesting=4))


def test_limit_max_loras():
    doc = Document(generation=Generation(prompt="x", seed=1, num_inference_steps=1, guidance_scale=1, width=64, height=64),
                   model=ModelRef(name="sd15", loras=tuple(Lora(name=f"l{i}") for i in range(7))))
    with h.forced_text_codec(0):
        data = aigif.dumps(doc)
    assert aigif.loads(data, Limits(max_loras=7)) == doc
    with pytest.raises(LimitError):
        aigif.loads(data, Limits(max_loras=6))


def test_limit_max_fields():
    payload = gen_payload() + b"\x98\x06\x00" * 10  # 6 known + 10 unknown fields (number 99)
    data = file_with(gen=payload)
    aigif.loads(data, Limits(max_fields=16))
    with pytest.raises(LimitError):
        aigif.loads(data, Limits(max_fields=15))


def test_limit_max_map_bytes():
    blob = msgpack.packb({"use_karras_sigmas": True, "x": list(range(50))})
    data = file_with(source=source_with_extra(blob))
    assert aigif.loads(data, Limits(max_map_bytes=len(blob))).source.extra["use_karras_sigmas"] is True
    with pytest.raises(LimitError):
        aigif.loads(data, Limits(max_map_bytes=len(blob) - 1))


def test_limit_max_image_pixels_in_the_codec():
    pytest.importorskip("torch")
    from aigif.codec import decompress_image, zoo
    from aigif.codec.payload import pack as pack_payload

    NVTC_MODEL_ID = next(iter(zoo.MODEL_IDS))

    data = pack_payload(NVTC_MODEL_ID, 1, 0, 16, 16, b"")
    try:  # at the limit the header passes (an empty stream may still be refused as corrupt: not a limit error)
        assert decompress_image(data, max_pixels=256).shape == (16, 16, 3)
    except LimitError:
        pytest.fail("a payload at max_pixels was refused as over the limit")
    except CorruptError:
        pass
    with pytest.raises(LimitError):
        decompress_image(data, max_pixels=255)
    with pytest.raises(LimitError):  # the header is checked before anything is allocated
        decompress_image(pack_payload(NVTC_MODEL_ID, 1, 0, 65535, 65535, b""))


def test_read_limited_refuses_big_files_without_reading_them(tmp_path):
    p = tmp_path / "big.aigif"
    with open(p, "wb") as fh:
        fh.truncate(mb(65))  # sparse: 65 MiB that cost nothing on disk
    result, peak = _peak(lambda: aigif.load(p))
    assert result == "LimitError" and peak < Limits().max_file_bytes + mb(2)


# --- memory stays bounded at full scale: a subprocess under RLIMIT_AS -------------------------
MEMORY_CHILD = textwrap.dedent(r"""
    import resource, sys, tracemalloc, zlib
    import aigif, msgpack
    from aigif.container import Segment, write_container
    from aigif.syntax.fields import write_field
    from aigif.syntax import registry
    import aigif.text, zstandard  # imported before the limit is set

    def vm_bytes():
        for line in open("/proc/self/status"):
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024

    def gen(prompt):
        out = bytearray()
        write_field(out, 1, 2, prompt)
        for no, wire, value in ((3, 0, 1), (4, 0, 20), (5, 3, 75 << 5 | 2), (6, 0, 32), (7, 0, 32)):
            write_field(out, no, wire, value)
        return bytes(out)

    def doc(*segs):
        return write_container([Segment(registry.SEG_MODEL, b"\x08\x11"), *segs])

    N = 60 * 2**20
    def rle(total):
        out = bytearray([1, 0x00, 0x38]); n = total // (1 << 17)
        for i in range(n):
            out += ((i == n - 1) | 2 | (1 << 17) << 3).to_bytes(3, "little") + b"a"
        return bytes(out)
    cases = {
        "60 MiB of unknown fields": lambda: doc(Segment(registry.SEG_SOURCE, b"\x78\x00" * (N // 2))),
        "60 MiB raw prompt": lambda: doc(Segment(registry.SEG_GENERATION, gen(b"\x00" + b"a" * N))),
        "8 GiB zstd prompt bomb": lambda: doc(Segment(registry.SEG_GENERATION, gen(rle(8 * 2**30)))),
        "60 MiB msgpack map of empty maps": lambda: doc(Segment(registry.SEG_GENERATION, gen(b"\x00a")), Segment(registry.SEG_SOURCE, src_map(N))),
        "1 MiB msgpack of empty maps (at the limit)": lambda: doc(Segment(registry.SEG_GENERATION, gen(b"\x00a")), Segment(registry.SEG_SOURCE, src_map(2**20 - 16))),
        "1024 segments of 60 KiB": lambda: doc(Segment(registry.SEG_GENERATION, gen(b"\x00a")), *[Segment(0x40, b"x" * 61000)] * 1022),
        "60 MiB pixels": lambda: write_container([Segment(registry.SEG_PIXELS, b"p" * N)]),
        "65 MiB file": lambda: write_container([Segment(registry.SEG_PIXELS, b"p" * (65 * 2**20))]),
    }
    def src_map(n):
        out = bytearray()
        write_field(out, 1, 2, b"t")
        write_field(out, 3, 2, b"\x81\xa1k\xdd" + n.to_bytes(4, "big") + b"\x80" * n)
        return bytes(out)

    budget = int(sys.argv[1]) * 2**20
    bad = 0
    for name, make in cases.items():
        data = make()
        base = vm_bytes()
        resource.setrlimit(resource.RLIMIT_AS, (base + budget, resource.RLIM_INFINITY))
        tracemalloc.start()
        try:
            try:
                aigif.loads(data); r = "ok"
            except aigif.AigifError as e:
                r = type(e).__name__
            except BaseException as e:
                r = "CRASH " + type(e).__name__; bad += 1
        finally:
            peak = tracemalloc.get_traced_memory()[1]; tracemalloc.stop()
            resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        print(f"{name}\t{len(data)}\t{peak}\t{r}", flush=True)
        del data
    sys.exit(1 if bad else 0)
""")


def test_memory_bounded_under_rlimit(tmp_path):
    """Full-size hostile files decode (or fail cleanly) with at most 3x the file size + 64 MiB of extra address space."""
    script = tmp_path / "child.py"
    script.write_text(MEMORY_CHILD)
    budget_mib = 3 * 65 + 64
    r = subprocess.run([sys.executable, str(script), str(budget_mib)], capture_output=True, text=True, timeout=120,
                       cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert r.returncode == 0, r.stdout + r.stderr
    outcome = {name: res for name, _, _, res in rows}
    assert len(rows) == 8
    assert outcome["60 MiB msgpack map of empty maps"] == "LimitError"
    assert outcome["1 MiB msgpack of empty maps (at the limit)"] == "ok"
    assert outcome["60 MiB of unknown fields"] == "LimitError"
    assert outcome["60 MiB raw prompt"] == "LimitError"
    assert outcome["8 GiB zstd prompt bomb"] == "LimitError"
    assert outcome["65 MiB file"] == "LimitError"
    assert outcome["1024 segments of 60 KiB"] == "ok" and outcome["60 MiB pixels"] == "ok"
    for name, size, peak, _ in rows:
        assert int(peak) <= 3 * int(size) + 80 * Limits().max_map_bytes, (name, int(peak) / 2**20)


# --- the CLI: aigif info / decode never crash ------------------------------------------------------
def _mutated_files(tmp_path: Path, n: int, seed: int) -> list[Path]:
    rnd = random.Random(seed)
    paths = []
    for i in range(n):
        data = CORPUS[rnd.randrange(len(CORPUS))]
        for _ in range(rnd.choice((1, 2))):
            data = h.mutate(data, rnd)
        p = tmp_path / f"m{i}.aigif"
        p.write_bytes(data)
        paths.append(p)
    return paths


def test_cli_info_never_crashes(tmp_path, capsys):
    codes = {}
    for p in _mutated_files(tmp_path, 60, seed=7):
        for argv in (["info", str(p)], ["info", "--json", str(p)]):
            code = h.run_cli(argv)
            codes[code] = codes.get(code, 0) + 1
    capsys.readouterr()
    assert set(codes) <= {0, 1} and codes.get(0) and codes.get(1)


def test_cli_info_json_is_json(tmp_path, capsys):
    p = tmp_path / "a.aigif"
    p.write_bytes(CORPUS[0])
    capsys.readouterr()
    assert h.run_cli(["info", "--json", str(p)]) == 0
    assert json.loads(capsys.readouterr().out)["seed"] == 2**64 - 1


def test_cli_info_does_not_echo_terminal_escapes(tmp_path, capsys):
    """A stranger's prompt must not drive the user's terminal (ESC sequences, OSC 52 clipboard writes, ...)."""
    evil = "nice cat\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b[2J\x9b31m"
    doc = Document(generation=Generation(prompt=evil, seed=1, num_inference_steps=1, guidance_scale=1, width=64, height=64),
                   model=ModelRef(name="sd15"), source=Source(tool="x\x1b[31m", extra={"k\x1b": "\x1b[0m"}))
    p = tmp_path / "evil.aigif"
    with h.forced_text_codec(0):
        p.write_bytes(aigif.dumps(doc))
    for argv in (["info", str(p)], ["info", "--json", str(p)]):
        capsys.readouterr()
        assert h.run_cli(argv) == 0
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\x9b" not in out and "\x07" not in out, argv
        assert "ZWNobyBwd25lZA==" in out  # the text itself is shown, escaped


def test_cli_decode_without_the_model_is_a_model_error(tmp_path, capsys, monkeypatch):
    """A syntax-only file naming a model that is not installed fails with ModelError (exit 1), offline, no download."""
    from aigif.cli.engine_cmds import cli_decode

    for k in [k for k in os.environ if k.startswith("AIGIF_MODEL")]:
        monkeypatch.delenv(k)
    doc = Document(generation=Generation(prompt="a cat", seed=1, num_inference_steps=2, guidance_scale=7.5, width=64, height=64),
                   model=ModelRef(name="sd15"))
    src = tmp_path / "a.aigif"
    with h.forced_text_codec(0):
        src.write_bytes(aigif.dumps(doc))
    empty = tmp_path / "models"
    empty.mkdir()
    out = tmp_path / "out.png"
    with pytest.raises(aigif.ModelError, match="not available"):
        cli_decode([src], out, model_dirs=[empty], allow_network=False)
    assert not out.exists()
    capsys.readouterr()
    assert h.run_cli(["decode", str(src), "-o", str(out), "--model-dir", str(empty), "--offline", "-q"]) == 1
    assert "not available" in capsys.readouterr().err and not out.exists()


def test_cli_decode_of_mutated_files_never_crashes(tmp_path, capsys):
    """Mutated files through ``aigif decode``: only exit 0/1/3/4 (in-process; models absent so nothing renders long)."""
    from aigif.syntax.document import Document as D

    empty = tmp_path / "models"
    empty.mkdir()
    paths = []
    for p in _mutated_files(tmp_path, 60, seed=11):
        try:
            d: D = aigif.loads(p.read_bytes())
        except AigifError:
            paths.append(p)
            continue
        if d.model is None or not registry.code_of("model", d.model.name or "") or not registry.model_entry(d.model.name).embedded:
            paths.append(p)  # an embedded tiny model would really render: keep the pass fast
    assert len(paths) > 30
    for p in paths:
        code = h.run_cli(["decode", str(p), "-o", str(tmp_path / (p.stem + ".png")), "--model-dir", str(empty), "--offline", "-q"])
        assert code in (0, 1, 3, 4)
    capsys.readouterr()


# --- the pixel codec: a tiny payload must not claim unbounded decoding work ----------------------------
CODEC_CHILD = textwrap.dedent(r"""
    import resource, sys
    import torch; torch.set_num_threads(1)
    import aigif
    from aigif.codec import decompress_image, zoo
    from aigif.codec.payload import pack as pack_payload
    zoo.load_model(1)
    def vm():
        for line in open("/proc/self/status"):
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    side = int(sys.argv[1])
    data = pack_payload(next(iter(zoo.MODEL_IDS)), 1, 0, side, side, b"")   # 24 bytes: header + crc, empty range-coded stream
    resource.setrlimit(resource.RLIMIT_AS, (vm() + 2**30, resource.RLIM_INFINITY))
    try:
        decompress_image(data); print("ok")
    except aigif.AigifError as e:
        print(type(e).__name__)
    except BaseException as e:
        print("CRASH", type(e).__name__, str(e)[:120])
""")


@pytest.mark.parametrize("side, expected", [(8192, "LimitError"), (2048, "ok")])
def test_codec_header_only_payload_cannot_demand_gigabytes(tmp_path, side, expected):
    """A 24-byte NVTC payload announcing 8192x8192 would need ~4 GB of working memory: refused from the
    header (codec max_pixels, 16 Mi by default) with a LimitError; a 2048x2048 one decodes within a 1 GiB budget."""
    script = tmp_path / "codec_child.py"
    script.write_text(CODEC_CHILD)
    r = subprocess.run([sys.executable, str(script), str(side)], capture_output=True, text=True, timeout=240, cwd=ROOT,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.stdout.strip() == expected, r.stdout + r.stderr[-2000:]


def test_pillow_open_of_mutated_files_never_crashes():
    """``Image.open`` parses the syntax only: a hostile file is an AigifError (or Pillow's UnidentifiedImageError
    for bytes that are not .aigif at all, or its DecompressionBombError for a huge declared size), never another exception."""
    import io

    from PIL import Image, UnidentifiedImageError

    import aigif.pillow_plugin  # noqa: F401 - registers the format

    rnd = random.Random(5)
    seen = {}
    for _ in range(400):
        data = SEEDS[rnd.randrange(len(SEEDS))]
        for _ in range(rnd.choice((1, 2))):
            data = h.mutate(data, rnd)
        try:
            with Image.open(io.BytesIO(data)) as im:
                r = f"ok {im.size}"
                assert im.mode == "RGB" and min(im.size) >= 1
        except (AigifError, UnidentifiedImageError, Image.DecompressionBombError) as exc:  # the last: Pillow's own size guard
            r = type(exc).__name__
        seen[r.split()[0]] = seen.get(r.split()[0], 0) + 1
    assert seen.get("ok") and len(seen) > 2


@pytest.mark.parametrize("cfg", [{"num_train_timesteps": 10**9}, {"num_train_timesteps": 3e7}, {"solver_order": 10**9},
                                 {"original_inference_steps": 10**9}, {"trained_betas": [1e300] * 10}, {"sigma_max": float("inf")}])
def test_scheduler_config_cannot_demand_gigabytes(cfg):
    """A ~20-byte scheduler_config from a file is refused before diffusers allocates from it
    (num_train_timesteps=3e7 took 16 s and 1.2 GB before the engine bounded override values)."""
    pytest.importorskip("diffusers")
    from aigif.engine.schedulers import make_scheduler

    with pytest.raises(AigifError):
        make_scheduler("PNDMScheduler", {}, "dpmpp-2m", cfg)
    assert make_scheduler("PNDMScheduler", {}, "dpmpp-2m", {"num_train_timesteps": 1000, "solver_order": 3}) is not None


def test_codec_mutated_payloads_never_crash():
    """Mutated NVTC payloads (image and residual), most with their own CRC-32 recomputed so the
    range decoder sees them: only AigifError escapes (max_pixels keeps each decode small)."""
    pytest.importorskip("torch")
    import struct

    import numpy as np

    from aigif.codec import compress_image, compress_residual, decompress_image, decompress_residual

    rng = np.random.default_rng(0)
    img = (rng.random((40, 48, 3)) * 255).astype(np.uint8)
    ref = np.clip(img.astype(int) + 5, 0, 255).astype(np.uint8)
    seeds = [(compress_image(img, 1), False), (compress_image(img, 4), False), (compress_residual(img, ref, 2), True)]
    rnd = random.Random(3)
    seen = {}
    for _ in range(400):
        data, residual = seeds[rnd.randrange(len(seeds))]
        for _ in range(rnd.choice((1, 2))):
            data = h.mutate_bytes(data, rnd)
        if rnd.random() < 0.8 and len(data) >= 24:
            data = data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))
        try:
            out = decompress_residual(data, ref, max_pixels=1 << 16) if residual else decompress_image(data, max_pixels=1 << 16)
            assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
            r = "ok"
        except AigifError as exc:
            r = type(exc).__name__
        seen[r] = seen.get(r, 0) + 1
    assert seen.get("ok") and seen.get("CorruptError")
