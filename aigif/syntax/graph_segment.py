"""The ``comfyui-graph`` extension: a ComfyUI API graph (and UI workflow) kept losslessly and compactly.

Payload (normative text: ``spec/extensions.md`` section 8.1): one byte registry version
(``comfy_names.VERSION``), one byte of flags (bit 0: a workflow follows, bit 1: the
value stream is deflated, bit 2: the prompt is an API graph coded node by node,
bit 3: the workflow is coded node by node, then its links, then the rest), then the value stream of
:mod:`aigif.syntax.jsoncode`. Most of a workflow repeats its API graph (node types,
widget values, link wiring): every workflow node is coded against a prediction built
from the API node of the same id and the registry, and the ``links`` table against
the one the nodes imply, so what is stored is mostly positions and sizes.
"""
from __future__ import annotations

import zlib
from functools import lru_cache
from typing import Any

from ..errors import CorruptError, LimitError, TruncatedError
from ..limits import DEFAULT_LIMITS, Limits, inflate_limited
from . import comfy_names
from .graph_coder import ByteSink, ByteSource, RangeSink, RangeSource
from .jsoncode import MISSING, Reader, Writer
from .jsoncode import same as jsoncode_same

NAME = "comfyui-graph"
TYPE_CODE = 0x42
HAS_WORKFLOW, DEFLATED, API_PROMPT, NODE_WORKFLOW, RANGE_CODED = 1, 2, 4, 8, 16
_NAME_INDEX = {s: i for i, s in enumerate(comfy_names.NAMES)}
_NODE_KEYS = ("id", "type", "pos", "size", "flags", "order", "mode", "inputs", "outputs", "properties", "widgets_values")
_SEEDS = ("seed", "noise_seed")
# coding 2 decodes at most EXPANSION x payload bytes + EXPANSION_BASE characters and items (real graphs: < 10 x),
# so that decoding time follows the payload size
EXPANSION, EXPANSION_BASE = 64, 65536
# contexts of the values the payload codes outside any object (see jsoncode.member_ctx)
_C_PROMPT, _C_NODE_ID, _C_CLASS = ("prompt", 0, 0), ("prompt id", 0, 0), ("class_type", 0, 0)
_C_NODES, _C_WF_ID, _C_LINKS, _C_WORKFLOW = ("nodes", 0, 0), ("id", 0, 0), ("links", 0, 0), ("workflow", 0, 0)


@lru_cache(maxsize=1)
def _zdict() -> bytes:
    """Preset deflate dictionary: the registry names in value-stream form (most frequent last = closest).

    Built on first use: it codes names with the prompt coder, whose model costs a moment to load."""
    w = Writer({})
    for s in reversed(comfy_names.NAMES[:256]):
        w.string(s)
    return bytes(w.sink.out[-32768:])


# --- predictions (the same on both sides: built only from values already coded) ----------------
def _node_table(cls: Any) -> tuple[str, list[tuple[str, str]], list[tuple[str, str]]]:
    title, ins, outs = comfy_names.NODES.get(cls, (cls, "", "")) if isinstance(cls, str) else ("", "", "")
    split = [tuple(x.partition(":")[::2]) for x in ins.split()]
    outputs = [(a, b or a) for a, b in (tuple(x.partition(":")[::2]) for x in outs.split())]
    return title, split, outputs


def predict_api_node(cls: str) -> dict:
    title, ins, _ = _node_table(cls)
    return {"inputs": {name: MISSING for name, _ in ins}, "class_type": cls, "_meta": {"title": title}}


