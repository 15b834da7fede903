"""Fuzzing harness shared by ``tests/test_fuzz.py`` and ``benchmarks/fuzz_long.py``.

Why a structure-aware harness: the container's CRC-32 trailer rejects almost
every random mutation at the first check, so a naive byte fuzzer never reaches
the segment and field parsers. Every mutator here therefore has a twin that
recomputes the CRC (:func:`fix_crc`), and some mutate at the segment or field
level (re-serialising lengths) so the element decoders see well-framed but
hostile payloads.

The oracle (:func:`check_input`): on any input, ``aigif.loads`` either returns a
Document or raises an :class:`aigif.AigifError`; anything else is a crash. A
document that was accepted must also survive ``document_to_dict`` + ``json``
and ``dumps``/``loads`` (what ``aigif info`` and re-saving do).
"""
from __future__ import annotations

import contextlib
import functools
import json
import random
import struct
import warnings
import zlib
from pathlib import Path
from typing import Callable, Iterable
from unittest import mock

import msgpack

import aigif
import aigif.text
from aigif.container import Segment, encode_uvarint, read_container, write_container
from aigif.container.stream import MAGIC, TRAILER_BYTES
from aigif.errors import AigifError
from aigif.syntax import ComponentRef, Document, Fingerprint, Generation, Lora, ModelRef, Platform, Source
from aigif.syntax import registry
from aigif.syntax.fields import RawField, read_fields, write_field

ROOT = Path(__file__).resolve().parents[1]
TEXT_CODEC_IDS = tuple(aigif.text.TEXT_CODECS)
PROMPTS = (
    "a photo of a cat wearing a tiny wizard hat, highly detailed, 8k, trending on artstation",
    "masterpiece, best quality, (1girl:1.2), [city|forest], <lora:foo:0.7>, 日本語, emoji 🎨",
    "x",
)


# --- corpus --------------------------------------------------------------------
def sample_documents() -> list[Document]:
    """Documents that together use every element, every field and every field kind."""
    platform = Platform(device="cuda", gpu="NVIDIA H100 80GB HBM3", compute_capability="9.0.0", driver="550.54.15",
                        cuda="12.4.0", cudnn="9.1.0", torch="2.13.0+cu124", diffusers="0.42.1", dtype="float16",
                        attention="sdpa", threads=16, deterministic=True, cpu="AMD EPYC 9654", transformers="4.50.0")
    platform2 = Platform(device="cpu", dtype="bfloat16", attention="classic", torch="nightly-build", deterministic=False)
    model_full = ModelRef(
        name="my-finetune", family="sdxl", repo="someone/some-model", revision="0123456789abcdef0123456789abcdef01234567",
        sha256="ab" * 32, local="models/my-finetune", variant="fp16", weights_file="model.safetensors",
        vae=ComponentRef(name="sdxl-vae", repo="madebyollin/sdxl-vae-fp16-fix", revision="main", sha256="cd" * 32,
                         local="vae", subfolder="vae"),
        loras=(Lora(name="detail", weight=0.7, repo="a/b", revision="ff" * 20, sha256="0123456789", local="loras/x",
                    weight_name="x.safetensors"),
               Lora(name="style", weight=-1.25), Lora(local="loras/y", weight=0.1 + 0.2)),
    )
    gen_full = dict(
        seed=2**64 - 1, num_inference_steps=30, guidance_scale=7.5, width=1024, height=768, negative_prompt="blurry, lowres",
        scheduler="dpmpp-2m-karras", scheduler_config={"use_karras_sigmas": True, "timestep_spacing": "trailing",
                                                       "betas": [0.1, 0.2, {"deep": {"er": [1, None, "x"]}}],
                                                       "big": 2**63, "neg": -5},
        eta=0.0, clip_skip=2, batch_index=3, guidance_rescale=0.7,
    )
    docs = []
    for i, prompt in enumerate(PROMPTS):
        docs.append(Document(generation=Generation(prompt=prompt, **gen_full), model=model_full, platform=platform,
                             fingerprint=Fingerprint(pixel_sha256="0f" * 32, width=1024, height=768, perceptual="a1b2c3d4e5f60718"),
                             source=Source(tool="a1111", version="1.10.0+abc", extra={"Hires upscale": 2, "list": [1, 2.5, "x"]})))
        docs.append(Document(generation=Generation(prompt=prompt, seed=i, num_inference_steps=20, guidance_scale=0.1 + 0.2,
                                                   width=513, height=520, scheduler="my-own-scheduler"),
                             model=ModelRef(name="sd15"), platform=platform2,
                             source=Source(tool="comfyui", version="weird version"),
                             extensions=(Segment(0x40, msgpack.packb({"a": [1, 2, {"b": "c"}]})), Segment(0x4002, b"\x00\xff" * 8))))
    docs.append(Document(pixels=b"NVTC" + bytes(range(40))))
    docs.append(Document(generation=Generation(prompt="", seed=0, num_inference_steps=1, guidance_scale=1, width=64, height=64),
                         model=ModelRef(repo="org/model", family="sd1"), residual=b"\x01\x02\x03",
                         fingerprint=Fingerprint(pixel_sha256="00" * 8, width=64, height=64)))
    return docs


