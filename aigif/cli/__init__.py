"""The ``aigif`` command line: one module per group of commands, each adding them to :data:`.base.app`.

Exit codes (stable, for scripts): 0 success / exact, 1 an :class:`AigifError`
(bad input, missing model, ...), 2 usage error, 3 fidelity ``close``,
4 fidelity ``mismatch``.
"""
from __future__ import annotations

import sys

import typer

from ..errors import AigifError
from .base import EXIT_CLOSE, EXIT_ERROR, EXIT_MISMATCH, EXIT_OK, EXIT_USAGE, app

# Importing a command module adds its commands to ``app`` (in this order in --help).
from . import syntax_cmds, text_cmds, engine_cmds, codec_cmds, import_cmds, ext_cmds, batch_cmds, library_cmds  # noqa: E402,F401,I001
from . import provenance_cmds  # noqa: E402,F401,I001

__all__ = ["EXIT_CLOSE", "EXIT_ERROR", "EXIT_MISMATCH", "EXIT_OK", "EXIT_USAGE", "app", "main"]


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
