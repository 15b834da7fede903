"""The Typer ``app`` every command module adds its commands to, and the CLI's exit codes.

Exit codes (stable, for scripts): 0 success / exact, 1 an :class:`AigifError`
(bad input, missing model, ...), 2 usage error, 3 fidelity ``close``,
4 fidelity ``mismatch``.
"""
from __future__ import annotations

import typer

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_CLOSE, EXIT_MISMATCH = 0, 1, 2, 3, 4

app = typer.Typer(
    name="aigif",
    help="AI-Generated Image Format: store the generation syntax instead of the pixels.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
