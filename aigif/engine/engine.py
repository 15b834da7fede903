"""The regeneration engine: a syntax (model + generation + platform) <-> a diffusers pipeline call."""
from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AigifError, ConfigError, CorruptError
from ..limits import DEFAULT_LIMITS, Limits
from ..fidelity import FidelityReport, Thresholds, check_fingerprint, compare_images, fingerprint
from ..syntax import registry
from ..syntax.defaults import model_family
from ..syntax.document import Document
from ..syntax.elements import Generation, ModelRef, Platform
from ..syntax.flow import check_schedule
from ..syntax.img2img import Img2Img
from ..syntax.passes import HiresFix, Refiner
from ..inputs import InputImages
from .adapters import apply_adapters
from .components import check_vae_folder, locate_lora, locate_vae, lora_label, vae_label
from .embeddings import applied as embeddings_applied, bind as bind_embeddings, check_passes, recorded as recorded_embeddings
from .digest import check_digest, check_file_digest, file_sha256
from .families import family_for_pipeline, get_family
from .hires import check_hires, run_hires
from .upscale import pixel_upscaler
from .img2img import check_img2img, decode_exact, load_images, run_img2img
from .refiner import check_refiner, run_refiner
from .lora import adapter_name, apply_loras
from .loader import DEFAULT_MODEL, PipelineCache, Resolved, check_pipeline_folder, load_pipeline, model_digest, resolve
from .paths import env_model_dirs
from .expect import Expectation, expect
from .platform import CUBLAS_WORKSPACE, capture_platform, differing_fields, pinned, platform_diffs
from .schedulers import make_scheduler
from .vae import load_vae, swap_vae, vae_digest

DTYPES = ("float32", "float16", "bfloat16")
ATTENTION = ("sdpa", "sdpa-math", "classic")
# A 30-byte file can ask for any size and any number of steps: renders above aigif.Limits
# (max_render_pixels, max_loras, regeneration_budget) need the caller's consent (Engine(limits=...)).


@dataclass(frozen=True)
class GenerateResult:
    image: np.ndarray          # HxWx3 uint8
    document: Document         # platform and fingerprint filled


@dataclass(frozen=True)
class DecodeResult:
    image: np.ndarray
    report: FidelityReport | None
    source: str = "regenerated"   # regenerated | pixels | residual
    expectation: Expectation | None = None   # what the recorded platform let one expect here (regenerated images)


@dataclass
class _Loaded:
    pipe: object
    res: Resolved
    digest: str | None
    scheduler_cls: str
    scheduler_config: dict
    vae_digest: str | None = None
    adapters: dict = dataclasses.field(default_factory=dict)    # LoRA adapters loaded on pipe: name -> file
    lora_digests: tuple = ()                                     # sha256 of the LoRAs of the latest request
    embeddings: tuple = ()                                       # (BoundEmbedding, sha256) of the latest request


