"""``aigif compress-image``: a pixel-mode .aigif (no syntax): NVTC, or AVIF when that is smaller at the same PSNR."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import ConfigError, OutputExistsError
from ..fileio import write_output
from ..imageio import read_image
from .base import app


CODEC_CHOICES = {"auto": ("nvtc", "avif"), "nvtc": ("nvtc",), "avif": ("avif",)}


def cli_compress_image(image: Path, output: Path, *, quality: int | None = None, target_psnr: float = 32.0,
                       fast: bool = False, best: bool = False, force: bool = False, codec_choice: str = "auto",
                       echo=typer.echo) -> int:
    """Code *image* into a pixels-only .aigif: a fixed NVTC ``quality``, or the lowest reaching ``target_psnr``;
    ``codec_choice`` auto keeps AVIF instead when it is smaller at the PSNR NVTC reaches.
    ``fast``: every layer coded along rows (no direction search: half the encoding time);
    ``best``: also code the image's transpose and keep the smaller (twice the encoding time)."""
    from .. import codec
    from ..codec.pixels import smaller_of
    from ..fidelity import fingerprint, psnr
    from ..syntax import Document, dumps

    if output.exists() and not force:
        raise OutputExistsError(f"{output} exists; pass --force to replace it")
    rgb = read_image(image)
    if fast and best:
        raise ConfigError("--fast and --best exclude each other")
    if codec_choice not in CODEC_CHOICES:
        raise ConfigError(f"--codec {codec_choice!r}; choose one of {', '.join(CODEC_CHOICES)}")
    effort = {"transpose": None if best else False, "layer_directions": not fast}
    if quality is None:
        quality, payload, _ = codec.compress_to_target(rgb, target_psnr, **effort)
    else:
        payload = codec.compress_image(rgb, quality, **effort)
    payload = smaller_of(rgb, payload, CODEC_CHOICES[codec_choice])
    decoded = codec.decompress_pixels(payload, max_pixels=rgb.shape[0] * rgb.shape[1])
    p = psnr(rgb, decoded)
    # The fingerprint is of the decoded pixels, so `aigif decode` can confirm it reproduced them exactly.
    data = dumps(Document(pixels=payload, fingerprint=fingerprint(decoded)))
    write_output(output, data, force=force)
    h, w = rgb.shape[:2]
    name = "AVIF" if payload[:4] == b"AVIF" else f"NVTC quality {quality}"
    echo(f"{output}: {len(data)} bytes ({len(data) * 8 / (h * w):.3f} bpp, {name}, PSNR {p:.2f} dB)")
    return 0


@app.command("compress-image")
def compress_image(
    image: Path = typer.Argument(..., help="PNG/JPEG/WebP image to store as pixels."),
    output: Path = typer.Option(..., "-o", "--output", help="The .aigif file to write."),
    quality: Optional[int] = typer.Option(None, "--quality", "-q", help="NVTC rate point 1..4 (default: chosen by --target-psnr)."),
    target_psnr: float = typer.Option(32.0, "--target-psnr", help="Lowest quality whose PSNR reaches this (dB)."),
    fast: bool = typer.Option(False, "--fast", help="Code every layer along rows (no direction search): half "
                              "the encoding time, ~3 % larger."),
    best: bool = typer.Option(False, "--best", help="Also code the transposed image and keep the smaller: "
                              "twice the encoding time, ~0.5 % smaller."),
    codec_choice: str = typer.Option("auto", "--codec", help="auto: NVTC or AVIF, whichever is smaller at the PSNR "
                                     "NVTC reaches; nvtc; avif."),
    force: bool = typer.Option(False, "--force", "-f"),
) -> None:
    """Store an image's pixels with the learned NVTC codec, or AVIF when smaller (for images with no usable syntax)."""
    raise typer.Exit(cli_compress_image(image, output, quality=quality, target_psnr=target_psnr, fast=fast,
                                        best=best, force=force, codec_choice=codec_choice))
