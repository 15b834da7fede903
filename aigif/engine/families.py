"""Generator families: everything the engine needs to turn a syntax into one diffusers call, as one registration.

A :class:`GeneratorFamily` says which diffusers pipeline class a family builds
and how to load it, which optional call arguments it takes, its latent layout
and how its initial noise is drawn, and where its denoiser and text encoders
sit. SD 1.x, SD 2.x and SDXL are registrations at the bottom of this module; a
package adds its own family the same way, with :func:`register_family` or by
returning a family from an ``aigif.extensions`` entry point. The defaults a
request falls back to (size, steps, scheduler) are the family's row in
:data:`aigif.syntax.registry.FAMILIES`; a family outside the registry brings
them with its registration (:mod:`aigif.syntax.defaults`).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ..errors import ConfigError, ModelError
from ..syntax import registry
from ..syntax.defaults import register_family_defaults
from ..syntax.elements import Generation
from .noise import initial_latents

#: the most T5 tokens the FLUX.1 / SD 3.5 / Chroma pipelines take (``max_sequence_length`` above it is refused)
T5_LIMIT = 512
# optional Generation fields passed to the call when set, with their Python type
_NUMERIC_OPTIONS = {"eta": float, "clip_skip": int, "guidance_rescale": float, "true_cfg_scale": float,
                    "max_sequence_length": int, "prompt_2": str, "prompt_3": str}


@dataclass(frozen=True)
class GeneratorFamily:
    """One generator family. Subclass and override :meth:`latent_shape` / :meth:`pack_latents` /
    :meth:`call_kwargs` for a pipeline whose latents or call differ from Stable Diffusion's."""

    name: str                                              # the family name files record (model.family)
    pipeline: str                                          # diffusers pipeline class (the engine's allowlist)
    load_kwargs: dict = field(default_factory=dict)        # extra from_pretrained arguments
    options: tuple[str, ...] = ()                          # optional Generation fields the call accepts
    components: frozenset = frozenset()                    # model_index.json component classes allowed
    denoiser: str = "unet"                                 # pipeline attribute of the denoising network
    text_encoders: tuple[str, ...] = ("text_encoder",)     # pipeline attributes of the text encoders
    img2img: str | None = None                             # image-to-image pipeline (init image; hires fix second pass)
    inpaint: str | None = None                             # inpainting pipeline (init image and mask)
    latent_img2img: bool = True                            # img2img takes the first pass's latents (hires fix)
    denoising_split: bool = False                          # denoising_end / denoising_start: a refiner can take over
    default_size: int | None = None                        # for a family outside the registry
    default_steps: int | None = None
    default_scheduler: str | None = None
    comfy_text_encoders: tuple[str, ...] = ()              # ComfyUI's usual file per text encoder (clip_l, t5xxl_fp16)
    comfy_vae: str | None = None                           # ComfyUI's usual VAE file (FLUX.1: ae)
    variants: tuple[str, ...] = ()                         # pipelines built from this one an extension adapter may return
    t5: tuple[str, str] | None = None                      # (tokenizer attribute, prompt field) of the T5 encoder

    def register(self) -> "GeneratorFamily":
        """The ``aigif.extensions`` entry point contract: an object with ``register()`` registers itself."""
        return register_family(self)

    def scale_factor(self, pipe) -> int:
        return int(getattr(pipe, "vae_scale_factor", 8))

    def native_size(self, pipe) -> int:
        """The image side the pipeline renders when the call gives none."""
        return int(getattr(pipe, self.denoiser).config.sample_size) * self.scale_factor(pipe)

    def latent_shape(self, pipe, gen: Generation) -> tuple[int, ...]:
        """Shape of one image's initial noise (without the batch axis): channels x H/f x W/f."""
        f = self.scale_factor(pipe)
        if gen.width % f or gen.height % f:
            raise ConfigError(f"width and height must be multiples of {f} for this model, got {gen.width}x{gen.height}")
        return (int(getattr(pipe, self.denoiser).config.in_channels), gen.height // f, gen.width // f)

    def pack_latents(self, latents):
        """The noise in the layout the pipeline's ``latents=`` takes (identity here; FLUX packs 2x2 patches)."""
        return latents

    def initial_noise(self, pipe, gen: Generation, dtype, device):
        """(latents for ``pipe(latents=...)``, the seeded generator the scheduler continues with) (spec/engine.md 'Noise')."""
        latents, g = initial_latents(gen.seed, gen.batch_index, self.latent_shape(pipe, gen), dtype=dtype, device=device)
        return self.pack_latents(latents), g

    def call_kwargs(self, gen: Generation, pipe=None) -> dict:
        """Keyword arguments of ``pipe(...)`` for one image (latents/generator/output added by the engine); *pipe* is
        needed only by a ``min_sequence_length`` (its tokenizer counts the prompt's tokens)."""
        kw = dict(prompt=gen.prompt, num_inference_steps=gen.num_inference_steps, guidance_scale=float(gen.guidance_scale),
                  width=gen.width, height=gen.height)
        if "negative_prompt" in self.options:
            kw["negative_prompt"] = gen.negative_prompt or None   # "" = the pipeline's default (SDXL: zero embeddings)
        elif gen.negative_prompt:
            raise ConfigError(f"{self.pipeline} does not take negative_prompt")
        for name in _NUMERIC_OPTIONS:
            v = getattr(gen, name)
            if v is None:
                continue
            if name not in self.options:
                raise ConfigError(f"{self.pipeline} does not take {name}")
            kw[name] = _NUMERIC_OPTIONS[name](v)
        if kw.get("clip_skip") == 0:
            kw.pop("clip_skip")
        if gen.min_sequence_length is not None:
            kw["max_sequence_length"] = self.padded_length(pipe, gen)
        return kw

    def padded_length(self, pipe, gen: Generation) -> int:
        """The T5 length of a ``min_sequence_length`` (spec/engine.md 2): every T5 text the call encodes padded to at
        least that many tokens, never truncated. They must come to one length (the pipeline pads them alike), at most
        :data:`T5_LIMIT`; :class:`ConfigError` otherwise, or when the family has no T5 encoder."""
        if self.t5 is None or "max_sequence_length" not in self.options:
            raise ConfigError(f"{self.pipeline} does not take min_sequence_length (no T5 text encoder)")
        tokenizer = getattr(pipe, self.t5[0], None)
        if tokenizer is None:
            raise ConfigError(f"min_sequence_length: the pipeline has no {self.t5[0]} to count the prompt's T5 tokens")
        texts = {"prompt": getattr(gen, self.t5[1]) or gen.prompt}
        if self.encodes_negative(gen):
            texts["negative prompt"] = gen.negative_prompt
        counts = {k: len(tokenizer(t).input_ids) for k, t in texts.items()}
        lengths = {max(gen.min_sequence_length, n) for n in counts.values()}
        if len(lengths) > 1:
            raise ConfigError("not regenerable: the prompt and the negative prompt pad to different T5 lengths "
                              f"({counts} tokens, padded to at least {gen.min_sequence_length}); the pipeline pads both alike")
        length = lengths.pop()
        if length > T5_LIMIT:
            raise ConfigError(f"not regenerable: the {max(counts, key=counts.get)} has {max(counts.values())} T5 tokens, "
                              f"more than the {T5_LIMIT} the pipeline takes")
        return length

    def encodes_negative(self, gen: Generation) -> bool:
        """Whether the call encodes the negative prompt too: with true CFG (FLUX) when it is given and the scale is
        above 1, else with classifier-free guidance (guidance_scale above 1)."""
        if "negative_prompt" not in self.options:
            return False
        if "true_cfg_scale" in self.options:
            return bool(gen.negative_prompt) and (gen.true_cfg_scale or 1.0) > 1
        return float(gen.guidance_scale) > 1


# --- the registry ------------------------------------------------------------------------------
_FAMILIES: dict[str, GeneratorFamily] = {}
_LOCK = threading.RLock()


def register_family(family: GeneratorFamily, *, replace: bool = False) -> GeneratorFamily:
    """Make *family* known to the engine (and its defaults to requests, for a family outside the registry)."""
    if not isinstance(family, GeneratorFamily):
        raise ConfigError(f"register_family needs an aigif GeneratorFamily, got {type(family).__name__}")
    if not (isinstance(family.name, str) and family.name and isinstance(family.pipeline, str) and family.pipeline.isidentifier()):
        raise ConfigError(f"a generator family needs a name and a pipeline class name, got {family.name!r}, {family.pipeline!r}")
    in_registry = registry.code_of("family", family.name) is not None
    if not in_registry and family.default_size is None:
        raise ConfigError(f"family {family.name!r} is not in the registry (spec/registry.md): give its default_size")
    with _LOCK:
        if family.name in _FAMILIES and not replace:
            raise ConfigError(f"generator family {family.name!r} is already registered")
        _FAMILIES[family.name] = family
    if not in_registry:
        register_family_defaults(family.name, family.default_size, family.default_steps, family.default_scheduler)
    return family


def unregister_family(name: str) -> None:
    with _LOCK:
        _FAMILIES.pop(name, None)


def registered_families() -> list[GeneratorFamily]:
    return list(_FAMILIES.values())


def get_family(name: str) -> GeneratorFamily:
    """The registered family *name*; an unknown one fails naming the registered ones."""
    if name not in _FAMILIES:
        from ..syntax.extensions import load_entry_points

        load_entry_points()   # a package may provide it
    fam = _FAMILIES.get(name)
    package, dot, _ = name.partition(".")
    if fam is None and dot and package and registry.code_of("family", name) is None:
        # spec: a family registered by an extension package is named <package>.<family>
        raise ModelError(f"generator family {name!r} is provided by the package {package!r}, which is not installed here; "
                         f"the file stays readable (aigif info) and regenerates after `pip install {package}`")
    if fam is None and registry.code_of("family", name) is not None:
        raise ModelError(f"generator family {name} is readable but not regenerated by this version of aigif; "
                         f"regenerable families: {', '.join(sorted(_FAMILIES))}")
    if fam is None:
        raise ModelError(f"generator family {name!r} is not supported by this engine; supported: {', '.join(sorted(_FAMILIES))} "
                         "(a package can add one: aigif.engine.families.register_family)")
    return fam


def family_for_pipeline(pipeline: str) -> GeneratorFamily | None:
    """The first registered family that builds *pipeline* (``StableDiffusionPipeline``: sd1)."""
    return next((f for f in _FAMILIES.values() if f.pipeline == pipeline), None)


def family_of_pipeline(pipeline: str) -> str | None:
    fam = family_for_pipeline(pipeline)
    return fam.name if fam else None


def family_pipeline(family: str) -> str:
    return get_family(family).pipeline


def allowed_pipelines() -> frozenset:
    """Pipeline classes the engine loads: those of the registered families."""
    return frozenset(f.pipeline for f in _FAMILIES.values())


def adapter_pipelines() -> frozenset:
    """Pipeline classes an extension adapter may hand the engine: each registered family's own and its variants
    (image-to-image, inpainting, ControlNet), so a family's registration is the one place that allows them."""
    return frozenset(p for f in _FAMILIES.values() for p in (f.pipeline, *f.variants))


# --- Stable Diffusion 1.x, 2.x and XL ----------------------------------------------------------
_CLIP = frozenset({"CLIPTextModel", "CLIPTextModelWithProjection", "CLIPTokenizer", "CLIPTokenizerFast",
                   "CLIPImageProcessor", "CLIPImageProcessorPil", "CLIPFeatureExtractor", "CLIPVisionModelWithProjection"})
_SD = frozenset({"UNet2DConditionModel", "AutoencoderKL", "StableDiffusionSafetyChecker"}) | _CLIP
_SD_OPTIONS = ("negative_prompt", "eta", "clip_skip", "guidance_rescale")
_SD_LOAD = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}

