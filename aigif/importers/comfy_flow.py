"""ComfyUI FLUX.1 and SD 3.5 graphs -> syntax (family, guidance, flow schedule, the single files they load).

The graph ComfyUI's examples and templates use: a diffusion model (``UNETLoader``,
``weight_dtype``) or an all-in-one ``CheckpointLoaderSimple``, text encoders
(``DualCLIPLoader`` type flux, ``TripleCLIPLoader``, or the checkpoint's),
``VAELoader``, an optional ``ModelSamplingFlux`` / ``ModelSamplingSD3``,
``CLIPTextEncode`` / ``CLIPTextEncodeFlux`` (+ ``FluxGuidance``, negative
``ConditioningZeroOut``), ``EmptySD3LatentImage`` / ``EmptyLatentImage`` and one
sampling pass: ``KSampler`` or ``SamplerCustomAdvanced`` with ``RandomNoise``,
``BasicGuider`` / ``CFGGuider``, ``KSamplerSelect`` and ``BasicScheduler``.

ComfyUI's own defaults are written out where diffusers' differ (spec/importers.md,
"ComfyUI FLUX.1 and SD 3.5"): FLUX's time shift (a constant mu of 1.15, or 1.0 for
schnell, unless ``ModelSamplingFlux`` makes it follow the size), SD 3.5's shift of
3.0, the FLUX guidance of 3.5, and T5 padding (256 tokens FLUX, 77 SD 3.5).
A wiring outside this raises ``NotMapped``; what is mapped but not reproduced by
the engine (fp8 weights, a prompt maybe longer than the T5 padding...) makes the
syntax partial with that reason.
"""
from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..syntax.elements import ComponentRef
from . import samplers
from .comfy_graph import is_link
from .comfy_networks import LORA_NODES, comfy_embeddings, comfy_lora
from .flow_files import ENCODERS, FAMILY_NAMES, T5_PADDING, constant_flux_shift, encoder_component, long_prompt, \
    registry_files, registry_model
from .passes import NotMapped
from .result import Builder, stem, to_float, to_int

FLUX_DYNAMIC = (0.5, 1.15)                # diffusers' FLUX.1 scheduler: mu from the image size between these
SD3_SHIFT = 3.0                           # ComfyUI's and diffusers' SD 3.5 shift
NODES = {"UNETLoader", "CheckpointLoaderSimple", "DualCLIPLoader", "TripleCLIPLoader", "VAELoader", "CLIPTextEncode",
         "CLIPTextEncodeFlux", "FluxGuidance", "ConditioningZeroOut", "ModelSamplingFlux", "ModelSamplingSD3",
         "EmptySD3LatentImage", "EmptyLatentImage", "KSampler", "SamplerCustomAdvanced", "RandomNoise", "BasicGuider",
         "CFGGuider", "KSamplerSelect", "BasicScheduler", "VAEDecode", "SaveImage", "PreviewImage", *LORA_NODES}
SHIFT_NODES = ("ModelSamplingFlux", "ModelSamplingSD3")
MODEL_LOADERS = ("UNETLoader", "CheckpointLoaderSimple")
# loaders that ComfyUI does not run when nothing saved uses them (examples keep spare ones in the graph)
LOADERS = {"CLIPLoader", "DualCLIPLoader", "TripleCLIPLoader", "UNETLoader", "VAELoader", "CheckpointLoaderSimple"}


class _G:
    def __init__(self, graph: dict[str, dict]):
        self.graph = graph

    def cls(self, node: str) -> str:
        return self.graph[node]["class_type"]

    def value(self, node: str, name: str, default: Any = None) -> Any:
        v = self.graph[node].get("inputs", {}).get(name, default)
        if v is None or is_link(v) or isinstance(v, (list, dict)):
            raise NotMapped(f"input {name!r} of {self.cls(node)} (node {node}) is not a plain value")
        return v

    def text(self, node: str, name: str) -> str:
        v = self.value(node, name)
        if not isinstance(v, str):
            raise NotMapped(f"input {name!r} of {self.cls(node)} (node {node}) is not text")
        return v

    def link(self, node: str, name: str, want: set[str], slot: int | None = None) -> str:
        v = self.graph[node].get("inputs", {}).get(name)
        if not is_link(v):
            raise NotMapped(f"input {name!r} of {self.cls(node)} (node {node}) is not linked to a node")
        if self.cls(v[0]) not in want:
            raise NotMapped(f"input {name!r} of {self.cls(node)} (node {node}) comes from {self.cls(v[0])}, "
                            f"expected {' or '.join(sorted(want))}")
        if slot is not None and v[1] != slot:
            raise NotMapped(f"input {name!r} of {self.cls(node)} (node {node}) takes output {v[1]} of {self.cls(v[0])}")
        return v[0]

    def raw(self, node: str, name: str) -> Any:
        return self.graph[node].get("inputs", {}).get(name)