FUZZ_EXT_TYPES = (0x4010, 0x4011)  # private range: one ancillary, one critical code


def fuzz_extension():
    """A schema-checked msgpack extension using every schema field type (its decoder is fuzzed too)."""
    from aigif.syntax.extensions import Field, msgpack_extension

    schema = {
        "strength": Field("number", required=True, min=0, max=1), "steps": Field("int", min=1, max=1000),
        "name": Field("str", max_len=64), "on": Field("bool"), "image": Field("bytes", max_len=4096),
        "sha": Field("hex", max_len=32), "tags": Field("list", items=Field("str"), max_len=16),
        "box": Field("object", fields={"x": Field("int"), "y": Field("int")}), "free": Field("map"),
    }
    return msgpack_extension("fuzz-ext", FUZZ_EXT_TYPES, schema, description="fuzzing only")


@contextlib.contextmanager
def registered_fuzz_extension():
    from aigif.syntax.extensions import extension_named, register_extension, unregister_extension

    if extension_named("fuzz-ext") is not None:  # re-entrant: the outermost registration owns it
        yield
        return
    register_extension(fuzz_extension(), replace=True)
    try:
        yield
    finally:
        unregister_extension("fuzz-ext")


def extension_documents() -> list[Document]:
    """Documents carrying the fuzz extension (ancillary and critical); needs :func:`registered_fuzz_extension`."""
    from aigif.syntax.extensions import extension_segment

    data = {"strength": 0.75, "steps": 20, "name": "init", "on": True, "image": b"\x89PNG" + bytes(60), "sha": "ab" * 16,
            "tags": ["a", "b"], "box": {"x": 1, "y": 2}, "free": {"deep": {"er": [1, 2.5, None, "x", {"k": True}]}}}
    gen = Generation(prompt="ext", seed=1, num_inference_steps=4, guidance_scale=3, width=64, height=64)
    return [Document(generation=gen, model=ModelRef(name="sd15"),
                     extensions=(extension_segment("fuzz-ext", data, t),)) for t in FUZZ_EXT_TYPES]


@contextlib.contextmanager
def forced_text_codec(codec: int):
    """Make ``dumps`` code every text field with one codec, so the corpus covers each codec's decoder."""
    real = aigif.text.encode_text
    with mock.patch("aigif.text.encode_text", lambda text, codec_=None: real(text, codec=codec)):
        yield


def build_corpus(extra_dirs: Iterable[Path] = ()) -> tuple[list[bytes], list[str]]:
    """Valid files: every sample document under every text codec that works here.

    Returns (files, problems); a text codec that cannot encode (asset missing)
    is reported in *problems* rather than silently dropped.
    """
    files: list[bytes] = []
    problems: list[str] = []
    for codec in TEXT_CODEC_IDS:
        try:
            with forced_text_codec(codec):
                files.extend(aigif.dumps(d) for d in sample_documents())
        except AigifError as exc:
            problems.append(f"text codec {codec}: {type(exc).__name__}: {exc}")
    with registered_fuzz_extension(), forced_text_codec(0):
        files.extend(aigif.dumps(d) for d in extension_documents())
    for data in conformance_files(extra_dirs):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                aigif.loads(data)
        except AigifError:
            continue  # a negative test vector: a mutation seed (see seeds()), not part of the valid corpus
        files.append(data)
    return files, problems


