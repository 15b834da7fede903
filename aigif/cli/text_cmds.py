"""``aigif text encode|decode|codecs``: inspect the prompt coder (spec/text-coding.md)."""
from __future__ import annotations

import typer

from .base import app
from .syntax_cmds import printable

text_app = typer.Typer(help="Prompt coder: encode/decode one text field, list the codecs.", no_args_is_help=True)
app.add_typer(text_app, name="text")


@text_app.command("encode")
def encode(text: str = typer.Argument(..., help="The text to code."),
           codec: int = typer.Option(None, "--codec", help="Force a codec id (default: the smallest).")) -> None:
    """Code TEXT and print the codec, size and hex of the field."""
    from ..text.cli import cli_text_encode

    typer.echo(cli_text_encode(text, codec=codec))


@text_app.command("decode")
def decode(hex_field: str = typer.Argument(..., help="A text field as hex (codec byte first)."),
           max_chars: int = typer.Option(65536, "--max-chars", help="Refuse longer results.")) -> None:
    """Decode a hex text field."""
    from ..text.cli import cli_text_decode

    typer.echo(printable(cli_text_decode(hex_field, max_chars=max_chars)))


@text_app.command("codecs")
def codecs() -> None:
    """List the text codecs this decoder has."""
    from ..text.cli import cli_text_codecs

    typer.echo(cli_text_codecs())