def _feeding_outputs(graph: dict[str, dict]) -> set[str]:
    """The image outputs (SaveImage / PreviewImage) and every node they depend on (the graph is acyclic, checked)."""
    todo = [k for k, n in graph.items() if n["class_type"] in ("SaveImage", "PreviewImage")]
    seen: set[str] = set()
    while todo:
        k = todo.pop()
        if k not in seen:
            seen.add(k)
            todo.extend(v[0] for v in graph[k].get("inputs", {}).values() if is_link(v))
    return seen


def _path(folder: str, name: str) -> str:
    """ComfyUI's file name (Windows separators, sub-folders) under its folder; a model dir bounds it at decode."""
    return f"{folder}/{name.replace(chr(92), '/').lstrip('/')}"


def map_flow(graph: dict[str, dict], b: Builder, family: str) -> None:
    """Fill *b* from a FLUX.1 / SD 3.5 txt2img graph; ``NotMapped`` says what is outside it."""
    g = _G(graph)
    used = _feeding_outputs(graph)
    others = sorted({n["class_type"] for k, n in graph.items() if k in used or n["class_type"] not in LOADERS} - NODES)
    if others:
        raise NotMapped(f"node type(s) {', '.join(others)} are not part of a {FAMILY_NAMES[family]} text-to-image graph")
    samplers_ = [k for k, n in graph.items() if n["class_type"] in ("KSampler", "SamplerCustomAdvanced")]
    if len(samplers_) != 1:
        raise NotMapped(f"{len(samplers_)} sampler nodes; one sampling pass (KSampler or SamplerCustomAdvanced) is mapped")
    k = samplers_[0]
    p = _sampling(g, k)
    model, shift_node, loras = _model_chain(g, p["model"])
    want_shift = {"flux1": "ModelSamplingFlux", "sd3": "ModelSamplingSD3"}[family]
    if shift_node is not None and g.cls(shift_node) != want_shift:
        raise NotMapped(f"{g.cls(shift_node)} on a {FAMILY_NAMES[family]} model")

    # prompts and guidance
    pos, guidance, pos_clip = _conditioning(g, p["positive"], family)
    cfg = to_float(p["cfg"])
    b.gen.update(seed=to_int(p["seed"]), num_inference_steps=to_int(p["steps"]))
    if "zero" in pos:
        raise NotMapped("the positive conditioning is zeroed (ConditioningZeroOut)")
    b.gen["prompt"] = pos["prompt"]
    if pos.get("prompt_2") is not None and pos["prompt_2"] != pos["prompt"]:
        b.gen["prompt_2"] = pos["prompt_2"]
    negative = None
    if p["negative"] is not None:
        negative, neg_guidance, neg_clip = _conditioning(g, p["negative"], family)
        if neg_clip != pos_clip:
            raise NotMapped("the positive and negative prompts use different text encoders")
    if family == "flux1":
        b.gen["guidance_scale"] = 3.5 if guidance is None else to_float(guidance)   # ComfyUI's FLUX default
        if cfg != 1.0:             # true classifier-free guidance on top of the distilled guidance
            if cfg < 1.0 or negative is None:
                raise NotMapped(f"cfg {cfg:g} on FLUX.1 " + ("below 1" if negative is not None else "without a negative input"))
            if (3.5 if neg_guidance is None else to_float(neg_guidance)) != b.gen["guidance_scale"]:
                raise NotMapped("the negative conditioning has another FLUX guidance than the positive one")
            b.gen["true_cfg_scale"] = cfg
            _negative(b, negative, cfg, family)
    else:
        b.gen["guidance_scale"] = cfg
        if negative is not None and cfg != 1.0:
            _negative(b, negative, cfg, family)
    b.gen["min_sequence_length"] = T5_PADDING[family]
    words = comfy_embeddings(v for k, v in b.gen.items() if "prompt" in k and isinstance(v, str))
    if words:
        b.partial(f"textual-inversion embeddings ({', '.join(n for n, _ in words[:3])}): the engine binds them on "
                  "Stable Diffusion 1.x, 2.x and XL only")
    why = long_prompt(b.gen, family)
    if why:
        b.partial(why)

    # size
    lat = g.link(k, "latent_image", {"EmptySD3LatentImage", "EmptyLatentImage"}, 0)
    if to_int(g.value(lat, "batch_size", 1)) != 1:
        raise NotMapped(f"batch_size {g.value(lat, 'batch_size')}: the metadata does not say which image of the batch this is")
    b.gen["width"], b.gen["height"] = to_int(g.value(lat, "width")), to_int(g.value(lat, "height"))

    # model files and LoRAs
    reg = _model_files(g, b, family, model, _clip_chain(g, pos_clip, loras), k)
    b.loras.extend(comfy_lora(n, g.cls(n), g.value) for n in loras)

    # schedule: ComfyUI's sampler x scheduler through the flow table, with the graph's time shift
    shift = None
    if family == "sd3":
        shift = to_float(g.value(shift_node, "shift")) if shift_node else SD3_SHIFT
        shift = None if shift == SD3_SHIFT else shift
    try:
        mapped = samplers.from_comfy(p["sampler_name"], p["scheduler"], family, shift=shift)
    except ConfigError as exc:
        raise NotMapped(str(exc)) from None
    name, overrides = mapped
    overrides = dict(overrides or {})
    if family == "flux1":
        overrides.update(_flux_shift(g, shift_node, reg, b.gen["width"], b.gen["height"]))
    b.gen["scheduler"] = name
    if overrides:
        b.gen["scheduler_config"] = overrides


