"""``aigif batch-decode`` / ``aigif batch-encode``: whole folders, one process per GPU with ``accelerate``.

    aigif batch-decode in/ out/
    accelerate launch --multi_gpu --num_processes 8 -m aigif batch-decode in/ out/

The work is :func:`aigif.batch.run_batch`; these commands only parse options.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .base import EXIT_ERROR, EXIT_OK, app


def cli_batch(op: str, in_dir: Path, out_dir: Path, *, force: bool = False, model_dirs: list[Path] | None = None,
              quality: int | None = None, progress: bool = True, cpu: bool | None = None, echo=typer.echo,
              ai_label: bool = True) -> int:
    """Run one batch operation in this process's share of the files; 1 if any file failed."""
    from ..batch import run_batch, shutdown
    from ..provenance.c2pa_credentials import load_credentials

    c2pa = load_credentials() if op == "decode" else None   # AIGIF_C2PA_CERT / AIGIF_C2PA_KEY
    try:
        summary = run_batch(op, in_dir, out_dir, force=force, model_dirs=list(model_dirs or []), quality=quality,
                            progress=progress, cpu=cpu, echo=echo, ai_label=ai_label, c2pa=c2pa)
    finally:
        shutdown()
    return EXIT_ERROR if summary.errors else EXIT_OK


_FORCE = typer.Option(False, "--force", help="Redo outputs that already exist and are valid.")
_MODEL_DIR = typer.Option(None, "--model-dir", help="Folder holding local models (repeatable).")
_PROGRESS = typer.Option(True, "--progress/--no-progress", help="Progress bar on the main process.")
_CPU = typer.Option(None, "--cpu/--gpu", help="Force CPU processes (default: CPU only when no GPU is present).")


@app.command("batch-decode")
def batch_decode(in_dir: Path = typer.Argument(..., help="Folder of .aigif files (searched recursively)."),
                 out_dir: Path = typer.Argument(..., help="Folder for the PNGs (same relative paths)."),
                 force: bool = _FORCE, model_dir: Optional[List[Path]] = _MODEL_DIR, progress: bool = _PROGRESS,
                 cpu: Optional[bool] = _CPU,
                 ai_label: bool = typer.Option(True, "--ai-label/--no-ai-label", help="Mark the PNGs as AI-generated "
                                               "(IPTC, XMP); turning this off may break duties such as EU AI Act Art. 50.")) -> None:
    """Regenerate every .aigif under IN_DIR into OUT_DIR/*.png (resumable; multi-GPU with accelerate launch)."""
    raise typer.Exit(cli_batch("decode", in_dir, out_dir, force=force, model_dirs=model_dir, progress=progress, cpu=cpu,
                               ai_label=ai_label))


@app.command("batch-encode")
def batch_encode(in_dir: Path = typer.Argument(..., help="Folder of PNG/JPEG/WebP images with generation metadata."),
                 out_dir: Path = typer.Argument(..., help="Folder for the .aigif files (same relative paths)."),
                 force: bool = _FORCE, model_dir: Optional[List[Path]] = _MODEL_DIR,
                 quality: Optional[int] = typer.Option(None, "--quality", help="Codec quality for residuals/pixels."),
                 progress: bool = _PROGRESS, cpu: Optional[bool] = _CPU) -> None:
    """Convert every image under IN_DIR into OUT_DIR/*.aigif: syntax if regenerated exactly, else residual or pixels."""
    raise typer.Exit(cli_batch("encode", in_dir, out_dir, force=force, model_dirs=model_dir, quality=quality,
                               progress=progress, cpu=cpu))
