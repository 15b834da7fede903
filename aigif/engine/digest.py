"""Model digests (spec/engine.md "Model digest") and a cache so big weights are hashed once.

Pipeline folder digest: sha256 over the manifest ``relpath \\0 sha256hex(file) \\n``
of every weight file (``*.safetensors``) in the component sub-folders named by
``model_index.json`` and matching the variant, sorted by relpath (``/``
separators). Single-file checkpoint: the sha256 of the file; the A1111 AutoV2
short hash (first 10 hex digits) is accepted when comparing.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..errors import ModelError, ModelMismatchError
from .hashcache import file_hash

def file_sha256(path: str | os.PathLike) -> str:
    """sha256 hex of a file; cached by (resolved path, size, mtime) in ``$AIGIF_HOME/hashes.sqlite``."""
    return file_hash(path, "sha256")


def _variant_of(filename: str) -> str | None:
    """``diffusion_pytorch_model.fp16.safetensors`` -> ``fp16``; shards keep their variant."""
    stem = filename[: -len(".safetensors")]
    if "." not in stem:
        return None
    v = stem.rsplit(".", 1)[1]
    return v.split("-", 1)[0]


def weight_files(folder: str | os.PathLike, variant: str | None = None) -> list[str]:
    """Relpaths of the weight files a pipeline folder's digest covers (sorted)."""
    folder = Path(folder)
    index = read_model_index(folder)
    out = []
    for comp, spec in index.items():
        if comp.startswith("_") or not isinstance(spec, list) or spec[:1] == [None]:
            continue
        sub = folder / comp
        if not sub.is_dir():
            continue
        for f in sorted(sub.iterdir()):
            if f.name.endswith(".safetensors") and _variant_of(f.name) == variant:
                out.append(f"{comp}/{f.name}")
    return sorted(out)


def read_model_index(folder: Path) -> dict:
    path = Path(folder) / "model_index.json"
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{folder} is not a diffusers pipeline folder (no model_index.json)") from None
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        raise ModelError(f"{path} cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path} must hold a JSON object")
    return data


def folder_digest(folder: str | os.PathLike, variant: str | None = None) -> str:
    """The model digest of a diffusers pipeline folder (see module docstring)."""
    folder = Path(folder)
    files = weight_files(folder, variant)
    if not files:
        raise ModelError(f"{folder} holds no .safetensors weights{f' for variant {variant!r}' if variant else ''}")
    manifest = "".join(f"{rel}\0{file_sha256(folder / rel)}\n" for rel in files)
    return hashlib.sha256(manifest.encode("utf-8")).hexdigest()


def digest_matches(recorded: str, actual: str) -> bool:
    """A full sha256, or an A1111 AutoV2 (10) / 12-digit short hash, as a prefix of *actual*."""
    recorded = recorded.lower()
    return len(recorded) in (10, 12, 64) and actual.lower().startswith(recorded)


def check_digest(what: str, recorded: str | None, actual: str) -> None:
    if recorded and not digest_matches(recorded, actual):
        raise ModelMismatchError(
            f"{what}: weights digest {actual} does not match the sha256 recorded in the file ({recorded}); "
            "the image will not be reproduced. Get the exact weights, or pass --trust-model-mismatch "
            "(verify_weights=False) to regenerate anyway")


# --- single-file components (VAE files, LoRAs) and component folders ----------------------------------
def safetensors_data_sha256(path: str | os.PathLike) -> str:
    """A1111's "AutoV3" (``addnet`` hash): sha256 of a safetensors file's bytes after its header.

    The header (tensor names, shapes, dtypes, metadata) is NOT covered: two files
    with the same tensor bytes and a different header share it. Used only to
    accept hashes that A1111 wrote (``Lora hashes``: its first 12 hex digits).
    """
    return file_hash(path, "autov3")


def file_digest_matches(recorded: str, path: str | os.PathLike, file_digest: str | None = None) -> bool:
    """A single-file weight matches *recorded*: its sha256 (full, or 10/12-digit prefix: AutoV2),
    or for ``.safetensors`` the AutoV3 hash (full, or its 12-digit prefix as in A1111's ``Lora hashes``)."""
    if digest_matches(recorded, file_digest or file_sha256(path)):
        return True
    if len(recorded) in (12, 64) and str(path).endswith(".safetensors"):
        return safetensors_data_sha256(path).startswith(recorded.lower())
    return False


def check_file_digest(what: str, recorded: str | None, path: str | os.PathLike, file_digest: str | None = None) -> str:
    """Compare a single-file component with the recorded hash; returns its sha256."""
    actual = file_digest or file_sha256(path)
    if recorded and not file_digest_matches(recorded, path, actual):
        raise ModelMismatchError(
            f"{what}: file sha256 {actual} does not match the hash recorded in the file ({recorded}; accepted: the "
            "file's sha256, its first 10 (AutoV2) or 12 hex digits, or A1111's AutoV3 of the tensor data); the image "
            "will not be reproduced. Get the exact file, or pass --trust-model-mismatch (verify_weights=False)")
    return actual


def component_files(folder: str | os.PathLike) -> list[str]:
    """Weight files a component folder's digest covers: ``*.safetensors`` directly in it, without a variant."""
    folder = Path(folder)
    return sorted(f.name for f in folder.iterdir()
                  if f.is_file() and f.name.endswith(".safetensors") and _variant_of(f.name) is None)


def component_digest(folder: str | os.PathLike) -> str:
    """Digest of a component folder (e.g. a VAE): the pipeline-folder manifest over its own weight files,
    relpath = file name (``diffusion_pytorch_model.safetensors\\0<sha256>\\n``)."""
    folder = Path(folder)
    files = component_files(folder)
    if not files:
        raise ModelError(f"{folder} holds no .safetensors weights")
    manifest = "".join(f"{name}\0{file_sha256(folder / name)}\n" for name in files)
    return hashlib.sha256(manifest.encode("utf-8")).hexdigest()
