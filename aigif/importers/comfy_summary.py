"""The main sampling pass of any ComfyUI graph, and why the graph is not regenerable.

When a graph is more than the plain txt2img graph (a second pass, area conditioning,
a FLUX or SD3 model, a custom node...), the exact graph is kept in the
``comfyui-graph`` segment and the syntax holds only its main pass: seed, steps,
guidance, sampler, prompt, size and model of the sampler that starts from an empty
latent. That syntax is marked ``partial-syntax`` with the reason, so it is shown and
searchable but never regenerated as if it were complete. Samplers understood:
KSampler, KSamplerAdvanced, SamplerCustom and SamplerCustomAdvanced with
RandomNoise, BasicGuider / CFGGuider, KSamplerSelect and BasicScheduler.
"""
from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..syntax.comfy_names import NODES
from . import samplers
from .comfy_graph import is_link

SAMPLERS = ("KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced")
EMPTY_LATENTS = ("EmptyLatentImage", "EmptySD3LatentImage", "EmptyHunyuanLatentVideo", "EmptyLTXVLatentVideo")
TEXT_KEYS = ("text", "text_g", "t5xxl", "clip_l", "prompt")
FLUX_NODES = {"FluxGuidance", "ModelSamplingFlux", "CLIPTextEncodeFlux"}
SD3_NODES = {"TripleCLIPLoader", "ModelSamplingSD3"}


def custom_nodes(graph: dict[str, dict], workflow: Any = None) -> list[str]:
    """Classes from node packs: the UI workflow's ``cnr_id`` when it names another pack than comfy-core,
    else classes outside the node registry (``spec/registry.md``, "ComfyUI nodes")."""
    classes = {n["class_type"] for n in graph.values()}
    packs = {}
    for n in workflow.get("nodes", []) if isinstance(workflow, dict) and isinstance(workflow.get("nodes"), list) else ():
        props = n.get("properties") if isinstance(n, dict) else None
        if isinstance(props, dict) and isinstance(n.get("type"), str) and ("cnr_id" in props or "aux_id" in props):
            packs[n["type"]] = props.get("cnr_id") or props.get("aux_id")
    return sorted(c for c in classes if (packs[c] != "comfy-core" if c in packs else c not in NODES))


def not_regenerable_reason(graph: dict[str, dict], workflow: Any = None) -> str | None:
    """A reason naming what the syntax cannot express (custom nodes), or None when nothing obvious stands out."""
    custom = custom_nodes(graph, workflow)
    if custom:
        return "custom node " + ", ".join(custom[:8]) + (f" (+{len(custom) - 8} more)" if len(custom) > 8 else "")
    return None


def graph_family(graph: dict[str, dict]) -> str | None:
    """flux1 / sd3 when the graph's nodes say so (FluxGuidance, a flux DualCLIPLoader, TripleCLIPLoader, an sd3*
    model file...), else None. EmptySD3LatentImage alone says nothing: other flow models use it too."""
    classes = {n["class_type"] for n in graph.values()}
    types = {n.get("inputs", {}).get("type") for n in graph.values() if n["class_type"] in ("DualCLIPLoader", "CLIPLoader")}
    files = [str(n.get("inputs", {}).get(k, "")).replace("\\", "/").rsplit("/", 1)[-1].lower() for n in graph.values()
             for k in ("ckpt_name", "unet_name")]
    if classes & FLUX_NODES or "flux" in types:
        return "flux1"
    if classes & SD3_NODES or "sd3" in types or any(f.startswith("sd3") for f in files):
        return "sd3"
    return None


class _Walk:
    def __init__(self, graph: dict[str, dict]):
        self.graph = graph

    def inputs(self, node_id: str) -> dict:
        return self.graph[node_id].get("inputs", {})

    def source(self, node_id: str, name: str) -> str | None:
        v = self.inputs(node_id).get(name)
        return v[0] if is_link(v) else None

    def back(self, start: str | None, found) -> Any:
        """Breadth-first up the links from *start* until ``found(node_id)`` returns a value.

        The walk does not pass through another sampler: what lies before it belongs to an earlier pass.
        """
        queue, seen = [start] if start else [], set()
        while queue:
            node_id = queue.pop(0)
            if node_id in seen:
                continue
            seen.add(node_id)
            hit = found(node_id)
            if hit is not None:
                return hit
            if self.graph[node_id]["class_type"] not in SAMPLERS:
                queue.extend(v[0] for v in self.inputs(node_id).values() if is_link(v))
        return None

    def literal(self, node_id: str | None, *names: str) -> Any:
        if node_id is None:
            return None
        for n in names:
            v = self.inputs(node_id).get(n)
            if v is not None and not is_link(v):
                return v
        return None

    def of_class(self, node_id: str | None, *classes: str) -> str | None:
        return node_id if node_id and self.graph[node_id]["class_type"] in classes else None


