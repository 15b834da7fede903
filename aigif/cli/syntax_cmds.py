"""``aigif pack`` and ``aigif info``: JSON description <-> syntax-only file."""
from __future__ import annotations

import json
from pathlib import Path

import typer

from ..errors import ConfigError
from ..fileio import read_limited
from ..limits import DEFAULT_LIMITS
from .base import app


def printable(text: str) -> str:
    """Escape control characters (ESC, BEL, C1 CSI, ...) so a stranger's prompt cannot drive the terminal."""
    return "".join(c if c.isprintable() or c in "\n" else c.encode("unicode_escape").decode("ascii") for c in text)


def printable_json(value: object) -> str:
    """JSON for a terminal: readable non-ASCII text, but every non-printable character as a \\u escape."""
    def esc(c: str) -> str:
        if c.isprintable() or c == "\n":
            return c
        n = ord(c)
        if n > 0xFFFF:
            n -= 0x10000
            return f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}"
        return f"\\u{n:04x}"

    return "".join(esc(c) for c in json.dumps(value, indent=2, ensure_ascii=False))


def read_json(path: Path) -> object:
    raw = read_limited(path, DEFAULT_LIMITS.max_file_bytes) if str(path) != "-" else typer.get_text_stream("stdin").read().encode()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None


@app.command()
def pack(
    config: Path = typer.Argument(..., help="JSON generation description ('-' for stdin)."),
    output: Path = typer.Option(..., "-o", "--output", help="The .aigif file to write."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing output."),
) -> None:
    """Write a syntax-only .aigif file from a JSON generation description (left-out values: the model's defaults)."""
    from .. import api

    data = api.pack(read_json(config), output=output, overwrite=force)
    typer.echo(f"{output}: {len(data)} bytes")


@app.command()
def info(
    file: Path = typer.Argument(..., help="An .aigif file."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON description (the keys 'aigif pack' reads)."),
    platform_check: bool = typer.Option(False, "--platform-check", help="Compare the recorded platform with this "
                                        "machine's: which fields differ, and whether decoding will be exact, close "
                                        "(expected PSNR range) or unknown."),
    device: str = typer.Option("cpu", "--device", help="With --platform-check: the device a decode would use."),
) -> None:
    """Print what an .aigif file holds."""
    from ..container import read_container
    from ..syntax import document_to_dict, loads
    from ..syntax.extensions import extension_for
    from ..syntax.registry import CORE_SEGMENTS

    data = read_limited(file, DEFAULT_LIMITS.max_file_bytes)
    if not as_json:
        # The segment list first, so a file this decoder refuses still shows what it holds.
        _, segments = read_container(data)
        typer.echo(f"{file}: {len(data)} bytes, format version 1, {len(segments)} segments")
        for seg in segments:
            ext = extension_for(seg.type)
            name = CORE_SEGMENTS.get(seg.type) or (f"extension {ext.name}" if ext else "unknown extension (not installed)")
            typer.echo(f"  {seg.type:#06x} {'critical ' if seg.critical else 'ancillary'} {len(seg.payload):6d} B  {name}")
        from .provenance_cmds import signature_line

        typer.echo(printable(signature_line(data)))
    doc = loads(data)
    d = document_to_dict(doc)
    check = _platform_check(doc, device) if platform_check else None
    if as_json:
        typer.echo(printable_json(d if check is None else {**d, "platform_check": check.to_dict()}))
        return
    from ..syntax.builtin import regenerable

    typer.echo(printable(f"regenerable: {regenerable(doc)}"))
    from ..importers.identity import identity_lines

    for line in identity_lines(doc):
        typer.echo(printable(f"model identity: {line}"))
    for key, value in d.items():
        if key == "c2pa":
            value = f"C2PA manifest store of the imported image, {len(doc.c2pa)} bytes, kept verbatim"
        elif key == "residual":
            from ..codec.payload import describe

            value = describe(doc.residual)
        elif key == "img2img":
            value = doc.img2img.describe()
        elif key == "pixels":
            from ..codec.pixels import describe_pixels

            value = describe_pixels(doc.pixels)
        elif isinstance(value, (dict, list)):
            value = json.dumps(value, ensure_ascii=False)
        typer.echo(printable(f"{key}: {value}"))
    if check is not None:
        typer.echo(printable(f"platform check: {check.summary()}"))


def _platform_check(doc, device: str):
    """The engine's expectation for decoding *doc* here (imports torch; only with --platform-check)."""
    from ..engine import Engine

    if doc.generation is None:
        raise ConfigError("--platform-check: the file stores pixels only; nothing is regenerated")
    return Engine(device=device).platform_check(doc.platform)
