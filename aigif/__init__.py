"""aigif: the AI-Generated Image Format.

Store how an image was generated (platform, model, data configuration) in a
few dozen bytes and regenerate it deterministically; fall back to a learned
residual/pixel codec when regeneration cannot reproduce it.

The top-level import is light (no torch): the engine, codec and importers are
imported on first use.
"""
from .errors import (
    AigifError,
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
    Document,
    Extension,
    Fingerprint,
    Generation,
    Lora,
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
    "UnsupportedVersionError", "atomic_write", "dump", "load", "DEFAULT_LIMITS", "Limits", "ComponentRef", "Document",
    "Extension", "Fingerprint", "Generation", "Lora", "ModelRef", "Platform", "Source", "document_from_dict",
    "document_to_dict", "dumps", "loads", "register_extension", "__version__",
]
