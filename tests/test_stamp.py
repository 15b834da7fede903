"""The stamp segment: platform + fingerprint in one compact segment, read back exactly (spec/aigif-v1.md §4.6)."""
from __future__ import annotations

import dataclasses

import pytest

import aigif
from aigif.container import Segment, encode_uvarint, read_container, write_container
from aigif.errors import CorruptError, LimitError, TruncatedError
from aigif.limits import Limits
from aigif.syntax import Document, Fingerprint, Generation, ModelRef, Platform, registry
from aigif.syntax.schema import encode_element
from aigif.syntax.stamp import HEAD, VERSION_CODERS, decode_stamp, encode_stamp, pack_version, release_code, unpack_version

GEN = Generation(prompt="a lighthouse at dusk", seed=3_000_000_000, num_inference_steps=25, guidance_scale=7.0,
                 width=512, height=512, scheduler="euler-a")
SIZE = (GEN.width, GEN.height)
FP = Fingerprint(pixel_sha256="0123456789abcdef", width=512, height=512, perceptual="a5c30f11")
CUDA = Platform(device="cuda", gpu="NVIDIA GeForce RTX 4090", compute_capability="8.9", cuda="12.4", cudnn="9.1.0",
                torch="2.5.1+cu124", diffusers="0.31.0", transformers="4.46.0", dtype="float16", attention="sdpa",
                deterministic=True, cpu="x86_64-avx2")
CPU = Platform(device="cpu", torch="2.13.0+cpu", diffusers="0.42.1", transformers="5.24.0", dtype="float32",
               attention="sdpa-math", threads=2, deterministic=False, cpu="x86_64-avx2", onednn="avx2")


STAMPS = (registry.SEG_STAMP, registry.SEG_STAMP_V1)
UNLISTED = dataclasses.replace(CUDA, torch="2.16.0+cu124", transformers="4.39.3")   # not in the release tables


def _payload(platform, seg_type):
    """The stamp payload of *platform* written as *seg_type* (the writer picks 0x0E whenever it can)."""
    from aigif.syntax.stamp import stamp_values

    return bytes.fromhex(FP.pixel_sha256 + FP.perceptual) + b"".join(encode_uvarint(v) for v in stamp_values(platform, seg_type))


def _doc(platform=CUDA, fp=FP, gen=GEN) -> Document:
    return Document(generation=gen, model=ModelRef(name="sd15"), platform=platform, fingerprint=fp)


def _types(data: bytes) -> list[int]:
    return [s.type for s in read_container(data)[1]]


@pytest.mark.parametrize("platform", [CUDA, CPU, Platform(), Platform(device="mps", dtype="bfloat16"),
                                      dataclasses.replace(CUDA, torch="2.5.1"), dataclasses.replace(CPU, torch="2.13.0")])
def test_round_trip_uses_the_stamp(platform):
    data = aigif.dumps(_doc(platform))
    assert registry.SEG_STAMP in _types(data) and registry.SEG_PLATFORM not in _types(data)
    assert aigif.loads(data) == _doc(platform)


def test_versions_outside_the_release_tables_use_the_older_stamp():
    data = aigif.dumps(_doc(UNLISTED))
    assert registry.SEG_STAMP_V1 in _types(data) and registry.SEG_STAMP not in _types(data)
    assert aigif.loads(data) == _doc(UNLISTED)


def test_files_with_the_older_stamp_still_read():
    data = write_container([Segment(registry.SEG_MODEL, encode_element(ModelRef(name="sd15"))),
                            Segment(registry.SEG_GENERATION, encode_element(GEN)),
                            Segment(registry.SEG_STAMP_V1, _payload(CUDA, registry.SEG_STAMP_V1))])
    assert aigif.loads(data) == _doc(CUDA)


