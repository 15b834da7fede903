"""Find the checkpoint an imported image names among the user's model folders.

A1111 / Fooocus name a single-file checkpoint and its AutoV2 hash (first 10 hex
of the file's sha256; AutoV3 and full sha256 are matched too); ComfyUI names the file. The engine loads single files
only through ``ModelRef(local=..., family=...)``, so for regeneration the
imported reference is rewritten to the file found here: matched by file stem
and, when the metadata has a hash, by that hash (files are hashed only when
needed; $AIGIF_HOME/hashes.sqlite remembers them). The family is read from the
safetensors header (tensor names of the text encoders). Only ``.safetensors``
files are considered (pickle checkpoints can run code).

A name-only match is a guess; it is safe because the decision step keeps the
resolved reference only when the regenerated image matches the original.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

from ..syntax.elements import ModelRef
from ..syntax.registry import code_of
from .result import stem

MAX_FILES = 20000
MAX_HEADER = 64 * 2**20

# (family, a tensor-name prefix only that family's original checkpoints have), most specific first
FAMILY_KEYS = (
    ("sdxl", "conditioner.embedders.1."),
    ("sd2", "cond_stage_model.model.transformer."),
    ("sd1", "cond_stage_model.transformer."),
)


def safetensors_family(path: Path) -> str | None:
    """sd1 / sd2 / sdxl from a single-file checkpoint's tensor names, or None."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(8)
            if len(raw) != 8:
                return None
            n = struct.unpack("<Q", raw)[0]
            if n > MAX_HEADER:
                return None
            header = json.loads(fh.read(n))
    except (OSError, ValueError):
        return None
    if not isinstance(header, dict):
        return None
    for family, prefix in FAMILY_KEYS:
        if any(isinstance(k, str) and k.startswith(prefix) for k in header):
            return family
    return None


class LocalModels:
    """Index of the ``*.safetensors`` files under the model dirs (built on first use)."""

    def __init__(self, model_dirs):
        self.dirs = [Path(d).expanduser().resolve() for d in (model_dirs or [])]
        self._files: list[tuple[Path, Path]] | None = None

    def files(self) -> list[tuple[Path, Path]]:
        if self._files is None:
            out = []
            for root in self.dirs:
                if root.is_dir():
                    for p in sorted(root.rglob("*.safetensors")):
                        if len(out) >= MAX_FILES:
                            break
                        if p.is_file():
                            out.append((p.resolve(), root))
            self._files = out
        return self._files

    @staticmethod
    def sha256(path: Path) -> str:
        from ..engine.hashcache import file_hash

        return file_hash(path)

    def find(self, name: str | None, sha: str | None, weights_file: str | None = None) -> tuple[Path, Path, str | None] | None:
        """(file, its model dir, full sha256 if hashed) for a named / hashed checkpoint (a 12 or 64-hex hash may also
        be the file's AutoV3; hashes are cached in $AIGIF_HOME/hashes.sqlite)."""
        from ..engine.byhash import hash_matches

        sha = sha.lower() if sha else None
        wanted = {n for n in (name, stem(weights_file) if weights_file else None) if n}
        by_name = [(p, r) for p, r in self.files() if stem(p.name) in wanted]
        for p, r in by_name + [f for f in self.files() if f not in by_name and sha]:
            if sha is None:
                return p, r, None
            if hash_matches(sha, p):
                return p, r, self.sha256(p)
        return None

    def resolve(self, model: ModelRef | None) -> tuple[ModelRef, str] | None:
        """A reference the engine can load (``local`` + ``family`` + ``sha256``) and the original name, or None."""
        if model is None or not self.dirs or model.local or model.repo:
            return None
        if model.name and code_of("model", model.name) is not None:
            return None                    # registry models are the engine's business
        name = model.name[len("checkpoint:"):] if model.name and model.name.startswith("checkpoint:") else model.name
        found = self.find(name, model.sha256, model.weights_file)
        if found is None:
            return None
        path, root, full = found
        family = model.family or safetensors_family(path)
        if family is None:
            return None
        full = full or self.sha256(path)       # record the exact weights the image was matched with
        ref = ModelRef(local=path.relative_to(root).as_posix(), family=family, sha256=full or model.sha256,
                       vae=model.vae, loras=model.loras)
        return ref, name or ""
