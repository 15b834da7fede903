"""Syntax layer: elements, registries, extensions and the document <-> bytes mapping.

Imports neither torch nor diffusers, so reading a file's syntax stays fast.
"""
from .document import Document, document_from_dict, document_to_dict, dumps, loads
from .elements import ComponentRef, Embedding, Fingerprint, Generation, Lora, ModelRef, Platform, Source
from .img2img import ImageRef, Img2Img
from .detail import Detail, DetailPass
from .passes import HiresFix, Refiner
from .extensions import Extension, register_extension, registered_extensions, unregister_extension

__all__ = [
    "Document", "document_from_dict", "document_to_dict", "dumps", "loads",
    "ComponentRef", "Detail", "DetailPass", "Embedding", "Fingerprint", "Generation", "HiresFix", "Refiner", "ImageRef", "Img2Img", "Lora", "ModelRef", "Platform", "Source",
    "Extension", "register_extension", "registered_extensions", "unregister_extension",
]
