"""The Python API for the three jobs users have: make an .aigif, get the image back, extend the format.

    import aigif
    res = aigif.generate("a lighthouse at dusk", seed=7)          # Generated(image=PIL.Image, document)
    aigif.dump(res.document, "lighthouse.aigif")
    out = aigif.decode("lighthouse.aigif")                         # Decoded(image=PIL.Image, report, ...)
    data = aigif.pack({"model": "sd15", "prompt": "a fox", "seed": 1})   # syntax-only file, no rendering

    image, data = aigif.record(pipe, prompt="a lighthouse", seed=7)   # your own diffusers pipeline

Everything heavy (torch, diffusers, the codec) is imported inside the
functions, so importing this module costs nothing. The ``aigif`` command calls
these same functions; request defaults come from :mod:`aigif.syntax.defaults`
and model/LoRA/VAE strings are parsed by :mod:`aigif.engine.refs`.
"""
from __future__ import annotations

import os
import secrets
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import AigifError, ConfigError, ModelError
from .fileio import read_limited, write_output
from .imageio import png_bytes
from .limits import DEFAULT_LIMITS, Limits
from .syntax.document import Document, document_from_dict, dumps, loads
from .syntax.elements import Generation, ModelRef, from_dict
from .syntax.flow import check_schedule
from .syntax.passes import HiresFix
from .pipeline_ref import pipeline_model_ref, scheduler_of, second_scheduler  # noqa: F401  (public here too)


# pipe(...) arguments a syntax records; anything else would change the image without being written down
_RECORDED = ("prompt", "negative_prompt", "num_inference_steps", "guidance_scale", "width", "height", "eta",
             "clip_skip", "guidance_rescale", "true_cfg_scale", "max_sequence_length", "prompt_2", "prompt_3")
_IGNORED = ("output_type", "return_dict", "num_images_per_prompt")


