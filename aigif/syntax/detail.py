"""Detail passes after the image is made (spec/aigif-v1.md section 4.10): ADetailer-style inpainting of detected regions.

Each pass runs a detector (a YOLO or MediaPipe model) over the finished image,
turns what it finds into a mask (filtered, grown, offset, merged, blurred) and
inpaints the masked region with its own strength and, optionally, its own size,
steps, guidance, sampler, checkpoint, VAE and prompts. It changes the pixels, so
the element is a critical segment: a decoder that does not know it refuses the
file instead of showing the image as if no pass had run. Absent fields take the
generation's value or the detailer's default (the dataclass defaults below).
"""
from __future__ import annotations

from dataclasses import dataclass

from .elements import MAX_SIDE, MAX_STEPS, _check, _is_int
from .passes import _finite
from .schema import F

MAX_PASSES = 16                      # ADetailer offers at most 10 tabs
MASK_MERGES = ("merge", "merge-invert")
MAX_NAME = 256


def _name(v, where: str) -> None:
    _check(v is None or (isinstance(v, str) and 0 < len(v) <= MAX_NAME), f"detail.{where} must be a name of 1..{MAX_NAME} characters, got {v!r}")


def _unit(v, where: str) -> None:
    _check(_finite(v) and 0 <= v <= 1, f"detail.{where} must be in [0, 1], got {v!r}")


