"""Pipeline families: how a syntax becomes a diffusers call.

:data:`FAMILY_PIPELINES` names the diffusers class each family of
:data:`aigif.syntax.registry.FAMILIES` builds (the syntax layer names none);
:data:`PIPELINES` says how to load and call each class. Adding a family (e.g.
SD3, Flux) is one entry in each here plus one in the registry.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError, ModelError
from ..syntax import registry
from ..syntax.elements import Generation


@dataclass(frozen=True)
class PipelineSpec:
    load_kwargs: dict = field(default_factory=dict)       # extra from_pretrained arguments
    options: tuple[str, ...] = ()                          # optional Generation fields the call accepts
    components: frozenset = frozenset()                    # model_index.json component classes allowed


_CLIP = frozenset({"CLIPTextModel", "CLIPTextModelWithProjection", "CLIPTokenizer", "CLIPTokenizerFast",
                   "CLIPImageProcessor", "CLIPImageProcessorPil", "CLIPFeatureExtractor", "CLIPVisionModelWithProjection"})
_SD = frozenset({"UNet2DConditionModel", "AutoencoderKL", "StableDiffusionSafetyChecker"}) | _CLIP
_OPTIONS = ("negative_prompt", "eta", "clip_skip", "guidance_rescale")

PIPELINES = {
    "StableDiffusionPipeline": PipelineSpec({"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}, _OPTIONS, _SD),
    "StableDiffusionXLPipeline": PipelineSpec({"add_watermarker": False}, _OPTIONS, _SD),   # a watermark would change pixels
}
ALLOWED_PIPELINES = frozenset(PIPELINES)

# registry family -> the diffusers pipeline class it builds (mirrored in spec/registry.md)
FAMILY_PIPELINES = {
    "sd1": "StableDiffusionPipeline",
    "sd2": "StableDiffusionPipeline",
    "sdxl": "StableDiffusionXLPipeline",
}


def family_pipeline(family: str) -> str:
    registry.family_entry(family)  # an unknown name fails listing the known ones
    name = FAMILY_PIPELINES.get(family)
    if name not in PIPELINES:
        raise ModelError(f"pipeline family {family} ({name or 'no pipeline'}) is not supported by this engine yet; supported: "
                         + ", ".join(sorted(f for f, p in FAMILY_PIPELINES.items() if p in PIPELINES)))
    return name


def family_of_pipeline(pipeline: str) -> str | None:
    """The first registry family that builds *pipeline* (``StableDiffusionPipeline``: sd1)."""
    for f in registry.FAMILIES.values():
        if FAMILY_PIPELINES.get(f.name) == pipeline:
            return f.name
    return None


def call_kwargs(pipeline: str, gen: Generation) -> dict:
    """Keyword arguments of ``pipe(...)`` for one image (latents/generator/output added by the engine)."""
    spec = PIPELINES[pipeline]
    kw = dict(prompt=gen.prompt, num_inference_steps=gen.num_inference_steps, guidance_scale=float(gen.guidance_scale),
              width=gen.width, height=gen.height)
    if "negative_prompt" in spec.options:
        kw["negative_prompt"] = gen.negative_prompt or None   # "" = the pipeline's default (SDXL: zero embeddings)
    for name in ("eta", "clip_skip", "guidance_rescale"):
        v = getattr(gen, name)
        if v is None:
            continue
        if name not in spec.options:
            raise ConfigError(f"{pipeline} does not take {name}")
        kw[name] = float(v) if name != "clip_skip" else int(v)
    if kw.get("clip_skip") == 0:
        kw.pop("clip_skip")
    return kw
