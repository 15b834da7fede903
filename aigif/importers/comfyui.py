"""ComfyUI ``prompt`` (API graph, checked by comfy_graph) -> syntax, for the plain txt2img graph only.

Supported: CheckpointLoaderSimple -> [LoraLoader...] -> [CLIPSetLastLayer] ->
CLIPTextEncode (positive, negative) -> KSampler (denoise 1.0) <- EmptyLatentImage
(batch 1) -> VAEDecode [<- VAELoader] -> SaveImage/PreviewImage, with an optional hires
pass LatentUpscale(By) -> KSampler (denoise <= 1) before the decoder (importers.passes), or
a sampler starting from an encoded LoadImage (image-to-image, inpainting: importers.img2img). The graph and the
UI workflow are always kept in the ``comfyui-graph`` segment. Any other node, or a
wiring the syntax cannot express, makes the syntax partial: only the main pass is
kept (comfy_summary), marked not regenerable with the reason.
"""
from __future__ import annotations

import json
from typing import Any

from ..errors import ConfigError
from ..syntax.elements import ComponentRef
from . import comfy_flow, comfy_summary, samplers
from .img2img import comfy_img2img_split
from .passes import UPSCALE_NODES, NotMapped, comfy_refiner_split, comfy_split
from .comfy_graph import is_link
from .comfy_networks import comfy_embeddings, comfy_lora
from .comfy_upscale import PASS_NODES
from .result import Builder, Imported, _maybe_json, stem, to_float, to_int

SAMPLER_NODES = ("KSampler", "KSamplerAdvanced")
ALLOWED = {
    "CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "KSamplerAdvanced", "VAEDecode",
    "SaveImage", "PreviewImage", "VAELoader", "LoraLoader", "CLIPSetLastLayer", "LoraLoaderModelOnly",
}


class _Unsupported(Exception):
    pass


class _Graph:
    def __init__(self, nodes: dict[str, dict]):
        self.nodes = nodes

    def inputs(self, node_id: str) -> dict:
        inp = self.nodes[node_id].get("inputs", {})
        if not isinstance(inp, dict):
            raise _Unsupported(f"node {node_id} has malformed inputs")
        return inp

    def link(self, node_id: str, name: str, want: set[str]) -> tuple[str, int]:
        v = self.inputs(node_id).get(name)
        if not is_link(v):
            raise _Unsupported(f"input {name!r} of node {node_id} is not linked to a node")
        src = v[0]
        cls = self.nodes[src].get("class_type")
        if cls not in want:
            raise _Unsupported(f"input {name!r} of node {node_id} comes from {cls}, expected {' or '.join(sorted(want))}")
        return src, v[1]

    def value(self, node_id: str, name: str) -> Any:
        v = self.inputs(node_id).get(name)
        if isinstance(v, list) or v is None:
            raise _Unsupported(f"input {name!r} of node {node_id} is not a plain value")
        return v

    def of_class(self, *classes: str) -> list[str]:
        return [k for k, n in self.nodes.items() if n.get("class_type") in classes]


def map_comfyui(fields: dict[str, str], graph: dict[str, dict] | None, *, image_size=None, metadata_bytes: int = 0,
                carrier: str = "", summary: dict | None = None) -> Imported:
    """Map a graph checked by :func:`~aigif.importers.comfy_graph.parse_graph` (None: no usable graph).

    The graph (and the UI workflow) is always kept, losslessly, in a ``comfyui-graph`` segment.
    A graph the syntax cannot express keeps its main pass as a partial syntax (see comfy_summary).
    """
    b = Builder("ComfyUI", fields)
    if graph is not None:
        _keep_graph(b, graph, fields.get("workflow"))
    try:
        if graph is None:
            raise ValueError("the ComfyUI 'prompt' field is not a node graph")
        family = comfy_summary.graph_family(graph)
        if family in comfy_flow.ENCODERS:
            try:
                comfy_flow.map_flow(graph, b, family)
            except ValueError as exc:        # NotMapped, or a number that is none
                b.gen, b.model, b.vae, b.partial_reasons = {}, {}, None, []
                _partial(b, graph, f"ComfyUI {comfy_flow.FAMILY_NAMES[family]} graph: {exc}")
            return _finish(b, fields, image_size, metadata_bytes, carrier, summary)
        one_pass, problem = as_ksampler(graph), None
        try:
            one_pass, b.img2img = comfy_img2img_split(one_pass, image_size)
        except NotMapped as exc:
            raise _Unsupported(f"image-to-image: {exc}") from None
        try:
            one_pass, b.hires = comfy_split(one_pass, image_size)
            one_pass, b.refiner = comfy_refiner_split(one_pass)
        except NotMapped as exc:
            problem, b.hires, b.refiner = f"hires or refiner pass: {exc}", None, None
        _map_graph(_Graph(one_pass), b, problem)
    except _Unsupported as exc:
        b.hires = b.refiner = b.img2img = None
        _partial(b, graph, f"ComfyUI graph: {exc}")
    except ValueError as exc:
        b.block(str(exc))
    return _finish(b, fields, image_size, metadata_bytes, carrier, summary)


