"""Plain functions behind `aigif text ...` (wired into the typer app by the CLI)."""
from __future__ import annotations

from . import TEXT_CODECS, decode_text, encode_text


def cli_text_encode(text: str, codec: int | None = None) -> str:
    """`aigif text encode TEXT [--codec N]`: one line `codec=<id> (<name>) bytes=<n> hex=<field>`."""
    data = encode_text(text, codec=codec)
    return f"codec={data[0]} ({TEXT_CODECS[data[0]].name}) bytes={len(data)} utf8={len(text.encode('utf-8'))} hex={data.hex()}"


def cli_text_decode(hex_field: str, max_chars: int = 65536) -> str:
    """`aigif text decode HEX [--max-chars N]`: the decoded text (errors are AigifError subclasses)."""
    from ..errors import CorruptError

    try:
        data = bytes.fromhex(hex_field.strip())
    except ValueError as e:
        raise CorruptError(f"text field: not hexadecimal ({e})") from None
    return decode_text(data, max_chars=max_chars)


def cli_text_codecs() -> str:
    """`aigif text codecs`: the codec registry, one `id name` per line."""
    return "\n".join(f"{cid}\t{c.name}" for cid, c in sorted(TEXT_CODECS.items()))
