"""File I/O that never leaves a half-written output and never trusts a file's size."""
from __future__ import annotations

import glob
import hashlib
import os
import tempfile
from pathlib import Path

from .errors import AigifError, LimitError, OutputExistsError
from .limits import DEFAULT_LIMITS, Limits


def sha256_of_file(path: str | os.PathLike, *, offset: int = 0, chunk: int = 4 * 2**20) -> str:
    """sha256 hex of a file's bytes from *offset* on, read in chunks (a weights file never whole in memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        fh.seek(offset)
        while data := fh.read(chunk):
            h.update(data)
    return h.hexdigest()


def atomic_write(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> Path:
    """Write *data* to a temp file beside *path*, fsync, then rename over it.

    Readers see the old file or the new one, never a mix. Without *overwrite*
    the new file is hard-linked into place, which fails if *path* appeared in
    the meantime (no check-then-clobber race).
    """
    path = Path(path)
    if not overwrite and (path.exists() or path.is_symlink()):
        raise OutputExistsError(f"{path} exists; pass --force (overwrite=True) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _mode_for(path))  # mkstemp makes 0600; give the file the mode a plain open() would
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_no_clobber(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def _link_no_clobber(tmp: str, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputExistsError(f"{path} exists; pass --force (overwrite=True) to replace it") from None
    except OSError:  # no hard links on this file system: fall back to check-then-rename
        if path.exists() or path.is_symlink():
            raise OutputExistsError(f"{path} exists; pass --force (overwrite=True) to replace it") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); best effort where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temps(path: str | os.PathLike) -> int:
    """Delete temp files that an interrupted :func:`atomic_write` of *path* left behind; returns how many."""
    path = Path(path)
    n = 0
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            tmp.unlink()
            n += 1
        except FileNotFoundError:
            pass
    return n


def keep_existing(dst: str | os.PathLike, *, force: bool, is_valid) -> bool:
    """The resume rule of batch jobs for output *dst*.

    True (skip it) when it exists and ``is_valid(dst)``; False when it must be
    written (absent, or *force*); an existing file that is not a valid output
    (say the user's own file) raises :class:`OutputExistsError` and stays untouched.
    """
    dst = Path(dst)
    if force or not (dst.exists() or dst.is_symlink()):
        return False
    if is_valid(dst):
        return True
    raise OutputExistsError(f"{dst} exists and is not a valid output; left untouched (pass --force to replace it)")


def write_output(dst: str | os.PathLike, data: bytes, *, force: bool) -> Path:
    """Clear temps a killed job left beside *dst*, then :func:`atomic_write` (replacing only with *force*).

    OS errors (a file where a folder should be, no permission) become :class:`AigifError` naming *dst*.
    """
    try:
        remove_stale_temps(dst)
        return atomic_write(dst, data, overwrite=force)
    except OSError as exc:
        raise AigifError(f"cannot write {dst}: {exc.strerror or exc}") from None


def _mode_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def read_limited(path: str | os.PathLike, limit: int) -> bytes:
    """Read at most *limit* bytes; a larger file is refused before it is read."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            # sized by the file, not the limit: read(limit + 1) would allocate the whole limit for a 60-byte file
            first = min(os.fstat(fh.fileno()).st_size, limit) + 1
            data = fh.read(first)
            if len(data) == first and first <= limit:  # grew since fstat, or not a regular file: read on, still bounded
                data += fh.read(limit + 1 - first)
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
