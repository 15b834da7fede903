"""``aigif generate``, ``aigif decode``, ``aigif verify``: the regeneration engine on the command line.

The plain ``cli_*`` functions do the work and return the exit code; the Typer
commands below only parse options. Outputs are written atomically and never
overwrite without ``--force``.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Optional

import typer

from ..errors import AigifError, ConfigError
from ..fileio import atomic_write, read_limited
from ..limits import DEFAULT_LIMITS
from .base import EXIT_CLOSE, EXIT_MISMATCH, EXIT_OK, app

# The CLI's own output only: transformers' import-time notices (e.g. no torchvision) are not the user's business.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")



# --- helpers ---------------------------------------------------------------------------
def png_bytes(image, pnginfo=None) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image, "RGB").save(buf, format="PNG", pnginfo=pnginfo)
    return buf.getvalue()


def parameters_pnginfo(doc, src, echo):
    """A1111 ``parameters`` text for the decoded PNG, so other tools and sites can read the recipe."""
    from ..errors import ImportMetadataError
    from ..importers.a1111_write import png_info_for

    try:
        return png_info_for(doc)
    except ImportMetadataError as exc:   # e.g. a pixels-only file: nothing to embed
        echo(f"aigif: {src}: no parameters embedded ({exc})")
        return None


def read_image(path: Path):
    """An image file as HxWx3 uint8 (size-limited before decoding)."""
    import numpy as np
    from PIL import Image

    data = read_limited(path, DEFAULT_LIMITS.max_file_bytes)
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > DEFAULT_LIMITS.max_image_pixels:
                raise AigifError(f"{path}: {im.width}x{im.height} is above the pixel limit")
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise AigifError(f"{path}: not a readable image ({exc})") from None


def parse_model(spec: str | None, model_dirs: list[Path], revision: str | None = None):
    """``--model``: a registry name, a folder/file path (recorded relative to its model dir), or a hub repo id."""
    from ..syntax import registry
    from ..syntax.elements import ModelRef

    if spec is None:
        return None, model_dirs
    if registry.code_of("model", spec) is not None:
        return ModelRef(name=spec), model_dirs
    path = Path(spec).expanduser()
    if path.exists():
        path = path.resolve()
        for root in model_dirs:
            root = Path(root).expanduser().resolve()
            try:
                return ModelRef(local=path.relative_to(root).as_posix()), model_dirs
            except ValueError:
                continue
        # not inside a model dir: its parent becomes one (decode then needs --model-dir PARENT)
        return ModelRef(local=path.name), [*model_dirs, path.parent]
    if spec.count("/") == 1 and not spec.startswith((".", "/")):
        return ModelRef(repo=spec, revision=revision or "main"), model_dirs
    raise ConfigError(f"--model {spec!r} is neither a registry name ({', '.join(sorted(m.name for m in registry.MODELS.values()))}), "
                      "an existing folder/file, nor a Hugging Face repo id (owner/name)")


def _as_local(path: Path, model_dirs: list[Path]) -> tuple[str, list[Path]]:
    """An existing path as recorded in a file: relative to its model dir, else its parent becomes one."""
    path = path.resolve()
    for root in model_dirs:
        try:
            return path.relative_to(Path(root).expanduser().resolve()).as_posix(), model_dirs
        except ValueError:
            continue
    return path.name, [*model_dirs, path.parent]


def _split_weight(spec: str) -> tuple[str, float]:
    head, sep, tail = spec.rpartition(":")
    if sep:
        try:
            w = float(tail)
        except ValueError:
            return spec, 1.0
        if w != w or abs(w) == float("inf"):
            raise ConfigError(f"--lora {spec!r}: the weight must be a finite number")
        return head, w
    return spec, 1.0


def parse_lora(spec: str, model_dirs: list[Path]):
    """``--lora NAME[:WEIGHT]``: a file path, a name in the model dirs (also Lora/, loras/), or a hub repo
    (``owner/name`` with pytorch_lora_weights.safetensors, or ``owner/name/file.safetensors``)."""
    return parse_lora_dirs(spec, model_dirs)[0]


def parse_lora_dirs(spec: str, model_dirs: list[Path]):
    from ..engine.components import LORA_SUBDIRS, find_named
    from ..syntax.elements import Lora

    head, weight = _split_weight(spec)
    if not head:
        raise ConfigError(f"--lora {spec!r}: give a LoRA name, file or repo")
    path = Path(head).expanduser()
    if path.is_file():
        rel, dirs = _as_local(path, model_dirs)
        return Lora(local=rel, weight=weight), dirs
    if find_named(head, model_dirs, LORA_SUBDIRS, f"LoRA {head}") is not None:
        return Lora(name=head, weight=weight), model_dirs
    parts = head.split("/")
    if len(parts) == 2 and not head.startswith((".", "/")) and all(parts):
        return Lora(repo=head, revision="main", weight=weight), model_dirs
    if len(parts) > 2 and not head.startswith((".", "/")) and head.endswith(".safetensors") and all(parts):
        return Lora(repo="/".join(parts[:2]), revision="main", weight_name="/".join(parts[2:]), weight=weight), model_dirs
    return Lora(name=head, weight=weight), model_dirs   # the engine says where it looked


def parse_vae(spec: str | None, model_dirs: list[Path]):
    """``--vae``: a folder/.safetensors path, a name in the model dirs (also VAE/, vae/), or ``owner/name[/subfolder]``."""
    from ..engine.components import VAE_SUBDIRS, find_named
    from ..syntax.elements import ComponentRef

    if spec is None:
        return None, model_dirs
    path = Path(spec).expanduser()
    if path.exists():
        rel, dirs = _as_local(path, model_dirs)
        return ComponentRef(local=rel), dirs
    if find_named(spec, model_dirs, VAE_SUBDIRS, f"VAE {spec}", folders=True) is not None:
        return ComponentRef(name=spec), model_dirs
    parts = spec.split("/")
    if len(parts) >= 2 and not spec.startswith((".", "/")) and all(parts):
        return ComponentRef(repo="/".join(parts[:2]), revision="main", subfolder="/".join(parts[2:]) or None), model_dirs
    return ComponentRef(name=spec), model_dirs


def write_output(path: Path, data: bytes, force: bool) -> None:
    """Atomic write; OS errors (a file where a folder should be, no permission) become AigifErrors."""
    try:
        atomic_write(path, data, overwrite=force)
    except OSError as exc:
        raise AigifError(f"cannot write {path}: {exc.strerror or exc}") from None


def _engine(**kw):
    from ..engine import Engine

    return Engine(**kw)


def _thresholds(min_psnr: float, min_ssim: float, min_perceptual_psnr: float):
    from ..fidelity import Thresholds

    return Thresholds(min_psnr=min_psnr, min_ssim=min_ssim, min_perceptual_psnr=min_perceptual_psnr)


# --- the work --------------------------------------------------------------------------
def cli_generate(prompt: str, output: Path, *, negative_prompt: str = "", model: str | None = None, revision: str | None = None,
                 seed: int | None = None, steps: int | None = None, guidance: float = 7.5, width: int | None = None,
                 height: int | None = None, scheduler: str | None = None, clip_skip: int | None = None, eta: float | None = None,
                 guidance_rescale: float | None = None, dtype: str | None = None, device: str = "cpu", threads: int | None = None,
                 model_dirs: list[Path] | None = None, allow_network: bool = False, png: Path | None = None,
                 force: bool = False, progress: bool = True, echo=typer.echo, loras: list[str] | None = None,
                 vae: str | None = None) -> int:
    """Render one image and write its .aigif (and optionally the PNG); *loras*: ``NAME[:WEIGHT]`` in order."""
    import dataclasses

    from ..engine.defaults import build_generation, is_embedded
    from ..syntax import dumps
    from ..syntax.elements import ModelRef

    if not force:
        for p in (output, png):
            if p is not None and Path(p).exists():
                raise AigifError(f"{p} exists; pass --force to replace it")
    ref, dirs = parse_model(model, list(model_dirs or []), revision)
    given_dirs = len(model_dirs or [])
    parsed_loras = []
    for spec in loras or ():
        lo, dirs = parse_lora_dirs(spec, dirs)
        parsed_loras.append(lo)
    vae_ref, dirs = parse_vae(vae, dirs)
    if parsed_loras or vae_ref is not None:
        ref = dataclasses.replace(ref or ModelRef(name="aigif-tiny-sd"), vae=vae_ref, loras=tuple(parsed_loras))
    gen = build_generation(prompt, ref, negative_prompt=negative_prompt, seed=seed, steps=steps, guidance=guidance,
                           width=width, height=height, scheduler=scheduler, clip_skip=clip_skip, eta=eta,
                           guidance_rescale=guidance_rescale)
    if threads is None and is_embedded(ref):
        threads = 1   # tiny model: one thread is as fast, and reproducible on any CPU
    engine = _engine(model_dirs=dirs, allow_network=allow_network, device=device, dtype=dtype, threads=threads, progress=progress)
    res = engine.generate(gen, ref)
    data = dumps(res.document)
    write_output(output, data, force)
    echo(f"{output}: {len(data)} bytes (seed {gen.seed}, {gen.width}x{gen.height}, {gen.num_inference_steps} steps)")
    for extra in dirs[given_dirs:]:
        echo(f"note: a local file outside the model dirs is recorded relative to {extra}; decode with --model-dir {extra}")
    if png is not None:
        blob = png_bytes(res.image)
        write_output(png, blob, force)
        echo(f"{png}: {len(blob)} bytes")
    return EXIT_OK


def cli_decode(inputs: list[Path], output: str | Path, *, force: bool = False, model_dirs: list[Path] | None = None,
               allow_network: bool = False, trust_model_mismatch: bool = False, device: str = "cpu",
               min_psnr: float = 30.0, min_ssim: float = 0.90, min_perceptual_psnr: float = 30.0,
               progress: bool = True, echo=typer.echo, embed_parameters: bool = False) -> int:
    """Regenerate (or unpack) each file, write its PNG, report fidelity; exit code = worst status."""
    from tqdm import tqdm

    from ..fileio import load

    if not inputs:
        raise ConfigError("give at least one .aigif file")
    raw = str(output)
    output = Path(output)
    batch = len(inputs) > 1 or raw.endswith(("/", os.sep)) or output.is_dir()
    targets = [(output / (p.stem + ".png")) if batch else output for p in inputs]
    if len(set(targets)) != len(targets):
        raise ConfigError("two inputs share a name; decode them into different folders")
    sources = {Path(p).resolve() for p in inputs}
    for t in targets:  # even with --force: an input is never overwritten
        if t.resolve() in sources:
            raise ConfigError(f"refusing to write {t}: it is one of the inputs")
    if not force:
        for t in targets:
            if t.exists():
                raise AigifError(f"{t} exists; pass --force to replace it")
    engine = _engine(model_dirs=list(model_dirs or []), allow_network=allow_network, device=device,
                     verify_weights=not trust_model_mismatch, progress=progress and not batch,
                     thresholds=_thresholds(min_psnr, min_ssim, min_perceptual_psnr))
    worst = EXIT_OK
    bar = tqdm(list(zip(inputs, targets)), desc="images", unit="img", disable=not (progress and batch), leave=False)
    for src, dst in bar:
        doc = load(src)
        result = engine.decode(doc)
        pnginfo = parameters_pnginfo(doc, src, echo) if embed_parameters else None
        write_output(dst, png_bytes(result.image, pnginfo), force)
        status = result.report.summary() if result.report else "no fingerprint to check against"
        line = f"{src} -> {dst}: {status}" + ("" if result.source == "regenerated" else f" [{result.source}]")
        (bar.write if batch and progress else echo)(line)
        if result.report is not None:
            worst = max(worst, result.report.exit_code)
    return worst


def cli_verify(file: Path, image: Path, *, model_dirs: list[Path] | None = None, allow_network: bool = False,
               trust_model_mismatch: bool = False, device: str = "cpu", min_psnr: float = 30.0, min_ssim: float = 0.90,
               progress: bool = True, echo=typer.echo) -> int:
    """Regenerate *file* and compare with the real *image*: exact / close (PSNR, SSIM) / mismatch."""
    from ..fileio import load

    doc = load(file)
    ref = read_image(image)
    engine = _engine(model_dirs=list(model_dirs or []), allow_network=allow_network, device=device,
                     verify_weights=not trust_model_mismatch, progress=progress,
                     thresholds=_thresholds(min_psnr, min_ssim, 30.0))
    report = engine.verify(doc, ref)
    echo(f"{file} vs {image}: {report.summary()}")
    if report.ms_ssim is not None and report.status != "exact":
        echo(f"  MS-SSIM {report.ms_ssim:.4f}")
    return report.exit_code


# --- Typer commands -------------------------------------------------------------------------
_MODEL_DIR = typer.Option(None, "--model-dir", help="Folder with local models (repeatable; also AIGIF_MODEL_DIRS).")
_NET = typer.Option(False, "--allow-network/--offline", help="Allow downloading a missing model from the Hugging Face hub "
                    "(default: offline; HF_HOME / HF_HUB_OFFLINE are honoured).")


@app.command()
def generate(
    prompt: str = typer.Option(..., "--prompt", "-p", help="The prompt."),
    output: Path = typer.Option(..., "-o", "--output", help="The .aigif file to write."),
    negative_prompt: str = typer.Option("", "--negative-prompt", "-n"),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Registry name, local folder, or HF repo id; default: the embedded tiny model."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Revision (commit) of an HF repo given with --model."),
    seed: Optional[int] = typer.Option(None, "--seed", "-s", min=0, max=2**64 - 1, help="Random (and recorded) if absent."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, max=10000),
    guidance: float = typer.Option(7.5, "--guidance", "--cfg"),
    width: Optional[int] = typer.Option(None, "--width", "-W", min=8, max=16384),
    height: Optional[int] = typer.Option(None, "--height", "-H", min=8, max=16384),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", "--sampler", help="Registry name (dpmpp-2m-karras) or A1111 name ('DPM++ 2M Karras')."),
    clip_skip: Optional[int] = typer.Option(None, "--clip-skip", min=0, max=64),
    eta: Optional[float] = typer.Option(None, "--eta"),
    guidance_rescale: Optional[float] = typer.Option(None, "--guidance-rescale"),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="float32 (default), float16, bfloat16."),
    device: str = typer.Option("cpu", "--device"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, max=65535),
    png: Optional[Path] = typer.Option(None, "--png", help="Also write the image as PNG."),
    model_dir: Optional[list[Path]] = _MODEL_DIR,
    allow_network: bool = _NET,
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite existing outputs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    lora: Optional[list[str]] = typer.Option(None, "--lora", help="LoRA NAME[:WEIGHT] (repeatable, applied in order): a "
                                             ".safetensors file, a name in the model dirs, or an HF repo: owner/name or owner/name/file.safetensors."),
    vae: Optional[str] = typer.Option(None, "--vae", help="VAE override: an AutoencoderKL folder or .safetensors file, a name "
                                      "in the model dirs, or an HF repo: owner/name or owner/name/subfolder."),
) -> None:
    """Generate an image and store its generation syntax (a few hundred bytes) instead of its pixels."""
    raise typer.Exit(cli_generate(prompt, output, negative_prompt=negative_prompt, model=model, revision=revision, seed=seed,
                                  steps=steps, guidance=guidance, width=width, height=height, scheduler=scheduler,
                                  clip_skip=clip_skip, eta=eta, guidance_rescale=guidance_rescale, dtype=dtype, device=device,
                                  threads=threads, model_dirs=model_dir, allow_network=allow_network, png=png, force=force,
                                  progress=not quiet, loras=lora, vae=vae))


@app.command()
def decode(
    inputs: list[Path] = typer.Argument(..., help="One or more .aigif files."),
    output: str = typer.Option(..., "-o", "--output", help="PNG to write, or a folder (ending in /) for several inputs."),
    force: bool = typer.Option(False, "--force", "-f"),
    model_dir: Optional[list[Path]] = _MODEL_DIR,
    allow_network: bool = _NET,
    trust_model_mismatch: bool = typer.Option(False, "--trust-model-mismatch", help="Regenerate even if the weights' digest differs."),
    device: str = typer.Option("cpu", "--device"),
    min_psnr: float = typer.Option(30.0, "--min-psnr"),
    min_ssim: float = typer.Option(0.90, "--min-ssim"),
    min_perceptual_psnr: float = typer.Option(30.0, "--min-perceptual-psnr", help="No-reference threshold on the 4x4 luma fingerprint."),
    embed_parameters: bool = typer.Option(False, "--embed-parameters", help="Write A1111 'parameters' text into the PNG."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Regenerate images from .aigif files. Exit 0 exact, 3 close, 4 mismatch."""
    raise typer.Exit(cli_decode(inputs, output, force=force, model_dirs=model_dir, allow_network=allow_network,
                                trust_model_mismatch=trust_model_mismatch, device=device, min_psnr=min_psnr, min_ssim=min_ssim,
                                min_perceptual_psnr=min_perceptual_psnr, progress=not quiet, embed_parameters=embed_parameters))


@app.command()
def verify(
    file: Path = typer.Argument(..., help="The .aigif file."),
    image: Path = typer.Argument(..., help="The real image (PNG, ...) to compare with."),
    model_dir: Optional[list[Path]] = _MODEL_DIR,
    allow_network: bool = _NET,
    trust_model_mismatch: bool = typer.Option(False, "--trust-model-mismatch"),
    device: str = typer.Option("cpu", "--device"),
    min_psnr: float = typer.Option(30.0, "--min-psnr"),
    min_ssim: float = typer.Option(0.90, "--min-ssim"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Regenerate and compare with the real image (PSNR, SSIM, MS-SSIM). Exit 0 exact, 3 close, 4 mismatch."""
    raise typer.Exit(cli_verify(file, image, model_dirs=model_dir, allow_network=allow_network,
                                trust_model_mismatch=trust_model_mismatch, device=device, min_psnr=min_psnr,
                                min_ssim=min_ssim, progress=not quiet))


__all__ = ["cli_generate", "cli_decode", "cli_verify", "parse_lora", "parse_vae", "EXIT_CLOSE", "EXIT_MISMATCH"]
