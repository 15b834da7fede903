"""LoRAs as un-fused PEFT adapters: loaded once per pipeline, switched on per image with their weights.

Un-fused on purpose: the base weights are never modified, so a pipeline that
has served LoRA requests computes exactly like a fresh one (the layer output is
``base(x) + sum_i w_i * (alpha_i / r_i) * B_i(A_i(x))`` over the active
adapters in the file's order, ``base(x)`` alone when none is active), and the
numerics equal diffusers' own ``load_lora_weights`` + ``set_adapters`` path.

Which components a LoRA adapts is diffusers' own list for the pipeline class
(``_lora_loadable_modules``: the UNet or transformer, then the CLIP text
encoders it takes LoRAs for), so every family with a diffusers LoRA loader
(SD, SDXL, FLUX.1, SD 3.5, ...) goes through this one path. The file is parsed
by the pipeline's ``lora_state_dict`` (diffusers/PEFT, kohya/A1111 and the
FLUX trainers' layouts); the denoiser adapter is injected by diffusers,
text-encoder adapters by PEFT directly (transformers' adapter API is not
needed). Adapter metadata from the file is reduced to plain LoRA
hyper-parameters (no dropout, no initialisers that rewrite base weights, no
module imports).
"""
from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

from ..errors import AigifError, ModelError
from .quiet import quiet

MAX_LOADED = 8                   # adapters kept on one pipeline; beyond, all are unloaded and the request reloaded
# LoraConfig keys a file's adapter metadata may set (everything else is dropped)
_META_KEYS = {"r": int, "lora_alpha": (int, float), "rank_pattern": dict, "alpha_pattern": dict, "target_modules": (list, str),
              "use_dora": bool, "lora_bias": bool, "use_rslora": bool}


def lora_modules(pipe) -> tuple[str, ...]:
    """The components of *pipe* a LoRA may adapt, denoiser first (diffusers' list for the pipeline class)."""
    names = getattr(type(pipe), "_lora_loadable_modules", None) or ()
    return tuple(n for n in names if getattr(pipe, n, None) is not None)


def adapter_name(digest: str, occurrence: int) -> str:
    """Adapters are named by file content, so a changed file is a new adapter."""
    return f"aigif_{digest[:20]}_{occurrence}"


def _clean_metadata(metadata, modules: tuple[str, ...]) -> dict | None:
    if not isinstance(metadata, dict):
        return None
    out = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or "." not in key:
            continue
        prefix, name = key.split(".", 1)
        want = _META_KEYS.get(name)
        if prefix not in modules or want is None:
            continue
        if isinstance(value, want) and (want is bool or not isinstance(value, bool)):
            out[key] = value
    return out or None


def _peft_layers(module):
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in module.modules() if isinstance(m, BaseTunerLayer)]


def _count_adapter(pipe, adapter: str) -> int:
    return sum(1 for comp in lora_modules(pipe) for layer in _peft_layers(getattr(pipe, comp))
               if adapter in getattr(layer, "lora_A", {}))


def _load_text_encoder(state_dict: dict, alphas, metadata, te, prefix: str, adapter: str) -> None:
    """diffusers' text-encoder LoRA loading, with PEFT's injection instead of transformers' ``load_adapter``."""
    from diffusers.utils.peft_utils import _create_lora_config
    from diffusers.utils.state_dict_utils import StateDictType, convert_state_dict_to_diffusers, convert_state_dict_to_peft
    from peft import inject_adapter_in_model, set_peft_model_state_dict

    sd = {k[len(prefix) + 1:]: v for k, v in state_dict.items() if k.startswith(prefix + ".")}
    if not sd:
        return
    meta = {k[len(prefix) + 1:]: v for k, v in metadata.items() if k.startswith(prefix + ".")} if metadata else None
    # kohya files come out of diffusers' converter in the old attention-processor naming (``to_q_lora.down``);
    # diffusers only recognises that layout when ``to_out_lora`` is among the keys, so say it explicitly
    old = StateDictType.DIFFUSERS_OLD if any("_lora.down." in k or "_lora.up." in k for k in sd) else None
    sd = convert_state_dict_to_peft(convert_state_dict_to_diffusers(sd, original_type=old))
    if "text_model" not in te._modules:      # transformers 5 flattened CLIPTextModel; older LoRAs keep the prefix
        sd = {k.removeprefix("text_model."): v for k, v in sd.items()}
    rank = {}
    for name, _ in te.named_modules():
        key = f"{name}.lora_B.weight"
        if key in sd:
            rank[key] = sd[key].shape[1]
    if not rank:
        raise ModelError(f"no {prefix} layer of this model matches the LoRA's {prefix} keys (a LoRA for another model family?)")
    if alphas:
        alphas = {k[len(prefix) + 1:]: v for k, v in alphas.items() if k.split(".")[0] == prefix}
    config = _create_lora_config(sd, alphas or None, meta or None, rank, is_unet=False)
    inject_adapter_in_model(config, te, adapter_name=adapter)
    result = set_peft_model_state_dict(te, sd, adapter_name=adapter)
    unexpected = [k for k in getattr(result, "unexpected_keys", []) if "lora" in k]
    if unexpected:
        raise ModelError(f"{len(unexpected)} {prefix} LoRA tensors match no layer of this model, e.g. {unexpected[0]}")


@contextlib.contextmanager
def _silent():
    """Our own error says what went wrong: no library error logs, no PEFT 'several adapters' warnings."""
    import diffusers.utils.logging as dlog

    with quiet(False), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        level = dlog.get_verbosity()
        dlog.set_verbosity(dlog.CRITICAL)
        try:
            yield
        finally:
            dlog.set_verbosity(level)


