"""The ``comfyui-graph`` extension: a ComfyUI API graph (and UI workflow) kept losslessly and compactly.

Payload (normative text: ``spec/extensions.md`` section 8.1): one byte registry version
(``comfy_names.VERSION``), one byte of flags (bit 0: a workflow follows, bit 1: the
value stream is deflated, bit 2: the prompt is an API graph coded node by node,
bit 3: the workflow is coded node by node, then its links, then the rest, bit 4: coding 2,
the value stream range-coded with adaptive context models), then the value stream of
:mod:`aigif.syntax.jsoncode`. Every value is coded against what
:mod:`aigif.syntax.graph_predict` predicts from the registry and the values before it,
so what is stored is mostly what the UI adds: positions, changed sizes, notes.
"""
from __future__ import annotations

import zlib
from functools import lru_cache
from typing import Any

from ..errors import CorruptError, LimitError, TruncatedError
from ..limits import DEFAULT_LIMITS, Limits, inflate_limited
from . import comfy_names
from .graph_coder import ByteSink, ByteSource, RangeSink, RangeSource
from .graph_predict import WorkflowPredictor, predict_api_node, predict_links, predict_prompt_id, predict_top
from .jsoncode import MISSING, Reader, Writer
from .jsoncode import same as jsoncode_same

NAME = "comfyui-graph"
TYPE_CODE = 0x42
HAS_WORKFLOW, DEFLATED, API_PROMPT, NODE_WORKFLOW, RANGE_CODED = 1, 2, 4, 8, 16
_NAME_INDEX = {s: i for i, s in enumerate(comfy_names.NAMES)}
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
    refined = coding == 2
    w = Writer(_NAME_INDEX, RangeSink() if refined else ByteSink(), deltas=refined)
    if flags & API_PROMPT:
        w.uint(len(prompt), "count", _C_PROMPT)
        last = None
        for node_id, node in prompt.items():
            if refined:
                w.value(node_id, predict_prompt_id(last), _C_NODE_ID)
                last = node_id
            else:
                w.string(node_id, _C_NODE_ID)
            w.string(node["class_type"], _C_CLASS)
            w.value(node, predict_api_node(node["class_type"]), _C_PROMPT)
    else:
        w.value(prompt, MISSING, _C_PROMPT)
    if flags & NODE_WORKFLOW:
        nodes = workflow["nodes"]
        w.uint(len(nodes), "count", _C_NODES)
        predictor = WorkflowPredictor(prompt, refined)
        for node in nodes:
            w.value(node["id"], MISSING, _C_WF_ID)
            w.value(node, predictor.predict(node["id"]), _C_NODES)
            predictor.update(node)
        links = workflow["links"]
        w.value(links, predict_links(nodes), _C_LINKS)
        rest = {k: (None if k in ("nodes", "links") else v) for k, v in workflow.items()}
        w.value(rest, predict_top(nodes, links if isinstance(links, list) else []), _C_WORKFLOW)
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
    r = Reader(src, list(comfy_names.NAMES), limits, EXPANSION * len(payload) + EXPANSION_BASE if coded else None, deltas=coded)
    if flags & API_PROMPT:
        n = r.uint("count", _C_PROMPT)
        limits.check("comfyui-graph: the node count", n, "max_graph_nodes")
        prompt: Any = {}
        node_id = None
        for _ in range(n):
            node_id = r.value(predict_prompt_id(node_id), _C_NODE_ID) if coded else r.string(_C_NODE_ID)
            if not isinstance(node_id, str):
                raise CorruptError("comfyui-graph: a prompt node id that is not a string")
            cls = r.string(_C_CLASS)
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
        nodes, predictor = [], WorkflowPredictor(prompt, coded)
        for _ in range(n):
            node_id = r.value(MISSING, _C_WF_ID)
            node = r.value(predictor.predict(node_id), _C_NODES)
            if not isinstance(node, dict) or "id" not in node or not jsoncode_same(node["id"], node_id):
                raise CorruptError("comfyui-graph: a workflow node does not hold the id coded before it")
            predictor.update(node)
            nodes.append(node)
        links = r.value(predict_links(nodes), _C_LINKS)
        rest = r.value(predict_top(nodes, links if isinstance(links, list) else []), _C_WORKFLOW)
        if not isinstance(rest, dict) or "nodes" not in rest or "links" not in rest:
            raise CorruptError("comfyui-graph: the workflow object lacks its 'nodes' or 'links' key")
        out["workflow"] = {k: nodes if k == "nodes" else links if k == "links" else v for k, v in rest.items()}
    elif flags & HAS_WORKFLOW:
        out["workflow"] = r.value(MISSING, _C_WORKFLOW)
    src.check_end()
    return out