def _is_link(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and type(v[1]) is int


class WorkflowPredictor:
    """Predicts each workflow node from its API node, the registry and the nodes coded before it.

    Both sides call ``predict(id)`` then ``update(node)`` with the same values in the same
    order, so the predictions agree; a wrong prediction only costs bytes.
    """

    def __init__(self, prompt: Any):
        self.prompt = prompt if isinstance(prompt, dict) else {}
        self.sizes: dict[str, Any] = {}               # node type -> size of the last such node
        self.keys: dict[str, list] = {}               # node type -> keys of the last such node, in order
        self.outputs: dict[str, list] = {}            # node id -> its outputs list
        self.claimed: set[int] = set()                # link ids already used by an input
        self.targets: dict[tuple[str, int], list[int]] = {}   # (source id, slot) -> link ids of coded inputs

    def api(self, node_id: Any) -> dict | None:
        api = self.prompt.get(str(node_id))
        ok = isinstance(api, dict) and isinstance(api.get("class_type"), str) and isinstance(api.get("inputs"), dict)
        return api if ok else None

    def predict(self, node_id: Any) -> dict:
        pred: dict = {k: MISSING for k in _NODE_KEYS}
        pred.update(id=node_id, flags={}, mode=0)
        api = self.api(node_id)
        if api is None:
            return pred
        cls = api["class_type"]
        _, ins, outs = _node_table(cls)
        types = dict(ins)
        widgets = []
        for k, v in api["inputs"].items():
            if not _is_link(v):
                widgets.append(v)
                if k in _SEEDS:
                    widgets.append("randomize")
        pred.update(type=cls, size=self.sizes.get(cls, MISSING), properties={"Node name for S&R": cls}, widgets_values=widgets)
        pred["inputs"] = [{"name": k, "type": types.get(k) or MISSING, "link": self._link_into(v)}
                          for k, v in api["inputs"].items() if _is_link(v)]
        pred["outputs"] = [{"name": n, "type": t, "links": sorted(self.targets.get((str(node_id), i), ())) or MISSING,
                            "slot_index": i} for i, (n, t) in enumerate(outs)]
        keys = self.keys.get(cls) or [k for k in _NODE_KEYS if pred[k] != []]
        return {k: pred.get(k, MISSING) for k in keys}

    def _link_into(self, link: list) -> Any:
        """The first unclaimed link id on the source's output slot, when the source is already coded."""
        outs = self.outputs.get(link[0])
        out = outs[link[1]] if outs is not None and 0 <= link[1] < len(outs) else None
        ids = out.get("links") if isinstance(out, dict) else None
        for lid in ids if isinstance(ids, list) else ():
            if type(lid) is int and lid not in self.claimed:
                return lid
        return MISSING

    def update(self, node: dict) -> None:
        node_id, api = node.get("id"), self.api(node.get("id"))
        if isinstance(node.get("type"), str):
            self.keys[node["type"]] = list(node)
            if "size" in node:
                self.sizes[node["type"]] = node["size"]
        if isinstance(node.get("outputs"), list):
            self.outputs[str(node_id)] = node["outputs"]
        inputs = node.get("inputs") if isinstance(node.get("inputs"), list) else []
        names = {k: v for k, v in api["inputs"].items() if _is_link(v)} if api else {}
        for inp in inputs:
            if isinstance(inp, dict) and type(inp.get("link")) is int:
                self.claimed.add(inp["link"])
                src = names.get(inp.get("name")) if isinstance(inp.get("name"), str) else None
                if src is not None:
                    self.targets.setdefault((src[0], src[1]), []).append(inp["link"])


def predict_links(nodes: list) -> list:
    """``[link, from_node, from_slot, to_node, to_slot, type]`` rows the nodes' inputs and outputs imply."""
    to, frm = {}, {}
    for n in nodes if isinstance(nodes, list) else ():
        if not isinstance(n, dict):
            continue
        for i, inp in enumerate(n.get("inputs") if isinstance(n.get("inputs"), list) else ()):
            if isinstance(inp, dict) and type(inp.get("link")) is int:
                to.setdefault(inp["link"], (n.get("id"), i, inp.get("type")))
        for s, out in enumerate(n.get("outputs") if isinstance(n.get("outputs"), list) else ()):
            for link in out.get("links") or () if isinstance(out, dict) and isinstance(out.get("links"), list) else ():
                if type(link) is int:
                    frm.setdefault(link, (n.get("id"), s))
    return [[k, *frm[k], *to[k]] for k in sorted(to) if k in frm]


def _predict_top(nodes: list, links: list) -> dict:
    ids = [n.get("id") for n in nodes if isinstance(n, dict) and type(n.get("id")) is int]
    lids = [r[0] for r in links if isinstance(r, list) and r and type(r[0]) is int]
    return {"id": MISSING, "revision": 0, "last_node_id": max(ids, default=0), "last_link_id": max(lids, default=0),
            "nodes": None, "links": None, "groups": [], "config": {}, "extra": MISSING, "version": 0.4}


def _api_shaped(prompt: Any) -> bool:
    return isinstance(prompt, dict) and all(isinstance(n, dict) and isinstance(n.get("class_type"), str) for n in prompt.values())


def _node_shaped(workflow: Any) -> bool:
    return isinstance(workflow, dict) and isinstance(workflow.get("nodes"), list) and "links" in workflow and \
        all(isinstance(n, dict) and "id" in n for n in workflow["nodes"])


# --- payload ---------------------------------------------------------------------------------
def encode_graph(data: dict, coding: int = 2) -> bytes:
    """``{"prompt": <API graph>, "workflow": <UI workflow, optional>}`` -> payload bytes.

    ``coding`` 2 (the default) range-codes the value stream; 1 writes the bytes of earlier releases."""
    if not isinstance(data, dict) or "prompt" not in data or set(data) - {"prompt", "workflow"}:
        raise ValueError("comfyui-graph data is an object with 'prompt' and optionally 'workflow'")
    prompt, workflow = data["prompt"], data.get("workflow", MISSING)
    flags = (HAS_WORKFLOW if workflow is not MISSING else 0) | (API_PROMPT if _api_shaped(prompt) else 0)
    flags |= NODE_WORKFLOW if _node_shaped(workflow) else 0
    w = Writer(_NAME_INDEX, RangeSink() if coding == 2 else ByteSink())
    if flags & API_PROMPT:
        w.uint(len(prompt), "count", _C_PROMPT)
        for node_id, node in prompt.items():
            w.string(node_id, _C_NODE_ID)
            w.string(node["class_type"], _C_CLASS)
            w.value(node, predict_api_node(node["class_type"]), _C_PROMPT)
    else:
        w.value(prompt, MISSING, _C_PROMPT)
    if flags & NODE_WORKFLOW:
        nodes = workflow["nodes"]
        w.uint(len(nodes), "count", _C_NODES)
        predictor = WorkflowPredictor(prompt)
        for node in nodes:
            w.value(node["id"], MISSING, _C_WF_ID)
            w.value(node, predictor.predict(node["id"]), _C_NODES)
            predictor.update(node)
        links = workflow["links"]
        w.value(links, predict_links(nodes), _C_LINKS)
        rest = {k: (None if k in ("nodes", "links") else v) for k, v in workflow.items()}
        w.value(rest, _predict_top(nodes, links if isinstance(links, list) else []), _C_WORKFLOW)
    elif flags & HAS_WORKFLOW:
        w.value(workflow, MISSING, _C_WORKFLOW)
    raw = w.sink.finish()
    if coding == 2:
        payload = bytes([comfy_names.VERSION, flags | RANGE_CODED]) + raw
        try:
            decode_graph(payload)            # a graph that expands beyond the bound readers apply keeps coding 1
        except LimitError:
            return encode_graph(data, coding=1)
        return payload
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, _zdict())
    packed = c.compress(raw) + c.flush()
    if len(packed) < len(raw):
        flags, raw = flags | DEFLATED, packed
    return bytes([comfy_names.VERSION, flags]) + raw


