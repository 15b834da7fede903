"""Predictions of the ``comfyui-graph`` extension (``spec/extensions.md`` section 8.1).

Most of a workflow repeats its API graph (node types, widget values, link wiring) and the
registry (titles, inputs, default sizes): every value is coded against what these predict, so
what is stored is mostly what the UI adds (positions, sizes a user changed, notes). Both sides
build the predictions only from values already coded, so they agree; a wrong prediction only
costs bytes. Coding 1 uses the predictions of the releases that wrote it; coding 2 refines them
(``refined``): UI-only nodes from the last one, first sizes of a class from the registry.
"""
from __future__ import annotations

from typing import Any

from . import comfy_names
from .jsoncode import MISSING

_NODE_KEYS = ("id", "type", "pos", "size", "flags", "order", "mode", "inputs", "outputs", "properties", "widgets_values")
_SEEDS = ("seed", "noise_seed")
_UI_ONLY_FRESH = ("id", "pos", "order", "inputs", "outputs", "widgets_values")   # not taken from the last UI-only node


def _node_table(cls: Any) -> tuple[str, list[tuple[str, str]], list[tuple[str, str]]]:
    title, ins, outs = comfy_names.NODES.get(cls, (cls, "", "")) if isinstance(cls, str) else ("", "", "")
    split = [tuple(x.partition(":")[::2]) for x in ins.split()]
    outputs = [(a, b or a) for a, b in (tuple(x.partition(":")[::2]) for x in outs.split())]
    return title, split, outputs


def predict_api_node(cls: str) -> dict:
    title, ins, _ = _node_table(cls)
    return {"inputs": {name: MISSING for name, _ in ins}, "class_type": cls, "_meta": {"title": title}}


def predict_prompt_id(last: Any) -> Any:
    """Coding 2: the id after the last prompt node's, when that one is a decimal number."""
    return str(int(last) + 1) if isinstance(last, str) and last.isascii() and last.isdigit() and len(last) < 19 else MISSING


def _is_link(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and type(v[1]) is int


class WorkflowPredictor:
    """Predicts each workflow node from its API node, the registry and the nodes coded before it.

    Both sides call ``predict(id)`` then ``update(node)`` with the same values in the same order.
    """

    def __init__(self, prompt: Any, refined: bool = True):
        self.prompt = prompt if isinstance(prompt, dict) else {}
        self.refined = refined
        self.sizes: dict[str, Any] = {}               # node type -> size of the last such node
        self.keys: dict[str, list] = {}               # node type -> keys of the last such node, in order
        self.outputs: dict[str, list] = {}            # node id -> its outputs list
        self.claimed: set[int] = set()                # link ids already used by an input
        self.targets: dict[tuple[str, int], list[int]] = {}   # (source id, slot) -> link ids of coded inputs
        self.last: dict = {}                          # the node coded last
        self.ui_last: dict = {}                       # the last node without a prompt node

    def api(self, node_id: Any) -> dict | None:
        api = self.prompt.get(str(node_id))
        ok = isinstance(api, dict) and isinstance(api.get("class_type"), str) and isinstance(api.get("inputs"), dict)
        return api if ok else None

    def predict(self, node_id: Any) -> dict:
        pred: dict = {k: MISSING for k in _NODE_KEYS}
        pred.update(id=node_id, flags={}, mode=0)
        api = self.api(node_id)
        if api is None:
            if not self.refined or not self.ui_last:
                return pred
            return {k: (pred[k] if k in _UI_ONLY_FRESH else v) for k, v in self.ui_last.items()}
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
        if self.refined and cls not in self.sizes and cls in comfy_names.SIZES:
            w, h = comfy_names.SIZES[cls]
            pred["size"] = {"0": w, "1": h} if isinstance(self.last.get("size"), dict) else [w, h]
        links = [(k, v) for k, v in api["inputs"].items() if _is_link(v)]
        pred["inputs"] = [{"name": k, "type": types.get(k) or MISSING, "link": self._link_into(v)} for k, v in links]
        pred["outputs"] = [{"name": n, "type": t, "links": self._links_from(node_id, i), "slot_index": i}
                           for i, (n, t) in enumerate(outs)]
        keys = self.keys.get(cls) or [k for k in _NODE_KEYS if pred[k] != []]
        return {k: pred.get(k, MISSING) for k in keys}

    def _links_from(self, node_id: Any, slot: int) -> Any:
        return sorted(self.targets.get((str(node_id), slot), ())) or MISSING

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
        self.last = node
        if api is None:
            self.ui_last = node
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


def predict_top(nodes: list, links: list) -> dict:
    ids = [n.get("id") for n in nodes if isinstance(n, dict) and type(n.get("id")) is int]
    lids = [r[0] for r in links if isinstance(r, list) and r and type(r[0]) is int]
    return {"id": MISSING, "revision": 0, "last_node_id": max(ids, default=0), "last_link_id": max(lids, default=0),
            "nodes": None, "links": None, "groups": [], "config": {}, "extra": MISSING, "version": 0.4}
