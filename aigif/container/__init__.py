"""Container layer: bytes <-> typed segments. Knows nothing of what segments mean."""
from .stream import MAGIC, VERSION, Segment, is_critical, read_container, sniff, write_container, write_segment
from .varint import decode_uvarint, encode_uvarint, unzigzag, zigzag

__all__ = [
    "MAGIC", "VERSION", "Segment", "is_critical", "read_container", "sniff", "write_container", "write_segment",
    "decode_uvarint", "encode_uvarint", "zigzag", "unzigzag",
]