def _finish(b: Builder, fields: dict, image_size, metadata_bytes: int, carrier: str, summary: dict | None) -> Imported:
    for key in fields:
        if key not in ("prompt", "workflow"):
            b.keep(key, fields[key])
    b.prompt_syntax("comfyui")
    imp = b.build(image_size, metadata_bytes, carrier)
    if imp.unsupported and summary:
        imp.extra["summary"] = summary
    return imp


def _keep_graph(b: Builder, graph: dict, workflow_text: str | None) -> None:
    from ..container import Segment
    from ..syntax.graph_segment import TYPE_CODE, encode_graph

    data: dict[str, Any] = {"prompt": graph}
    if workflow_text is not None:
        try:
            data["workflow"] = json.loads(workflow_text)
        except (json.JSONDecodeError, RecursionError):
            b.keep("workflow", workflow_text)             # not JSON: kept as the text it is
    try:
        b.segments.append(Segment(TYPE_CODE, encode_graph(data)))
    except (ValueError, TypeError, RecursionError) as exc:   # e.g. a text above the segment's limits
        b.keep("graph_not_stored", f"{type(exc).__name__}: {exc}")    # the fields then stay in extra.raw
        return
    b.raw_kept.update(data.keys())


def _partial(b: Builder, graph: dict | None, reason: str) -> None:
    """Keep the main pass as a partial syntax when one can be found; else no syntax (and why)."""
    main = comfy_summary.main_pass(graph) if graph else None
    if not b.segments or main is None or "prompt" not in main["gen"] or not main["model_file"]:
        b.block(reason)
        return
    b.gen, b.loras, b.vae, b.model, b.clip_layer = dict(main["gen"]), [], None, {}, None
    b.set_model(stem(str(main["model_file"])), None, weights_file=str(main["model_file"]))
    b.keep("sampler", main["sampler"])
    workflow = _maybe_json(b.raw.get("workflow"))
    b.partial(comfy_summary.not_regenerable_reason(graph, workflow) or reason)


def as_ksampler(graph: dict[str, dict]) -> dict[str, dict]:
    """The graph with a custom-sampler cluster that a KSampler equals rewritten as that KSampler.

    ``SamplerCustomAdvanced`` with ``RandomNoise``, ``CFGGuider``, ``KSamplerSelect`` and
    ``BasicScheduler`` (denoise 1, the guider's model), or ``SamplerCustom`` (add_noise on) with
    ``KSamplerSelect`` and ``BasicScheduler``, samples exactly as ``KSampler`` does with the same
    seed, steps, cfg, sampler and scheduler. Helper nodes used by nothing else are dropped.
    Anything else is returned unchanged.
    """
    out = dict(graph)
    for key, node in graph.items():
        cls, inp = node["class_type"], node.get("inputs", {})
        if cls not in ("SamplerCustomAdvanced", "SamplerCustom"):
            continue

        def src(name: str, want: str, where: dict = inp) -> str | None:
            v = where.get(name)
            return v[0] if is_link(v) and graph[v[0]]["class_type"] == want else None

        sel, sch = src("sampler", "KSamplerSelect"), src("sigmas", "BasicScheduler")
        if sel is None or sch is None:
            continue
        sched = graph[sch]["inputs"]
        if cls == "SamplerCustomAdvanced":
            noise, guider = src("noise", "RandomNoise"), src("guider", "CFGGuider")
            if noise is None or guider is None:
                continue
            g_in = graph[guider]["inputs"]
            fields = {"seed": graph[noise]["inputs"].get("noise_seed"), "cfg": g_in.get("cfg"), "model": g_in.get("model"),
                      "positive": g_in.get("positive"), "negative": g_in.get("negative")}
            helpers = [noise, guider, sel, sch]
        else:
            if inp.get("add_noise") is not True:
                continue
            fields = {"seed": inp.get("noise_seed"), "cfg": inp.get("cfg"), "model": inp.get("model"),
                      "positive": inp.get("positive"), "negative": inp.get("negative")}
            helpers = [sel, sch]
        if sched.get("denoise", 1.0) != 1.0 or sched.get("model") != fields["model"]:
            continue
        used = {v[0] for k2, n in graph.items() if k2 not in helpers and k2 != key
                for v in n.get("inputs", {}).values() if is_link(v)}
        if used & set(helpers):
            continue
        out[key] = {"class_type": "KSampler", "inputs": {
            **fields, "steps": sched.get("steps"), "sampler_name": graph[sel]["inputs"].get("sampler_name"),
            "scheduler": sched.get("scheduler"), "denoise": 1.0, "latent_image": inp.get("latent_image")}}
        for h in helpers:
            out.pop(h, None)
    return out


