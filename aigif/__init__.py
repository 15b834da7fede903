"""aigif: the AI-Generated Image Format.

Store how an image was generated (platform, model, data configuration) in a
few dozen bytes and regenerate it deterministically; fall back to a learned
residual/pixel codec when regeneration cannot reproduce it.

The top-level import is light (no torch): the engine, codec and importers are
imported on first use.
"""
from .errors import (
    AigifError,
    AigifWarning,
    ExtensionError,
    ExtensionLoadWarning,
    ExtensionPayloadWarning,
    ImageReadError,
    ImportMetadataError,
    InputImageError,
    LibraryError,
    OutputExistsError,
    ProvenanceError,
    QueryError,
    UnknownExtensionWarning,
    ConfigError,
    CorruptError,
    FormatError,
    LimitError,
    ModelError,
    ModelMismatchError,
    RegistryError,
    TruncatedError,
    UnknownCodecError,
    UnknownSegmentError,
    UnsafeModelError,
    UnsupportedVersionError,
)
from .fileio import atomic_write, dump, load
from .limits import DEFAULT_LIMITS, Limits
from .syntax import (
    ComponentRef,
    Detail,
    DetailPass,
    Document,
    Embedding,
    Extension,
    Fingerprint,
    Generation,
    HiresFix,
    ImageRef,
    Img2Img,
    Lora,
    Refiner,
    ModelRef,
    Platform,
    Source,
    document_from_dict,
    document_to_dict,
    dumps,
    loads,
    register_extension,
)

__version__ = "0.1.0"

__all__ = [
    "AigifError", "ConfigError", "CorruptError", "FormatError", "LimitError", "ModelError", "ModelMismatchError",
    "RegistryError", "TruncatedError", "UnknownCodecError", "UnknownSegmentError", "UnsafeModelError",
    "UnsupportedVersionError", "AigifWarning", "ExtensionError", "ExtensionLoadWarning", "ExtensionPayloadWarning",
    "ImageReadError", "ImportMetadataError", "InputImageError", "LibraryError", "OutputExistsError", "ProvenanceError", "QueryError", "UnknownExtensionWarning",
    "atomic_write", "dump", "load", "DEFAULT_LIMITS", "Limits", "ComponentRef", "Detail", "DetailPass", "Document",
    "Embedding", "Extension", "Fingerprint", "Generation", "HiresFix", "Refiner", "ImageRef", "Img2Img", "Lora", "ModelRef", "Platform", "Source", "document_from_dict",
    "document_to_dict", "dumps", "loads", "register_extension", "__version__",
]


# --- Python API (aigif.api, imported on first use) and the Pillow plugin ------------------
_API = ("generate", "pack", "record", "wrap_pipeline", "decode", "Generated", "Recording", "Decoded")


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'aigif' has no attribute {name!r}")


def register_pillow() -> None:
    """Teach Pillow the .aigif format (``Image.open``/``img.save``); idempotent. Costs the PIL import only."""
    from . import pillow_plugin

    pillow_plugin.register()


register_pillow()
__all__ += [*_API, "register_pillow"]