def _model_chain(g: _G, node: str) -> tuple[str, str | None, list[str]]:
    """(the model loader, the ModelSampling node or None, the LoRA loaders in application order) between the
    sampler and the loader (the graph is acyclic, checked, so the walk ends)."""
    shift_node, loras = None, []
    while g.cls(node) not in MODEL_LOADERS:
        if g.cls(node) in SHIFT_NODES:
            if shift_node is not None:
                raise NotMapped(f"two time-shift nodes ({g.cls(shift_node)}, {g.cls(node)}) on the model")
            shift_node = node
        elif g.cls(node) in LORA_NODES:
            loras.append(node)
        else:
            raise NotMapped(f"the sampler's model comes from {g.cls(node)}")
        node = g.link(node, "model", {*SHIFT_NODES, *MODEL_LOADERS, *LORA_NODES}, 0)
    return node, shift_node, loras[::-1]        # ComfyUI applies the loader nearest the model file first


def _clip_chain(g: _G, clip: list | None, loras: list[str]) -> list | None:
    """The text encoders' link below the ``LoraLoader`` nodes on it; they must be the model chain's ``LoraLoader``
    nodes (one LoRA patches both sides), in the same order."""
    on_clip = []
    while is_link(clip) and g.cls(clip[0]) == "LoraLoader":
        if clip[1] != 1:
            raise NotMapped(f"a text encoder input is wired to output {clip[1]} of LoraLoader (node {clip[0]})")
        on_clip.append(clip[0])
        clip = g.raw(clip[0], "clip")
    if on_clip[::-1] != [n for n in loras if g.cls(n) == "LoraLoader"]:
        raise NotMapped("LoRAs are applied differently to the diffusion model and the text encoders")
    return clip


