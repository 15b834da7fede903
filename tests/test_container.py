import zlib

import pytest
from hypothesis import given, strategies as st

from aigif.container import MAGIC, Segment, decode_uvarint, encode_uvarint, read_container, write_container
from aigif.errors import AigifError, CorruptError, FormatError, LimitError, TruncatedError, UnsupportedVersionError
from aigif.limits import Limits


@given(st.integers(0, 2**64 - 1))
def test_varint_round_trip(v):
    raw = encode_uvarint(v)
    assert decode_uvarint(raw, 0) == (v, len(raw))


def test_varint_refuses_overlong_and_noncanonical():
    with pytest.raises(CorruptError, match="canonical"):
        decode_uvarint(b"\x80\x00", 0)
    with pytest.raises(CorruptError):
        decode_uvarint(b"\xff" * 10 + b"\x01", 0)
    with pytest.raises(CorruptError, match="64 bits"):
        decode_uvarint(b"\xff" * 9 + b"\x7f", 0)
    with pytest.raises(TruncatedError):
        decode_uvarint(b"\x80", 0)


@given(st.lists(st.tuples(st.integers(2, 2**20), st.binary(max_size=300)), max_size=6))
def test_container_round_trip(items):
    segs = [Segment(t, p) for t, p in items]
    data = write_container(segs)
    assert data[:4] == MAGIC and data[4] == 1
    assert read_container(data) == (1, segs)


def test_critical_bit_is_lowest_bit_of_type():
    assert Segment(0x03, b"").critical and not Segment(0x02, b"").critical


def _with_crc(body: bytes) -> bytes:
    return body + zlib.crc32(body).to_bytes(4, "little")


def test_bad_magic_truncation_crc_and_version():
    good = write_container([Segment(0x40, b"hello")])
    with pytest.raises(FormatError, match="not an .aigif"):
        read_container(b"PNG!" + good[4:])
    with pytest.raises(TruncatedError):
        read_container(good[:3])
    with pytest.raises(TruncatedError):
        read_container(good[:-2])
    flipped = bytearray(good)
    flipped[8] ^= 1
    with pytest.raises(CorruptError, match="CRC"):
        read_container(bytes(flipped))
    v2 = _with_crc(MAGIC + b"\x02" + good[5:-4])
    with pytest.raises(UnsupportedVersionError, match="version 2"):
        read_container(v2)


def test_every_truncation_and_byte_flip_raises_aigif_error():
    good = write_container([Segment(0x02, b"\x08\x01"), Segment(0x41, bytes(range(40)))])
    for n in range(len(good)):
        with pytest.raises(AigifError):
            read_container(good[:n])
    for i in range(len(good)):
        for bit in range(8):
            bad = bytearray(good)
            bad[i] ^= 1 << bit
            with pytest.raises(AigifError):
                read_container(bytes(bad))


def test_oversized_length_is_refused_without_allocation():
    body = MAGIC + b"\x01" + encode_uvarint(0x40) + encode_uvarint(2**63) + b"x"
    with pytest.raises(TruncatedError, match="declares"):
        read_container(_with_crc(body))


def test_reserved_type_code():
    with pytest.raises(CorruptError, match="reserved"):
        read_container(_with_crc(MAGIC + b"\x01\x01\x00"))


def test_limits_pass_at_limit_and_fail_above():
    data = write_container([Segment(0x40, b"")] * 3)
    assert len(read_container(data, Limits(max_segments=3))[1]) == 3
    with pytest.raises(LimitError, match=r"segment count.*Limits\.max_segments"):
        read_container(data, Limits(max_segments=2, max_nesting=2))  # equal values: the message still names the right knob
    assert read_container(data, Limits(max_file_bytes=len(data)))
    with pytest.raises(LimitError, match="file size"):
        read_container(data, Limits(max_file_bytes=len(data) - 1))
