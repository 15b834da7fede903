"""Prompt / text coding: one codec-id byte, then that codec's payload.

Public API (kept stable, see `spec/text-coding.md`)::

    encode_text(text) -> bytes            # smallest of all codecs
    encode_text(text, codec=3) -> bytes   # a forced codec
    decode_text(data, max_chars=65536) -> str
    TEXT_CODECS                           # codec id -> codec object

Models are loaded lazily on first use, so importing this package is cheap.
Shipped codec ids never change meaning; a new model gets a new id.
"""
from __future__ import annotations

from ..errors import ConfigError, LimitError, TruncatedError, UnknownCodecError
from .ppm_codec import TokenPPMCodec
from .zstd_codecs import RawCodec, ZstdCodec, utf8

__all__ = ["encode_text", "decode_text", "TEXT_CODECS", "DEFAULT_MAX_CHARS"]

DEFAULT_MAX_CHARS = 65536

TEXT_CODECS: dict = {
    0: RawCodec(),
    1: ZstdCodec("zstd"),
    2: ZstdCodec("zstd-dict-v1", dict_version=1),
    3: TokenPPMCodec("token-ppm-v1", model_version=1),
    4: TokenPPMCodec("token-ppm-v1-case", model_version=1, case=True),
}


def encode_text(text: str, codec: int | None = None) -> bytes:
    """Encode *text*: codec id byte + payload; without *codec*, the smallest wins (ties: lowest id)."""
    utf8(text)  # type and UTF-8 validity first, with one clear error
    if codec is not None:
        if isinstance(codec, bool) or not isinstance(codec, int) or codec not in TEXT_CODECS:
            raise ConfigError(f"unknown text codec {codec!r}; known: {sorted(TEXT_CODECS)}")
        return bytes([codec]) + TEXT_CODECS[codec].encode(text)
    best = None
    for cid, c in TEXT_CODECS.items():
        out = bytes([cid]) + c.encode(text)
        if best is None or len(out) < len(best):
            best = out
    return best


def decode_text(data: bytes, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Decode a text field; raises UnknownCodecError / CorruptError / TruncatedError / LimitError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ConfigError(f"text field must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if max_chars < 0:
        raise LimitError(f"max_chars must be >= 0, got {max_chars}")
    if not data:
        raise TruncatedError("text field: empty, expected a codec id byte")
    codec = TEXT_CODECS.get(data[0])
    if codec is None:
        raise UnknownCodecError(f"text field: unknown codec id {data[0]}; known: {sorted(TEXT_CODECS)}")
    return codec.decode(data[1:], max_chars)