def decode_graph(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> dict:
    if len(payload) < 2:
        raise TruncatedError(f"comfyui-graph: payload of {len(payload)} bytes, expected a version and a flags byte")
    version, flags = payload[0], payload[1]
    if version != comfy_names.VERSION:
        raise CorruptError(f"comfyui-graph: registry version {version}; this decoder knows {comfy_names.VERSION}")
    if flags >> 5 or (flags & RANGE_CODED and flags & DEFLATED):
        raise CorruptError(f"comfyui-graph: unknown flag bits {flags:#04x}")
    body = payload[2:]
    if flags & DEFLATED:
        body = inflate_limited(body, limits.max_metadata_bytes, wbits=-15, zdict=_zdict(), what="comfyui-graph value stream")
    coded = bool(flags & RANGE_CODED)
    src = RangeSource(body) if coded else ByteSource(body)
    r = Reader(src, list(comfy_names.NAMES), limits, EXPANSION * len(payload) + EXPANSION_BASE if coded else None)
    if flags & API_PROMPT:
        n = r.uint("count", _C_PROMPT)
        limits.check("comfyui-graph: the node count", n, "max_graph_nodes")
        prompt: Any = {}
        for _ in range(n):
            node_id, cls = r.string(_C_NODE_ID), r.string(_C_CLASS)
            if node_id in prompt:
                raise CorruptError(f"comfyui-graph: node {node_id} twice")
            node = r.value(predict_api_node(cls), _C_PROMPT)
            if not isinstance(node, dict) or node.get("class_type") != cls:
                raise CorruptError(f"comfyui-graph: node {node_id} does not hold its class_type {cls!r}")
            prompt[node_id] = node
    else:
        prompt = r.value(MISSING, _C_PROMPT)
    out = {"prompt": prompt}
    if flags & NODE_WORKFLOW:
        n = r.uint("count", _C_NODES)
        limits.check("comfyui-graph: the workflow node count", n, "max_graph_nodes")
        nodes, predictor = [], WorkflowPredictor(prompt)
        for _ in range(n):
            node_id = r.value(MISSING, _C_WF_ID)
            node = r.value(predictor.predict(node_id), _C_NODES)
            if not isinstance(node, dict) or "id" not in node or not jsoncode_same(node["id"], node_id):
                raise CorruptError("comfyui-graph: a workflow node does not hold the id coded before it")
            predictor.update(node)
            nodes.append(node)
        links = r.value(predict_links(nodes), _C_LINKS)
        rest = r.value(_predict_top(nodes, links if isinstance(links, list) else []), _C_WORKFLOW)
        if not isinstance(rest, dict) or "nodes" not in rest or "links" not in rest:
            raise CorruptError("comfyui-graph: the workflow object lacks its 'nodes' or 'links' key")
        out["workflow"] = {k: nodes if k == "nodes" else links if k == "links" else v for k, v in rest.items()}
    elif flags & HAS_WORKFLOW:
        out["workflow"] = r.value(MISSING, _C_WORKFLOW)
    src.check_end()
    return out
