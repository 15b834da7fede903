"""``aigif extensions``: which syntax extensions this installation knows, and where they come from."""
from __future__ import annotations

import json

import typer

from .base import app


def cli_extensions(as_json: bool = False) -> str:
    """Text (or JSON) listing registered extensions, assigned codes and plugins that failed to load."""
    from ..engine.families import adapter_pipelines, registered_families
    from ..syntax.extensions import ASSIGNED_EXTENSIONS, extension_for, load_failures, registered_extensions

    exts = sorted(registered_extensions(), key=lambda e: (min(e.types), e.name))
    failures = load_failures()
    assigned = [{"type": f"{code:#06x}", "name": a.name, "package": a.package, "status": a.status,
                 "installed": extension_for(code) is not None and extension_for(code).name == a.name}
                for code, a in sorted(ASSIGNED_EXTENSIONS.items())]
    families = [{"name": f.name, "pipeline": f.pipeline} for f in registered_families()]
    if as_json:
        return json.dumps({"extensions": [e.describe() for e in exts], "assigned": assigned, "families": families,
                           "load_errors": failures}, indent=2, ensure_ascii=False)
    lines = [f"{len(exts)} extension(s) registered"]
    for e in exts:
        codes = ", ".join(f"{t:#06x} {'critical' if t & 1 else 'ancillary'}" for t in e.types)
        src = e.source or "(registered in code)"
        ver = f" {e.version}" if e.version else ""
        adapter = f"; adapter -> {', '.join(e.pipelines) or 'same pipeline'}" if e.adapter is not None else ""
        lines.append(f"  {e.name:<20} {codes}  [{src}{ver}]{adapter}")
        refused = [p for p in e.pipelines if p not in adapter_pipelines()]
        if refused:
            lines.append(f"  {'':<20} not allowlisted, the engine refuses this adapter: {', '.join(refused)}")
        if e.description:
            lines.append(f"  {'':<20} {e.description}")
    lines.append("assigned public codes (spec/registry.md):")
    for a in assigned:
        lines.append(f"  {a['type']} {a['name']:<20} {a['package']:<20} {a['status']:<10} "
                     f"{'installed' if a['installed'] else 'not installed'}")
    lines.append("generator families: " + ", ".join(f"{f['name']} ({f['pipeline']})" for f in families))
    for msg in failures:
        lines.append(f"warning: {msg}")
    return "\n".join(lines)


@app.command("extensions")
def extensions_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print JSON (name, type codes, critical flags, schema, source)."),
) -> None:
    """List the syntax extensions and generator families this installation can read and regenerate."""
    typer.echo(cli_extensions(as_json))


def show_warnings_plainly() -> None:
    """Print :class:`AigifWarning` s as ``aigif: warning: ...`` on stderr (no Python source line).

    Meant for the console entry point only (``aigif.cli._entry``); library users keep Python's default.
    """
    import warnings

    from ..errors import AigifWarning

    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, AigifWarning):
            typer.echo(f"aigif: warning: {message}", err=True)
        else:
            original(message, category, filename, lineno, file, line)

    warnings.showwarning = show