class Engine:
    """Generate images from syntax and regenerate them bit-exactly (on the same platform).

    Pipelines are loaded once and kept in an LRU (``cache_size``) keyed by model
    identity, dtype, device and attention backend.
    """

    def __init__(self, model_dirs=None, allow_network: bool = False, device: str = "cpu", dtype: str | None = None,
                 threads: int | None = None, verify_weights: bool = True, progress: bool = False,
                 attention: str = "sdpa", cache_size: int = 2, thresholds: Thresholds = Thresholds(),
                 limits: Limits = DEFAULT_LIMITS):
        if dtype is not None and dtype not in DTYPES:
            raise ConfigError(f"dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
        if attention not in ATTENTION:
            raise ConfigError(f"attention {attention!r}; this engine supports {', '.join(ATTENTION)}")
        if threads is not None and not (isinstance(threads, int) and 0 < threads < 65536):
            raise ConfigError(f"threads must be 1..65535, got {threads!r}")
        if str(device).startswith("cuda"):
            # must be in place before cuBLAS creates its first handle (spec/engine.md section 4)
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        self.model_dirs = [Path(p) for p in (model_dirs or [])] + env_model_dirs()
        self.allow_network, self.device, self.dtype, self.threads = allow_network, device, dtype, threads
        self.verify_weights, self.progress, self.attention = verify_weights, progress, attention
        self.thresholds, self.limits = thresholds, limits
        self._cache = PipelineCache(cache_size)

    # --- public API ---------------------------------------------------------------
    def generate(self, generation: Generation, model: ModelRef | None = None, extensions: tuple = (),
                 hires: HiresFix | None = None, refiner: Refiner | None = None, img2img: Img2Img | None = None,
                 inputs: InputImages | None = None) -> GenerateResult:
        """Render *generation* (with a *hires* second pass, a *refiner*, or from an init image: *img2img*, whose images
        not stored in it come from *inputs*; with extension segments) and return the pixels plus the document to save."""
        import torch

        model = model or ModelRef(name=DEFAULT_MODEL)
        dtype = self.dtype or "float32"
        threads = self.threads or torch.get_num_threads()
        upscaler = pixel_upscaler(hires, self.model_dirs, self.verify_weights) if hires is not None else None
        images = self._input_images(generation, img2img, inputs, self.limits)
        loaded = self._loaded(model, dtype, self.attention)
        image = self._render(loaded, generation, dtype, threads, self.attention, True, tuple(extensions), hires, refiner,
                             upscaler, img2img, images)
        if upscaler is not None and upscaler.sha256 and hires.upscaler_sha256 is None:   # the model file that was used
            hires = dataclasses.replace(hires, upscaler_sha256=upscaler.sha256)
        platform = capture_platform(self.device, dtype, self.attention, threads, True)
        if refiner is not None:   # its digest recorded as the base model's is
            second = self._loaded(refiner.model, dtype, self.attention)
            refiner = dataclasses.replace(refiner, model=self._record_model(refiner.model, second))
        doc = Document(generation=generation, model=self._record_model(model, loaded), platform=platform,
                       fingerprint=fingerprint(image), hires=hires, refiner=refiner, img2img=img2img,
                       extensions=tuple(extensions))
        return GenerateResult(image, doc)

    def regenerate(self, doc: Document, limits: Limits | None = None, inputs: InputImages | None = None) -> np.ndarray:
        """Re-render the document's syntax with the numerics its platform element pins; a file asking for more
        than *limits* (default: the engine's) is refused before any model loads. *inputs*: the init image and mask
        of an image-to-image file that references them without storing them."""
        if doc.generation is None or doc.model is None:
            raise ConfigError("the document has no generation syntax to regenerate (pixels-only file)")
        limits = limits or self.limits
        gen = doc.generation
        w, h = doc.image_size
        limits.check("the render size (pixels)", max(gen.width * gen.height, w * h), "max_render_pixels")
        limits.check("the LoRA count", len(doc.model.loras) + (len(doc.refiner.model.loras) if doc.refiner else 0), "max_loras")
        more = doc.hires.pixel_steps(gen) if doc.hires is not None else 0
        limits.check_regeneration(model_family(doc.model), gen.width, gen.height, gen.num_inference_steps, more)
        if doc.detail is not None:                                   # before any model loads
            raise ConfigError(f"not regenerable: {doc.detail.not_reproducible()}")
        # before the pipeline loads: what no engine runs, a missing or altered upscaler model, missing input images
        upscaler = pixel_upscaler(doc.hires, self.model_dirs, self.verify_weights) if doc.hires is not None else None
        images = self._input_images(gen, doc.img2img, inputs, limits)
        dtype, threads, attention, det = self._decode_settings(doc.platform)
        loaded = self._loaded(doc.model, dtype, attention)
        return self._render(loaded, doc.generation, dtype, threads, attention, det, doc.extensions, doc.hires, doc.refiner,
                            upscaler, doc.img2img, images)

    def decode(self, doc: Document, reference: np.ndarray | None = None, limits: Limits | None = None,
               inputs: InputImages | None = None) -> DecodeResult:
        """The document's image: stored pixels, regenerated (+ residual), with a fidelity report.
        *limits* (default: the engine's) bound the render and the codec's image size; *inputs* as in :meth:`regenerate`."""
        limits = limits or self.limits
        codec = None
        if doc.pixels is not None or doc.residual is not None:
            codec = _codec()
        if doc.pixels is not None:
            image = _codec_call("pixels", codec.decompress_pixels, doc.pixels, max_pixels=limits.max_render_pixels)
            report = compare_images(reference, image, self.thresholds) if reference is not None else (
                check_fingerprint(image, doc.fingerprint, self.thresholds) if doc.fingerprint else None)
            return DecodeResult(image, report, "pixels")
        image = self.regenerate(doc, limits, inputs)
        source = "regenerated"
        if doc.residual is not None:
            image = _codec_call("residual", codec.decompress_residual, doc.residual, image,
                                max_pixels=limits.max_render_pixels)
            source = "residual"
        expectation = self.platform_check(doc.platform)
        if reference is not None:
            report = compare_images(reference, image, self.thresholds, expectation.diffs)
        else:
            report = check_fingerprint(image, doc.fingerprint, self.thresholds, expectation.diffs)
        return DecodeResult(image, report, source, expectation)

    def platform_check(self, recorded: Platform | None) -> Expectation:
        """Which recorded platform fields differ here, and whether decoding will be exact, close or unknown."""
        current = self.current_platform(recorded)
        return expect(recorded, current, platform_diffs(recorded, current), differing_fields(recorded, current))

    def verify(self, doc: Document, image: np.ndarray) -> FidelityReport:
        """Decode *doc* and compare with the real *image* (PSNR/SSIM/MS-SSIM)."""
        return self.decode(doc, reference=image).report

    def current_platform(self, recorded: Platform | None = None) -> Platform:
        """The platform this engine would decode *recorded* on."""
        dtype, threads, attention, det = self._decode_settings(recorded)
        return capture_platform(self.device, dtype, attention, threads, det)

    @property
    def pipelines_loaded(self) -> int:
        return self._cache.loads

    # --- internals ------------------------------------------------------------------
    def _decode_settings(self, p: Platform | None) -> tuple[str, int, str, bool]:
        import torch

        p = p or Platform()
        dtype = p.dtype or self.dtype or "float32"
        if dtype not in DTYPES:
            raise ConfigError(f"the file's dtype {dtype!r} is not supported; supported: {', '.join(DTYPES)}")
        attention = p.attention or self.attention
        if attention == "default":
            attention = "sdpa"
        if attention not in ATTENTION:
            raise ConfigError(f"the file was made with attention backend {attention!r}, which this engine does not provide "
                              f"({', '.join(ATTENTION)})")
        threads = p.threads or self.threads or torch.get_num_threads()
        return dtype, threads, attention, True if p.deterministic is None else p.deterministic

    def _loaded(self, model: ModelRef, dtype: str, attention: str) -> _Loaded:
        import torch

        res = resolve(model, self.model_dirs, self.allow_network)
        if not res.single_file:
            check_pipeline_folder(res)
        digest = None
        if self.verify_weights or res.recorded_sha256 is None:
            digest = model_digest(res)
        if self.verify_weights:
            check_digest(f"model {model.name or model.repo or model.local} ({res.path})", res.recorded_sha256, digest)
        vae = self._vae(model)
        loras = self._loras(model)
        key = (str(res.path), res.variant, digest, dtype, self.device, attention, vae and (str(vae[0].path), vae[1]), res.split)

        def factory():
            pipe = load_pipeline(res, getattr(torch, dtype), self.device, self.progress)
            if vae is not None:
                what = vae_label(model.vae)
                swap_vae(pipe, load_vae(vae[0], pipe.vae, getattr(torch, dtype), self.device, what), what)
            prepare_pipeline(pipe, attention)
            pipe.set_progress_bar_config(disable=not self.progress, leave=False, desc="diffusion steps")
            return _Loaded(pipe, res, digest, type(pipe.scheduler).__name__, dict(pipe.scheduler.config), vae and vae[1])

        loaded = self._cache.get(key, factory)
        loaded.digest = digest or loaded.digest
        loaded.vae_digest = (vae[1] if vae is not None else None) or loaded.vae_digest
        apply_loras(loaded.pipe, loaded.adapters, [lo[:-1] for lo in loras])
        loaded.lora_digests = tuple(d for *_, d in loras)
        loaded.embeddings = bind_embeddings(model, self.model_dirs, self.verify_weights, self.limits)
        return loaded

    def _vae(self, model: ModelRef):
        """(where, digest) of the VAE override, checked; digest None only when not verifying and one is recorded."""
        if model.vae is None:
            return None
        what = vae_label(model.vae)
        loc = locate_vae(model.vae, self.model_dirs, self.allow_network)
        if not loc.single_file:
            check_vae_folder(loc, what)
        recorded = model.vae.sha256
        digest = None
        if self.verify_weights or recorded is None:
            digest = vae_digest(loc)
        if self.verify_weights and recorded:
            if loc.single_file:
                check_file_digest(f"{what} ({loc.path})", recorded, loc.path, digest)
            else:
                check_digest(f"{what} ({loc.path})", recorded, digest)
        return loc, digest

    def _loras(self, model: ModelRef) -> list:
        """[(adapter name, file, weight, text-encoder weight, label, sha256)] in order, each located and checked."""
        self.limits.check("the LoRA count", len(model.loras), "max_loras")
        out, seen = [], {}
        for lora in model.loras:
            what = lora_label(lora)
            w, tw = float(lora.weight), float(lora.weight if lora.text_weight is None else lora.text_weight)
            if not all(abs(x) < float("inf") for x in (w, tw)):     # NaN fails too
                raise ConfigError(f"{what}: weights must be finite numbers, got {lora.weight!r}, {lora.text_weight!r}")
            loc = locate_lora(lora, self.model_dirs, self.allow_network)
            digest = file_sha256(loc.path)          # always: it names the adapter
            if self.verify_weights:
                check_file_digest(f"{what} ({loc.path})", lora.sha256, loc.path, digest)
            seen[digest] = k = seen.get(digest, -1) + 1       # occurrence of this file in the list
            out.append((adapter_name(digest, k), loc.path, w, tw, what, digest))
        return out

    def _input_images(self, gen: Generation, img2img: Img2Img | None, inputs: InputImages | None, limits: Limits):
        """The init image and mask of an image-to-image pass, checked before any model loads (None without one)."""
        return None if img2img is None else load_images(img2img, gen, inputs, limits, lambda p: decode_exact(self, p, limits))

    def _render(self, loaded: _Loaded, gen: Generation, dtype: str, threads: int, attention: str, deterministic: bool,
                extensions: tuple = (), hires: HiresFix | None = None, refiner: Refiner | None = None,
                upscaler=None, img2img: Img2Img | None = None, images=None) -> np.ndarray:
        import torch

        pipe = loaded.pipe
        family = get_family(loaded.res.family)
        second_model = None
        if img2img is not None:
            if hires is not None or refiner is not None:
                raise ConfigError("not regenerable: an image-to-image pass together with a hires fix or a refiner")
            check_img2img(family, gen, img2img)
        if refiner is not None:
            if hires is not None:
                raise ConfigError("not regenerable: a refiner together with a hires fix")
            base_loras = bool(loaded.lora_digests)
            second_model = self._loaded(refiner.model, dtype, attention)
            check_refiner(family, get_family(second_model.res.family),
                          second_model.pipe is pipe and (base_loras or bool(refiner.model.loras)))
        check_schedule(loaded.res.family, gen.scheduler, gen.scheduler_config)   # a hand-built Generation too
        family.latent_shape(pipe, gen)   # sizes the pipeline cannot take fail here, before any work
        self.limits.check(f"the render size {gen.width}x{gen.height} (pixels)", gen.width * gen.height, "max_render_pixels")
        second = check_hires(family, gen, hires) if hires is not None else None
        if second is not None:
            check_schedule(loaded.res.family, second.scheduler, second.scheduler_config)
            family.latent_shape(pipe, second)
            self.limits.check(f"the hires size {second.width}x{second.height} (pixels)", second.width * second.height,
                              "max_render_pixels")
        kw = family.call_kwargs(gen, pipe)
        check_passes(loaded.embeddings, refiner, hires)
        with pinned(self.device, threads, deterministic), _attention_context(attention), embeddings_applied(
                pipe, family.text_encoders, [e for e, _ in loaded.embeddings], kw) as kw, torch.inference_mode():
            try:
                pipe.scheduler = make_scheduler(loaded.scheduler_cls, loaded.scheduler_config, gen.scheduler, gen.scheduler_config)
                latents, g = family.initial_noise(pipe, gen, getattr(torch, dtype), self.device)
                call = apply_adapters(extensions, pipe, {**kw, "latents": latents, "generator": g, "output_type": "np"})
                if second_model is not None:
                    sched = make_scheduler(second_model.scheduler_cls, second_model.scheduler_config, gen.scheduler,
                                           gen.scheduler_config)
                    image = run_refiner(family, get_family(second_model.res.family), call.pipe, call.call_kwargs, gen,
                                        refiner, second_model.pipe, sched)
                elif img2img is not None:
                    if call.pipe is not pipe:
                        raise ConfigError(f"not regenerable: {img2img.kind} together with extension(s) "
                                          f"{', '.join(call.applied)} that change the pipeline")
                    image = run_img2img(pipe, family, call.call_kwargs, gen, img2img, images)
                elif second is None:
                    image = call.pipe(**call.call_kwargs).images[0]
                else:
                    sched = make_scheduler(loaded.scheduler_cls, loaded.scheduler_config, second.scheduler, second.scheduler_config)
                    image = run_hires(pipe, family, call.pipe, call.call_kwargs, gen, hires, sched, upscaler)
            except AigifError:
                raise
            except Exception as exc:  # a value the pipeline/scheduler cannot use (bad override, OOM, ...)
                raise AigifError(f"the pipeline refused this generation: {type(exc).__name__}: {exc}") from None
        return to_uint8(image)

    def _record_model(self, model: ModelRef, loaded: _Loaded) -> ModelRef:
        """What the file records: registry names stay bare when the registry pins the digest; VAE and LoRAs
        get the digest of the file/folder that was used when none was given."""
        changes = {}
        if model.vae is not None and model.vae.sha256 is None and loaded.vae_digest:
            changes["vae"] = dataclasses.replace(model.vae, sha256=loaded.vae_digest)
        if model.text_encoders and loaded.res.split is not None and any(t.sha256 is None for t in model.text_encoders):
            shas = {comp: sha for comp, _, sha in loaded.res.split.files}
            changes["text_encoders"] = tuple(t if t.sha256 else dataclasses.replace(t, sha256=shas.get(t.subfolder))
                                             for t in model.text_encoders)
        if model.loras:
            loras = tuple(dataclasses.replace(lo, sha256=d) if lo.sha256 is None and d else lo
                          for lo, d in zip(model.loras, loaded.lora_digests))
            if loras != model.loras:
                changes["loras"] = loras
        if model.embeddings:
            changes["embeddings"] = recorded_embeddings(model.embeddings, loaded.embeddings,
                                                        get_family(loaded.res.family).text_encoders)
        return self._record_base(dataclasses.replace(model, **changes) if changes else model, loaded)

    def _record_base(self, model: ModelRef, loaded: _Loaded) -> ModelRef:
        entry = registry.model_entry(model.name) if model.name and registry.code_of("model", model.name) is not None else None
        if entry is not None and entry.sha256 and not (model.repo or model.local):
            return model
        changes = {}
        if model.sha256 is None and loaded.digest:
            changes["sha256"] = loaded.digest
        if model.family is None and entry is None:
            changes["family"] = loaded.res.family
        return dataclasses.replace(model, **changes) if changes else model


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Pipeline float output in [0, 1] -> uint8 exactly as diffusers' ``numpy_to_pil``: round(x * 255)."""
    return np.ascontiguousarray(np.clip(np.round(np.asarray(image, dtype=np.float32) * 255), 0, 255).astype(np.uint8))


def prepare_pipeline(pipe, attention: str = "sdpa") -> None:
    """Make a user's own pipeline compute like the engine's: the recorded attention processor, CLIP compat shim."""
    if attention not in ATTENTION:
        raise ConfigError(f"attention {attention!r}; this engine supports {', '.join(ATTENTION)}")
    _set_attention(pipe, attention)
    _clip_compat(pipe)


def _set_attention(pipe, attention: str) -> None:
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    proc = AttnProcessor if attention == "classic" else AttnProcessor2_0
    family = family_for_pipeline(type(pipe).__name__)
    denoiser = family.denoiser if family else "unet"
    if denoiser != "unet":   # transformers keep their own (sdpa) processors: FluxAttnProcessor, JointAttnProcessor2_0
        if attention == "classic":
            raise ConfigError(f"attention 'classic' is not available for {type(getattr(pipe, denoiser)).__name__}; use sdpa or sdpa-math")
        denoiser = None
    for name in (denoiser, "vae"):
        if name is None:
            continue
        m = getattr(pipe, name, None)
        if m is not None and hasattr(m, "set_attn_processor"):
            m.set_attn_processor(proc())


def _clip_compat(pipe) -> None:
    """transformers 5 flattened ``CLIPTextModel`` (no ``.text_model``), which diffusers' clip_skip path still uses.

    Alias it to the model itself (a plain attribute, not a submodule): same
    ``final_layer_norm``, so the numerics are those of transformers 4.
    """
    family = family_for_pipeline(type(pipe).__name__)
    for name in family.text_encoders if family else ("text_encoder", "text_encoder_2"):
        te = getattr(pipe, name, None)
        if te is not None and "text_model" not in te._modules and hasattr(te, "final_layer_norm") and "text_model" not in te.__dict__:
            object.__setattr__(te, "text_model", te)


def _attention_context(attention: str):
    if attention == "sdpa-math":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel(SDPBackend.MATH)
    return contextlib.nullcontext()


def _codec():
    try:
        import aigif.codec as codec

        codec.decompress_pixels  # noqa: B018 - make sure the API is there
        return codec
    except Exception as exc:
        raise AigifError(f"this file stores pixels/a residual but the image codec (aigif.codec) is not available: {exc}") from None


def _codec_call(what: str, fn, *args, **kw) -> np.ndarray:
    try:
        return np.ascontiguousarray(np.asarray(fn(*args, **kw), dtype=np.uint8))
    except AigifError:
        raise
    except Exception as exc:  # the payload is the file's: any failure is corruption
        raise CorruptError(f"{what} segment cannot be decoded: {type(exc).__name__}: {exc}") from None


_DEFAULT: Engine | None = None


def default_engine() -> Engine:
    """A process-wide engine (CPU, offline, model dirs from AIGIF_MODEL_DIRS)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Engine()
    return _DEFAULT
