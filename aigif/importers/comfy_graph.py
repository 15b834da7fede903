"""ComfyUI API graphs (the ``prompt`` PNG field): parse and check before anyone walks them.

An API graph maps node ids to ``{"class_type": str, "inputs": {name: value}}``; an
input value that is a two-element list ``[node_id: str, output_slot: int]`` is a
link to another node's output (ComfyUI's own rule). The graph is untrusted: a
link may point at a missing node or back at its own node, and a graph may be
huge. :func:`parse_graph` refuses those with an ``AigifError`` before any mapper
or sd-parsers follows a link, so every later walk terminates.
"""
from __future__ import annotations

import json
from typing import Any

from ..errors import ImportMetadataError
from ..limits import DEFAULT_LIMITS, Limits


def is_link(value: Any) -> bool:
    """``[node_id, output_slot]``: ComfyUI reads any such list as a link, never as a literal."""
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], int) and not isinstance(value[1], bool))


def looks_like_graph(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(n, dict) and "class_type" in n for n in obj.values())


def parse_graph(raw: Any, limits: Limits = DEFAULT_LIMITS) -> dict[str, dict] | None:
    """The checked graph of a ``prompt`` field; None when the field is not a node graph at all.

    Raises ``LimitError`` above ``limits.max_graph_nodes`` nodes and ``ImportMetadataError``
    for a node without inputs, a dangling link or a dependency cycle.
    """
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except (json.JSONDecodeError, RecursionError):
            return None
    if not looks_like_graph(raw):
        return None
    limits.check("ComfyUI graph: the node count", len(raw), "max_graph_nodes")
    graph = {str(k): v for k, v in raw.items()}
    for node_id, node in graph.items():
        if not isinstance(node["class_type"], str):
            raise ImportMetadataError(f"ComfyUI graph: node {node_id} has a class_type that is not text")
        inputs = node.get("inputs", {})
        if not isinstance(inputs, dict):
            raise ImportMetadataError(f"ComfyUI graph: node {node_id} ({node['class_type']}) has malformed inputs")
        for name, value in inputs.items():
            if is_link(value) and value[0] not in graph:
                raise ImportMetadataError(f"ComfyUI graph: input {name!r} of node {node_id} links to node {value[0]}, "
                                          "which is not in the graph (dangling link)")
    _check_acyclic(graph)
    return graph


def links_of(node: dict) -> list[str]:
    return [v[0] for v in node.get("inputs", {}).values() if is_link(v)]


def _check_acyclic(graph: dict[str, dict]) -> None:
    """Iterative depth-first search (no recursion: a 10,000-node chain is fine)."""
    state: dict[str, int] = {}                      # 1 = on the current path, 2 = done
    for root in graph:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(links_of(graph[root])))]
        while stack:
            node_id, pending = stack[-1]
            nxt = next(pending, None)
            if nxt is None:
                state[node_id] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                raise ImportMetadataError(f"ComfyUI graph: dependency cycle through node {nxt} "
                                          f"({graph[nxt]['class_type']}); ComfyUI cannot run it either")
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(links_of(graph[nxt]))))