def test_stamp_is_small():
    full = write_container([Segment(registry.SEG_PLATFORM, encode_element(CUDA)), Segment(registry.SEG_FINGERPRINT, encode_element(FP))])
    seg_type, stamp = encode_stamp(CUDA, FP, SIZE)
    assert seg_type == registry.SEG_STAMP and len(stamp) == HEAD + 8      # eight one-byte values on a CUDA machine
    assert len(_payload(CUDA, registry.SEG_STAMP_V1)) == HEAD + 13 and len(stamp) < len(full) - 9


def test_release_codes_never_move():
    """Codes are positions in append-only tables: files written today name the same releases tomorrow."""
    assert release_code("transformers", "4.40.0") == 1 and release_code("diffusers", "0.20.0") == 1
    assert release_code("torch", "2.0.0") == 1 and release_code("torch", "2.5.1+cu124", "12.4") == 13 * 4 + 2 + 1
    assert release_code("cuda", "12.4") == 7 and release_code("cudnn", "9.1.0") == registry.CUDNN_RELEASES.index("9.1.0") + 1
    assert registry.CUDNN_RELEASES[:3] == ("8.5.0", "8.6.0", "8.7.0")


@pytest.mark.parametrize("change", [
    {"platform": dataclasses.replace(CUDA, gpu="NVIDIA Some Future GPU")},          # no hardware code
    {"platform": dataclasses.replace(CUDA, compute_capability="8.6")},               # not the table's value
    {"platform": dataclasses.replace(CUDA, driver="550.54.14")},                     # not kept by the stamp
    {"platform": dataclasses.replace(CUDA, cpu="x86_64 AVX2 AMD EPYC")},             # older free-text cpu
    {"platform": dataclasses.replace(CUDA, torch="2.5.1+rocm6.2")},                  # build tag not packable
    {"platform": dataclasses.replace(CUDA, diffusers="0.31.0.dev0")},
    {"platform": dataclasses.replace(CUDA, cuda="12.4.1")},                          # cuda packs as A.B
    {"platform": dataclasses.replace(CUDA, dtype="float8")},                         # no registry code
    {"platform": Platform(gpu="NVIDIA L4")},                                         # GPU without a device kind
    {"fp": dataclasses.replace(FP, perceptual="00" * 16)},                           # older 16-byte perceptual hash
    {"fp": dataclasses.replace(FP, pixel_sha256="ab" * 16)},                         # longer pixel hash
    {"fp": dataclasses.replace(FP, perceptual=None)},
    {"fp": dataclasses.replace(FP, width=256)},                                      # size not the generation's
])
def test_what_the_stamp_cannot_say_goes_in_the_full_elements(change):
    doc = _doc(**change)
    data = aigif.dumps(doc)
    assert not set(STAMPS) & set(_types(data))
    assert aigif.loads(data) == doc


def test_pixels_only_file_keeps_the_full_fingerprint():
    doc = Document(pixels=b"\x00", fingerprint=FP, platform=CUDA)
    assert not set(STAMPS) & set(_types(aigif.dumps(doc)))


@pytest.mark.parametrize("field,version,cuda", [("torch", "2.5.1+cu124", "12.4"), ("torch", "2.13.0+cpu", None),
                                                ("torch", "3.63.15", None), ("cuda", "12.4", None), ("cudnn", "9.19.0", None),
                                                ("diffusers", "0.42.1", None), ("transformers", "5.127.15", None)])
def test_versions_pack_and_unpack(field, version, cuda):
    packed = pack_version(field, version, cuda)
    assert packed and unpack_version(field, packed, cuda, "t") == version


@pytest.mark.parametrize("field,version,cuda", [("torch", "2.5.1+cu124", "12.4"), ("torch", "2.13.0+cpu", None),
                                                ("torch", "2.0.0", None), ("cuda", "11.7", None), ("cudnn", "9.28.0", None),
                                                ("diffusers", "0.42.1", None), ("transformers", "4.46.0", None)])
def test_release_codes_name_and_unname(field, version, cuda):
    pack, unpack = VERSION_CODERS[registry.SEG_STAMP]
    code = pack(field, version, cuda)
    assert code and code < 128 and unpack(field, code, cuda, "t") == version


