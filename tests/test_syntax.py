import dataclasses
import math

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import aigif
from aigif.container import Segment, write_container
from aigif.errors import AigifError, ConfigError, CorruptError, LimitError, RegistryError, UnknownSegmentError
from aigif.syntax import Document, Generation, ModelRef, document_from_dict, document_to_dict, dumps, loads
from aigif.syntax.fields import decode_number, decode_px, encode_number, encode_px, encode_version, decode_version
from aigif.syntax import registry

from .strategies import documents, finite, generations, models

BASE = {"model": "sd15", "prompt": "a cat", "seed": 42}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_document_round_trip(doc):
    data = dumps(doc)
    back = loads(data)
    assert back == doc
    assert dumps(back) == data  # one canonical byte form


@settings(max_examples=100, deadline=None)
@given(documents)
def test_json_round_trip(doc):
    assert document_from_dict(document_to_dict(doc)) == doc


@given(finite)
def test_numbers_round_trip_exactly(x):
    wire, raw = encode_number(x)
    y = decode_number(wire, raw, "t")
    assert y == x and math.copysign(1, y) == math.copysign(1, x)


def test_common_numbers_are_small():
    for x, wire_type, max_len in ((7.5, 3, 2), (7.0, 0, 1), (0.0, 0, 1), (12.0, 0, 1), (1.25, 3, 2), (-3.5, 3, 2)):
        wire, raw = encode_number(x)
        assert wire == wire_type and len(aigif.container.encode_uvarint(raw)) <= max_len, x


@given(st.integers(1, 16384))
def test_px_round_trip(n):
    assert decode_px(encode_px(n), "t") == n


def test_sd_sizes_cost_one_byte():
    for n in (512, 768, 1024, 832, 1216, 1536):
        assert encode_px(n) < 128


@given(st.sampled_from(["2.13.0", "2.13.0+cpu", "0.42.1", "1.0", "12.8", "weird", ""]))
def test_version_round_trip(s):
    assert decode_version(encode_version(s), "t") == s


def test_version_packs():
    assert len(encode_version("2.13.0+cpu")) == 8


def test_guidance_7_5_comes_back_exact():
    doc = document_from_dict({**BASE, "guidance_scale": 7.5})
    assert loads(dumps(doc)).generation.guidance_scale == 7.5


def test_defaults_come_from_family():
    d = document_to_dict(document_from_dict({**BASE, "model": "sdxl"}))
    assert (d["width"], d["height"], d["num_inference_steps"], d["guidance_scale"]) == (1024, 1024, 50, 7.5)


def test_unknown_keys_are_errors():
    with pytest.raises(ConfigError, match="unknown key"):
        document_from_dict({**BASE, "cfg": 7})
    with pytest.raises(ConfigError, match="unknown key"):
        document_from_dict({**BASE, "platform": {"gpu": "x", "ram": 3}})


def test_unknown_registry_names_list_known_ones():
    with pytest.raises(RegistryError, match="sd15"):
        document_from_dict({**BASE, "model": "sd99"})
    with pytest.raises(RegistryError, match="ddim"):
        document_from_dict({**BASE, "scheduler": "nope"})


@pytest.mark.parametrize("bad", [{"seed": -1}, {"seed": 2**64}, {"seed": 1.5}, {"num_inference_steps": 0},
                                 {"width": 0}, {"guidance_scale": "7"}, {"prompt": 3}, {"clip_skip": 99}])
def test_invalid_values(bad):
    with pytest.raises(ConfigError):
        document_from_dict({**BASE, **bad})


def test_document_needs_syntax_or_pixels():
    with pytest.raises(ConfigError):
        Document(generation=None, model=None)
    assert Document(pixels=b"x").pixels == b"x"


def test_full_64_bit_seed():
    doc = document_from_dict({**BASE, "seed": 2**64 - 1})
    assert loads(dumps(doc)).generation.seed == 2**64 - 1


def test_unknown_ancillary_kept_unknown_critical_refused():
    doc = document_from_dict(BASE)
    data = dumps(doc.replace(extensions=(Segment(0x1000, b"future"),)))
    back = loads(data)
    assert back.extensions == (Segment(0x1000, b"future"),) and dumps(back) == data
    with pytest.raises(UnknownSegmentError, match="0x1001"):
        loads(dumps(doc.replace(extensions=(Segment(0x1001, b"future"),))))
    # unknown critical code inside the core range too
    with pytest.raises(UnknownSegmentError):
        loads(write_container([Segment(0x3F, b"")]))


def test_unknown_fields_in_known_segment_are_skipped():
    from aigif.syntax.schema import encode_element
    from aigif.syntax.fields import write_field

    gen = document_from_dict(BASE).generation
    payload = bytearray(encode_element(gen))
    write_field(payload, 200, 2, b"new field")
    data = write_container([Segment(registry.SEG_MODEL, encode_element(ModelRef(name="sd15"))),
                            Segment(registry.SEG_GENERATION, bytes(payload))])
    assert loads(data).generation == gen


def test_duplicate_core_segment_and_missing_required_field():
    from aigif.syntax.schema import encode_element

    gen = encode_element(document_from_dict(BASE).generation)
    model = encode_element(ModelRef(name="sd15"))
    with pytest.raises(CorruptError, match="second"):
        loads(write_container([Segment(3, model), Segment(5, gen), Segment(5, gen)]))
    with pytest.raises(CorruptError, match="required field 'seed'"):
        loads(write_container([Segment(3, model), Segment(5, b"\x0a\x01\x00")]))
    with pytest.raises(CorruptError, match="neither|needs"):
        loads(write_container([Segment(3, model)]))