def conformance_files(extra_dirs: Iterable[Path] = ()) -> list[bytes]:
    """``spec/conformance/**/*.aigif`` (valid and invalid vectors) plus any extra folders."""
    out = []
    for d in (ROOT / "spec" / "conformance", *extra_dirs):
        for p in sorted(Path(d).rglob("*.aigif")):
            if p.stat().st_size <= 1 << 20:
                out.append(p.read_bytes())
    return out


def seeds(corpus: list[bytes]) -> list[bytes]:
    """Mutation seeds: the valid corpus plus the invalid conformance vectors (near-misses are good seeds)."""
    return corpus + [f for f in conformance_files() if f not in corpus]


# --- CRC and segment level -------------------------------------------------------
def fix_crc(data: bytes) -> bytes:
    """Recompute the CRC-32 trailer so the mutation reaches the segment parser."""
    if len(data) < len(MAGIC) + 1 + TRAILER_BYTES:
        return data
    body = data[:-TRAILER_BYTES]
    return body + zlib.crc32(body).to_bytes(4, "little")


def segments_of(data: bytes) -> list[Segment]:
    return read_container(data)[1]


def raw_container(pieces: list[tuple[int, int, bytes]], version: int = 1) -> bytes:
    """A container from (type, declared_length, payload) with a valid CRC; the length may lie."""
    out = bytearray(MAGIC)
    out.append(version)
    for t, n, p in pieces:
        out += encode_uvarint(t) + encode_uvarint(n) + p
    return bytes(out) + zlib.crc32(out).to_bytes(4, "little")


INTERESTING_VARINTS = (0, 1, 2, 3, 7, 8, 0x7F, 0x80, 0xFF, 0x3FFF, 0xFFFF, 2**31 - 1, 2**32, 2**53 + 1, 2**63, 2**64 - 1)
INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF)


def mutate_bytes(data: bytes, rnd: random.Random) -> bytes:
    """One random byte-level mutation (flip, set, insert, delete, duplicate, truncate)."""
    b = bytearray(data)
    op = rnd.randrange(7)
    i = rnd.randrange(len(b) + 1)
    if op == 0 and b:
        b[min(i, len(b) - 1)] ^= 1 << rnd.randrange(8)
    elif op == 1 and b:
        b[min(i, len(b) - 1)] = rnd.choice(INTERESTING_BYTES)
    elif op == 2:
        b[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 9)))
    elif op == 3:
        del b[i : i + rnd.randrange(1, 9)]
    elif op == 4 and b:
        j = rnd.randrange(len(b))
        b[i:i] = b[j : j + rnd.randrange(1, 33)]
    elif op == 5:
        b[i:i] = encode_uvarint(rnd.choice(INTERESTING_VARINTS))
    else:
        del b[i:]
    return bytes(b)


def mutate_fields(payload: bytes, rnd: random.Random) -> bytes:
    """Field-level mutation of one segment payload, re-serialised so its framing stays valid."""
    try:
        fields = read_fields(payload, "fuzz")
    except AigifError:
        return mutate_bytes(payload, rnd)
    if not fields:
        fields = []
    op = rnd.randrange(8)
    k = rnd.randrange(len(fields)) if fields else 0
    if op == 0 and fields:
        del fields[k]
    elif op == 1 and fields:
        fields.insert(k, fields[k])  # duplicate field
    elif op == 2 and fields:  # change the number of a field
        f = fields[k]
        fields[k] = RawField(rnd.choice((1, 2, 3, 9, 10, 15, 16, 2**20, 2**60)), f.wire, f.value)
    elif op == 3 and fields:  # wrong wire type, value kept as compatible as possible
        f = fields[k]
        wire = rnd.randrange(5)
        value = f.value
        if wire == 2 and not isinstance(value, bytes):
            value = encode_uvarint(value)
        elif wire in (0, 1, 3) and not isinstance(value, int):
            value = rnd.choice(INTERESTING_VARINTS)
        elif wire == 4:
            value = struct.pack("<d", rnd.choice((float("nan"), float("inf"), -0.0, 1e308, 5e-324)))
        fields[k] = RawField(f.number, wire, value)
    elif op == 4 and fields:  # new integer value
        f = fields[k]
        if f.wire in (0, 1, 3):
            fields[k] = RawField(f.number, f.wire, rnd.choice(INTERESTING_VARINTS))
        elif f.wire == 2:
            fields[k] = RawField(f.number, f.wire, mutate_bytes(f.value, rnd))
    elif op == 5 and fields:  # recurse into a nested element or a text payload
        f = fields[k]
        if f.wire == 2:
            fields[k] = RawField(f.number, 2, mutate_fields(f.value, rnd) if rnd.random() < 0.5 else mutate_bytes(f.value, rnd))
    elif op == 6:  # a hostile bytes field in any slot
        fields.insert(k, RawField(rnd.randrange(1, 16), 2, hostile_blob(rnd)))
    else:
        return mutate_bytes(payload, rnd)
    out = bytearray()
    for f in fields:
        write_field(out, f.number, f.wire, f.value)
    return bytes(out)


