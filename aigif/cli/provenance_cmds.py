"""``aigif sign``, and the signature check ``aigif info`` and ``aigif verify`` print.

The plain ``cli_*`` functions do the work and return the exit code; the Typer
commands only parse options.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import ProvenanceError
from ..fileio import atomic_write, read_limited
from ..limits import DEFAULT_LIMITS
from .base import EXIT_ERROR, EXIT_OK, app


def signature_line(data: bytes) -> str:
    """``signature: valid (...)`` / ``signature: INVALID (...)`` / ``signature: none``."""
    from ..errors import AigifError
    from ..provenance.signature import check

    try:
        result = check(data)
    except AigifError as exc:  # e.g. a signature segment above the limit: info still shows the rest
        return f"signature: unreadable ({exc})"
    return "signature: none" if result is None else f"signature: {result.summary()}"


def check_signature(data: bytes, name: str, *, required: bool, echo=typer.echo) -> int:
    """Print the signature state of *data*; EXIT_ERROR when it is invalid (or absent and *required*)."""
    from ..provenance.signature import check

    result = check(data)
    if result is None:
        echo(f"{name}: not signed")
        return EXIT_ERROR if required else EXIT_OK
    echo(f"{name}: signature {result.summary()}")
    return EXIT_OK if result.valid else EXIT_ERROR


def cli_sign(file: Path, key: Path, *, cert: Path | None = None, output: Path | None = None, force: bool = False,
             echo=typer.echo) -> int:
    """Append (or replace) the signature segment; writes *output*, else rewrites *file* in place."""
    from ..provenance.keys import load_certificates, load_private_key
    from ..provenance.signature import check, sign

    private_key = load_private_key(key)
    certificate = load_certificates(cert)[0] if cert is not None else None
    data = read_limited(file, DEFAULT_LIMITS.max_file_bytes)
    signed = sign(data, private_key, certificate)
    target = output or file
    atomic_write(target, signed, overwrite=force or output is None)
    result = check(signed)
    if result is None or not result.valid:  # never report success for a file that does not verify
        raise ProvenanceError(f"{target}: the signature just written does not verify; please report this")
    echo(f"{target}: signed, {len(signed)} bytes (+{len(signed) - len(data)}); {result.signer}")
    return EXIT_OK


@app.command()
def sign(
    file: Path = typer.Argument(..., help="The .aigif file to sign (rewritten in place unless -o is given)."),
    key: Path = typer.Option(..., "--key", help="Ed25519 or EC P-256 private key (PEM/DER), e.g. from "
                             "'openssl genpkey -algorithm ed25519 -out key.pem'."),
    cert: Optional[Path] = typer.Option(None, "--cert", help="The key's X.509 certificate (PEM, leaf first) to embed "
                                        "instead of the bare public key."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the signed file here instead."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing -o file."),
) -> None:
    """Sign an .aigif file: a signature segment over every byte before it (decoders without the key still decode)."""
    raise typer.Exit(cli_sign(file, key, cert=cert, output=output, force=force))
