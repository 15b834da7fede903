"""Every error the library raises on bad input derives from :class:`AigifError`.

Split by cause (like msgpack's ``OutOfData`` vs ``FormatError``) so callers can
tell a truncated download from a corrupted or hostile file. Messages name the
segment, the offset and what was expected, so a user can act on them. Every
warning aigif emits derives from :class:`AigifWarning`. All of them live here.
"""
from __future__ import annotations


class AigifError(Exception):
    """Base of every aigif error. ``kind`` is the stable name used in conformance files."""

    kind = "error"


class FormatError(AigifError, ValueError):
    """The bytes are not an .aigif file at all (bad magic)."""

    kind = "format"


class TruncatedError(FormatError):
    """The data ends before a structure it announced."""

    kind = "truncated"


class CorruptError(FormatError):
    """A checksum, length or field does not hold together."""

    kind = "corrupt"


class UnsupportedVersionError(FormatError):
    """The file's major version is newer than this decoder."""

    kind = "version"


class UnknownSegmentError(AigifError):
    """A critical segment (or extension) this decoder does not know."""

    kind = "unknown-critical"


class LimitError(AigifError):
    """A size limit was exceeded (file, segment, text, decompressed data, image)."""

    kind = "limit"


class UnknownCodecError(CorruptError):
    """A codec id (text codec, image codec) that this decoder does not have."""

    kind = "unknown-codec"


class ConfigError(AigifError, ValueError):
    """A generation description (JSON, CLI arguments, metadata) is invalid."""

    kind = "config"


class RegistryError(ConfigError):
    """An unknown registry name: model, scheduler, pipeline family, extension."""

    kind = "registry"


class ModelError(AigifError):
    """A model cannot be found, loaded or trusted."""

    kind = "model"


class ModelMismatchError(ModelError):
    """Model weights do not match the sha256 recorded in the file."""

    kind = "model-mismatch"


class UnsafeModelError(ModelError):
    """A model reference that would execute code or leave the allowed folders."""

    kind = "unsafe-model"


class ImportMetadataError(AigifError):
    """Embedded generation metadata of another tool cannot be read or mapped."""

    kind = "import"


class ImageReadError(AigifError):
    """An input image (a reference to compare with, an image to import) is not a readable image file."""

    kind = "image"


class InputImageError(AigifError):
    """An init image or mask the syntax needs is not given, cannot be read, or does not match its recorded digest."""

    kind = "input-image"


class LibraryError(AigifError):
    """A library database that cannot be opened, is from a newer aigif, or a search that cannot run."""

    kind = "library"


class QueryError(LibraryError, ValueError):
    """A search query with a syntax error (unbalanced quotes or parentheses, a dangling operator)."""

    kind = "query"


class ProvenanceError(AigifError):
    """A signing key, certificate, signature or provenance manifest cannot be used."""

    kind = "provenance"


class OutputExistsError(AigifError):
    """Refusing to overwrite an existing file without ``overwrite=True`` / ``--force``."""

    kind = "exists"


class ExtensionError(AigifError):
    """An extension cannot be applied (missing adapter, adapter broke its contract)."""

    kind = "extension"


# --- warnings ---------------------------------------------------------------------
class AigifWarning(UserWarning):
    """Base of every warning aigif emits (filter with ``warnings.simplefilter(..., aigif.AigifWarning)``)."""


class UnknownExtensionWarning(AigifWarning):
    """An ancillary segment of an extension this decoder does not have: kept as raw bytes."""


class ExtensionPayloadWarning(AigifWarning):
    """An ancillary extension segment whose payload its extension refuses: kept as raw bytes."""


class ExtensionLoadWarning(AigifWarning):
    """An ``aigif.extensions`` entry point could not be loaded or registered; it is skipped."""