# --- results ------------------------------------------------------------------------
@dataclass(frozen=True)
class Recording:
    """One image made by :func:`record`: the pixels, the .aigif bytes and the document they encode.

    Unpacks as ``image, data = aigif.record(...)``.
    """

    image: Any            # PIL.Image.Image
    data: bytes
    document: Document

    def __iter__(self):
        return iter((self.image, self.data))

    def save(self, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
        from .fileio import atomic_write

        return atomic_write(path, self.data, overwrite=overwrite)


@dataclass(frozen=True)
class Generated:
    """What :func:`generate` returns: the image and the document to save (platform and fingerprint filled)."""

    image: Any            # PIL.Image.Image
    document: Document


@dataclass(frozen=True)
class Decoded:
    """What :func:`decode` returns: the image, how well it matches the file's fingerprint, and where it came from."""

    image: Any            # PIL.Image.Image
    report: Any           # aigif.fidelity.FidelityReport | None
    document: Document
    source: str           # regenerated | residual | pixels
    expectation: Any = None   # aigif.engine.expect.Expectation: what the recorded platform lets one expect here

    @property
    def status(self) -> str | None:
        return self.report.status if self.report is not None else None

    def save(self, path: str | os.PathLike, *, ai_label: bool = True, c2pa_cert: str | os.PathLike | None = None,
             c2pa_key: str | os.PathLike | None = None, overwrite: bool = True) -> Path:
        """Write the image (PNG, or JPEG/WebP by the suffix) atomically.

        A regenerated image carries the IPTC mark ``trainedAlgorithmicMedia`` in XMP;
        ``ai_label=False`` leaves it out (check your transparency duties, e.g. EU AI Act Art. 50, first).
        With *c2pa_cert* and *c2pa_key* (or ``AIGIF_C2PA_CERT`` / ``AIGIF_C2PA_KEY``) it also gets a signed
        C2PA manifest.
        """
        from .fileio import atomic_write
        from .provenance import document_image_bytes, format_for
        from .provenance.c2pa_credentials import load_credentials

        data = document_image_bytes(self.image, format_for(path), self.document, ai_label=ai_label,
                                    credentials=load_credentials(c2pa_cert, c2pa_key), title=Path(path).name,
                                    exact=self.status == "exact")
        return atomic_write(path, data, overwrite=overwrite)


# --- (a) generate ---------------------------------------------------------------------
def model_ref(model: str | ModelRef | None) -> ModelRef | None:
    """A registry name, a Hugging Face repo id ``owner/name[@revision]`` or a :class:`ModelRef`."""
    from .engine.refs import parse_model

    ref, dirs = parse_model(model, [])
    if dirs:
        raise ConfigError(f"model {model!r} is a local path; pass it to generate() with an engine whose model_dirs "
                          "hold it, or ModelRef(local='name-inside-a-model-dir')")
    return ref


def generate(prompt: str, *, negative_prompt: str = "", model: str | ModelRef | None = None, seed: int | None = None,
             steps: int | None = None, guidance: float | None = None, width: int | None = None, height: int | None = None,
             scheduler: str | None = None, clip_skip: int | None = None, eta: float | None = None,
             guidance_rescale: float | None = None, loras=(), vae=None, revision: str | None = None, engine=None,
             hires=None, embeddings=(), init_image=None, mask=None, strength: float | None = None, img2img=None,
             store_images: bool = False, output: str | os.PathLike | None = None, overwrite: bool = True) -> Generated:
    """Render one image with aigif's engine and return ``Generated(image, document)`` (a PIL image).

    Defaults follow the model (:mod:`aigif.syntax.defaults`): the embedded ``aigif-tiny-sd``
    (used when *model* is None) renders 64x64 in 10 steps; other models use their family's
    size and 50 steps. *model*: a registry name, a path, ``owner/name[@revision]`` or a
    :class:`ModelRef` (*revision* pins a repo id); *loras*: ``"NAME[:WEIGHT]"`` strings or :class:`Lora` in order; *embeddings*: embedding
    names (the word the prompt uses), ``.safetensors`` paths or :class:`Embedding`; *vae*: a
    name, path, repo or :class:`ComponentRef`. A path outside the engine's model dirs adds its
    folder to them. *seed* None draws a random 32-bit seed (it is recorded). *hires*: a
    :class:`HiresFix` (or its JSON dict) run as a second pass. *init_image* (a path, an .aigif,
    a PIL image or HxWx3 uint8) makes it image-to-image at *strength* (default 0.8), at the
    init image's size; *mask* (white = repaint) makes it inpainting; *img2img*: the element's
    other fields (``mask_blur``, ``mask_invert``, ``masked_padding``) as a dict. The file
    references the images by digest and file name (decode then needs them again) or, with
    *store_images*, holds them as PNG. *output* also writes the .aigif (replacing an existing
    file only with *overwrite*).
    """
    from PIL import Image

    from .engine.refs import parse_request
    from .syntax.defaults import check_family_name, resolve_generation

    eng = _engine(engine)
    ref, dirs = parse_request(model, eng.model_dirs, loras=loras, vae=vae, revision=revision, embeddings=embeddings)
    check_family_name(getattr(ref, "family", None))
    if len(dirs) > len(eng.model_dirs):
        eng.model_dirs = dirs
    element = inputs = None
    if init_image is not None or mask is not None or img2img is not None:
        from .engine.img2img import decode_exact
        from .inputs import img2img_request

        element, inputs, (w, h) = img2img_request(init_image, mask, strength=strength, options=img2img, store=store_images,
                                                  limits=eng.limits, decode_aigif=lambda p: decode_exact(eng, p, eng.limits))
        if (width or w, height or h) != (w, h):
            raise ConfigError(f"width x height {width}x{height} differs from the init image's {w}x{h}")
        width, height = w, h
    elif strength is not None:
        raise ConfigError("strength goes with an init image (init_image=)")
    gen = resolve_generation(ref, prompt=prompt, negative_prompt=negative_prompt, seed=seed, num_inference_steps=steps,
                             guidance_scale=guidance, width=width, height=height, scheduler=scheduler,
                             clip_skip=clip_skip, eta=eta, guidance_rescale=guidance_rescale)
    result = eng.generate(gen, ref, hires=hires_fix(hires), img2img=element, inputs=inputs)
    if output is not None:
        write_output(output, dumps(result.document), force=overwrite)
    return Generated(Image.fromarray(result.image, "RGB"), result.document)


def pack(description: dict, *, output: str | os.PathLike | None = None, overwrite: bool = True) -> bytes:
    """The syntax-only .aigif bytes of a JSON-style description (``aigif info --json`` keys), nothing rendered.

    Left-out values get the same defaults as :func:`generate` for the same model. *output* also
    writes the file (replacing an existing one only with *overwrite*).
    """
    from .syntax.defaults import check_family_name

    doc = document_from_dict(description)
    check_family_name(getattr(doc.model, "family", None))
    data = dumps(doc)
    if output is not None:
        write_output(output, data, force=overwrite)
    return data


def hires_fix(hires) -> HiresFix | None:
    """A :class:`HiresFix` from itself, its JSON dict (the ``hires`` key of ``aigif info --json``) or None."""
    if hires is None or isinstance(hires, HiresFix):
        return hires
    return from_dict(HiresFix, hires, "hires")


def _engine(engine):
    if engine is not None:
        return engine
    from .engine import default_engine

    return default_engine()


# --- (a') record a user's own diffusers pipeline ---------------------------------------------
def record(pipe, *, seed: int | None = None, batch_index: int | None = None, model: ModelRef | None = None,
           model_dirs: list[str | os.PathLike] | None = None, hires=None, **call_kwargs) -> Recording:
    """Run ``pipe(**call_kwargs)`` with aigif's deterministic noise and return the image and its .aigif bytes.

    The initial latents come from a CPU ``torch.Generator`` seeded with *seed* (exactly what
    :class:`aigif.engine.Engine` draws when it regenerates), threads and deterministic kernels are
    pinned while the pipeline runs, and the platform is recorded. The model identity is taken from
    ``pipe.name_or_path`` and the weights digest (a registry model is recorded by name); pass
    *model* to record another reference. Only arguments a syntax can hold are accepted
    (``prompt``, ``negative_prompt``, ``num_inference_steps``, ``guidance_scale``, ``width``,
    ``height``, ``eta``, ``clip_skip``, ``guidance_rescale``); ``generator``/``latents``/embeddings
    are refused because the file could not reproduce them. *hires* (a :class:`HiresFix` or its
    JSON dict) adds a hires-fix second pass, run exactly as the engine runs it.
    """
    import torch

    from .engine import to_uint8
    from .engine.hires import check_hires, run_hires
    from .engine.paths import env_model_dirs
    from .engine.upscale import pixel_upscaler
    from .engine.platform import capture_platform, pinned
    from .fidelity import fingerprint

    family = _family(pipe)
    gen = _generation_from_call(pipe, family, call_kwargs, seed, batch_index)
    ref = model if model is not None else pipeline_model_ref(pipe, model_dirs)
    scheduler, overrides = scheduler_of(pipe)
    check_schedule(family.name, scheduler, overrides)   # a schedule the file could not reproduce is refused, not written
    gen = Generation(**{**_gen_fields(gen), "scheduler": scheduler, "scheduler_config": overrides or None})
    dtype = str(pipe.dtype).replace("torch.", "")
    if dtype not in ("float32", "float16", "bfloat16"):
        raise ConfigError(f"pipeline dtype {dtype} cannot be recorded; use float32, float16 or bfloat16")
    device = str(pipe.device)
    attention = _attention_of(pipe, family)
    threads = torch.get_num_threads()
    kw = family.call_kwargs(gen, pipe)
    family.latent_shape(pipe, gen)   # sizes the pipeline cannot take fail here
    hires = hires_fix(hires)
    second = check_hires(family, gen, hires) if hires is not None else None
    upscaler = pixel_upscaler(hires, [*(model_dirs or []), *env_model_dirs()]) if hires is not None else None
    with pinned(device, threads, True), torch.inference_mode():
        latents, g = family.initial_noise(pipe, gen, pipe.dtype, device)
        first = {**kw, "latents": latents, "generator": g, "output_type": "np"}
        try:
            if second is None:
                image = pipe(**first).images[0]
            else:
                image = run_hires(pipe, family, pipe, first, gen, hires, second_scheduler(pipe, second, hires), upscaler)
        except (ValueError, TypeError, RuntimeError) as exc:
            raise AigifError(f"the pipeline refused this call: {exc}") from None
    rgb = to_uint8(image)
    if upscaler is not None and upscaler.sha256 and hires.upscaler_sha256 is None:
        hires = dataclasses.replace(hires, upscaler_sha256=upscaler.sha256)
    doc = Document(generation=gen, model=ref, platform=capture_platform(device, dtype, attention, threads, True),
                   fingerprint=fingerprint(rgb), hires=hires)
    from PIL import Image

    return Recording(Image.fromarray(rgb, "RGB"), dumps(doc), doc)


class RecordingPipeline:
    """``wrap_pipeline(pipe)``: call it like the pipeline, get a :class:`Recording`; other attributes pass through."""

    def __init__(self, pipe, *, model: ModelRef | None = None, model_dirs=None):
        self.pipe = pipe
        self._model = model
        self._model_dirs = model_dirs

    def __call__(self, **call_kwargs) -> Recording:
        if self._model is None:
            self._model = pipeline_model_ref(self.pipe, self._model_dirs)  # hash the weights once
        return record(self.pipe, model=self._model, **call_kwargs)

    def __getattr__(self, name):
        return getattr(self.pipe, name)


def wrap_pipeline(pipe, *, model: ModelRef | None = None, model_dirs=None) -> RecordingPipeline:
    """Wrap a diffusers pipeline so every call returns an image plus its .aigif bytes (see :func:`record`)."""
    return RecordingPipeline(pipe, model=model, model_dirs=model_dirs)


def _family(pipe):
    from .engine.families import allowed_pipelines, family_for_pipeline

    family = family_for_pipeline(type(pipe).__name__)
    if family is None:
        raise ModelError(f"{type(pipe).__name__} cannot be regenerated by the engine yet; supported: {', '.join(sorted(allowed_pipelines()))}")
    return family


def _gen_fields(gen: Generation) -> dict:
    import dataclasses

    return {f.name: getattr(gen, f.name) for f in dataclasses.fields(gen)}


def _generation_from_call(pipe, family, kw: dict, seed: int | None, batch_index: int | None) -> Generation:
    unknown = sorted(k for k in kw if k not in _RECORDED and k not in _IGNORED)
    if unknown:
        raise ConfigError(f"pipe() argument(s) {', '.join(unknown)} cannot be recorded in an .aigif syntax; "
                          f"allowed: {', '.join(_RECORDED)} (plus seed=, batch_index=)")
    if kw.get("num_images_per_prompt", 1) != 1:
        raise ConfigError("record() makes one image per call; use batch_index=0..n-1 with one seed for a batch")
    prompt = kw.get("prompt")
    if not isinstance(prompt, str):
        raise ConfigError(f"prompt must be one string, got {type(prompt).__name__}")
    neg = kw.get("negative_prompt") or ""
    if not isinstance(neg, str):
        raise ConfigError("negative_prompt must be one string")
    from .syntax.registry import code_of, family_entry

    row = family_entry(family.name) if code_of("family", family.name) is not None else None   # FLUX: 28 steps, guidance 3.5
    steps = row.default_steps if row else (family.default_steps or 50)
    extra = {k: kw.get(k) for k in ("eta", "clip_skip", "guidance_rescale", "true_cfg_scale", "max_sequence_length", "prompt_2", "prompt_3")}
    default = family.native_size(pipe)
    return Generation(prompt=prompt, negative_prompt=neg, seed=secrets.randbits(32) if seed is None else seed,
                      num_inference_steps=kw.get("num_inference_steps", steps),
                      guidance_scale=float(kw.get("guidance_scale", row.default_guidance if row else 7.5)),
                      width=kw.get("width") or default, height=kw.get("height") or default, batch_index=batch_index, **extra)


def _attention_of(pipe, family) -> str:
    kinds = set()
    for comp in (family.denoiser if family.denoiser == "unet" else None, "vae"):   # transformers: sdpa processors
        if comp is None:
            continue
        m = getattr(pipe, comp, None)
        if m is not None and hasattr(m, "attn_processors"):
            kinds |= {type(p).__name__ for p in m.attn_processors.values()}
    if kinds <= {"AttnProcessor2_0"}:
        return "sdpa"
    if kinds <= {"AttnProcessor"}:
        return "classic"
    raise ConfigError(f"attention processors {sorted(kinds)} cannot be recorded; the engine reproduces AttnProcessor2_0 "
                      "(sdpa) or AttnProcessor (classic): call pipe.unet.set_attn_processor(AttnProcessor2_0())")


# --- (b) decode ---------------------------------------------------------------------------
def _read_source(src, limits: Limits) -> Document:
    if isinstance(src, Document):
        return src
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    elif isinstance(src, (str, os.PathLike)):
        data = read_limited(src, limits.max_file_bytes)
    elif hasattr(src, "read"):
        data = src.read(limits.max_file_bytes + 1)
        if not isinstance(data, bytes):
            raise ConfigError("the file object must be opened in binary mode")
    else:
        raise ConfigError(f"decode() takes a path, bytes, a binary file or a Document, got {type(src).__name__}")
    if len(data) > limits.max_file_bytes:
        from .errors import LimitError

        raise LimitError(f"input of {len(data)} bytes is above the limit of {limits.max_file_bytes}")
    return loads(data, limits)


def decode(src, *, engine=None, reference=None, limits: Limits | None = None, init_image=None, mask=None) -> Decoded:
    """The image an .aigif holds (regenerated, + residual, or stored pixels) as a PIL image, with a fidelity report.

    *src*: a path, bytes, a binary file object or a :class:`Document`. *reference*: the real image
    (PIL or HxWx3 uint8) to compare with (PSNR/SSIM) instead of the file's fingerprint.
    *limits*: for reading and regenerating (default: ``aigif.DEFAULT_LIMITS`` to read, the engine's
    limits to render); a file asking more than ``Limits.regeneration_budget`` raises :class:`aigif.LimitError`.
    *init_image* / *mask*: the images of an image-to-image file that references them without storing them
    (checked against the file's digests: :class:`aigif.InputImageError`).
    Raises :class:`aigif.ModelError` when the model is missing, :class:`aigif.FormatError` and
    friends for broken files.
    """
    import numpy as np
    from PIL import Image

    doc = _read_source(src, limits or DEFAULT_LIMITS)
    ref = None
    if reference is not None:
        ref = np.asarray(reference.convert("RGB") if isinstance(reference, Image.Image) else reference, dtype=np.uint8)
    from .inputs import InputImages

    inputs = InputImages(init_image, mask) if init_image is not None or mask is not None else None
    result = _engine(engine).decode(doc, reference=ref, limits=limits, inputs=inputs)
    return Decoded(Image.fromarray(np.ascontiguousarray(result.image, dtype=np.uint8), "RGB"), result.report, doc, result.source,
                   result.expectation)


def register_pillow() -> None:
    """Teach Pillow the .aigif format (``Image.open``/``save``); idempotent. See :mod:`aigif.pillow_plugin`."""
    from . import pillow_plugin

    pillow_plugin.register()


__all__ = ["Decoded", "Generated", "Recording", "RecordingPipeline", "decode", "generate", "model_ref", "pack",
           "pipeline_model_ref", "record", "register_pillow", "scheduler_of", "wrap_pipeline", "png_bytes"]