_SD_VARIANTS = ("StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline", "StableDiffusionControlNetPipeline",
                "StableDiffusionControlNetImg2ImgPipeline")

for _fam in (
    GeneratorFamily("sd1", "StableDiffusionPipeline", _SD_LOAD, _SD_OPTIONS, _SD, variants=_SD_VARIANTS,
                    img2img="StableDiffusionImg2ImgPipeline", inpaint="StableDiffusionInpaintPipeline"),
    GeneratorFamily("sd2", "StableDiffusionPipeline", _SD_LOAD, _SD_OPTIONS, _SD, variants=_SD_VARIANTS,
                    img2img="StableDiffusionImg2ImgPipeline", inpaint="StableDiffusionInpaintPipeline"),
    GeneratorFamily("sdxl", "StableDiffusionXLPipeline", {"add_watermarker": False},   # a watermark would change pixels
                    _SD_OPTIONS, _SD, text_encoders=("text_encoder", "text_encoder_2"),
                    variants=("StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline",
                              "StableDiffusionXLControlNetPipeline"), img2img="StableDiffusionXLImg2ImgPipeline",
                    inpaint="StableDiffusionXLInpaintPipeline", denoising_split=True),
):
    register_family(_fam)


# --- flow-matching transformers: FLUX.1, Chroma and SD 3.5 --------------------------------------
def _fit_patches(f: int, gen: Generation) -> int:
    """*f*, once width and height are known to be multiples of 2f (latents in 2x2 patches)."""
    if gen.width % (2 * f) or gen.height % (2 * f):
        raise ConfigError(f"width and height must be multiples of {2 * f} for this model, got {gen.width}x{gen.height}")
    return f