def _sampling(g: _G, k: str) -> dict[str, Any]:
    """seed, steps, cfg, sampler_name, scheduler, model, positive, negative of the one sampling pass."""
    if g.cls(k) == "KSampler":
        if to_float(g.value(k, "denoise", 1.0)) != 1.0:
            raise NotMapped(f"KSampler denoise {g.value(k, 'denoise')} (image-to-image)")
        out = {key: g.value(k, key) for key in ("seed", "steps", "cfg", "sampler_name", "scheduler")}
        links = {key: g.raw(k, key) for key in ("model", "positive", "negative")}
        for key, v in links.items():
            if not is_link(v):
                raise NotMapped(f"input {key!r} of KSampler (node {k}) is not linked to a node")
        return {**out, "model": links["model"][0], "positive": links["positive"][0], "negative": links["negative"][0]}
    noise = g.link(k, "noise", {"RandomNoise"})
    guider = g.link(k, "guider", {"BasicGuider", "CFGGuider"})
    select = g.link(k, "sampler", {"KSamplerSelect"})
    sched = g.link(k, "sigmas", {"BasicScheduler"})
    if to_float(g.value(sched, "denoise", 1.0)) != 1.0:
        raise NotMapped(f"BasicScheduler denoise {g.value(sched, 'denoise')} (image-to-image)")
    if g.raw(sched, "model") != g.raw(guider, "model"):
        raise NotMapped("BasicScheduler computes its sigmas on another model than the guider samples")
    basic = g.cls(guider) == "BasicGuider"
    model = g.link(guider, "model", {*SHIFT_NODES, *MODEL_LOADERS, *LORA_NODES})
    return {"seed": g.value(noise, "noise_seed"), "steps": g.value(sched, "steps"), "scheduler": g.value(sched, "scheduler"),
            "sampler_name": g.value(select, "sampler_name"), "cfg": 1.0 if basic else g.value(guider, "cfg"), "model": model,
            "positive": g.link(guider, "conditioning" if basic else "positive", NODES),
            "negative": None if basic else g.link(guider, "negative", NODES)}


def _conditioning(g: _G, node: str, family: str) -> tuple[dict, Any, list | None]:
    """({prompt, prompt_2} or {zero}, the FLUX guidance it carries or None, the text encoder link)."""
    guidance = None
    while g.cls(node) == "FluxGuidance":       # the one closest to the sampler is applied last and wins
        if family != "flux1":
            raise NotMapped("FluxGuidance on a non-FLUX model")
        guidance = g.value(node, "guidance") if guidance is None else guidance
        node = g.link(node, "conditioning", NODES)
    if g.cls(node) == "ConditioningZeroOut":
        inner = g.link(node, "conditioning", {"CLIPTextEncode", "CLIPTextEncodeFlux"})
        return {"zero": True}, guidance, g.raw(inner, "clip")
    if g.cls(node) == "CLIPTextEncode":
        return {"prompt": g.text(node, "text")}, guidance, g.raw(node, "clip")
    if g.cls(node) == "CLIPTextEncodeFlux" and family == "flux1":
        own = g.value(node, "guidance")
        return ({"prompt": g.text(node, "clip_l"), "prompt_2": g.text(node, "t5xxl")},
                own if guidance is None else guidance, g.raw(node, "clip"))
    raise NotMapped(f"the conditioning comes from {g.cls(node)}")


def _negative(b: Builder, negative: dict, cfg: float, family: str) -> None:
    if "zero" in negative:
        raise NotMapped(f"cfg {cfg:g} with a zeroed negative (ConditioningZeroOut): diffusers encodes a negative prompt, "
                        "it has no zero conditioning")
    if family == "flux1" and not negative["prompt"]:
        raise NotMapped(f"cfg {cfg:g} with an empty negative prompt: diffusers' FLUX pipeline runs true CFG only on a "
                        "negative prompt")
    b.gen["negative_prompt"] = negative["prompt"]
    if negative.get("prompt_2") not in (None, negative["prompt"]):
        raise NotMapped("a negative CLIPTextEncodeFlux with different clip_l and t5xxl texts")


