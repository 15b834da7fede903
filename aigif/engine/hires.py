"""The second pass of a hires fix (spec/engine.md section 2.1), shared by the engine and ``aigif.record``.

A latent upscaler: the first pass stops at its latents; they are enlarged with
``torch.nn.functional.interpolate`` (the upscaler's mode, in float32). A pixel
upscaler: the first pass is decoded to its image, which a PIL filter or an
ESRGAN model (:mod:`aigif.engine.upscale`) enlarges to the output size. Either
way an image-to-image pass of the family's ``img2img`` pipeline (built with
``from_pipe``: same weights) denoises the result with the pass's strength, its
own scheduler and a CPU generator seeded with the pass's seed.
"""
from __future__ import annotations

from ..errors import ConfigError
from ..syntax.elements import Generation
from ..syntax.passes import HiresFix
from .noise import seeded_generator
from .quiet import quiet


def check_hires(family, gen: Generation, hires: HiresFix) -> Generation:
    """The second pass's generation, or :class:`ConfigError` saying why this engine cannot run it."""
    why = hires.not_reproducible()
    if why is not None:
        raise ConfigError(f"not regenerable: {why}")
    if family.img2img is None or not family.latent_img2img:
        raise ConfigError(f"not regenerable: a hires fix on {family.name} (the family registers no image-to-image pipeline)")
    return hires.second_pass(gen)


def upscale_latents(latents, size: tuple[int, int], hires: HiresFix):
    """*latents* (N, C, h, w) interpolated to *size* (H, W) in float32, back in their dtype."""
    import torch

    entry = hires.upscaler_entry
    up = torch.nn.functional.interpolate(latents.float(), size=size, mode=entry.mode, antialias=entry.antialias)
    return up.to(latents.dtype)


def run_hires(pipe, family, first_pipe, first_kwargs: dict, gen: Generation, hires: HiresFix, scheduler, upscaler=None):
    """Run the first pass (``first_pipe(**first_kwargs)``), enlarge it, then run the second pass; HxWx3 floats.
    *upscaler*: the :class:`~aigif.engine.upscale.PixelUpscaler` of a pixel upscaler (None: a latent one)."""
    import diffusers

    second = check_hires(family, gen, hires)
    shape = family.latent_shape(pipe, second)          # sizes the pipeline cannot take fail before any work
    latent = hires.upscaler_entry is not None and hires.upscaler_entry.space == "latent"
    if latent:
        out = first_pipe(**{**first_kwargs, "output_type": "latent"})
        image = upscale_latents(out.images, shape[1:], hires)
    elif upscaler is None:
        raise ConfigError(f"not regenerable: the pixel upscaler {hires.upscaler!r} was not loaded")
    else:
        out = first_pipe(**{**first_kwargs, "output_type": "pil"})    # pixels as spec/engine.md section 2
        image = upscaler(out.images[0], (second.width, second.height))
    bar = dict(getattr(pipe, "_progress_bar_config", {}) or {})
    with quiet(True):   # from_pipe's notes on dtypes are about loading, not this pipeline
        img2img = getattr(diffusers, family.img2img).from_pipe(pipe, scheduler=scheduler, **family.load_kwargs)
    img2img.set_progress_bar_config(**bar)
    kw = family.call_kwargs(second, pipe)
    kw.pop("width"), kw.pop("height")                  # the size is that of the latents / the image
    out = img2img(**kw, image=image, strength=float(hires.strength), generator=seeded_generator(second.seed),
                  output_type="np")
    return out.images[0]