def hostile_blob(rnd: random.Random) -> bytes:
    """Payloads aimed at the decoders behind a bytes field: bombs, deep maps, bad text codecs."""
    kind = rnd.randrange(7)
    if kind == 0:
        return zstd_bomb(rnd.choice((1, 2)), rnd.choice((1 << 20, 1 << 30)))
    if kind == 1:
        return deep_msgpack(rnd.choice((33, 200, 5000)), rnd.choice(("map", "array")))
    if kind == 2:
        return msgpack_header_bomb()
    if kind == 3:
        return bytes([rnd.choice(TEXT_CODEC_IDS + (len(TEXT_CODEC_IDS), 255))]) + bytes(rnd.randrange(256) for _ in range(rnd.randrange(40)))
    if kind == 4:
        return b"\x00" + "x".encode() * rnd.choice((65536, 65537))
    if kind == 5:
        return b"\x03" + bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 64)))
    return bytes(rnd.randrange(256) for _ in range(rnd.randrange(64)))


def mutate_structure(data: bytes, rnd: random.Random) -> bytes:
    """Segment-level mutation with a valid CRC: reorder, drop, duplicate, retype, lie about a length, mutate fields."""
    try:
        segs = segments_of(data)
    except AigifError:
        return fix_crc(mutate_bytes(data, rnd))
    op = rnd.randrange(8)
    k = rnd.randrange(len(segs)) if segs else 0
    if op == 0 and segs:
        segs[k] = Segment(segs[k].type, mutate_fields(segs[k].payload, rnd))
    elif op == 1 and segs:
        segs[k] = Segment(segs[k].type, mutate_bytes(segs[k].payload, rnd))
    elif op == 2 and segs:
        del segs[k]
    elif op == 3 and segs:
        segs.insert(k, segs[k])
    elif op == 4 and segs:
        segs[k] = Segment(rnd.choice((*registry.CORE_SEGMENTS, 0x08, 0x0E, 0x0B, 0x41, 0x40, *FUZZ_EXT_TYPES, 2**32 + 1, 2**64 - 2)), segs[k].payload)
    elif op == 5:
        rnd.shuffle(segs)
    elif op == 6 and segs:  # a length that lies (too long / too short / huge)
        pieces = [(s.type, len(s.payload), s.payload) for s in segs]
        t, n, p = pieces[k]
        pieces[k] = (t, rnd.choice((n + 1, max(n - 1, 0), 2**31, 2**63, 2**64 - 1)), p)
        return raw_container(pieces)
    else:
        segs.insert(k, Segment(rnd.choice((0x05, 0x03, 0x06, 0x40, *FUZZ_EXT_TYPES)), hostile_blob(rnd) if rnd.random() < 0.5 else random_fields(rnd)))
    return write_container(segs)


def random_fields(rnd: random.Random) -> bytes:
    out = bytearray()
    for _ in range(rnd.randrange(12)):
        no = rnd.randrange(1, 16)
        wire = rnd.randrange(5)
        if wire in (0, 1, 3):
            write_field(out, no, wire, rnd.choice(INTERESTING_VARINTS))
        elif wire == 2:
            write_field(out, no, wire, hostile_blob(rnd) if rnd.random() < 0.3 else bytes(rnd.randrange(256) for _ in range(rnd.randrange(20))))
        else:
            write_field(out, no, wire, struct.pack("<d", rnd.choice((0.5, float("nan"), float("inf"), 1e300))))
    return bytes(out)


def random_stream(rnd: random.Random) -> bytes:
    """A random segment stream with a valid CRC: core types with random field payloads."""
    segs = []
    for _ in range(rnd.randrange(1, 8)):
        t = rnd.choice((*registry.CORE_SEGMENTS, 0x40, 0x41, 0x08, 0x0E))
        segs.append(Segment(t, random_fields(rnd)))
    return write_container(segs)


