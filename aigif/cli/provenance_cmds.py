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
from .base import EXIT_CLOSE, EXIT_ERROR, EXIT_MISMATCH, EXIT_OK, app

# verify-provenance exit codes: valid 0, invalid 1, untrusted signer 3, none 4
CREDENTIAL_EXITS = {"valid": EXIT_OK, "invalid": EXIT_ERROR, "untrusted signer": EXIT_CLOSE, "none": EXIT_MISMATCH}


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


def cli_verify_provenance(image: Path, *, trust_anchors: Path | None = None, as_json: bool = False, echo=typer.echo) -> int:
    """Read *image*'s Content Credentials; the exit code says valid / invalid / untrusted signer / none."""
    import json

    from ..provenance.c2pa_read import read_credentials
    from .syntax_cmds import printable, printable_json

    data = read_limited(image, DEFAULT_LIMITS.max_file_bytes)
    anchors = read_limited(trust_anchors, DEFAULT_LIMITS.max_file_bytes) if trust_anchors is not None else None
    report = read_credentials(data, trust_anchors=anchors)
    if as_json:
        echo(printable_json({"state": report.state, "signer": report.signer, "issues": list(report.issues),
                             "software_agent": report.software_agent, "digital_source_type": report.digital_source_type,
                             "generation": report.generation}))
    else:
        echo(printable(f"{image}: {report.summary()}"))
        if report.generation is not None:
            echo(printable(f"  generation: {json.dumps(report.generation, ensure_ascii=False)}"))
    return CREDENTIAL_EXITS[report.state]


@app.command("verify-provenance")
def verify_provenance(
    image: Path = typer.Argument(..., help="Any image (PNG, JPEG, WebP, ...), made by aigif or another tool."),
    trust_anchors: Optional[Path] = typer.Option(None, "--trust-anchors", help="PEM root certificates to trust."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Check an image's C2PA Content Credentials. Exit 0 valid, 1 invalid, 3 untrusted signer, 4 none."""
    raise typer.Exit(cli_verify_provenance(image, trust_anchors=trust_anchors, as_json=as_json))
