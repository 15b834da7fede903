"""Passes after the first one: the hires fix and the refiner (spec/aigif-v1.md sections 4.7, 4.8).

A hires fix enlarges the first pass's result (its latents by interpolation, or
its decoded image by a pixel upscaler) and runs an image-to-image pass over it
with its own strength, steps, seed, scheduler, guidance and prompts. It is its
own critical segment: a decoder that does not know it refuses the file instead
of regenerating the first pass alone. A refiner is a second model that finishes
the first pass's schedule (SDXL's base + refiner), also a critical segment.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import ConfigError
from . import registry
from .elements import MAX_SIDE, MAX_STEPS, Generation, ModelRef, _check, _check_sha, _is_int
from .schema import F

MAX_SCALE = 16.0


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


@dataclass(frozen=True)
class HiresFix:
    """The second pass of a hires fix. Absent fields take the first pass's value (the generation's)."""

    upscaler: str
    strength: float
    scale: float | None = None
    width: int | None = None       # output size; when absent: floor(generation size x scale)
    height: int | None = None
    steps: int | None = None
    seed: int | None = None
    scheduler: str | None = None
    scheduler_config: dict | None = None
    guidance_scale: float | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    upscaler_sha256: str | None = None   # sha256 of the upscaler model's weights file

    FIELDS = (F(1, "upscaler", "enum:upscaler", required=True), F(2, "strength", "number", required=True),
              F(3, "scale", "number"), F(4, "width", "px"), F(5, "height", "px"), F(6, "steps", "uint"),
              F(7, "seed", "uint"), F(8, "scheduler", "enum:scheduler"), F(9, "scheduler_config", "map"),
              F(10, "guidance_scale", "number"), F(11, "prompt", "text"), F(12, "negative_prompt", "text"),
              F(13, "upscaler_sha256", "hex"))

    def __post_init__(self):
        _check(isinstance(self.upscaler, str) and 0 < len(self.upscaler) <= 256, f"hires.upscaler must be a name, got {self.upscaler!r}")
        object.__setattr__(self, "upscaler", registry.upscaler_from_tool(self.upscaler))
        _check(_finite(self.strength) and 0 < self.strength <= 1, f"hires.strength must be in (0, 1], got {self.strength!r}")
        _check(self.scale is None or (_finite(self.scale) and 0 < self.scale <= MAX_SCALE),
               f"hires.scale must be in (0, {MAX_SCALE:g}], got {self.scale!r}")
        _check((self.width is None) == (self.height is None), "hires.width and hires.height go together")
        _check(self.scale is not None or self.width is not None, "hires needs a scale or a width and height")
        for side in ("width", "height"):
            v = getattr(self, side)
            _check(v is None or (_is_int(v) and 1 <= v <= MAX_SIDE), f"hires.{side} must be 1..{MAX_SIDE}, got {v!r}")
        _check(self.steps is None or (_is_int(self.steps) and 1 <= self.steps <= MAX_STEPS),
               f"hires.steps must be 1..{MAX_STEPS}, got {self.steps!r}")
        _check(self.seed is None or (_is_int(self.seed) and 0 <= self.seed < 2**64), f"hires.seed must be 0..2**64-1, got {self.seed!r}")
        _check(self.guidance_scale is None or _finite(self.guidance_scale), "hires.guidance_scale must be a finite number")
        _check(self.scheduler_config is None or isinstance(self.scheduler_config, dict), "hires.scheduler_config must be an object")
        _check(self.scheduler_config is None or self.scheduler is not None,
               "hires.scheduler_config needs hires.scheduler (without it the first pass's scheduler is used as it is)")
        for name in ("prompt", "negative_prompt"):
            _check(getattr(self, name) is None or isinstance(getattr(self, name), str), f"hires.{name} must be a string")
        _check(self.upscaler_sha256 is None or isinstance(self.upscaler_sha256, str), "hires.upscaler_sha256 must be hex digits")
        _check_sha(self.upscaler_sha256)
        _check(self.upscaler_sha256 is None or self.is_model, "hires.upscaler_sha256 goes with an upscaler model, "
               f"not with {self.upscaler!r}")
        if self.scheduler is not None:
            _check(isinstance(self.scheduler, str), f"hires.scheduler must be a string, got {self.scheduler!r}")
            object.__setattr__(self, "scheduler", registry.scheduler_from_sampler(self.scheduler) or self.scheduler)

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the final image for a first pass of *width* x *height*."""
        if self.width is not None:
            return self.width, self.height
        w, h = int(width * self.scale), int(height * self.scale)
        if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
            raise ConfigError(f"hires: {width}x{height} x {self.scale} gives {w}x{h}, outside 1..{MAX_SIDE}")
        return w, h

    def second_pass(self, gen: Generation) -> Generation:
        """The generation of the second pass: this pass's values, the first pass's (*gen*) where absent."""
        w, h = self.output_size(gen.width, gen.height)
        own_scheduler = self.scheduler is not None
        return dataclasses.replace(
            gen, width=w, height=h, seed=gen.seed if self.seed is None else self.seed,
            prompt=gen.prompt if self.prompt is None else self.prompt,
            negative_prompt=gen.negative_prompt if self.negative_prompt is None else self.negative_prompt,
            num_inference_steps=self.steps or gen.num_inference_steps,
            guidance_scale=gen.guidance_scale if self.guidance_scale is None else self.guidance_scale,
            scheduler=self.scheduler if own_scheduler else gen.scheduler,
            scheduler_config=self.scheduler_config if own_scheduler else gen.scheduler_config)

    def pixel_steps(self, gen: Generation) -> int:
        """What the second pass costs against the regeneration budget: output pixels x denoised steps."""
        second = self.second_pass(gen)
        return second.width * second.height * max(1, int(second.num_inference_steps * self.strength))

    @property
    def upscaler_entry(self) -> registry.Upscaler | None:
        code = registry.code_of("upscaler", self.upscaler)
        return registry.UPSCALERS[code] if code is not None else None

    @property
    def is_model(self) -> bool:
        """The first pass is enlarged by an upscaler model (a registry model, or any name outside the registry)."""
        entry = self.upscaler_entry
        return entry is None or entry.space == "pixel" and entry.mode is None

    def not_reproducible(self) -> str | None:
        """Why no engine can run this pass (a model architecture other than ESRGAN, a non-torch latent mode), or None.
        A model outside the registry is read from its weights when the pass runs."""
        entry = self.upscaler_entry
        if entry is None:
            return None
        if entry.space == "latent" and entry.mode is None:
            return f"hires fix with the latent upscale {entry.name!r}, which torch's interpolate does not compute"
        if entry.arch is not None and entry.arch not in registry.RUN_ARCHS:
            return (f"hires fix with the upscaler {entry.name!r}: its architecture ({entry.arch}) is not supported "
                    f"(only {', '.join(registry.RUN_ARCHS)} models and resampling filters are run)")
        return None


