"""ComfyUI's LoRA loader nodes -> ``model.loras`` entries (every family's graph mapper uses this one rule).

``LoraLoader`` patches the model with ``strength_model`` and the text encoders with
``strength_clip``; ``LoraLoaderModelOnly`` patches the model only (ComfyUI's FLUX
workflows use it). A text strength equal to the model strength is not written
(``text_weight`` absent means the same weight); model-only is ``text_weight`` 0.
"""
from __future__ import annotations

from typing import Any, Callable

from ..syntax.elements import Lora
from .result import stem, to_float

LORA_NODES = ("LoraLoader", "LoraLoaderModelOnly")


def comfy_lora(node: str, class_type: str, value: Callable[[str, str], Any]) -> Lora:
    """The LoRA of one loader node; *value(node, input)* reads a plain input (the mapper's own, with its errors)."""
    file_name = str(value(node, "lora_name")).replace("\\", "/").lstrip("/")   # a sub-folder of models/loras
    weight = to_float(value(node, "strength_model"))
    text = 0.0 if class_type == "LoraLoaderModelOnly" else to_float(value(node, "strength_clip"))
    return Lora(name=stem(file_name), weight=weight, weight_name=file_name, text_weight=None if text == weight else text)