def main_pass(graph: dict[str, dict]) -> dict[str, Any] | None:
    """Generation fields of the first sampling pass (``gen``), plus ``model_file``; None when no sampler is found."""
    w = _Walk(graph)
    found = [k for k, n in graph.items() if n["class_type"] in SAMPLERS]
    if not found:
        return None

    def starts_empty(k: str) -> bool:
        lat = w.source(k, "latent_image")
        return w.back(lat, lambda n: True if graph[n]["class_type"] in EMPTY_LATENTS else None) is not None

    key = sorted(found, key=lambda k: (not starts_empty(k), len(k), k))[0]
    cls = graph[key]["class_type"]
    gen: dict[str, Any] = {}
    seed, steps, cfg, sampler, scheduler = (w.literal(key, "seed", "noise_seed"), w.literal(key, "steps"),
                                            w.literal(key, "cfg"), w.literal(key, "sampler_name"), w.literal(key, "scheduler"))
    positive, negative, model = w.source(key, "positive"), w.source(key, "negative"), w.source(key, "model")
    if cls in ("SamplerCustom", "SamplerCustomAdvanced"):
        sigmas = w.of_class(w.source(key, "sigmas"), "BasicScheduler")
        steps, scheduler = w.literal(sigmas, "steps"), w.literal(sigmas, "scheduler")
        sampler = w.literal(w.of_class(w.source(key, "sampler"), "KSamplerSelect"), "sampler_name")
        model = model or w.source(sigmas, "model") if sigmas else model
    if cls == "SamplerCustomAdvanced":
        seed = w.literal(w.of_class(w.source(key, "noise"), "RandomNoise"), "noise_seed")
        guider = w.of_class(w.source(key, "guider"), "BasicGuider", "CFGGuider")
        cfg = w.literal(guider, "cfg")
        positive = w.source(guider, "conditioning") or w.source(guider, "positive") if guider else None
        negative = w.source(guider, "negative") if guider else None
        model = w.source(guider, "model") if guider else None
    flux = w.back(positive, lambda n: w.literal(n, "guidance") if graph[n]["class_type"] == "FluxGuidance" else None)
    gen["seed"], gen["num_inference_steps"] = seed, steps
    gen["guidance_scale"] = flux if flux is not None else (cfg if cfg is not None else 1.0)
    gen["prompt"] = _text(w, positive)
    neg = _text(w, negative) if negative else None
    if neg is not None:
        gen["negative_prompt"] = neg
    try:     # a FLUX / SD3 graph's sampler maps through aigif.syntax.flow.flow_scheduler
        mapped = samplers.from_comfy(sampler, scheduler, graph_family(graph)) \
            if sampler is not None and scheduler is not None else None
    except ConfigError:
        mapped = None           # kept in the graph segment; the partial syntax names no scheduler
    if mapped:
        gen["scheduler"] = mapped[0]
        if mapped[1]:
            gen["scheduler_config"] = mapped[1]
    size = w.back(w.source(key, "latent_image"), lambda n: (w.literal(n, "width"), w.literal(n, "height"))
                  if graph[n]["class_type"] in EMPTY_LATENTS else None)
    if size and all(isinstance(x, int) for x in size):
        gen["width"], gen["height"] = size
    model_file = w.back(model, lambda n: w.literal(n, "ckpt_name", "unet_name"))
    return {"gen": {k: v for k, v in gen.items() if v is not None}, "model_file": model_file,
            "sampler": {"sampler_name": sampler, "scheduler": scheduler}}


def _text(w: _Walk, start: str | None) -> str | None:
    def text(n: str):
        if w.graph[n]["class_type"] == "ConditioningZeroOut":
            return ""
        v = w.literal(n, *TEXT_KEYS)
        return v if isinstance(v, str) else None

    return w.back(start, text)