@dataclass(frozen=True)
class DetailPass:
    """One detector + inpainting pass. Defaults are ADetailer's; None means "as the generation"."""

    detector: str                        # the detector model as the tool names it, e.g. face_yolov8n.pt
    detector_classes: str | None = None  # YOLO-World classes the detector looks for
    confidence: float = 0.3
    mask_k_largest: int = 0              # keep the k largest detections; 0: all
    mask_min_ratio: float = 0.0          # detections smaller / larger than this share of the image are dropped
    mask_max_ratio: float = 1.0
    dilate_erode: int = 4                # pixels; negative erodes
    x_offset: int = 0
    y_offset: int = 0
    mask_merge: str | None = None        # merge: one mask of all detections; merge-invert: that mask inverted
    mask_blur: int = 4
    strength: float = 0.4
    masked_padding: int | None = None    # present: inpaint only the masked region grown by this margin
    width: int | None = None             # the inpainting size (only-masked region scaled to it)
    height: int | None = None
    steps: int | None = None
    guidance_scale: float | None = None
    scheduler: str | None = None         # a registry scheduler, else the tool's sampler name as written
    schedule_type: str | None = None     # the tool's schedule name, as written, when it has its own
    checkpoint: str | None = None        # another checkpoint / VAE for the pass, as the tool names it
    vae: str | None = None
    noise_multiplier: float | None = None
    clip_skip: int | None = None         # as A1111 counts it: 1 = the last layer
    prompt: str | None = None
    negative_prompt: str | None = None
    restore_face: bool = False
    controlnet_model: str | None = None
    controlnet_module: str | None = None
    controlnet_weight: float = 1.0
    controlnet_start: float = 0.0
    controlnet_end: float = 1.0

    FIELDS = (F(1, "detector", "str", required=True), F(2, "detector_classes", "str"), F(3, "confidence", "number"),
              F(4, "mask_k_largest", "uint"), F(5, "mask_min_ratio", "number"), F(6, "mask_max_ratio", "number"),
              F(7, "dilate_erode", "sint"), F(8, "x_offset", "sint"), F(9, "y_offset", "sint"), F(10, "mask_merge", "str"),
              F(11, "mask_blur", "uint"), F(12, "strength", "number"), F(13, "masked_padding", "uint"),
              F(14, "width", "px"), F(15, "height", "px"), F(16, "steps", "uint"), F(17, "guidance_scale", "number"),
              F(18, "scheduler", "enum:scheduler"), F(19, "schedule_type", "str"), F(20, "checkpoint", "str"),
              F(21, "vae", "str"), F(22, "noise_multiplier", "number"), F(23, "clip_skip", "uint"), F(24, "prompt", "text"),
              F(25, "negative_prompt", "text"), F(26, "restore_face", "bool"), F(27, "controlnet_model", "str"),
              F(28, "controlnet_module", "str"), F(29, "controlnet_weight", "number"), F(30, "controlnet_start", "number"),
              F(31, "controlnet_end", "number"))

    def __post_init__(self):
        _check(self.detector is not None, "detail.detector is required")
        for name in ("detector", "detector_classes", "scheduler", "schedule_type", "checkpoint", "vae",
                     "controlnet_model", "controlnet_module"):
            _name(getattr(self, name), name)
        for name in ("confidence", "mask_min_ratio", "mask_max_ratio", "controlnet_weight", "controlnet_start", "controlnet_end"):
            _unit(getattr(self, name), name)
        _check(_finite(self.strength) and 0 < self.strength <= 1, f"detail.strength must be in (0, 1], got {self.strength!r}")
        for name in ("mask_k_largest", "mask_blur"):
            v = getattr(self, name)
            _check(_is_int(v) and 0 <= v <= MAX_SIDE, f"detail.{name} must be 0..{MAX_SIDE}, got {v!r}")
        for name in ("dilate_erode", "x_offset", "y_offset"):
            v = getattr(self, name)
            _check(_is_int(v) and -MAX_SIDE <= v <= MAX_SIDE, f"detail.{name} must be -{MAX_SIDE}..{MAX_SIDE}, got {v!r}")
        _check(self.mask_merge is None or self.mask_merge in MASK_MERGES,
               f"detail.mask_merge must be one of {', '.join(MASK_MERGES)}, got {self.mask_merge!r}")
        _check(self.masked_padding is None or (_is_int(self.masked_padding) and 0 <= self.masked_padding <= MAX_SIDE),
               f"detail.masked_padding must be 0..{MAX_SIDE}, got {self.masked_padding!r}")
        _check((self.width is None) == (self.height is None), "detail.width and detail.height go together")
        for side in ("width", "height"):
            v = getattr(self, side)
            _check(v is None or (_is_int(v) and 1 <= v <= MAX_SIDE), f"detail.{side} must be 1..{MAX_SIDE}, got {v!r}")
        _check(self.steps is None or (_is_int(self.steps) and 1 <= self.steps <= MAX_STEPS),
               f"detail.steps must be 1..{MAX_STEPS}, got {self.steps!r}")
        _check(self.guidance_scale is None or (_finite(self.guidance_scale) and self.guidance_scale >= 0),
               f"detail.guidance_scale must be a finite number >= 0, got {self.guidance_scale!r}")
        _check(self.noise_multiplier is None or (_finite(self.noise_multiplier) and 0 < self.noise_multiplier <= 2),
               f"detail.noise_multiplier must be in (0, 2], got {self.noise_multiplier!r}")
        _check(self.clip_skip is None or (_is_int(self.clip_skip) and 1 <= self.clip_skip <= 64),
               f"detail.clip_skip must be 1..64, got {self.clip_skip!r}")
        _check(self.schedule_type is None or self.scheduler is not None, "detail.schedule_type needs detail.scheduler")
        _check(isinstance(self.restore_face, bool), "detail.restore_face must be true or false")
        for name in ("prompt", "negative_prompt"):
            _check(getattr(self, name) is None or isinstance(getattr(self, name), str), f"detail.{name} must be a string")


@dataclass(frozen=True)
class Detail:
    """The detail passes, in the order they ran, and the version of the tool that ran them."""

    passes: tuple[DetailPass, ...]
    version: str | None = None           # ADetailer's version

    FIELDS = (F(1, "passes", "msg", DetailPass, repeated=True, required=True), F(2, "version", "version"))

    def __post_init__(self):
        object.__setattr__(self, "passes", tuple(self.passes))
        _check(1 <= len(self.passes) <= MAX_PASSES, f"detail needs 1..{MAX_PASSES} passes, got {len(self.passes)}")
        _check(all(isinstance(p, DetailPass) for p in self.passes), "detail.passes must be detail passes")
        _check(self.version is None or (isinstance(self.version, str) and 0 < len(self.version) <= 64),
               f"detail.version must be a version string, got {self.version!r}")

    def not_reproducible(self) -> str:
        """Why the engine cannot run these passes: their detectors are pickled YOLO or MediaPipe models."""
        names = ", ".join(dict.fromkeys(p.detector for p in self.passes))
        return f"ADetailer detail pass (detector {names}) cannot be run"
