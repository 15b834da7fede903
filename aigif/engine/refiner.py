"""The refiner pass (spec/engine.md section 2.2): a second model finishes the first pass's schedule.

The first pass stops after ``switch_at`` of its schedule (diffusers'
``denoising_end``) and hands its latents, still noisy, to the refiner model's
image-to-image pipeline, which runs the rest of the same schedule
(``denoising_start``) with the first pass's generator.
"""
from __future__ import annotations

from ..errors import ConfigError
from ..syntax.elements import Generation
from ..syntax.passes import Refiner
from .quiet import quiet


def check_refiner(family, refiner_family, shared_loras: bool) -> None:
    """:class:`ConfigError` saying why this engine cannot run the refiner on this base model. *shared_loras*: the
    refiner is the base model's own pipeline and one of the two carries LoRAs (one set of adapters for two passes)."""
    for fam, what in ((family, "base model"), (refiner_family, "refiner")):
        if not fam.denoising_split or fam.img2img is None or not fam.latent_img2img:
            raise ConfigError(f"not regenerable: a refiner with a {fam.name} {what} (its pipeline cannot split the schedule)")
    if shared_loras:
        raise ConfigError("not regenerable: the refiner is the base model itself, with LoRAs on one of the passes")


def run_refiner(family, refiner_family, first_pipe, first_kwargs: dict, gen: Generation, refiner: Refiner,
                refiner_pipe, scheduler):
    """Run the first pass up to ``switch_at``, then the refiner for the rest; HxWx3 floats."""
    import diffusers

    out = first_pipe(**{**first_kwargs, "output_type": "latent", "denoising_end": float(refiner.switch_at)})
    bar = dict(getattr(refiner_pipe, "_progress_bar_config", {}) or {})
    with quiet(True):
        img2img = getattr(diffusers, refiner_family.img2img).from_pipe(refiner_pipe, scheduler=scheduler,
                                                                        **refiner_family.load_kwargs)
    img2img.set_progress_bar_config(**bar)
    kw = refiner_family.call_kwargs(refiner.second_pass(gen), refiner_pipe)
    kw.pop("width"), kw.pop("height")
    for name in ("aesthetic_score", "negative_aesthetic_score"):
        if getattr(refiner, name) is not None:
            kw[name] = float(getattr(refiner, name))
    out = img2img(**kw, image=out.images, denoising_start=float(refiner.switch_at), generator=first_kwargs["generator"],
                  output_type="np")
    return out.images[0]