@dataclass(frozen=True)
class Refiner:
    """Another model finishes the schedule: the first pass stops after ``switch_at`` of it (diffusers'
    ``denoising_end``) and the refiner's image-to-image pipeline runs the rest (``denoising_start``)."""

    model: ModelRef
    switch_at: float
    aesthetic_score: float | None = None            # SDXL refiner conditioning (diffusers' defaults 6.0 / 2.5)
    negative_aesthetic_score: float | None = None
    prompt: str | None = None                       # the refiner's prompts, when they differ from the generation's
    negative_prompt: str | None = None

    FIELDS = (F(1, "model", "msg", ModelRef, required=True), F(2, "switch_at", "number", required=True),
              F(3, "aesthetic_score", "number"), F(4, "negative_aesthetic_score", "number"), F(5, "prompt", "text"),
              F(6, "negative_prompt", "text"))

    def __post_init__(self):
        _check(isinstance(self.model, ModelRef), "refiner.model must be a model reference")
        _check(_finite(self.switch_at) and 0 < self.switch_at < 1, f"refiner.switch_at must be in (0, 1), got {self.switch_at!r}")
        for name in ("aesthetic_score", "negative_aesthetic_score"):
            _check(getattr(self, name) is None or _finite(getattr(self, name)), f"refiner.{name} must be a finite number")
        for name in ("prompt", "negative_prompt"):
            _check(getattr(self, name) is None or isinstance(getattr(self, name), str), f"refiner.{name} must be a string")

    def second_pass(self, gen: Generation) -> Generation:
        """The generation the refiner runs: the first pass's, with the refiner's prompts where given."""
        return dataclasses.replace(gen, prompt=gen.prompt if self.prompt is None else self.prompt,
                                   negative_prompt=gen.negative_prompt if self.negative_prompt is None else self.negative_prompt)
