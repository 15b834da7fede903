"""Find a weight file under the model dirs by the hash a tool recorded, when its name does not find it.

A recorded value is matched by its length (spec/engine.md 1.8): 8 hex = AutoV1,
10 = AutoV2 (sha256 prefix), 12 = a sha256 or AutoV3 prefix, 64 = the sha256 or
the AutoV3 of a ``.safetensors`` file. Hashes come from the persistent cache
(:mod:`aigif.engine.hashcache`), so a large folder is read once. Only
``.safetensors`` files are returned; a pickle file with that hash is refused with
the advice to convert it. Nothing found is a ``ModelError`` saying which hash
kinds were looked for and where.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ModelError, UnsafeModelError
from .hashcache import file_hash
from .loader import UNSAFE_SUFFIXES, _inside, _resolve

MAX_HASH_SCAN = 20000            # files looked at for one hash (a model dir can be huge)
HASH_KINDS = {8: ("autov1",), 10: ("sha256",), 12: ("sha256", "autov3"), 64: ("sha256", "autov3")}
KIND_NAMES = {"autov1": "AutoV1", "sha256": "sha256 / AutoV2", "autov3": "AutoV3"}


def hash_kinds(recorded: str) -> tuple[str, ...]:
    return HASH_KINDS.get(len(recorded), ())


def hash_matches(recorded: str, path: Path) -> bool:
    """*path*'s hash of a kind *recorded* may be starts with it (AutoV3 only for ``.safetensors``)."""
    recorded = recorded.lower()
    for kind in hash_kinds(recorded):
        if kind == "autov3" and not path.name.endswith(".safetensors"):
            continue
        try:
            if file_hash(path, kind).startswith(recorded):
                return True
        except (ModelError, OSError):           # a broken or unreadable file has no such hash
            continue
    return False


def candidates(model_dirs, subdirs: tuple[str, ...]) -> list[tuple[Path, Path]]:
    """(file, model dir) of the weight files in each model dir's *subdirs* ("" = the dir itself, not recursive;
    a named sub-folder recursively), safetensors and pickle alike, at most MAX_HASH_SCAN."""
    out, seen = [], set()
    for root in [Path(d).expanduser().resolve() for d in model_dirs]:
        for sub in subdirs:
            folder = _resolve(root / sub)
            if not _inside(folder, root) or not folder.is_dir():
                continue
            for p in sorted(folder.rglob("*") if sub else folder.iterdir()):
                if not p.name.lower().endswith((".safetensors", *UNSAFE_SUFFIXES)):
                    continue
                rp = _resolve(p)
                if rp in seen or not _inside(rp, root) or not rp.is_file():
                    continue
                seen.add(rp)
                out.append((rp, root))
                if len(out) >= MAX_HASH_SCAN:
                    return out
    return out


def find_by_hash(recorded: str, model_dirs, subdirs: tuple[str, ...], what: str) -> tuple[Path, Path]:
    """(``.safetensors`` file, its model dir) whose hash is *recorded*; ``UnsafeModelError`` when only a pickle file
    has it, ``ModelError`` naming the hash kinds and folders when none has."""
    recorded = recorded.lower()
    kinds = hash_kinds(recorded)
    if not kinds or any(c not in "0123456789abcdef" for c in recorded):
        raise ModelError(f"{what}: {recorded[:80]!r} is not a hash aigif can look up (8, 10, 12 or 64 hex digits)")
    files = candidates(model_dirs, subdirs)
    for path, root in files:
        if path.name.endswith(".safetensors") and hash_matches(recorded, path):
            return path, root
    for path, _ in files:
        if not path.name.endswith(".safetensors") and hash_matches(recorded, path):
            raise UnsafeModelError(f"{what}: the file with hash {recorded} is {path.name}, a pickle-based file that can "
                                   "run code and is never loaded. Convert it to .safetensors (the recorded hash is the pickle "
                                   "file's, so decoding then needs --trust-model-mismatch)")
    where = ", ".join(f"{d}/{s}" if s else str(d) for d in model_dirs for s in subdirs) or "no model dirs configured"
    raise ModelError(f"{what}: no file has the {' or '.join(KIND_NAMES[k] for k in kinds)} hash {recorded} "
                     f"({len(files)} weight files looked at in {where}); put the file into a model dir and pass "
                     "--model-dir DIR (or set AIGIF_MODEL_DIRS)")
