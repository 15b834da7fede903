"""What an importer produces: the mapped syntax, what was kept aside, and why.

``Builder`` is filled by one tool-specific mapper. The rule it enforces: a
field goes into the syntax only when its meaning is certain; anything else goes
to ``Source.extra``. When something that changes the image cannot be expressed
(img2img, hires fix, an unknown sampler, ...), ``block()`` records why and no
generation syntax is produced at all -- a missing syntax is honest, a wrong one
is not. The whole metadata is then kept in ``extra["raw"]``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..limits import DEFAULT_LIMITS
from ..syntax.elements import ComponentRef, Embedding, Generation, Lora, ModelRef, Source
from ..syntax.img2img import Img2Img
from ..syntax.detail import Detail
from ..syntax.passes import HiresFix, Refiner
from ..syntax.registry import MODELS, code_of

MAX_PROMPT_CHARS = 65536
# characters that make a prompt mean something else than plain text to the tool that wrote it
_PROMPT_SYNTAX = re.compile(r"[()\[\]{}:|]|\bAND\b|\bBREAK\b|[+-]{1,}(?=\s|,|$)")


@dataclass
class Imported:
    """One image's metadata mapped onto the aigif syntax."""

    tool: str
    version: str | None
    generation: Generation | None
    model: ModelRef | None
    extra: dict
    unsupported: list[str]
    metadata_bytes: int = 0
    carrier: str = ""
    notes: list[str] = field(default_factory=list)
    segments: tuple = ()             # extension segments kept with the syntax (the ComfyUI graph)
    partial: list[str] = field(default_factory=list)   # why the kept syntax cannot regenerate the image
    hires: HiresFix | None = None    # the hires-fix second pass
    refiner: Refiner | None = None   # a second model finishing the schedule
    img2img: Img2Img | None = None   # the generation started from an init image (and a mask)
    inputs: Any = None               # aigif.inputs.InputImages the user gave for it (aigif encode --init-image)
    detail: Detail | None = None     # detector + inpainting passes (ADetailer)

    @property
    def regenerable(self) -> bool:
        return self.has_syntax and not self.partial and not self.img2img_reason

    @property
    def regenerable_reason(self) -> str:
        """``yes`` or ``no: <why>``, as the encode result and ``aigif info`` say it."""
        if self.regenerable:
            return "yes"
        why = [*self.partial, *([self.img2img_reason] if self.img2img_reason else [])]
        return "no: " + ("; ".join(why) if self.has_syntax else (self.reason or "no generation syntax"))

    @property
    def img2img_reason(self) -> str | None:
        """Why the image-to-image pass cannot run: images the tool did not store and the user did not give."""
        el = self.img2img
        if el is None:
            return None
        if el.fill == "original" and self.inputs is None and (el.image is None or (el.inpaint and el.mask is None) or el.missing_inputs()):
            wanted = (("init image", el.image), ("mask", el.mask)) if el.inpaint else (("init image", el.image),)
            names = [f"{what} {r.label}" if r is not None else what for what, r in wanted]
            return (f"{' and '.join(names)} not stored (give {'them' if el.inpaint else 'it'}: aigif encode "
                    f"--init-image FILE{' --mask FILE' if el.inpaint else ''})")
        return el.not_reproducible()

    @property
    def source(self) -> Source:
        return Source(tool=self.tool, version=self.version, extra=self.extra or None)

    @property
    def has_syntax(self) -> bool:
        return self.generation is not None and self.model is not None

    @property
    def reason(self) -> str:
        """Why no syntax was kept, or why the kept syntax cannot regenerate the image ("" when it can)."""
        return "; ".join(self.unsupported or [*self.partial, *([self.img2img_reason] if self.img2img_reason else [])])


PENDING, BLOCK = "pending", "block"


def clip_skip_for(rule: str, layer: int, family: str | None):
    """diffusers ``clip_skip`` for "use the *layer*-th text-encoder layer from the end" (1 = last).

    The same tool value means different things per pipeline family: diffusers' SD1
    pipeline takes ``hidden_states[-(clip_skip + 1)]``, its SDXL pipeline
    ``hidden_states[-(clip_skip + 2)]`` (the penultimate layer is already the default);
    A1111 ignores clip skip for SDXL. Returns an int, None (no skip), PENDING (family
    unknown: not mapped) or BLOCK (not expressible).
    """
    if layer <= 1:          # the last layer: A1111's default; for ComfyUI only SD1's default
        if rule == "comfyui" and family != "sd1":
            return BLOCK if family == "sdxl" else PENDING
        return None
    if family == "sd1":
        return layer - 1
    if family == "sdxl":
        if rule == "a1111":
            return None
        return (layer - 2) or None
    return PENDING