def _parse(pipe, path: Path, modules: tuple[str, ...]) -> tuple[dict, dict | None, dict | None]:
    """(state dict, network alphas, metadata) from the pipeline's own parser; keys prefixed by component."""
    extra = {"unet_config": pipe.unet.config} if modules[0] == "unet" else {"return_alphas": True}
    parsed = pipe.lora_state_dict(str(path.parent), weight_name=path.name, use_safetensors=True, local_files_only=True,
                                  return_lora_metadata=True, **extra)
    if len(parsed) == 3:
        return parsed
    state_dict, second = parsed                  # SD 3.5 and others: no alphas; older diffusers (SD): no metadata
    return (state_dict, second, None) if modules[0] == "unet" else (state_dict, None, second)


def load_adapter(pipe, path: Path, adapter: str, what: str) -> None:
    """Parse the LoRA file and inject it into the denoiser and text encoder(s) as *adapter* (inactive until
    :func:`activate`)."""
    modules = lora_modules(pipe)
    if not modules:
        raise ModelError(f"{what}: diffusers has no LoRA loader for {type(pipe).__name__}; LoRAs on this family are "
                         "not regenerated by this engine")
    try:
        with _silent():
            state_dict, alphas, metadata = _parse(pipe, path, modules)
            if not state_dict or not all("lora" in k for k in state_dict):
                raise ModelError(f"{what}: {path.name} is not a LoRA file (tensor names without 'lora')")
            others = sorted({k.split(".")[0] for k in state_dict} - set(modules))
            if others:
                raise ModelError(f"{what}: {path.name} has tensors for {', '.join(others[:4])}, which "
                                 f"{type(pipe).__name__} takes no LoRA for (it adapts {', '.join(modules)}); "
                                 "a LoRA for another model family?")
            metadata = _clean_metadata(metadata, modules)
            if alphas and metadata:
                metadata = None                  # diffusers refuses both; the file's own alphas win
            getattr(pipe, modules[0]).load_lora_adapter(state_dict, prefix=modules[0], network_alphas=alphas,
                                                        adapter_name=adapter, _pipeline=pipe,
                                                        **({"metadata": metadata} if metadata else {}))
            for comp in modules[1:]:
                _load_text_encoder(state_dict, alphas, metadata, getattr(pipe, comp), comp, adapter)
    except AigifError as exc:
        unload_all(pipe)
        raise ModelError(f"{what}: {exc}" if not str(exc).startswith(what) else str(exc)) from None
    except Exception as exc:  # a file diffusers/PEFT cannot map onto this model
        unload_all(pipe)
        raise ModelError(f"{what} cannot be applied to this model ({path.name}; a LoRA for another model family?): "
                         f"{type(exc).__name__}: {exc}") from None
    if _count_adapter(pipe, adapter) == 0:
        unload_all(pipe)
        raise ModelError(f"{what}: no layer of this model matches the LoRA ({path.name}); is it a LoRA for another model family?")
    for comp in modules:
        getattr(pipe, comp).eval()               # new dropout modules must not be in training mode


def unload_all(pipe) -> None:
    """Remove every adapter layer: the modules are the base ones again (their weights were never touched)."""
    from diffusers.utils.peft_utils import recurse_remove_peft_layers

    for comp in lora_modules(pipe):
        m = getattr(pipe, comp)
        if not _peft_layers(m):
            continue
        recurse_remove_peft_layers(m)
        if "peft_config" in m.__dict__:
            delattr(m, "peft_config")
        if hasattr(m, "_hf_peft_config_loaded"):
            m._hf_peft_config_loaded = None


def activate(pipe, adapters: list[tuple[str, float, float]]) -> None:
    """Make exactly *adapters* (name, denoiser weight, text-encoder weight) active, in this order; an adapter whose
    weight on a component is 0 is not active there; none: every adapter layer computes ``base(x)``."""
    for i, comp in enumerate(lora_modules(pipe)):
        active = [(name, w[0] if i == 0 else w[1]) for name, *w in adapters]
        active = [(name, w) for name, w in active if w != 0]
        names = [name for name, _ in active]
        for layer in _peft_layers(getattr(pipe, comp)):
            if not names:
                layer.enable_adapters(False)
                continue
            layer.enable_adapters(True)
            layer.set_adapter(names, inference_mode=True)
            for name, weight in active:
                if name in layer.scaling:
                    layer.set_scale(name, float(weight))


def apply_loras(pipe, loaded: dict, wanted: list[tuple[str, Path, float, float, str]]) -> None:
    """Load what is missing (``loaded``: adapter name -> path, kept with the cached pipeline) and activate *wanted*
    = [(adapter name, file, weight, text-encoder weight, label)]."""
    if not wanted and not loaded:
        return                                   # never had an adapter: nothing to switch off
    if wanted:
        try:
            import peft  # noqa: F401
        except ImportError:
            raise ModelError("applying LoRAs needs the peft package: pip install peft") from None
    missing = [w for w in wanted if w[0] not in loaded]
    if missing and len(loaded) + len(missing) > MAX_LOADED:
        unload_all(pipe)
        loaded.clear()
        missing = list(wanted)
    for name, path, _, _, what in missing:
        try:
            load_adapter(pipe, path, name, what)
        except AigifError:
            loaded.clear()                       # load_adapter unloaded everything
            raise
        loaded[name] = path
    activate(pipe, [(name, weight, text_weight) for name, _, weight, text_weight, _ in wanted])
