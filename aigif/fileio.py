"""File I/O that never leaves a half-written output and never trusts a file's size."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import AigifError, LimitError
from .limits import DEFAULT_LIMITS, Limits


class OutputExistsError(AigifError):
    """Refusing to overwrite an existing file without ``overwrite=True`` / ``--force``."""

    kind = "exists"


def atomic_write(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> Path:
    """Write *data* to a temp file beside *path*, fsync, then rename over it."""
    path = Path(path)
    if not overwrite and path.exists():
        raise OutputExistsError(f"{path} exists; pass --force (overwrite=True) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def read_limited(path: str | os.PathLike, limit: int) -> bytes:
    """Read at most *limit* bytes; a larger file is refused before it is read."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise AigifError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise AigifError(f"{path} is a directory, expected a file") from None
    except PermissionError:
        raise AigifError(f"{path}: permission denied") from None
    if len(data) > limit:
        raise LimitError(f"{path} is larger than the limit of {limit} bytes")
    return data


def load(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS):
    from .syntax import loads

    return loads(read_limited(path, limits.max_file_bytes), limits)


def dump(doc, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    from .syntax import dumps

    return atomic_write(path, dumps(doc), overwrite=overwrite)
