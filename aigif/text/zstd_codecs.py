"""Codecs 0-2 of the text field: raw UTF-8, zstd, zstd with the shipped dictionary.

zstd frames are written magicless (RFC 8878 frame minus its 4-byte magic
number) and without content size, checksum or dictionary id: the text field is
length-delimited by the container, which also carries the integrity check.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from ..errors import CorruptError, LimitError, TruncatedError

ZSTD_LEVEL = 19
ZSTD_DICT_ASSETS = {1: "zstd_dict_v1.bin"}  # dictionary version -> file in aigif/assets/text
DICT_SHA256 = {1: "9425339cccc42c51296fec5a1b45dc67932ffbfd43dc01d95bb9165c481dee75"}  # frozen identity of each shipped dictionary (also in spec/text-coding.md)
MAX_WINDOW = 1 << 23  # largest zstd window a text frame may declare (level 19 + dictionary uses 2 MiB)
_FEED = 16  # compressed bytes per decompress call: bounds output growth per step


def utf8(text: str) -> bytes:
    from ..errors import ConfigError

    if not isinstance(text, str):
        raise ConfigError(f"text must be str, got {type(text).__name__}")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ConfigError(f"text is not encodable as UTF-8 (lone surrogate at {e.start})") from None


def check_chars(raw: bytes, max_chars: int, what: str) -> str:
    """Decode UTF-8 strictly and enforce the character limit."""
    if len(raw) > 4 * max_chars + 4:
        raise LimitError(f"{what}: decoded text exceeds max_chars={max_chars}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorruptError(f"{what}: invalid UTF-8 at byte {e.start}") from None
    if len(text) > max_chars:
        raise LimitError(f"{what}: decoded text has {len(text)} characters, max_chars={max_chars}")
    return text


def shipped_asset(assets: dict, hashes: dict, version: int, what: str) -> bytes:
    """The bytes of text asset *version* (file name in *assets*), checked against its frozen sha256 in *hashes*."""
    from ..errors import ModelError

    try:
        blob = resources.files("aigif.assets").joinpath("text", assets[version]).read_bytes()
    except (KeyError, FileNotFoundError) as e:
        raise ModelError(f"{what} v{version} is not installed ({e})") from None
    check_sha256(blob, hashes[version], f"{what} {assets[version]}")
    return blob


def check_sha256(blob: bytes, expected: str, what: str) -> None:
    """Refuse an asset whose bytes differ from the frozen ones: decoding would silently differ."""
    import hashlib

    from ..errors import ModelMismatchError

    got = hashlib.sha256(blob).hexdigest()
    if got != expected:
        raise ModelMismatchError(f"{what}: sha256 {got} does not match the shipped {expected}")


@lru_cache(maxsize=None)
def load_zstd_dict(version: int) -> bytes:
    return shipped_asset(ZSTD_DICT_ASSETS, DICT_SHA256, version, "zstd text dictionary")


@dataclass(frozen=True)
class RawCodec:
    """Codec 0: the UTF-8 bytes themselves (the fallback that never loses)."""

    name: str = "raw-utf8"

    def encode(self, text: str) -> bytes:
        return utf8(text)

    def decode(self, data: bytes, max_chars: int = 65536) -> str:
        return check_chars(bytes(data), max_chars, self.name)


@dataclass(frozen=True)
class ZstdCodec:
    """Codec 1 (no dictionary) and 2 (shipped dictionary version `dict_version`)."""

    name: str
    dict_version: int | None = None

    def _dict(self):
        import zstandard as zstd

        if self.dict_version is None:
            return None
        return zstd.ZstdCompressionDict(load_zstd_dict(self.dict_version), dict_type=zstd.DICT_TYPE_FULLDICT)

    @lru_cache(maxsize=None)
    def _compressor(self):
        import zstandard as zstd

        params = zstd.ZstdCompressionParameters.from_level(
            ZSTD_LEVEL, format=zstd.FORMAT_ZSTD1_MAGICLESS,
            write_content_size=False, write_checksum=False, write_dict_id=False,
        )
        return zstd.ZstdCompressor(dict_data=self._dict(), compression_params=params)

    @lru_cache(maxsize=None)
    def _decompressor(self):
        import zstandard as zstd

        # a frame header may ask for a 128 MiB window (zstd's default cap); our encoder never needs more than 2 MiB
        return zstd.ZstdDecompressor(dict_data=self._dict(), format=zstd.FORMAT_ZSTD1_MAGICLESS, max_window_size=MAX_WINDOW)

    def encode(self, text: str) -> bytes:
        return self._compressor().compress(utf8(text))

    def decode(self, data: bytes, max_chars: int = 65536) -> str:
        import zstandard as zstd

        data = bytes(data)
        limit = 4 * max_chars + 4
        obj = self._decompressor().decompressobj()
        out = bytearray()
        try:
            for i in range(0, len(data), _FEED):
                if obj.eof:
                    raise CorruptError(f"{self.name}: {len(data) - i} trailing bytes after the zstd frame")
                out += obj.decompress(data[i : i + _FEED])
                if len(out) > limit:
                    raise LimitError(f"{self.name}: decoded text exceeds max_chars={max_chars}")
        except zstd.ZstdError as e:
            raise CorruptError(f"{self.name}: bad zstd frame ({e})") from None
        if not obj.eof:
            raise TruncatedError(f"{self.name}: zstd frame ends early after {len(data)} bytes")
        if obj.unused_data:
            raise CorruptError(f"{self.name}: trailing bytes after the zstd frame")
        return check_chars(bytes(out), max_chars, self.name)
