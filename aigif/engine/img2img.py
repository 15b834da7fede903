"""The image-to-image and inpainting pass (spec/engine.md section 2.3), shared by the engine and ``aigif.record``.

The family's image-to-image (or inpainting) pipeline, built with ``from_pipe``
(same weights, LoRAs and VAE), is called with the generation's arguments, the
init image (and the mask, inverted and blurred as the element says), the
strength and a CPU generator seeded with the generation's seed: the pipeline
draws the VAE's latent sample and the noise from it, as diffusers does for one
image.
"""
from __future__ import annotations

import inspect

from ..errors import ConfigError
from ..inputs import InputImages, resolve
from ..limits import DEFAULT_LIMITS, Limits
from ..syntax.elements import Generation
from ..syntax.img2img import Img2Img
from .noise import seeded_generator
from .quiet import quiet


def check_img2img(family, gen: Generation, element: Img2Img) -> str:
    """The pipeline class of the pass, or :class:`ConfigError` saying why this engine cannot run it."""
    why = element.not_reproducible()
    if why is not None:
        raise ConfigError(f"not regenerable: {why}")
    cls = family.inpaint if element.inpaint else family.img2img
    if cls is None:
        raise ConfigError(f"not regenerable: {element.kind} on {family.name} (the family registers no "
                          f"{'inpainting' if element.inpaint else 'image-to-image'} pipeline)")
    if gen.batch_index:
        raise ConfigError(f"not regenerable: {element.kind} for image {gen.batch_index} of a batch "
                          "(the pass draws the noise of one image)")
    return cls


def load_images(element: Img2Img, gen: Generation, given: InputImages | None = None,
                limits: Limits = DEFAULT_LIMITS, decode_aigif=None):
    """(init image RGB, mask L or None) as PIL images, each the stored or given one, checked against its digest and the
    generation's size; the mask inverted and blurred as the element says."""
    from PIL import Image, ImageFilter

    why = element.not_reproducible()
    if why is not None:
        raise ConfigError(f"not regenerable: {why}")
    given = given or InputImages()
    size = (gen.width, gen.height)
    init = resolve(element.image, "init image", size, given.init, limits, decode_aigif)
    if not element.inpaint:
        return Image.fromarray(init, "RGB"), None
    mask = resolve(element.mask, "mask", size, given.mask, limits, decode_aigif)
    if element.mask_invert:
        mask = 255 - mask
    mask_img = Image.fromarray(mask, "L")
    if element.mask_blur:
        mask_img = mask_img.filter(ImageFilter.GaussianBlur(element.mask_blur))
    return Image.fromarray(init, "RGB"), mask_img


def check_inpaint_model(pipe, family, element: Img2Img) -> None:
    """A dedicated inpainting model (its denoiser takes the mask and the masked image: more input channels than the
    VAE's latents) where the file says so, and never for plain image-to-image."""
    if family.denoiser != "unet":       # transformers take packed or patchified latents: no channel count to compare
        return
    denoiser = getattr(pipe, family.denoiser)
    channels = int(getattr(denoiser.config, "in_channels", 0))
    latent = int(getattr(pipe.vae.config, "latent_channels", channels))
    dedicated = channels > latent
    if not element.inpaint and dedicated:
        raise ConfigError(f"not regenerable: image-to-image with an inpainting model ({channels} input channels)")
    if element.inpaint and element.inpaint_model is not None and element.inpaint_model != dedicated:
        want = "a dedicated inpainting model" if element.inpaint_model else "a model without inpainting inputs"
        raise ConfigError(f"the file asks for {want}; this model's denoiser has {channels} input channels")


def decode_exact(engine, path, limits: Limits):
    """The image of another .aigif file (an init image made by aigif); it must decode exactly."""
    from ..errors import AigifError
    from ..fileio import load

    res = engine.decode(load(path, limits), limits=limits)
    if res.report is None or res.report.status != "exact":
        raise AigifError(f"{path}: decodes {res.report.status if res.report else 'without a fingerprint'}, not exactly; "
                         "give the init image itself")
    return res.image


def img2img_call(pipe, family, call_kwargs: dict, element: Img2Img, images, generator):
    """(the image-to-image or inpainting pipeline built from *pipe* with ``from_pipe``, its call arguments): the
    generation's *call_kwargs* with the init image, mask, strength and *generator*. *pipe*'s scheduler must not
    have run yet (the new pipeline shares it)."""
    import diffusers

    cls = family.inpaint if element.inpaint else family.img2img
    if cls is None:
        raise ConfigError(f"{element.kind} on {family.name}: the family registers no such pipeline")
    check_inpaint_model(pipe, family, element)
    bar = dict(getattr(pipe, "_progress_bar_config", {}) or {})
    with quiet(True):   # from_pipe's notes on dtypes are about loading, not this pipeline
        second = getattr(diffusers, cls).from_pipe(pipe, **family.load_kwargs)
    second.set_progress_bar_config(**bar)
    takes = inspect.signature(second.__call__).parameters
    kw = {k: v for k, v in call_kwargs.items() if k not in ("latents", "generator", "output_type")}
    if "width" not in takes:            # the size is that of the init image
        kw.pop("width", None), kw.pop("height", None)
    init, mask = images
    kw.update(image=init, strength=float(element.strength), generator=generator, output_type="np")
    if element.inpaint:
        kw["mask_image"] = mask
        if element.masked_padding is not None:   # diffusers pastes the region back only into PIL output
            kw.update(padding_mask_crop=int(element.masked_padding), output_type="pil")
    return second, kw


def run_img2img(pipe, family, call_kwargs: dict, gen: Generation, element: Img2Img, images):
    """Run the pass with a CPU generator seeded with the generation's seed; HxWx3 floats."""
    import numpy as np

    check_img2img(family, gen, element)
    second, kw = img2img_call(pipe, family, call_kwargs, element, images, seeded_generator(gen.seed))
    image = second(**kw).images[0]
    return image if kw["output_type"] == "np" else np.asarray(image.convert("RGB"), dtype=np.float32) / 255
