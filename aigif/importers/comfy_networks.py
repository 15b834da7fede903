"""ComfyUI's extra networks: LoRA loader nodes -> ``model.loras``, ``embedding:NAME`` prompt words -> ``model.embeddings``
(every family's graph mapper uses these rules).

``LoraLoader`` patches the model with ``strength_model`` and the text encoders with
``strength_clip``; ``LoraLoaderModelOnly`` patches the model only (ComfyUI's FLUX
workflows use it). A text strength equal to the model strength is not written
(``text_weight`` absent means the same weight); model-only is ``text_weight`` 0.

A prompt word ``embedding:NAME`` (ComfyUI ends NAME at white space or a comma; in
``(embedding:NAME:1.2)`` the ``:1.2`` is the weight) loads ``models/embeddings/NAME``;
the embedding's token is the word as written, so the prompt text stays ComfyUI's.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Iterable

from ..syntax.elements import Lora
from .result import stem, to_float

LORA_NODES = ("LoraLoader", "LoraLoaderModelOnly")
RE_EMBEDDING = re.compile(r"embedding:([^\s,():]+)")


def comfy_lora(node: str, class_type: str, value: Callable[[str, str], Any]) -> Lora:
    """The LoRA of one loader node; *value(node, input)* reads a plain input (the mapper's own, with its errors)."""
    file_name = str(value(node, "lora_name")).replace("\\", "/").lstrip("/")   # a sub-folder of models/loras
    weight = to_float(value(node, "strength_model"))
    text = 0.0 if class_type == "LoraLoaderModelOnly" else to_float(value(node, "strength_clip"))
    return Lora(name=stem(file_name), weight=weight, weight_name=file_name, text_weight=None if text == weight else text)


def comfy_embeddings(texts: Iterable[str]) -> list[tuple[str, str]]:
    """(name, token) of each distinct ``embedding:NAME`` word in *texts*, in order of first use."""
    out: dict[str, str] = {}
    for text in texts:
        for m in RE_EMBEDDING.finditer(text):
            out.setdefault(m.group(0), m.group(1).replace("\\", "/"))
    return [(name, token) for token, name in out.items()]
