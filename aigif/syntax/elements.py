"""The syntax elements of AIGIF: platform, model, data configuration (generation).

Frozen dataclasses; each declares its wire ``FIELDS`` (see :mod:`.schema`) and
validates itself, so a value that cannot be written is refused when built, not
when saved. ``to_dict``/``from_dict`` give the JSON form used by ``aigif pack``
and ``aigif info --json``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..container.varint import U64_MAX
from ..errors import ConfigError
from . import registry
from .schema import F

MAX_SIDE = 16384
MAX_STEPS = 10000
MAX_SEQUENCE = 4096   # text tokens; FLUX uses 512, SD 3.5 256


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class Platform:
    """What the image was generated on: everything that can change the pixels."""

    device: str | None = None
    gpu: str | None = None
    compute_capability: str | None = None
    driver: str | None = None
    cuda: str | None = None
    cudnn: str | None = None
    torch: str | None = None
    diffusers: str | None = None
    dtype: str | None = None
    attention: str | None = None
    threads: int | None = None
    deterministic: bool | None = None
    cpu: str | None = None
    transformers: str | None = None
    onednn: str | None = None

    FIELDS = (
        F(1, "device", "enum:device"), F(2, "gpu", "str"), F(3, "compute_capability", "version"),
        F(4, "driver", "version"), F(5, "cuda", "version"), F(6, "cudnn", "version"),
        F(7, "torch", "version"), F(8, "diffusers", "version"), F(9, "dtype", "enum:dtype"),
        F(10, "attention", "enum:attention"), F(11, "threads", "uint"), F(12, "deterministic", "bool"),
        F(13, "cpu", "str"), F(14, "transformers", "version"), F(15, "onednn", "enum:onednn"),
    )

    def __post_init__(self):
        _check(self.threads is None or (_is_int(self.threads) and 0 < self.threads < 65536), f"platform.threads must be 1..65535, got {self.threads!r}")


@dataclass(frozen=True)
class ComponentRef:
    """A replaced pipeline component (e.g. a VAE): where it comes from and its digest."""

    name: str | None = None
    repo: str | None = None
    revision: str | None = None
    sha256: str | None = None
    local: str | None = None
    subfolder: str | None = None

    FIELDS = (F(1, "name", "str"), F(2, "repo", "str"), F(3, "revision", "hex"), F(4, "sha256", "hex"),
              F(5, "local", "str"), F(6, "subfolder", "str"))

    def __post_init__(self):
        _check(any((self.name, self.repo, self.local)), "a component needs a name, repo or local path")
        _check_sha(self.sha256)


@dataclass(frozen=True)
class Lora:
    """A LoRA applied to the model with its strength."""

    name: str | None = None
    weight: float = 1.0
    repo: str | None = None
    revision: str | None = None
    sha256: str | None = None
    local: str | None = None
    weight_name: str | None = None
    text_weight: float | None = None    # strength on the text encoder(s); None: ``weight`` (ComfyUI strength_clip)

    FIELDS = (F(1, "name", "str"), F(2, "weight", "number"), F(3, "repo", "str"), F(4, "revision", "hex"),
              F(5, "sha256", "hex"), F(6, "local", "str"), F(7, "weight_name", "str"), F(8, "text_weight", "number"))

    def __post_init__(self):
        _check(any((self.name, self.repo, self.local)), "a LoRA needs a name, repo or local path")
        for w in (self.weight, *([] if self.text_weight is None else [self.text_weight])):
            _check(isinstance(w, (int, float)) and not isinstance(w, bool), f"lora weight must be a number, got {w!r}")
        _check_sha(self.sha256)


@dataclass(frozen=True)
class Embedding:
    """A textual-inversion embedding: new token vectors bound to ``token`` wherever it stands in the prompts."""

    name: str
    token: str | None = None            # the text in the prompts it replaces; None: ``name``
    sha256: str | None = None
    local: str | None = None
    text_encoders: str | None = None    # comma-separated pipeline components it was loaded into (informative)

    FIELDS = (F(1, "name", "str", required=True), F(2, "token", "str", same_as="name"), F(3, "sha256", "hex"),
              F(4, "local", "str"), F(5, "text_encoders", "str"))

    def __post_init__(self):
        _check(isinstance(self.name, str) and bool(self.name.strip()), "an embedding needs a name")
        if self.token is None:
            object.__setattr__(self, "token", self.name)
        _check(isinstance(self.token, str) and bool(self.token.strip()) and len(self.token) <= 256,
               f"an embedding's token must be 1..256 characters of text, got {self.token!r}")
        _check_sha(self.sha256)


def _check_sha(sha: str | None) -> None:
    _check(sha is None or (len(sha) in (10, 12, 64) and all(c in "0123456789abcdef" for c in sha)),
           f"sha256 must be 64 (or an A1111 short hash of 10/12) lower-case hex digits, got {sha!r}")


@dataclass(frozen=True)
class ModelRef:
    """Which model: a registry name (pinned repo+revision+digest) or an explicit reference."""

    name: str | None = None
    family: str | None = None
    repo: str | None = None
    revision: str | None = None
    sha256: str | None = None
    local: str | None = None
    variant: str | None = None
    weights_file: str | None = None
    vae: ComponentRef | None = None
    loras: tuple[Lora, ...] = ()
    text_encoders: tuple[ComponentRef, ...] = ()   # separate text encoder files (ComfyUI layout); subfolder = component
    embeddings: tuple[Embedding, ...] = ()          # textual-inversion embeddings the prompts use

    FIELDS = (F(1, "name", "enum:model"), F(2, "family", "enum:family"), F(3, "repo", "str"), F(4, "revision", "hex"),
              F(5, "sha256", "hex"), F(6, "local", "str"), F(7, "variant", "str"), F(8, "weights_file", "str"),
              F(9, "vae", "msg", ComponentRef), F(10, "loras", "msg", Lora, repeated=True),
              F(11, "text_encoders", "msg", ComponentRef, repeated=True), F(12, "embeddings", "msg", Embedding, repeated=True))

    def __post_init__(self):
        _check(any((self.name, self.repo, self.local)), "a model needs a registry name, a repo or a local path")
        _check_sha(self.sha256)
        object.__setattr__(self, "loras", tuple(self.loras))
        object.__setattr__(self, "text_encoders", tuple(self.text_encoders))

    @property
    def is_registry_only(self) -> bool:
        return bool(self.name) and self == ModelRef(name=self.name)  # no name: ModelRef(name=None) is invalid


@dataclass(frozen=True)
class Generation:
    """The data configuration: everything the pipeline call takes."""

    prompt: str
    seed: int
    num_inference_steps: int
    guidance_scale: float
    width: int
    height: int
    negative_prompt: str = ""
    scheduler: str | None = None
    scheduler_config: dict | None = None
    eta: float | None = None
    clip_skip: int | None = None
    batch_index: int | None = None
    guidance_rescale: float | None = None
    true_cfg_scale: float | None = None       # FLUX / Qwen-Image: real CFG with the negative prompt
    max_sequence_length: int | None = None    # T5 / LLM prompt tokens
    min_sequence_length: int | None = None    # T5 tokens padded to at least this many, never truncated (ComfyUI, Forge)
    prompt_2: str | None = None               # second / third text encoder's prompt, only when it differs
    prompt_3: str | None = None

    FIELDS = (F(1, "prompt", "text", required=True), F(2, "negative_prompt", "text"), F(3, "seed", "uint", required=True),
              F(4, "num_inference_steps", "uint", required=True), F(5, "guidance_scale", "number", required=True),
              F(6, "width", "px", required=True), F(7, "height", "px", required=True, same_as="width"), F(8, "scheduler", "enum:scheduler"),
              F(9, "scheduler_config", "map"), F(10, "eta", "number"), F(11, "clip_skip", "uint"),
              F(12, "batch_index", "uint"), F(13, "guidance_rescale", "number"), F(14, "true_cfg_scale", "number"),
              F(15, "max_sequence_length", "uint"), F(16, "prompt_2", "text"), F(17, "prompt_3", "text"),
              F(18, "min_sequence_length", "uint"))

    def __post_init__(self):
        _check(isinstance(self.prompt, str) and isinstance(self.negative_prompt, str), "prompt and negative_prompt must be strings")
        _check(_is_int(self.seed) and 0 <= self.seed <= U64_MAX, f"seed must be an integer in 0..2**64-1, got {self.seed!r}")
        _check(_is_int(self.num_inference_steps) and 1 <= self.num_inference_steps <= MAX_STEPS,
               f"num_inference_steps must be 1..{MAX_STEPS}, got {self.num_inference_steps!r}")
        for side in ("width", "height"):
            v = getattr(self, side)
            _check(_is_int(v) and 1 <= v <= MAX_SIDE, f"{side} must be 1..{MAX_SIDE}, got {v!r}")
        for name in ("prompt_2", "prompt_3"):   # the same text as prompt is not stored twice
            v = getattr(self, name)
            _check(v is None or isinstance(v, str), f"{name} must be a string")
            if v == self.prompt:
                object.__setattr__(self, name, None)
        _check(self.max_sequence_length is None or (_is_int(self.max_sequence_length) and 1 <= self.max_sequence_length <= MAX_SEQUENCE),
               f"max_sequence_length must be 1..{MAX_SEQUENCE}, got {self.max_sequence_length!r}")
        _check(self.min_sequence_length is None or (_is_int(self.min_sequence_length) and 1 <= self.min_sequence_length <= MAX_SEQUENCE),
               f"min_sequence_length must be 1..{MAX_SEQUENCE}, got {self.min_sequence_length!r}")
        _check(self.min_sequence_length is None or self.max_sequence_length is None,
               "min_sequence_length (pad, never truncate) and max_sequence_length (pad and truncate) exclude each other")
        for name in ("guidance_scale", "eta", "guidance_rescale", "true_cfg_scale"):
            v = getattr(self, name)
            _check(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")),
                   f"{name} must be a finite number, got {v!r}")
        _check(self.clip_skip is None or (_is_int(self.clip_skip) and 0 <= self.clip_skip <= 64), f"clip_skip must be 0..64, got {self.clip_skip!r}")
        _check(self.batch_index is None or (_is_int(self.batch_index) and 0 <= self.batch_index < 2**32), f"batch_index must be 0..2**32-1, got {self.batch_index!r}")
        _check(self.scheduler_config is None or isinstance(self.scheduler_config, dict), "scheduler_config must be an object")
        _check(self.scheduler is None or isinstance(self.scheduler, str), f"scheduler must be a string, got {self.scheduler!r}")
        if self.scheduler is not None:  # other tools' sampler names ('DPM++ 2M Karras') are held as the registry's
            object.__setattr__(self, "scheduler", registry.scheduler_from_sampler(self.scheduler) or self.scheduler)


@dataclass(frozen=True)
class Fingerprint:
    """What the generated pixels were: an exact hash and a perceptual one (see spec: Fingerprint)."""

    pixel_sha256: str
    width: int
    height: int
    perceptual: str | None = None

    FIELDS = (F(1, "pixel_sha256", "hex", required=True), F(2, "width", "uint", required=True),
              F(3, "height", "uint", required=True), F(4, "perceptual", "hex"))

    def __post_init__(self):
        _check(isinstance(self.pixel_sha256, str) and 16 <= len(self.pixel_sha256) <= 64 and len(self.pixel_sha256) % 2 == 0
               and all(c in "0123456789abcdef" for c in self.pixel_sha256), "pixel_sha256 must be 16..64 lower-case hex digits")
        _check(_is_int(self.width) and _is_int(self.height) and 0 < self.width <= MAX_SIDE and 0 < self.height <= MAX_SIDE,
               "fingerprint size out of range")


@dataclass(frozen=True)
class Source:
    """Where an imported file came from: the tool and what could not be mapped."""

    tool: str
    version: str | None = None
    extra: dict | None = None

    FIELDS = (F(1, "tool", "str", required=True), F(2, "version", "version"), F(3, "extra", "map"))


# --- JSON form -------------------------------------------------------------------
def to_dict(obj: Any) -> dict:
    """JSON-ready dict of an element, defaults omitted, nested elements as dicts."""
    out = {}
    defaults = {f.name: f.default for f in dataclasses.fields(obj) if f.default is not dataclasses.MISSING}
    for f in type(obj).FIELDS:
        v = getattr(obj, f.name)
        if f.repeated:
            if v:
                out[f.name] = [to_dict(x) for x in v]
            continue
        if f.name in defaults and v == defaults[f.name] and not f.required:
            continue
        out[f.name] = to_dict(v) if f.kind == "msg" else bytes_to_json(v) if f.kind == "bytes" else v
    return out


def bytes_to_json(v: bytes) -> dict:
    import base64

    return {"base64": base64.b64encode(v).decode("ascii")}


def bytes_from_json(v: Any, where: str) -> bytes:
    """Bytes from their JSON form ``{"base64": "..."}`` (as the document's residual and pixels)."""
    import base64
    import binascii

    if not isinstance(v, dict) or set(v) != {"base64"} or not isinstance(v["base64"], str):
        raise ConfigError(f"{where} must be an object {{\"base64\": \"...\"}}")
    try:
        return base64.b64decode(v["base64"], validate=True)
    except binascii.Error as exc:
        raise ConfigError(f"{where}.base64 is not valid base64: {exc}") from None


_JSON_TYPES = {
    "uint": int, "sint": int, "bool": bool, "str": str, "text": str, "number": (int, float), "px": int,
    "version": str, "hex": str, "map": dict,
}


def from_dict(cls: type, d: Any, where: str) -> Any:
    """Build an element from its JSON dict; unknown keys are an error, not dropped."""
    if not isinstance(d, dict):
        raise ConfigError(f"{where} must be an object, got {type(d).__name__}")
    fields = {f.name: f for f in cls.FIELDS}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(fields)}")
    values = {}
    for name, v in d.items():
        f = fields[name]
        if v is None and not f.required:
            continue
        if f.repeated:
            if not isinstance(v, list):
                raise ConfigError(f"{where}.{name} must be a list")
            values[name] = tuple(from_dict(f.msg, x, f"{where}.{name}[{i}]") for i, x in enumerate(v))
        elif f.kind == "msg":
            values[name] = from_dict(f.msg, v, f"{where}.{name}")
        elif f.kind == "bytes":
            values[name] = bytes_from_json(v, f"{where}.{name}")
        else:
            want = str if f.kind.startswith("enum:") else _JSON_TYPES[f.kind]
            if not isinstance(v, want) or (want is int and isinstance(v, bool)) or (f.kind == "number" and isinstance(v, bool)):
                raise ConfigError(f"{where}.{name} must be of type {f.kind}, got {v!r}")
            values[name] = float(v) if f.kind == "number" else v
    missing = [f.name for f in cls.FIELDS if f.required and f.name not in values]
    if missing:
        raise ConfigError(f"{where}: missing required key(s) {', '.join(missing)}")
    try:
        return cls(**values)
    except TypeError as exc:  # pragma: no cover - guarded above
        raise ConfigError(f"{where}: {exc}") from None