def _model_files(g: _G, b: Builder, family: str, model: str, clip: list | None, k: str) -> str | None:
    """The model reference: the diffusion model file, its text encoder files (by component) and VAE file."""
    encoders: list[ComponentRef] = []
    if g.cls(model) == "UNETLoader":
        file_name = str(g.value(model, "unet_name"))
        local = _path("diffusion_models", file_name)
        dtype = g.value(model, "weight_dtype", "default")
        if dtype != "default":
            b.partial(f"UNETLoader weight_dtype {dtype}: ComfyUI casts the weights to it, the engine runs the file's own")
    else:
        file_name = str(g.value(model, "ckpt_name"))
        local = _path("checkpoints", file_name)
        b.partial(f"an all-in-one {FAMILY_NAMES[family]} checkpoint ({file_name}): the engine loads "
                  f"{FAMILY_NAMES[family]} from a diffusers folder or from separate files (diffusion_models/, "
                  "text_encoders/, vae/)")
    if is_link(clip) and g.cls(clip[0]) == "CheckpointLoaderSimple":
        if clip[0] != model or clip[1] != 1:
            raise NotMapped("the text encoders come from another checkpoint than the model")
    elif is_link(clip) and g.cls(clip[0]) in ("DualCLIPLoader", "TripleCLIPLoader"):
        loader = clip[0]
        if g.cls(loader) == "DualCLIPLoader" and (family != "flux1" or g.value(loader, "type") != "flux"):
            raise NotMapped(f"DualCLIPLoader type {g.raw(loader, 'type')!r} on a {FAMILY_NAMES[family]} model")
        names = [str(g.value(loader, n)) for n in ("clip_name1", "clip_name2", "clip_name3")
                 if g.raw(loader, n) is not None]
        comps = {}
        for n in names:
            comp = encoder_component(n, family)
            if comp is None or comp in comps:
                raise NotMapped(f"cannot tell which text encoder {n} is (its name must say clip_l, clip_g or t5)")
            comps[comp] = n
        if set(comps) != {c for c, _ in ENCODERS[family]}:
            raise NotMapped(f"{FAMILY_NAMES[family]} needs the text encoders " + ", ".join(x for _, x in ENCODERS[family])
                            + f"; the graph loads {', '.join(names)}")
        encoders = [ComponentRef(local=_path("text_encoders", comps[c]), subfolder=c) for c, _ in ENCODERS[family]]
    else:
        raise NotMapped("the text encoders come from " + (g.cls(clip[0]) if is_link(clip) else "no node")
                        + ", expected DualCLIPLoader, TripleCLIPLoader or the checkpoint")
    decoders = [n for n, node in g.graph.items() if node["class_type"] == "VAEDecode"]
    if len(decoders) != 1:
        raise NotMapped(f"{len(decoders)} VAEDecode nodes; exactly one is mapped")
    if g.raw(decoders[0], "samples") != [k, 0]:
        raise NotMapped("the decoded latent is not the sampler's output")
    vae_src = g.raw(decoders[0], "vae")
    if is_link(vae_src) and g.cls(vae_src[0]) == "VAELoader":
        b.vae = ComponentRef(local=_path("vae", str(g.value(vae_src[0], "vae_name"))))
    elif not (is_link(vae_src) and vae_src[0] == model and vae_src[1] == 2):
        raise NotMapped("the VAE is neither a VAELoader nor the sampler's checkpoint")
    for s, node in g.graph.items():
        if node["class_type"] in ("SaveImage", "PreviewImage") and g.raw(s, "images") != [decoders[0], 0]:
            raise NotMapped("an image output is not the decoded sampler output")
        if node["class_type"] == "SaveImage":
            b.keep("filename_prefix", node.get("inputs", {}).get("filename_prefix"))
    reg = registry_model(file_name, family)
    if reg is None:
        b.partial(f"the diffusion model {file_name} is not a file of a registry model ({registry_files(family)}): "
                  "the engine takes its configs and tokenizers from the registry model it is")
    b.model = {"name": reg or stem(file_name), "family": None if reg else family, "local": local,
               "text_encoders": tuple(encoders)}
    return reg


def _flux_shift(g: _G, node: str | None, reg: str | None, width: int, height: int) -> dict:
    """scheduler_config making diffusers' FLUX.1 time shift (mu) the graph's: ModelSamplingFlux's line through
    (256 tokens, base_shift) and (4096, max_shift) at its width x height, else ComfyUI's constant mu."""
    if node is None:
        return constant_flux_shift(reg)
    base, top = to_float(g.value(node, "base_shift")), to_float(g.value(node, "max_shift"))
    w, h = to_int(g.value(node, "width")), to_int(g.value(node, "height"))
    if (w, h) != (width, height):     # the line at the node's size, not the image's: a constant mu
        m = (top - base) / (4096 - 256)
        return constant_flux_shift(reg, (w * h / (8 * 8 * 2 * 2)) * m + (base - m * 256))
    if reg == "flux1-schnell":       # diffusers' schnell scheduler does not shift by the size
        return {"use_dynamic_shifting": True, "base_shift": base, "max_shift": top}
    return {} if (base, top) == FLUX_DYNAMIC else {"base_shift": base, "max_shift": top}
