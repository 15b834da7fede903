"""``aigif encode`` (images from A1111-style tools, ComfyUI, SwarmUI, InvokeAI, NovelAI, Fooocus -> .aigif) and
``aigif export-parameters`` (.aigif -> A1111 parameters text).

The plain ``cli_*`` functions do the work and return the exit code; the Typer
commands only parse options.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import AigifError, ConfigError
from ..fileio import read_limited
from ..limits import DEFAULT_LIMITS
from .base import EXIT_ERROR, EXIT_OK, app


def cli_encode(images: list[Path], output: Path, *, syntax_only: bool = False, model_dirs: list[Path] | None = None,
               allow_network: bool = False, quality: int = 4, target_psnr: float = 40.0, force: bool = False,
               recursive: bool = True, progress: bool = True, engine=None, codec=None, echo=typer.echo,
               init_image: Path | None = None, mask: Path | None = None) -> int:
    """Convert images (files or directories) into .aigif files; returns 0, or 1 if any file failed. *init_image* /
    *mask*: the images an image-to-image generation started from (the tools do not store them)."""
    from ..batch import Settings, run_files
    from ..importers.decide import Options

    if not images:
        raise ConfigError("no input images given")
    if not syntax_only:
        from ..codec import QUALITIES

        if quality not in QUALITIES:
            raise ConfigError(f"--quality {quality}; valid qualities: {', '.join(map(str, QUALITIES))}")
        if engine is None:
            from ..engine import Engine

            engine = Engine(model_dirs=model_dirs or [], allow_network=allow_network)
    if mask is not None and init_image is None:
        raise ConfigError("--mask goes with --init-image")
    options = Options(syntax_only=syntax_only, quality=quality, target_psnr=target_psnr, init_image=init_image, mask=mask)

    def say(msg: str) -> None:
        if progress and echo is typer.echo:
            from tqdm import tqdm

            tqdm.write(msg, file=sys.stderr)       # keeps the progress bar intact
        else:
            echo(msg, err=True)

    def report(res):
        if res.status == "error":
            say(f"aigif: {res.input}: {res.message}")
        elif res.message and res.kind == "pixels":
            say(f"{res.input}: pixels ({res.message})")
        elif "regenerable: no" in res.message:
            say(f"{res.input}: {res.message}")
        if res.notes:
            say(f"{res.input}: {res.notes}")

    resolver = None
    if model_dirs and not syntax_only:
        from ..importers.localmodels import LocalModels

        resolver = LocalModels(model_dirs)
    settings = Settings(engine=None if syntax_only else engine, options=options, codec=codec, resolver=resolver)
    summary = run_files("encode", images, output, settings, force=force, recursive=recursive, progress=progress,
                        on_result=report)
    echo(summary.table())
    return EXIT_ERROR if summary.errors else EXIT_OK


def cli_export_parameters(file: Path, comfyui: str | None = None) -> str:
    """The A1111 ``parameters`` text of an .aigif file, or (*comfyui* = ``prompt`` / ``workflow``) its ComfyUI graph JSON."""
    from ..importers.a1111_write import a1111_parameters
    from ..syntax import loads

    doc = loads(read_limited(file, DEFAULT_LIMITS.max_file_bytes))
    if comfyui is None:
        return a1111_parameters(doc)
    import json

    from ..syntax.builtin import comfyui_graph

    graph = comfyui_graph(doc)
    if graph is None or comfyui not in graph:
        raise ConfigError(f"{file} holds no ComfyUI {'graph' if comfyui == 'prompt' else comfyui} (it was not imported from ComfyUI)")
    return json.dumps(graph[comfyui], ensure_ascii=False)


@app.command()
def encode(
    images: List[Path] = typer.Argument(..., help="Images (PNG/JPEG/WebP) or directories of images."),
    output: Path = typer.Option(..., "-o", "--output", help="An .aigif file (one image) or an output directory."),
    syntax_only: bool = typer.Option(False, "--syntax-only", help="Keep only the generation syntax (no model needed, no pixels)."),
    model_dir: Optional[List[Path]] = typer.Option(None, "--model-dir", help="Folder with models for regeneration (repeatable)."),
    allow_network: bool = typer.Option(False, "--allow-network", help="Let the engine download registry models."),
    quality: int = typer.Option(4, "--quality", "-q", help="Codec quality for residuals / pixel fallback."),
    target_psnr: float = typer.Option(40.0, "--target-psnr", help="Keep a residual only if the decoded image reaches this PSNR (dB)."),
    force: bool = typer.Option(False, "--force", "-f", help="Re-encode outputs that already exist."),
    recursive: bool = typer.Option(True, "--recursive/--no-recursive", help="Walk directories recursively."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    init_image: Optional[Path] = typer.Option(None, "--init-image", help="The init image of image-to-image / inpainting "
                                              "inputs (the tools do not store it): referenced by digest, used to regenerate."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="The inpainting mask, with --init-image."),
) -> None:
    """Convert images made by A1111, Forge, SD.Next, Civitai, ComfyUI, SwarmUI, InvokeAI, NovelAI, Fooocus or RuinedFooocus."""
    try:
        code = cli_encode(images, output, syntax_only=syntax_only, model_dirs=model_dir, allow_network=allow_network,
                          quality=quality, target_psnr=target_psnr, force=force, recursive=recursive, progress=progress,
                          init_image=init_image, mask=mask)
    except AigifError as exc:
        typer.echo(f"aigif: error: {exc}", err=True)
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(code)


@app.command("export-parameters")
def export_parameters(
    file: Path = typer.Argument(..., help="An .aigif file."),
    comfyui: bool = typer.Option(False, "--comfyui", help="Print the ComfyUI API graph ('prompt' JSON) the file keeps."),
    workflow: bool = typer.Option(False, "--workflow", help="Print the ComfyUI UI workflow JSON the file keeps."),
) -> None:
    """Print the file's syntax as A1111 'parameters' text, or the ComfyUI graph it keeps (--comfyui / --workflow)."""
    try:
        typer.echo(cli_export_parameters(file, "workflow" if workflow else "prompt" if comfyui else None))
    except AigifError as exc:
        typer.echo(f"aigif: error: {exc}", err=True)
        raise typer.Exit(EXIT_ERROR)