A1111_LIKE = ("A1111", "Forge", "SD.Next", "Civitai")     # tools that count clip skip as A1111 does


def rule_of(tool: str) -> str:
    return "a1111" if tool in A1111_LIKE else "comfyui"


class Builder:
    """Collects mapped fields, extras and blocking reasons for one image."""

    def __init__(self, tool: str, raw: dict[str, Any]):
        self.tool = tool
        self.raw = raw
        self.version: str | None = None
        self.gen: dict[str, Any] = {}
        self.model: dict[str, Any] = {}
        self.loras: list[Lora] = []
        self.embeddings: list[Embedding] = []
        self.vae: ComponentRef | None = None
        self.extra: dict[str, Any] = {}
        self.unsupported: list[str] = []
        self.partial_reasons: list[str] = []  # the syntax is kept but describes only part of the generation
        self.segments: list = []              # extension segments (lossless graph)
        self.raw_kept: set[str] = set()       # raw fields a segment already holds (not copied to extra.raw)
        self.clip_layer: int | None = None    # the tool's "n-th layer from the end" (A1111 Clip skip, ComfyUI -stop_at)
        self.hires: dict[str, Any] | None = None   # the hires element's fields (importers.passes)
        self.refiner: dict[str, Any] | None = None  # the refiner element's fields: model (dict) and switch_at
        self.img2img: dict[str, Any] | None = None  # the img2img element's JSON form (importers.img2img)
        self.detail: Detail | None = None           # detail passes (importers.detail)

    def family(self) -> str | None:
        fam = self.model.get("family")
        if not fam and self.model.get("name") and code_of("model", self.model["name"]) is not None:
            from ..syntax.registry import model_entry

            fam = model_entry(self.model["name"]).family
        return fam

    def _apply_clip_layer(self) -> None:
        if self.clip_layer is None:
            return
        res = clip_skip_for(rule_of(self.tool), self.clip_layer, self.family())
        if res == BLOCK:
            self.block(f"text-encoder layer {-self.clip_layer} cannot be expressed for this model family")
        elif res == PENDING or (res is None and (self.clip_layer > 1 or rule_of(self.tool) == "comfyui")):
            self.extra["clip_layer"] = self.clip_layer    # kept; applied once the family is known (see decide)
        elif res is not None:
            self.gen["clip_skip"] = res

    def block(self, reason: str) -> None:
        if reason not in self.unsupported:
            self.unsupported.append(reason)

    def partial(self, reason: str) -> None:
        """The mapped syntax stays (searchable, shown) but cannot regenerate the image: *reason* says why."""
        if reason not in self.partial_reasons:
            self.partial_reasons.append(reason)

    def keep(self, key: str, value: Any) -> None:
        """Keep an unmapped value in Source.extra (never silently dropped)."""
        if value is not None:
            self.extra[key] = value

    def embedding(self, name: str, sha: str | None = None, token: str | None = None) -> None:
        """A textual-inversion embedding the prompts use (a hash that is not a file hash is not kept)."""
        try:
            self.embeddings.append(Embedding(name=name, token=token, sha256=sha if valid_hash(sha) else None))
        except ConfigError as exc:
            self.block(f"embedding {name[:40]!r}: {exc}")

    def prompt_syntax(self, syntax: str) -> None:
        """Mark that the prompts use the tool's weighting syntax, which plain diffusers reads literally."""
        text = f"{self.gen.get('prompt', '')}\n{self.gen.get('negative_prompt', '')}"
        if _PROMPT_SYNTAX.search(text):
            self.extra["prompt_syntax"] = syntax

    def set_model(self, name: str | None, sha: str | None = None, *, trusted_registry: bool = False, **more: Any) -> None:
        """Registry model when the digest matches one; else a named reference with its hash."""
        reg = registry_model_for(sha) if sha else None
        if reg is not None:
            self.model = {"name": reg}
            if name and name != reg:
                self.extra["model_name"] = name
            return
        if not name and not sha:
            self.block("the model is not named in the metadata")
            return
        if name and code_of("model", name) is not None:
            if trusted_registry or (sha and registry_model_for(sha) == name):
                self.model = {"name": name}
                return
            # a user's checkpoint that happens to share a registry name: never read it as the registry model
            name = f"checkpoint:{name}"
        if sha and not valid_hash(sha):
            self.extra["model_hash"] = sha
            sha = None
        if not name and not sha:
            self.block("the model is identified only by a hash that is not a sha256 / AutoV2 hash")
            return
        self.model = {"name": name or f"sha256:{sha}", "sha256": sha, **{k: v for k, v in more.items() if v is not None}}

    def _hires(self) -> HiresFix | None:
        if self.hires is None:
            return None
        try:
            hires = HiresFix(**self.hires)
        except (ConfigError, TypeError) as exc:
            self.block(f"hires fix: value out of range: {exc}")
            return None
        if hires.not_reproducible():
            self.partial(hires.not_reproducible())
        fam = self._engine_family()
        if fam is not None and (fam.img2img is None or not fam.latent_img2img):
            self.partial(f"a hires fix on {fam.name} (the engine has no image-to-image pass for the family)")
        return hires

    def _refiner(self) -> Refiner | None:
        if self.refiner is None:
            return None
        try:
            refiner = Refiner(**{**self.refiner, "model": ModelRef(**{k: v for k, v in self.refiner["model"].items()
                                                                       if v is not None})})
        except (ConfigError, TypeError) as exc:
            self.block(f"refiner: value out of range: {exc}")
            return None
        if self.hires is not None:
            self.partial("a refiner together with a hires fix is not regenerated")
        fam = self._engine_family()
        if fam is not None and not fam.denoising_split:
            self.partial(f"a refiner on a {fam.name} base model (its pipeline cannot split the schedule)")
        return refiner

    def _img2img(self) -> Img2Img | None:
        if self.img2img is None:
            return None
        from ..syntax.elements import from_dict

        try:
            el = from_dict(Img2Img, self.img2img, "img2img")
        except ConfigError as exc:
            self.block(f"image-to-image: value out of range: {exc}")
            return None
        fam = self._engine_family()
        if fam is not None and (fam.inpaint if el.inpaint else fam.img2img) is None:
            self.partial(f"{el.kind} on {fam.name} (the engine has no such pipeline for the family)")
        return el

    def _engine_family(self):
        """The engine's registration of the model's family (None when the family is not known or not registered)."""
        name = self.family()
        if not name:
            return None
        from ..engine.families import registered_families

        return next((f for f in registered_families() if f.name == name), None)

    def _made_size(self) -> tuple[int, int]:
        """The size of the image the mapped syntax makes (the hires pass's output size when there is one)."""
        w, h = self.gen["width"], self.gen["height"]
        if self.hires is not None:
            try:
                return HiresFix(**self.hires).output_size(w, h)
            except (ConfigError, TypeError):
                pass
        return w, h

    def build(self, image_size: tuple[int, int] | None = None, metadata_bytes: int = 0, carrier: str = "") -> Imported:
        gen = model = None
        if image_size and not self.unsupported:
            self.gen.setdefault("width", image_size[0])
            self.gen.setdefault("height", image_size[1])
            if self._made_size() != tuple(image_size):
                # resized or cropped after generation: the syntax still describes the generation,
                # the regeneration check (not the mapping) decides whether the pixels match
                self.extra["image_size"] = [image_size[0], image_size[1]]
        for kind in ("loras", "embeddings"):      # a file may list thousands; the syntax holds max_loras of each
            if len(getattr(self, kind)) > DEFAULT_LIMITS.max_loras:
                self.block(f"{len(getattr(self, kind))} {kind.replace('loras', 'LoRAs')}, more than the "
                           f"{DEFAULT_LIMITS.max_loras} a model reference holds")
                setattr(self, kind, [])
        if not self.unsupported:
            self._apply_clip_layer()
        if not self.unsupported:
            if len(self.gen.get("prompt", "")) > MAX_PROMPT_CHARS or len(self.gen.get("negative_prompt", "")) > MAX_PROMPT_CHARS:
                self.block(f"a prompt is longer than {MAX_PROMPT_CHARS} characters")
            missing = [k for k in ("prompt", "seed", "num_inference_steps", "guidance_scale") if k not in self.gen]
            if missing:
                self.block(f"the metadata lacks {', '.join(missing)}")
        hires, refiner, img2img = self._hires(), self._refiner(), self._img2img()   # kept with a partial syntax too
        if self.detail is not None:
            self.partial(self.detail.not_reproducible())
        if not self.unsupported:
            try:
                gen = Generation(**self.gen)
                model = ModelRef(**{k: v for k, v in self.model.items() if v is not None},
                                 vae=self.vae, loras=tuple(self.loras), embeddings=tuple(self.embeddings))
            except (ConfigError, TypeError) as exc:
                self.block(f"value out of range: {exc}")
                gen = model = None
        extra = self.extra
        raw = {k: _maybe_json(v) for k, v in self.raw.items() if k not in self.raw_kept}
        summary = self._summary(image_size) if self.unsupported else None
        if summary is not None:
            # what was mapped still names the main pass: kept as a partial syntax, with every field in extra.raw
            gen, model = summary
            self.partial_reasons += [r for r in self.unsupported if r not in self.partial_reasons]
            self.unsupported = []
            # raw holds what the mapped extras would repeat; the model identity stays readable (aigif info)
            extra = {"raw": raw, **{k: v for k, v in self.extra.items() if k in IDENTITY_KEYS}} if raw else self.extra
        elif self.unsupported:
            gen = model = None
            extra = {"unsupported": list(self.unsupported), **({"raw": raw} if raw else {})}
        return Imported(self.tool, self.version, gen, model, safe_extra(extra), list(self.unsupported), metadata_bytes, carrier,
                        segments=tuple(self.segments), partial=list(self.partial_reasons) if gen is not None else [],
                        hires=hires if gen is not None else None, refiner=refiner if gen is not None else None,
                        img2img=img2img if gen is not None else None,
                        detail=self.detail if gen is not None else None)


    def _summary(self, image_size) -> tuple[Generation, ModelRef] | None:
        """The mapped main pass of a generation the syntax cannot fully express, or None when too little is known."""
        gen = {k: v for k, v in self.gen.items() if k != "clip_skip"}
        if image_size:
            gen.setdefault("width", image_size[0])
            gen.setdefault("height", image_size[1])
        if any(k not in gen for k in ("prompt", "seed", "num_inference_steps", "guidance_scale", "width", "height")) or \
                len(gen["prompt"]) > MAX_PROMPT_CHARS or len(gen.get("negative_prompt", "")) > MAX_PROMPT_CHARS:
            return None
        model = {k: v for k, v in self.model.items() if v is not None} or {"name": UNNAMED_MODEL}
        try:
            return Generation(**gen), ModelRef(**model, vae=self.vae, loras=tuple(self.loras), embeddings=tuple(self.embeddings))
        except (ConfigError, TypeError):
            return None