def mutate(data: bytes, rnd: random.Random) -> bytes:
    """One mutation of a valid file, half the time with its CRC repaired."""
    r = rnd.random()
    if r < 0.45:
        return mutate_structure(data, rnd)
    if r < 0.75:
        return fix_crc(mutate_bytes(data, rnd))
    if r < 0.85:
        return random_stream(rnd)
    if r < 0.95:
        return mutate_bytes(data, rnd)
    return data[: rnd.randrange(len(data) + 1)]


# --- bombs -----------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def zstd_bomb(codec: int, size: int) -> bytes:
    """A text field (codec 1 or 2) whose magicless zstd frame is RLE blocks: 4 bytes per 128 KiB of output.

    Hand-built (frame header: no content size, 128 KiB window), so making a
    gigabyte bomb costs nothing; the dictionary codec accepts it too.
    """
    out = bytearray([codec, 0x00, 0x38])
    blk = 1 << 17
    n = max(size // blk, 1)
    for i in range(n):
        out += ((i == n - 1) | 1 << 1 | blk << 3).to_bytes(3, "little") + b"a"
    return bytes(out)


def deep_msgpack(depth: int, kind: str = "map") -> bytes:
    """A msgpack value nested *depth* levels ({'a': {'a': ...}} or [[[...]]])."""
    if kind == "map":
        return b"\x81\xa1a" * depth + b"\xc0"
    return b"\x91" * depth + b"\xc0"


def msgpack_header_bomb() -> bytes:
    """A map32 / array32 / str32 header announcing 2**32-1 entries with no data."""
    return random.choice((b"\xdf\xff\xff\xff\xff", b"\xdd\xff\xff\xff\xff", b"\xdb\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xff"))


# --- the oracle ------------------------------------------------------------------
class Crash(Exception):
    """A non-AigifError escaped, or an accepted document did not survive re-use."""


def check_input(data: bytes, limits=aigif.DEFAULT_LIMITS) -> str:
    """Decode *data*; return 'ok' or the AigifError kind; raise :class:`Crash` on anything else."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown ancillary extensions warn by design
        return _check_input(data, limits)


def _check_input(data: bytes, limits) -> str:
    try:
        doc = aigif.loads(data, limits)
    except AigifError as exc:
        return type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - this is the point of the harness
        raise Crash(f"loads raised {type(exc).__name__}: {exc}") from exc
    try:
        d = aigif.document_to_dict(doc)
        json.dumps(d, ensure_ascii=False).encode("utf-8")
    except AigifError as exc:  # an extension payload may be bad: still a clean error
        return type(exc).__name__
    except Exception as exc:  # noqa: BLE001
        raise Crash(f"document_to_dict/json raised {type(exc).__name__}: {exc}") from exc
    try:
        with forced_text_codec(0):  # raw UTF-8: the round trip checks structure, not the text models
            again = aigif.loads(aigif.dumps(doc), limits)
    except Exception as exc:  # noqa: BLE001
        raise Crash(f"an accepted document does not re-encode: {type(exc).__name__}: {exc}") from exc
    if again != doc:
        raise Crash("an accepted document changed after dumps/loads")
    return "ok"


def run_cli(argv: list[str]) -> int:
    """Run the CLI in-process; return its exit code. Any exception that escapes is a crash."""
    from aigif.cli import main

    try:
        return main(argv)
    except Exception as exc:  # noqa: BLE001
        raise Crash(f"aigif {' '.join(argv)} raised {type(exc).__name__}: {exc}") from exc


def fuzz(corpus: list[bytes], n: int, seed: int, on_input: Callable[[bytes], str] = check_input) -> dict:
    """Run *n* mutated inputs; return counts by outcome (raises Crash on the first crash)."""
    rnd = random.Random(seed)
    counts: dict[str, int] = {}
    with registered_fuzz_extension():
        _fuzz_loop(corpus, n, rnd, on_input, counts)
    return counts


def _fuzz_loop(corpus, n, rnd, on_input, counts) -> None:
    for _ in range(n):
        data = corpus[rnd.randrange(len(corpus))]
        for _ in range(rnd.choice((1, 1, 2, 4))):
            data = mutate(data, rnd)
        outcome = on_input(data)
        counts[outcome] = counts.get(outcome, 0) + 1
