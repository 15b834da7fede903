"""Which tool wrote this metadata, and which mapper handles it.

Detection uses sd-parsers' parser classes (the maintained knowledge of which
keys each tool writes), tried in its own order: Fooocus, A1111, ComfyUI,
InvokeAI, NovelAI. ComfyUI graphs saved without a ``workflow`` (API-format
savers) are recognised here too. The mapping itself is ours (see each module).
"""
from __future__ import annotations

import logging

from ..errors import ConfigError, ImportMetadataError
from .a1111 import map_a1111
from ..limits import DEFAULT_LIMITS, Limits
from .comfy_graph import parse_graph
from .comfyui import map_comfyui
from .extract import Embedded
from .fooocus import map_fooocus
from .invokeai import map_invokeai
from .jsontools import is_ruinedfooocus, is_swarmui, map_ruinedfooocus, map_swarmui
from .novelai import map_novelai
from .result import Builder, Imported

TOOLS = ("A1111", "Forge", "SD.Next", "Civitai", "ComfyUI", "SwarmUI", "InvokeAI", "NovelAI", "Fooocus", "RuinedFooocus")


def sd_parsers_info(fields: dict[str, str]):
    """sd-parsers' PromptInfo for these fields, or None. Never raises on hostile input."""
    from sd_parsers.exceptions import ParserError
    from sd_parsers.parsers import MANAGED_PARSERS

    logging.getLogger("sd_parsers").setLevel(logging.CRITICAL)
    for cls in MANAGED_PARSERS:
        parser = cls()
        try:
            return parser.parse(dict(fields))
        except (ParserError, RecursionError):
            continue
        except Exception:  # sd-parsers is not hardened against odd input: treat as "not this tool"
            continue
    return None


def _summary(info) -> dict | None:
    if info is None:
        return None
    try:
        return {
            "prompts": [p.value for p in info.prompts][:16],
            "negative_prompts": [p.value for p in info.negative_prompts][:16],
            "models": sorted({str(m) for m in info.models})[:16],
            "samplers": [s.name for s in info.samplers][:16],
        }
    except Exception:
        return None


def map_embedded(emb: Embedded, limits: Limits = DEFAULT_LIMITS) -> Imported:
    """Map the fields of one image; raises ImportMetadataError when no known tool wrote them.

    A ComfyUI graph is checked (size, dangling links, cycles) before anything walks it.
    """
    f = emb.fields
    if not f:
        raise ImportMetadataError("no generation metadata found (looked at PNG text, EXIF UserComment and stealth LSB data)")
    common = {"image_size": emb.size, "metadata_bytes": emb.nbytes, "carrier": emb.carrier}
    graph = parse_graph(f["prompt"], limits) if isinstance(f.get("prompt"), str) else None
    info = sd_parsers_info(f)
    try:
        imp = _dispatch(f, info, common, graph)
    except ImportMetadataError:
        raise
    except (ConfigError, TypeError, AttributeError, ValueError, KeyError, IndexError, OverflowError, RecursionError) as exc:
        # metadata of a recognised tool with an unexpected shape: keep it all, map nothing
        tool = {"AUTOMATIC1111": "A1111"}.get(str(getattr(getattr(info, "generator", None), "value", "")), "unknown")
        b = Builder(tool if tool in TOOLS else "unknown", f)
        b.block(f"metadata has an unexpected shape ({type(exc).__name__}: {exc})")
        imp = b.build(emb.size, emb.nbytes, emb.carrier)
    imp.notes.extend(emb.notes)
    return imp


def _dispatch(f: dict, info, common: dict, graph: dict | None) -> Imported:
    generator = getattr(getattr(info, "generator", None), "value", None)
    params = f.get("parameters", "")
    if is_swarmui(f):
        return map_swarmui(f, **common)
    if is_ruinedfooocus(f):
        return map_ruinedfooocus(f, **common)
    if graph is not None:            # a ComfyUI graph (also next to the parameters text aigif's way back writes)
        return map_comfyui(f, graph, summary=_summary(info), **common)
    if generator == "Fooocus":
        imp = map_fooocus(f, **common)
    elif generator == "AUTOMATIC1111" or (generator is None and "parameters" in f and "Steps:" in params):
        tool = "Fooocus" if f.get("fooocus_scheme") == "a1111" or "Version: Fooocus" in params else "A1111"
        imp = map_a1111(params, tool=tool, **common)
    elif generator == "ComfyUI":
        imp = map_comfyui(f, graph, summary=_summary(info), **common)
    elif generator == "InvokeAI":
        imp = map_invokeai(f, info, **common)
    elif generator == "NovelAI" or f.get("Software") == "NovelAI":
        imp = map_novelai(f, **common)
    else:
        keys = ", ".join(sorted(f)[:8])
        raise ImportMetadataError(f"metadata not recognised as {', '.join(TOOLS)} (fields: {keys})")
    return imp