IDENTITY_KEYS = ("civitai_checkpoint", "model_hash", "model_key")    # source.extra keys naming the model
UNNAMED_MODEL = "unnamed"       # partial syntax of a file that does not name its model


# --- helpers ------------------------------------------------------------------------
_HEX = re.compile(r"^[0-9a-f]+$")


def valid_hash(sha: str | None) -> bool:
    return bool(sha) and len(sha) in (10, 12, 64) and bool(_HEX.match(sha))


def registry_model_for(sha: str | None) -> str | None:
    """Registry model whose digest is *sha*: a full sha256 or an A1111 AutoV2 prefix (10 hex)."""
    if not sha:
        return None
    h = sha.strip().lower()
    if len(h) not in (10, 64) or not _HEX.match(h):
        return None
    for entry in MODELS.values():
        for full in (entry.single_file_sha256, entry.sha256):
            if full and (full == h or (len(h) == 10 and full[:10] == h)):
                return entry.name
    return None


def to_int(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")) or v != int(v):
            raise ValueError(f"{v} is not an integer")
        return int(v)
    if not isinstance(v, (int, str)):
        raise ValueError(f"{v!r} is not an integer")
    return int(str(v).strip())


def to_float(v: Any) -> float:
    if isinstance(v, bool):
        raise ValueError("a boolean is not a number")
    if not isinstance(v, (int, float, str)):
        raise ValueError(f"{v!r} is not a number")
    try:
        x = float(str(v).strip()) if isinstance(v, str) else float(v)
    except OverflowError:
        raise ValueError(f"{v} is out of range") from None
    if x != x or x in (float("inf"), float("-inf")):
        raise ValueError(f"{v} is not finite")
    return x


def fmt_num(x: float) -> str:
    """A number as the tools write it: ``2`` for whole numbers, else the shortest round-trip form."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def stem(filename: str) -> str:
    """``models/SDXL/juggernaut.safetensors`` -> ``juggernaut``."""
    base = re.split(r"[\\/]", filename)[-1]
    for ext in (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft"):
        if base.lower().endswith(ext):
            return base[: -len(ext)]
    return base


def _maybe_json(v: Any) -> Any:
    """Keep JSON text as an object (msgpack stores it smaller than the text); other text as is."""
    if isinstance(v, str) and v[:1] in "{[":
        try:
            return json.loads(v)
        except (json.JSONDecodeError, RecursionError):
            return v
    return v


def safe_extra(extra: dict) -> dict:
    """Make *extra* storable as a msgpack map readable within the default limits; else store JSON text."""
    from ..limits import DEFAULT_LIMITS
    from ..syntax.schema import decode_map

    import msgpack

    out = {}
    for k, v in extra.items():
        try:
            decode_map(msgpack.packb({k: v}, use_bin_type=True), "extra", DEFAULT_LIMITS)
            out[k] = v
        except Exception:  # too deep, huge ints, non-JSON types: keep the value as JSON text
            out[k] = json.dumps(v, default=str, ensure_ascii=False)
    return out


def known_family(name: str | None) -> str | None:
    return name if name and code_of("family", name) is not None else None