@pytest.mark.parametrize("field,version", [("torch", "1.13.1"), ("diffusers", "0.19.3"), ("transformers", "4.39.3"),
                                           ("cuda", "12.4.1"), ("diffusers", "0.42.1+local"), ("torch", "2.5.1+cu118")])
def test_versions_outside_the_release_tables_have_no_code(field, version):
    assert release_code(field, version, "12.4") is None


@pytest.mark.parametrize("field,version", [("torch", "2.64.0"), ("torch", "2.5.16"), ("diffusers", "0.128.0"),
                                           ("cuda", "12"), ("torch", "2.5.1+cu118")])
def test_versions_outside_the_packing_do_not_pack(field, version):
    assert pack_version(field, version, "12.4") is None


@pytest.mark.parametrize("seg_type", STAMPS)
def test_every_truncation_of_the_payload_is_clean(seg_type):
    payload = _payload(CUDA, seg_type)
    boundaries = {HEAD}
    pos = HEAD
    while pos < len(payload):
        while payload[pos] & 0x80:
            pos += 1
        pos += 1
        boundaries.add(pos)
    for cut in range(len(payload)):
        if cut in boundaries:
            try:   # fewer values: fewer fields recorded (0x0E: a +cu torch without its cuda value is corrupt)
                platform, fp = decode_stamp(seg_type, payload[:cut], SIZE, "t")
            except CorruptError as exc:
                assert seg_type == registry.SEG_STAMP and "torch build" in str(exc)
                continue
            assert fp == FP
        else:
            with pytest.raises(TruncatedError):
                decode_stamp(seg_type, payload[:cut], SIZE, "t")


@pytest.mark.parametrize("seg_type", STAMPS)
def test_value_count_limit_and_limit_plus_one(seg_type):
    limits = Limits(max_fields=8)
    head = bytes(HEAD)
    decode_stamp(seg_type, head + b"\x00" * 8, SIZE, "t", limits)
    with pytest.raises(LimitError):
        decode_stamp(seg_type, head + b"\x00" * 9, SIZE, "t", limits)


@pytest.mark.parametrize("seg_type", STAMPS)
def test_values_a_newer_writer_adds_are_skipped(seg_type):
    payload = _payload(CPU, seg_type) + b"".join(encode_uvarint(v) for v in (5, 2**64 - 1))
    assert decode_stamp(seg_type, payload, SIZE, "t") == (CPU, FP)


@pytest.mark.parametrize("seg_type,values", [
    *((t, v) for t in STAMPS for v in ([0, 1000], [0, 0, 1000], [0, 0, 0, 0, 0, 0, 0, 0, 1000], [0xFF])),
    (registry.SEG_STAMP_V1, [0, 1, 0, 0, 4 * 2129 + 3]),                  # torch build code 3 is reserved
    (registry.SEG_STAMP, [0, 1, 0, 4 * 13 + 3 + 1]),
    (registry.SEG_STAMP, [0, 1, 0, 4 * 13 + 2 + 1]),                       # +cu without a cuda version
    *((registry.SEG_STAMP, [0, 1, 0] + [0] * k + [2**64 - 1]) for k in range(5)),   # release codes past the tables
])
def test_hostile_values_are_clean_errors(seg_type, values):
    with pytest.raises(CorruptError):
        decode_stamp(seg_type, bytes(HEAD) + b"".join(encode_uvarint(v) for v in values), SIZE, "t")


def test_a_huge_packed_version_is_just_digits():
    huge = bytes(HEAD) + encode_uvarint(0) + encode_uvarint(0) + encode_uvarint(0) + encode_uvarint(2**64 - 1)
    platform, _ = decode_stamp(registry.SEG_STAMP_V1, huge, SIZE, "t")     # a big but well-formed cuda version
    assert platform.cuda.count(".") == 1