def _map_graph(g: _Graph, b: Builder, hires_problem: str | None = None) -> None:
    passes = {*UPSCALE_NODES, *PASS_NODES, *(("VAEEncode",) if hires_problem else ())}
    others = sorted({n.get("class_type") for n in g.nodes.values()} - ALLOWED - passes, key=str)
    if others:
        raise _Unsupported(f"node type(s) {', '.join(map(str, others))} are not part of a plain txt2img graph")
    if hires_problem:
        raise _Unsupported(hires_problem)
    stray = g.of_class(*UPSCALE_NODES, *PASS_NODES)       # what comfy_split took as a hires pass is gone from the graph
    if stray:
        raise _Unsupported(f"{g.nodes[stray[0]]['class_type']} (node {stray[0]}) outside a hires pass (KSampler -> "
                           "LatentUpscale(By), or VAEDecode -> image upscale -> VAEEncode, -> KSampler)")
    ks = g.of_class(*SAMPLER_NODES)
    if len(ks) != 1:
        raise _Unsupported(f"{len(ks)} sampler nodes; exactly one KSampler (or KSamplerAdvanced) is supported")
    k = ks[0]
    steps = to_int(g.value(k, "steps"))
    if g.nodes[k]["class_type"] == "KSamplerAdvanced":
        # equivalent to a plain KSampler only when it runs all steps from pure noise
        adv = {key: g.value(k, key) for key in ("add_noise", "start_at_step", "end_at_step", "return_with_leftover_noise")}
        if adv["add_noise"] != "enable" or to_int(adv["start_at_step"]) != 0 or to_int(adv["end_at_step"]) < steps \
                or adv["return_with_leftover_noise"] != "disable":
            raise _Unsupported(f"KSamplerAdvanced runs a partial schedule ({adv})")
        b.gen["seed"] = to_int(g.value(k, "noise_seed"))
    else:
        denoise = to_float(g.value(k, "denoise")) if "denoise" in g.inputs(k) else 1.0
        if denoise != 1.0:
            raise _Unsupported(f"KSampler denoise {denoise} (image-to-image)")
        b.gen["seed"] = to_int(g.value(k, "seed"))
    b.gen["num_inference_steps"] = steps
    b.gen["guidance_scale"] = to_float(g.value(k, "cfg"))

    # model chain: KSampler.model <- LoraLoader* <- CheckpointLoaderSimple
    node, _ = g.link(k, "model", {"CheckpointLoaderSimple", "LoraLoader", "LoraLoaderModelOnly"})
    model_loras = []
    while g.nodes[node]["class_type"] != "CheckpointLoaderSimple":
        model_loras.append(node)
        node, _ = g.link(node, "model", {"CheckpointLoaderSimple", "LoraLoader", "LoraLoaderModelOnly"})
    ckpt = node
    model_loras.reverse()                        # application order: closest to the checkpoint first

    def clip_chain(enc: str) -> tuple[list[str], int | None]:
        src, slot = g.link(enc, "clip", {"CheckpointLoaderSimple", "LoraLoader", "CLIPSetLastLayer"})
        skip = None
        if g.nodes[src]["class_type"] == "CLIPSetLastLayer":
            skip = to_int(g.value(src, "stop_at_clip_layer"))
            src, slot = g.link(src, "clip", {"CheckpointLoaderSimple", "LoraLoader"})
        chain = []
        while g.nodes[src]["class_type"] == "LoraLoader":
            if slot != 1:
                raise _Unsupported(f"CLIP input of node {enc} is wired to a LoraLoader's model output")
            chain.append(src)
            src, slot = g.link(src, "clip", {"CheckpointLoaderSimple", "LoraLoader"})
        if src != ckpt or slot != 1:
            raise _Unsupported("the text encoder does not come from the sampler's checkpoint")
        chain.reverse()
        return chain, skip

    texts, chains = {}, []
    for side in ("positive", "negative"):
        enc, _ = g.link(k, side, {"CLIPTextEncode"})
        text = g.value(enc, "text")
        if not isinstance(text, str):
            raise _Unsupported(f"the {side} prompt is not text")
        texts[side] = text
        chains.append(clip_chain(enc))
    if chains[0] != chains[1]:
        raise _Unsupported("positive and negative prompts use different text-encoder chains")
    clip_loras, stop_at = chains[0]
    if [n for n in model_loras if g.nodes[n]["class_type"] == "LoraLoader"] != clip_loras:
        raise _Unsupported("LoRAs are applied differently to the UNet and the text encoder")
    b.gen["prompt"], b.gen["negative_prompt"] = texts["positive"], texts["negative"]
    for name, token in comfy_embeddings(texts.values()):
        b.embedding(name, token=token)
    if stop_at is not None:
        if stop_at > -1:
            raise _Unsupported(f"CLIPSetLastLayer stop_at_clip_layer {stop_at}")
        b.clip_layer = -stop_at                  # -2 = the penultimate layer

    lat, _ = g.link(k, "latent_image", {"EmptyLatentImage"})
    batch = to_int(g.value(lat, "batch_size")) if "batch_size" in g.inputs(lat) else 1
    if batch != 1:
        raise _Unsupported(f"batch_size {batch}: the metadata does not say which image of the batch this is")
    b.gen["width"], b.gen["height"] = to_int(g.value(lat, "width")), to_int(g.value(lat, "height"))

    decoders = g.of_class("VAEDecode")
    if len(decoders) != 1:
        raise _Unsupported(f"{len(decoders)} VAEDecode nodes; exactly one is supported")
    dec = decoders[0]
    if g.link(dec, "samples", set(SAMPLER_NODES))[0] != k:
        raise _Unsupported("the decoded latent is not the sampler's output")
    vae_src, slot = g.link(dec, "vae", {"CheckpointLoaderSimple", "VAELoader"})
    if g.nodes[vae_src]["class_type"] == "VAELoader":
        vae_name = g.value(vae_src, "vae_name")
        b.vae = ComponentRef(name=str(vae_name))
    elif vae_src != ckpt or slot != 2:
        raise _Unsupported("the VAE does not come from the sampler's checkpoint")
    savers = g.of_class("SaveImage", "PreviewImage")
    for s in savers:
        if g.link(s, "images", {"VAEDecode"})[0] != dec:
            raise _Unsupported("an image output is not the decoded sampler output")

    ckpt_name = str(g.value(ckpt, "ckpt_name"))
    b.set_model(stem(ckpt_name), None, weights_file=ckpt_name)
    sampler_name, scheduler = g.value(k, "sampler_name"), g.value(k, "scheduler")
    try:     # for the model's family: a flow-matching one maps through aigif.syntax.flow.flow_scheduler
        mapped = samplers.from_comfy(sampler_name, scheduler, b.family())
    except ConfigError as exc:
        raise _Unsupported(str(exc)) from None
    if mapped is None:
        raise _Unsupported(f"sampler {sampler_name!r} with scheduler {scheduler!r} has no equivalent in the scheduler registry")
    b.gen["scheduler"], cfg = mapped
    if cfg:
        b.gen["scheduler_config"] = cfg
    b.loras.extend(comfy_lora(n, g.nodes[n]["class_type"], g.value) for n in model_loras)
    b.keep("filename_prefix", next((g.inputs(s).get("filename_prefix") for s in savers if "filename_prefix" in g.inputs(s)), None))