@dataclass(frozen=True)
class PackedLatentFamily(GeneratorFamily):
    """FLUX.1 and Chroma: the noise is drawn as (in_channels / 4, H/f, W/f) with H, W multiples of 2f and packed into
    2x2-patch tokens, in the order of ``FluxPipeline._pack_latents`` (spec/engine.md 'Noise')."""

    def native_size(self, pipe) -> int:
        return 1024   # the transformer has no sample_size; FluxPipeline's default

    def latent_shape(self, pipe, gen: Generation) -> tuple[int, ...]:
        f = _fit_patches(self.scale_factor(pipe), gen)
        return (int(getattr(pipe, self.denoiser).config.in_channels) // 4, gen.height // f, gen.width // f)

    def pack_latents(self, latents):
        b, c, h, w = latents.shape
        x = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(b, (h // 2) * (w // 2), c * 4)


_T5 = frozenset({"T5EncoderModel", "T5Tokenizer", "T5TokenizerFast"})
_FLOW = frozenset({"AutoencoderKL", "FlowMatchEulerDiscreteScheduler"}) | _CLIP | _T5

register_family(PackedLatentFamily("flux1", "FluxPipeline", {}, ("negative_prompt", "true_cfg_scale", "prompt_2", "max_sequence_length"),
                                   _FLOW | {"FluxTransformer2DModel"}, denoiser="transformer",
                                   text_encoders=("text_encoder", "text_encoder_2"),
                                   comfy_text_encoders=("clip_l", "t5xxl_fp16"), comfy_vae="ae",
                                   variants=("FluxImg2ImgPipeline",), img2img="FluxImg2ImgPipeline", latent_img2img=False,
                                   t5=("tokenizer_2", "prompt_2")))
register_family(PackedLatentFamily("chroma", "ChromaPipeline", {}, ("negative_prompt", "max_sequence_length"),
                                   (_FLOW - _CLIP) | {"ChromaTransformer2DModel"}, denoiser="transformer",
                                   text_encoders=("text_encoder",), comfy_text_encoders=("t5xxl_fp16",), comfy_vae="ae",
                                   t5=("tokenizer", "prompt")))
register_family(GeneratorFamily("sd3", "StableDiffusion3Pipeline", {},
                                ("negative_prompt", "clip_skip", "prompt_2", "prompt_3", "max_sequence_length"),
                                _FLOW | {"SD3Transformer2DModel"}, denoiser="transformer",
                                text_encoders=("text_encoder", "text_encoder_2", "text_encoder_3"),
                                comfy_text_encoders=("clip_l", "clip_g", "t5xxl_fp16"),
                                variants=("StableDiffusion3Img2ImgPipeline",), img2img="StableDiffusion3Img2ImgPipeline",
                                latent_img2img=False, t5=("tokenizer_3", "prompt_3")))


# --- Qwen-Image, Z-Image and FLUX.2: Qwen2.5-VL / Qwen3 / Mistral 3 text encoders ----------------------------
@dataclass(frozen=True)
class FloatLatentFamily(GeneratorFamily):
    """Z-Image: the noise is drawn as (in_channels, H/f, W/f) with H, W multiples of 2f and stays float32 whatever the
    pipeline dtype (``ZImagePipeline`` keeps its latents in float32 and casts them per step) (spec/engine.md 'Noise')."""

    def native_size(self, pipe) -> int:
        return 1024   # ZImagePipeline's default

    def latent_shape(self, pipe, gen: Generation) -> tuple[int, ...]:
        f = _fit_patches(self.scale_factor(pipe), gen)
        return (int(getattr(pipe, self.denoiser).config.in_channels), gen.height // f, gen.width // f)

    def initial_noise(self, pipe, gen: Generation, dtype, device):
        import torch

        return super().initial_noise(pipe, gen, torch.float32, device)


@dataclass(frozen=True)
class PatchifiedLatentFamily(PackedLatentFamily):
    """FLUX.2: the noise is drawn already patchified, as (in_channels, H/2f, W/2f) (``Flux2Pipeline.prepare_latents``);
    the pipeline flattens it into tokens itself (spec/engine.md 'Noise')."""

    def latent_shape(self, pipe, gen: Generation) -> tuple[int, ...]:
        c, h, w = super().latent_shape(pipe, gen)
        return (4 * c, h // 2, w // 2)

    def pack_latents(self, latents):
        return latents


_QWEN_TOKENIZERS = frozenset({"Qwen2Tokenizer", "Qwen2TokenizerFast"})
_QWEN_FLOW = frozenset({"FlowMatchEulerDiscreteScheduler"}) | _QWEN_TOKENIZERS

register_family(PackedLatentFamily("qwen-image", "QwenImagePipeline", {},
                                   ("negative_prompt", "true_cfg_scale", "max_sequence_length"),
                                   _QWEN_FLOW | {"QwenImageTransformer2DModel", "AutoencoderKLQwenImage",
                                                 "Qwen2_5_VLForConditionalGeneration"},
                                   denoiser="transformer", comfy_text_encoders=("qwen_2.5_vl_7b",), comfy_vae="qwen_image_vae",
                                   variants=("QwenImageImg2ImgPipeline", "QwenImageInpaintPipeline")))
register_family(FloatLatentFamily("z-image", "ZImagePipeline", {}, ("negative_prompt", "max_sequence_length"),
                                  _QWEN_FLOW | {"ZImageTransformer2DModel", "AutoencoderKL", "Qwen3Model"},
                                  denoiser="transformer", comfy_text_encoders=("qwen_3_4b",), comfy_vae="ae",
                                  variants=("ZImageImg2ImgPipeline", "ZImageInpaintPipeline")))
register_family(PatchifiedLatentFamily("flux2-klein", "Flux2KleinPipeline", {}, ("max_sequence_length",),
                                       _QWEN_FLOW | {"Flux2Transformer2DModel", "AutoencoderKLFlux2", "Qwen3ForCausalLM"},
                                       denoiser="transformer", comfy_text_encoders=("qwen_3_4b",), comfy_vae="flux2-vae"))
register_family(PatchifiedLatentFamily("flux2", "Flux2Pipeline", {}, ("max_sequence_length",),
                                       _QWEN_FLOW | {"Flux2Transformer2DModel", "AutoencoderKLFlux2",
                                                     "Mistral3ForConditionalGeneration", "PixtralProcessor"},
                                       denoiser="transformer", comfy_text_encoders=("mistral_3_small_flux2_bf16",),
                                       comfy_vae="flux2-vae"))