def test_unknown_registry_code_is_corrupt_with_upgrade_hint():
    data = write_container([Segment(3, b"\x08\x7f"), Segment(5, b"")])
    with pytest.raises(CorruptError, match="upgrade"):
        loads(data)


def test_msgpack_map_bounds():
    from aigif.syntax.schema import decode_map

    with pytest.raises(CorruptError):
        decode_map(b"\xdf\xff\xff\xff\xff", "t", aigif.DEFAULT_LIMITS)  # map claiming 4G entries
    deep = b"\x81\xa1a" * 40 + b"\xc0"
    with pytest.raises(LimitError):
        decode_map(deep, "t", aigif.DEFAULT_LIMITS)


def test_load_dump_atomic(tmp_path):
    doc = document_from_dict(BASE)
    p = tmp_path / "x.aigif"
    aigif.dump(doc, p)
    assert aigif.load(p) == doc
    with pytest.raises(aigif.AigifError, match="exists"):
        aigif.dump(doc, p, overwrite=False)
    assert [x.name for x in tmp_path.iterdir()] == ["x.aigif"]


def test_syntax_layer_does_not_import_torch():
    import subprocess, sys

    code = "import aigif, sys; aigif.loads(aigif.dumps(aigif.document_from_dict({'model':'sd15','prompt':'a','seed':1}))); " \
           "bad=[m for m in ('torch','diffusers','transformers') if m in sys.modules]; assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_syntax_layer_knows_no_engine_and_no_pipeline_class():
    import re
    from pathlib import Path

    for path in (Path(aigif.__file__).parent / "syntax").glob("*.py"):
        text = path.read_text("utf-8")
        assert not re.search(r"^\s*(from|import)\s+(\.\.engine|aigif\.engine|diffusers|torch)", text, re.M), path
        assert not re.search(r"\b\w+Pipeline\b", text), path


def test_every_truncation_and_flip_of_a_full_file_is_an_aigif_error():
    from pathlib import Path

    data = (Path(__file__).resolve().parent.parent / "spec/conformance/valid/full.aigif").read_bytes()
    for n in range(len(data)):
        with pytest.raises(AigifError):
            loads(data[:n])
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0xFF
        with pytest.raises(AigifError):
            loads(bytes(bad))


def test_unknown_version_byte_with_valid_crc():
    import zlib
    from aigif.errors import UnsupportedVersionError

    body = b"\x89AIG\x07"
    with pytest.raises(UnsupportedVersionError, match="upgrade"):
        loads(body + zlib.crc32(body).to_bytes(4, "little"))


def test_atomic_write_gives_normal_permissions(tmp_path):
    import os
    import stat

    umask = os.umask(0o022)
    try:
        p = aigif.atomic_write(tmp_path / "a.bin", b"x")
        assert stat.S_IMODE(p.stat().st_mode) == 0o644
        os.chmod(p, 0o600)
        aigif.atomic_write(p, b"y")
        assert stat.S_IMODE(p.stat().st_mode) == 0o600 and p.read_bytes() == b"y"
    finally:
        os.umask(umask)


@pytest.mark.parametrize("seed,wire,size", [(2**28 - 1, 0, 4), (2**28, 5, 4), (3_141_592_653, 5, 4), (2**32 - 1, 5, 4),
                                            (2**32, 0, 5), (2**64 - 1, 0, 10), (0, 0, 1)])
def test_seeds_take_their_shortest_form(seed, wire, size):
    """A 10-digit seed (A1111's 32-bit range) is 4 bytes as fixed32 where a uvarint takes 5."""
    from aigif.syntax.fields import read_fields
    from aigif.syntax.schema import encode_element

    gen = Generation(prompt="a cat", seed=seed, num_inference_steps=20, guidance_scale=7.0, width=512, height=512)
    field = next(f for f in read_fields(encode_element(gen), "g") if f.number == 3)
    assert (field.wire, field.value) == (wire, seed)
    assert len(encode_element(gen)) - len(encode_element(dataclasses.replace(gen, seed=0))) == size - 1
    assert loads(dumps(Document(generation=gen, model=ModelRef(name="sd15")))).generation.seed == seed


def test_height_is_omitted_when_it_equals_width():
    from aigif.syntax.fields import read_fields
    from aigif.syntax.schema import encode_element

    square = Generation(prompt="a cat", seed=1, num_inference_steps=20, guidance_scale=7.0, width=768, height=768)
    tall = dataclasses.replace(square, height=1024)
    assert 7 not in {f.number for f in read_fields(encode_element(square), "g")}
    assert 7 in {f.number for f in read_fields(encode_element(tall), "g")}
    for gen in (square, tall):
        assert loads(dumps(Document(generation=gen, model=ModelRef(name="sd15")))).generation == gen


def test_embeddings_round_trip_and_a_nameless_one_is_corrupt():
    from aigif.syntax import Embedding
    from aigif.syntax.fields import WIRE_BYTES, write_field
    from aigif.syntax.schema import decode_element, encode_element

    ref = ModelRef(name="sd15", embeddings=(Embedding(name="a"), Embedding(name="b", token="embedding:b", sha256="ab" * 6)))
    payload = encode_element(ref)
    assert decode_element(ModelRef, payload, "model") == ref
    assert payload.count(b"embedding:b") == 1 and payload.count(b"\x12\x01a") == 0    # a token equal to the name is left out
    bad = bytearray(encode_element(ModelRef(name="sd15")))
    write_field(bad, 12, WIRE_BYTES, encode_element(Embedding(name="x", sha256="ab" * 6))[3:])   # without field 1
    with pytest.raises(CorruptError, match="name"):
        decode_element(ModelRef, bytes(bad), "model")
    with pytest.raises(ConfigError, match="1..256"):
        Embedding(name="x" * 257)
