"""The ``aigif`` command line. One module per group of commands, registered on one Typer app.

Exit codes (stable, for scripts): 0 success / exact, 1 an :class:`AigifError`
(bad input, missing model, ...), 2 usage error, 3 fidelity ``close``,
4 fidelity ``mismatch``.
"""
from __future__ import annotations

import importlib
import sys

import typer

from ..errors import AigifError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_CLOSE, EXIT_MISMATCH = 0, 1, 2, 3, 4

app = typer.Typer(
    name="aigif",
    help="AI-Generated Image Format: store the generation syntax instead of the pixels.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module adds its commands to ``app`` when imported.
COMMAND_MODULES = ("syntax_cmds", "text_cmds", "engine_cmds", "codec_cmds", "import_cmds", "ext_cmds", "batch_cmds", "library_cmds")
for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}")


def fail(exc: AigifError) -> "typer.Exit":
    """Print an AigifError the way every command does and return the exit to raise."""
    typer.echo(f"aigif: error: {exc}", err=True)
    return typer.Exit(EXIT_ERROR)


def main(argv: list[str] | None = None) -> int:
    try:
        app(args=argv, standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    except AigifError as exc:
        typer.echo(f"aigif: error: {exc}", err=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        typer.echo("aigif: interrupted", err=True)
        return 130
    return EXIT_OK


def _entry() -> None:  # pragma: no cover - console script shim
    from .ext_cmds import show_warnings_plainly

    show_warnings_plainly()
    sys.exit(main())
