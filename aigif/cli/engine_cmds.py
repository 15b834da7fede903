"""``aigif generate``, ``aigif decode``, ``aigif verify``: the regeneration engine on the command line.

The plain ``cli_*`` functions do the work and return the exit code; the Typer
commands below only parse options. Outputs are written atomically and never
overwrite without ``--force``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from ..errors import ConfigError
from ..errors import OutputExistsError
from ..fileio import read_limited, write_output
from ..imageio import read_image
from ..limits import DEFAULT_LIMITS
from .base import EXIT_CLOSE, EXIT_MISMATCH, EXIT_OK, app

# The CLI's own output only: transformers' import-time notices (e.g. no torchvision) are not the user's business.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")



# --- helpers ---------------------------------------------------------------------------
def image_file_bytes(image, path: Path, doc, *, ai_label: bool = True, c2pa=None, pnginfo=None, exact: bool = False) -> bytes:
    """*doc*'s image in the format *path*'s suffix names (PNG by default), with the AI mark unless *ai_label*
    is False, and a C2PA manifest when *c2pa* credentials are given (generated files only)."""
    from ..provenance import document_image_bytes, format_for

    return document_image_bytes(image, format_for(path), doc, ai_label=ai_label, credentials=c2pa, pnginfo=pnginfo,
                                title=Path(path).name, exact=exact)


def parameters_pnginfo(doc, src, echo):
    """A1111 ``parameters`` text for the decoded PNG, so other tools and sites can read the recipe."""
    from ..errors import ImportMetadataError
    from ..importers.a1111_write import png_info_for

    try:
        return png_info_for(doc)
    except ImportMetadataError as exc:   # e.g. a pixels-only file: nothing to embed
        echo(f"aigif: {src}: no parameters embedded ({exc})")
        return None


def _engine(**kw):
    from ..engine import Engine

    return Engine(**kw)


def _thresholds(min_psnr: float, min_ssim: float, min_perceptual_psnr: float):
    from ..fidelity import Thresholds

    return Thresholds(min_psnr=min_psnr, min_ssim=min_ssim, min_perceptual_psnr=min_perceptual_psnr)


def _refuse_existing(*paths) -> None:
    for p in paths:
        if p is not None and Path(p).exists():
            raise OutputExistsError(f"{p} exists; pass --force to replace it")


# --- the work: each command is one call of the Python API (aigif.api) ---------------------------
def cli_generate(prompt: str, output: Path, *, negative_prompt: str = "", model: str | None = None, revision: str | None = None,
                 seed: int | None = None, steps: int | None = None, guidance: float | None = None, width: int | None = None,
                 height: int | None = None, scheduler: str | None = None, clip_skip: int | None = None, eta: float | None = None,
                 guidance_rescale: float | None = None, dtype: str | None = None, device: str = "cpu", threads: int | None = None,
                 model_dirs: list[Path] | None = None, allow_network: bool = False, png: Path | None = None,
                 force: bool = False, progress: bool = True, echo=typer.echo, loras: list[str] | None = None,
                 vae: str | None = None, ai_label: bool = True, c2pa_cert: Path | None = None,
                 c2pa_key: Path | None = None, hires: dict | None = None, init_image: Path | None = None,
                 mask: Path | None = None, strength: float | None = None, img2img: dict | None = None,
                 store_images: bool = False, embeddings: list[str] | None = None) -> int:
    """Render one image and write its .aigif (and optionally the PNG); *loras*: ``NAME[:WEIGHT[:TEXT_WEIGHT]]`` in order;
    *hires*: the JSON form of a hires-fix second pass; *init_image*, *mask*, *strength*, *img2img* (the element's
    other fields), *store_images*: an image-to-image or inpainting generation."""
    from .. import api
    from ..provenance.c2pa_credentials import load_credentials
    from ..syntax import dumps
    from ..syntax.defaults import is_embedded

    c2pa = load_credentials(c2pa_cert, c2pa_key) if png is not None else None   # bad credentials fail before rendering
    if not force:
        _refuse_existing(output, png)
    if threads is None and is_embedded(model):
        threads = 1   # tiny model: one thread is as fast, and reproducible on any CPU
    engine = _engine(model_dirs=list(model_dirs or []), allow_network=allow_network, device=device, dtype=dtype,
                     threads=threads, progress=progress)
    known_dirs = list(engine.model_dirs)
    res = api.generate(prompt, negative_prompt=negative_prompt, model=model, revision=revision, seed=seed, steps=steps,
                       guidance=guidance, width=width, height=height, scheduler=scheduler, clip_skip=clip_skip, eta=eta,
                       guidance_rescale=guidance_rescale, loras=loras or (), vae=vae, engine=engine, hires=hires,
                       init_image=init_image, mask=mask, strength=strength, img2img=img2img, store_images=store_images,
                       embeddings=embeddings or (), output=output, overwrite=force)
    gen = res.document.generation
    w, h = res.document.image_size
    second = f", hires {w}x{h}" if res.document.hires is not None else ""
    if res.document.img2img is not None:
        second += f", {res.document.img2img.kind} at strength {res.document.img2img.strength:g}"
    echo(f"{output}: {len(dumps(res.document))} bytes (seed {gen.seed}, {gen.width}x{gen.height}, {gen.num_inference_steps} steps{second})")
    for extra in engine.model_dirs[len(known_dirs):]:
        echo(f"note: a local file outside the model dirs is recorded relative to {extra}; decode with --model-dir {extra}")
    if png is not None:
        blob = image_file_bytes(res.image, png, res.document, ai_label=ai_label, c2pa=c2pa)
        write_output(png, blob, force=force)
        echo(f"{png}: {len(blob)} bytes")
    return EXIT_OK


def cli_decode(inputs: list[Path], output: str | Path, *, force: bool = False, model_dirs: list[Path] | None = None,
               allow_network: bool = False, trust_model_mismatch: bool = False, device: str = "cpu",
               min_psnr: float = 30.0, min_ssim: float = 0.90, min_perceptual_psnr: float = 30.0,
               progress: bool = True, echo=typer.echo, embed_parameters: bool = False, ai_label: bool = True,
               c2pa_cert: Path | None = None, c2pa_key: Path | None = None, init_image: Path | None = None,
               mask: Path | None = None) -> int:
    """Regenerate (or unpack) each file, write its PNG, report fidelity; exit code = worst status. *init_image* /
    *mask*: the images image-to-image files reference without storing them."""
    from tqdm import tqdm

    from .. import api
    from ..provenance import format_for
    from ..provenance.c2pa_credentials import load_credentials
    from ..provenance.export import reattaches_manifest

    c2pa = load_credentials(c2pa_cert, c2pa_key)
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
        _refuse_existing(*targets)
    engine = _engine(model_dirs=list(model_dirs or []), allow_network=allow_network, device=device,
                     verify_weights=not trust_model_mismatch, progress=progress and not batch,
                     thresholds=_thresholds(min_psnr, min_ssim, min_perceptual_psnr))
    worst = EXIT_OK
    bar = tqdm(list(zip(inputs, targets)), desc="images", unit="img", disable=not (progress and batch), leave=False)
    for src, dst in bar:
        result = api.decode(src, engine=engine, init_image=init_image, mask=mask)
        doc = result.document
        pnginfo = parameters_pnginfo(doc, src, echo) if embed_parameters else None
        exact = result.report is not None and result.report.status == "exact"
        write_output(dst, image_file_bytes(result.image, dst, doc, ai_label=ai_label, c2pa=c2pa, pnginfo=pnginfo,
                                           exact=exact), force=force)
        status = result.report.summary() if result.report else "no fingerprint to check against"
        line = f"{src} -> {dst}: {status}" + ("" if result.source == "regenerated" else f" [{result.source}]")
        if doc.c2pa is not None:
            line += ("; the original's C2PA manifest re-attached" if reattaches_manifest(doc, format_for(dst), exact=exact,
                     credentials=c2pa) else "; the original's C2PA manifest not re-attached (pixels not identical, "
                     "not PNG, or a new manifest signed)")
        if result.expectation is not None and result.expectation.diffs:
            line += f"\n  platform: {result.expectation.summary()}"
        (bar.write if batch and progress else echo)(line)
        if result.report is not None:
            worst = max(worst, result.report.exit_code)
    return worst


def cli_verify(file: Path, image: Path | None, *, model_dirs: list[Path] | None = None, allow_network: bool = False,
               trust_model_mismatch: bool = False, device: str = "cpu", min_psnr: float = 30.0, min_ssim: float = 0.90,
               progress: bool = True, echo=typer.echo) -> int:
    """Check *file*'s signature (required when no *image* is given), then regenerate it and compare with
    the real *image*: exact / close (PSNR, SSIM) / mismatch."""
    from .. import api
    from .provenance_cmds import check_signature

    data = read_limited(file, DEFAULT_LIMITS.max_file_bytes)
    signed = check_signature(data, str(file), required=image is None, echo=echo)
    if signed != EXIT_OK or image is None:
        return signed
    reference = read_image(image)
    engine = _engine(model_dirs=list(model_dirs or []), allow_network=allow_network, device=device,
                     verify_weights=not trust_model_mismatch, progress=progress,
                     thresholds=_thresholds(min_psnr, min_ssim, 30.0))
    report = api.decode(data, engine=engine, reference=reference).report
    echo(f"{file} vs {image}: {report.summary()}")
    if report.ms_ssim is not None and report.status != "exact":
        echo(f"  MS-SSIM {report.ms_ssim:.4f}")
    return report.exit_code


# --- Typer commands -------------------------------------------------------------------------
_MODEL_DIR = typer.Option(None, "--model-dir", help="Folder with local models (repeatable; also AIGIF_MODEL_DIRS).")
_AI_LABEL = typer.Option(True, "--ai-label/--no-ai-label", help="Mark written images as AI-generated (IPTC digital "
                         "source type in XMP). Turning this off may break transparency duties such as EU AI Act Art. 50.")
_C2PA_CERT = typer.Option(None, "--c2pa-cert", help="PEM certificate chain (signer first) to sign written images with "
                          "a C2PA manifest; also AIGIF_C2PA_CERT.")
_C2PA_KEY = typer.Option(None, "--c2pa-key", help="The chain's private key (PEM); also AIGIF_C2PA_KEY.")
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
    guidance: Optional[float] = typer.Option(None, "--guidance", "--cfg", help="Default: the family's (SD 7.5, FLUX.1 3.5, SD 3.5 7.0)."),
    width: Optional[int] = typer.Option(None, "--width", "-W", min=8, max=16384),
    height: Optional[int] = typer.Option(None, "--height", "-H", min=8, max=16384),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", "--sampler", help="Registry name (dpmpp-2m-karras) or A1111 name ('DPM++ 2M Karras')."),
    clip_skip: Optional[int] = typer.Option(None, "--clip-skip", min=0, max=64),
    eta: Optional[float] = typer.Option(None, "--eta"),
    guidance_rescale: Optional[float] = typer.Option(None, "--guidance-rescale"),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="float32 (default), float16, bfloat16."),
    device: str = typer.Option("cpu", "--device"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, max=65535),
    png: Optional[Path] = typer.Option(None, "--png", help="Also write the image (PNG; JPEG/WebP by the suffix)."),
    ai_label: bool = _AI_LABEL,
    c2pa_cert: Optional[Path] = _C2PA_CERT,
    c2pa_key: Optional[Path] = _C2PA_KEY,
    model_dir: Optional[list[Path]] = _MODEL_DIR,
    allow_network: bool = _NET,
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite existing outputs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    lora: Optional[list[str]] = typer.Option(None, "--lora", help="LoRA NAME[:WEIGHT[:TEXT_WEIGHT]] (repeatable, applied in "
                                             "order; TEXT_WEIGHT: on the text encoders, default WEIGHT): a .safetensors file, a name "
                                             "in the model dirs, or an HF repo: owner/name or owner/name/file.safetensors."),
    vae: Optional[str] = typer.Option(None, "--vae", help="VAE override: an AutoencoderKL folder or .safetensors file, a name "
                                      "in the model dirs, or an HF repo: owner/name or owner/name/subfolder."),
    embedding: Optional[list[str]] = typer.Option(None, "--embedding", help="Textual-inversion embedding (repeatable): a "
                                                  "name in the model dirs (also embeddings/) that the prompt uses as a word, "
                                                  "or a .safetensors file (the prompt uses its stem)."),
    hires_scale: Optional[float] = typer.Option(None, "--hires-scale", help="Hires fix: enlarge the first pass by this "
                                                "factor and run a second (image-to-image) pass over it."),
    hires_strength: float = typer.Option(0.5, "--hires-strength", help="Hires fix: denoising strength of the second pass."),
    hires_steps: Optional[int] = typer.Option(None, "--hires-steps", min=1, max=10000, help="Hires fix: steps of the second "
                                              "pass (default: --steps)."),
    hires_upscaler: str = typer.Option("latent-bilinear", "--hires-upscaler", help="Hires fix: an upscaler of "
                                       "spec/registry.md (latent-bicubic, lanczos, R-ESRGAN 4x+, ...) or an ESRGAN model "
                                       "file NAME.safetensors in a model dir."),
    init_image: Optional[Path] = typer.Option(None, "--init-image", help="Image-to-image: start from this image (PNG, "
                                              "..., or an .aigif); the output has its size."),
    strength: Optional[float] = typer.Option(None, "--strength", "--denoise", help="Image-to-image: how far to move "
                                             "from the init image, 0 < x <= 1 (default 0.8)."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="Inpainting: repaint where this image is white."),
    mask_blur: Optional[int] = typer.Option(None, "--mask-blur", min=0, max=1024, help="Inpainting: blur the mask by "
                                            "this radius (pixels)."),
    mask_invert: bool = typer.Option(False, "--mask-invert", help="Inpainting: repaint where the mask is black."),
    only_masked: Optional[int] = typer.Option(None, "--only-masked", min=0, max=16384, help="Inpainting: work on the "
                                              "masked region only, cropped with this padding (pixels)."),
    store_images: bool = typer.Option(False, "--store-images", help="Keep the init image and mask in the file (PNG); "
                                      "otherwise only their digests and names, and decoding needs them again."),
) -> None:
    """Generate an image and store its generation syntax (a few hundred bytes) instead of its pixels."""
    hires = None if hires_scale is None else {"upscaler": hires_upscaler, "strength": hires_strength, "scale": hires_scale,
                                              **({"steps": hires_steps} if hires_steps else {})}
    raise typer.Exit(cli_generate(prompt, output, negative_prompt=negative_prompt, model=model, revision=revision, seed=seed,
                                  steps=steps, guidance=guidance, width=width, height=height, scheduler=scheduler,
                                  clip_skip=clip_skip, eta=eta, guidance_rescale=guidance_rescale, dtype=dtype, device=device,
                                  threads=threads, model_dirs=model_dir, allow_network=allow_network, png=png, force=force,
                                  progress=not quiet, loras=lora, vae=vae, ai_label=ai_label, c2pa_cert=c2pa_cert,
                                  c2pa_key=c2pa_key, hires=hires, init_image=init_image, mask=mask, strength=strength,
                                  img2img={k: v for k, v in (("mask_blur", mask_blur), ("mask_invert", mask_invert or None),
                                                             ("masked_padding", only_masked)) if v is not None} or None,
                                  store_images=store_images, embeddings=embedding))


@app.command()
def decode(
    inputs: list[Path] = typer.Argument(..., help="One or more .aigif files."),
    output: str = typer.Option(..., "-o", "--output", help="PNG (or .jpg/.webp) to write, or a folder (ending in /) for several inputs."),
    force: bool = typer.Option(False, "--force", "-f"),
    model_dir: Optional[list[Path]] = _MODEL_DIR,
    allow_network: bool = _NET,
    trust_model_mismatch: bool = typer.Option(False, "--trust-model-mismatch", help="Regenerate even if the weights' digest differs."),
    device: str = typer.Option("cpu", "--device"),
    min_psnr: float = typer.Option(30.0, "--min-psnr"),
    min_ssim: float = typer.Option(0.90, "--min-ssim"),
    min_perceptual_psnr: float = typer.Option(30.0, "--min-perceptual-psnr", help="No-reference threshold on the 4x4 luma fingerprint."),
    embed_parameters: bool = typer.Option(False, "--embed-parameters", help="Write A1111 'parameters' text into the PNG."),
    ai_label: bool = _AI_LABEL,
    c2pa_cert: Optional[Path] = _C2PA_CERT,
    c2pa_key: Optional[Path] = _C2PA_KEY,
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    init_image: Optional[Path] = typer.Option(None, "--init-image", help="The init image of an image-to-image file "
                                              "that does not store it (checked against its digest)."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="The mask of an inpainting file that does not store it."),
) -> None:
    """Regenerate images from .aigif files. Exit 0 exact, 3 close, 4 mismatch."""
    raise typer.Exit(cli_decode(inputs, output, force=force, model_dirs=model_dir, allow_network=allow_network,
                                trust_model_mismatch=trust_model_mismatch, device=device, min_psnr=min_psnr, min_ssim=min_ssim,
                                min_perceptual_psnr=min_perceptual_psnr, progress=not quiet, embed_parameters=embed_parameters,
                                ai_label=ai_label, c2pa_cert=c2pa_cert, c2pa_key=c2pa_key, init_image=init_image,
                                mask=mask))


@app.command()
def verify(
    file: Path = typer.Argument(..., help="The .aigif file."),
    image: Optional[Path] = typer.Argument(None, help="The real image (PNG, ...) to compare with; without it only "
                                           "the signature is checked."),
    model_dir: Optional[list[Path]] = _MODEL_DIR,
    allow_network: bool = _NET,
    trust_model_mismatch: bool = typer.Option(False, "--trust-model-mismatch"),
    device: str = typer.Option("cpu", "--device"),
    min_psnr: float = typer.Option(30.0, "--min-psnr"),
    min_ssim: float = typer.Option(0.90, "--min-ssim"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Check the signature (exit 1 if the signed bytes changed), regenerate and compare with the real image
    (PSNR, SSIM, MS-SSIM). Exit 0 exact, 3 close, 4 mismatch."""
    raise typer.Exit(cli_verify(file, image, model_dirs=model_dir, allow_network=allow_network,
                                trust_model_mismatch=trust_model_mismatch, device=device, min_psnr=min_psnr,
                                min_ssim=min_ssim, progress=not quiet))


__all__ = ["cli_generate", "cli_decode", "cli_verify", "EXIT_CLOSE", "EXIT_MISMATCH"]
