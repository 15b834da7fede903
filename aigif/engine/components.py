"""Find the VAE and LoRA files a ModelRef names: inside the model dirs or the HF cache, safetensors only.

Same rules as for models (spec/engine.md sections 1.4 and 1.5): a path written in a file
is only followed inside a configured model dir, the network is only used when
allowed, pickle-based weights are refused before anything is read.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError, UnsafeModelError
from ..syntax.elements import ComponentRef, Embedding, Lora
from .byhash import find_by_hash
from .loader import UNSAFE_SUFFIXES, _inside, _resolve, locate, safe_local_path

# where A1111 (models/Lora, models/VAE) and ComfyUI (models/loras, models/vae) keep them, below a model dir
LORA_SUBDIRS = ("", "Lora", "loras", "lora", "LoRA")
VAE_SUBDIRS = ("", "VAE", "vae")
EMBEDDING_SUBDIRS = ("", "embeddings", "Embeddings")   # A1111 (webui/embeddings) and ComfyUI (models/embeddings)
LORA_DEFAULT_FILE = "pytorch_lora_weights.safetensors"   # diffusers' save_lora_weights name
VAE_CLASSES = frozenset({"AutoencoderKL"})


@dataclass(frozen=True)
class Located:
    path: Path               # a .safetensors file, or a component folder (config.json + weights)
    root: Path | None        # the model dir it is in; None: the Hugging Face cache
    single_file: bool


def lora_label(lora: Lora) -> str:
    return f"LoRA {lora.name or lora.local or lora.repo}"


def vae_label(vae: ComponentRef) -> str:
    return f"VAE {vae.name or vae.local or vae.repo}"


def _refuse_unsafe(name: str, what: str) -> None:
    if name.lower().endswith(UNSAFE_SUFFIXES):
        raise UnsafeModelError(f"{what}: {name!r} is not a .safetensors file; pickle-based formats ({', '.join(UNSAFE_SUFFIXES)}) "
                               "can run code and are never loaded. Convert it to .safetensors and reference that file")


def _join_inside(root: Path, rel: str | os.PathLike, what: str) -> Path:
    if "\0" in str(rel):
        raise UnsafeModelError(f"{what}: path contains NUL")
    cand = _resolve(root / rel)
    if not _inside(cand, root):
        raise UnsafeModelError(f"{what}: {str(rel)!r} resolves outside the model dir {root}; "
                               "aigif never follows a path from a file outside the model dirs")
    return cand


def _roots(model_dirs) -> list[Path]:
    return [Path(r).expanduser().resolve() for r in model_dirs]


def find_named(name: str, model_dirs, subdirs: tuple[str, ...], what: str, folders: bool = False) -> Located | None:
    """``<model dir>/<subdir>/<name>`` (``.safetensors`` added when *name* has no suffix); with *folders*,
    also a folder ``<name>`` holding ``config.json``. A pickle-only match is refused, not skipped."""
    _refuse_unsafe(name, what)
    names = [name] if name.endswith(".safetensors") else [name + ".safetensors"] + ([name] if folders else [])
    for root in _roots(model_dirs):
        for sub in subdirs:
            for n in names:
                p = _join_inside(root, Path(sub) / n, what)
                if p.is_file() and p.name.endswith(".safetensors"):
                    return Located(p, root, True)
                if folders and p.is_dir() and (p / "config.json").is_file():
                    return Located(p, root, False)
    stem = name[: -len(".safetensors")] if name.endswith(".safetensors") else name
    for root in _roots(model_dirs):
        for sub in subdirs:
            for ext in (".ckpt", ".pt", ".bin", ".pth"):
                if _join_inside(root, Path(sub) / (stem + ext), what).is_file():
                    _refuse_unsafe(stem + ext, what)
    return None


def _not_found(what: str, name: str, model_dirs, subdirs, extra: str = "") -> ModelError:
    where = ", ".join(str(d) for d in model_dirs) or "none configured"
    subs = ", ".join(f"{s}/" for s in subdirs if s)
    return ModelError(f"{what} not found: put {name} into a model dir (or its {subs} sub-folder) and pass --model-dir DIR "
                      f"(or set AIGIF_MODEL_DIRS); model dirs: {where}{extra}")


def _offline(allow_network: bool) -> bool:
    return not allow_network or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hub_error(what: str, repo: str, revision: str, offline: bool, exc: Exception, target: str) -> ModelError:
    state = "offline: not in the Hugging Face cache" if offline else f"download failed: {type(exc).__name__}: {exc}"
    return ModelError(f"{what} ({repo}@{revision}) is not available ({state}). To get it: run once with network allowed "
                      f"(--allow-network / Engine(allow_network=True)), or `huggingface-cli download {repo} {target} "
                      f"--revision {revision}` into the HF cache (HF_HOME), or put the file into a model dir (--model-dir)")


def _check_rel(rel: str, what: str) -> None:
    parts = Path(rel).parts
    if Path(rel).is_absolute() or ".." in parts or "\0" in rel:
        raise UnsafeModelError(f"{what}: {rel!r} must be a plain path inside the repository")


def hub_file(repo: str, filename: str, revision: str | None, allow_network: bool, what: str) -> Path:
    from huggingface_hub import hf_hub_download

    _refuse_unsafe(filename, what)
    _check_rel(filename, what)
    revision = revision or "main"
    offline = _offline(allow_network)
    try:
        return Path(hf_hub_download(repo, filename, revision=revision, local_files_only=offline))
    except Exception as exc:  # hub/cache errors come in many types
        raise _hub_error(what, repo, revision, offline, exc, filename) from None


def hub_folder(repo: str, revision: str | None, subfolder: str | None, allow_network: bool, what: str) -> Path:
    from huggingface_hub import snapshot_download

    revision = revision or "main"
    prefix = f"{subfolder.strip('/')}/" if subfolder else ""
    if subfolder:
        _check_rel(subfolder, what)
    offline = _offline(allow_network)
    try:
        snap = Path(snapshot_download(repo, revision=revision, local_files_only=offline,
                                      allow_patterns=[f"{prefix}config.json", f"{prefix}*.safetensors"]))
    except Exception as exc:  # hub/cache errors come in many types
        raise _hub_error(what, repo, revision, offline, exc, f"--include '{prefix}*'") from None
    return snap / subfolder if subfolder else snap


def locate_lora(lora: Lora, model_dirs, allow_network: bool) -> Located:
    """``local`` (a file, or a folder + ``weight_name``), else ``name``/``weight_name`` in the model dirs
    (also their Lora/, loras/ sub-folders), else ``repo`` + ``weight_name`` through the HF cache."""
    what = lora_label(lora)
    if lora.weight_name:
        _refuse_unsafe(lora.weight_name, what)
    if lora.local:
        _refuse_unsafe(lora.local, what)
        path, root = safe_local_path(lora.local, model_dirs, "LoRA")
        if path.is_dir():
            path = _join_inside(root, path.relative_to(root) / (lora.weight_name or LORA_DEFAULT_FILE), what)
            if not path.is_file():
                raise ModelError(f"{what}: {path} not found (set lora.weight_name to the file inside the folder)")
        if not path.name.endswith(".safetensors"):
            raise UnsafeModelError(f"{what}: {path.name} is not a .safetensors file; only safetensors LoRAs are loaded")
        return Located(path, root, True)
    names = [n for n in (lora.weight_name if not lora.repo else None, lora.name) if n]
    for n in names:
        found = find_named(n, model_dirs, LORA_SUBDIRS, what)
        if found is not None:
            return found
    if lora.repo:
        return Located(hub_file(lora.repo, lora.weight_name or LORA_DEFAULT_FILE, lora.revision, allow_network, what), None, True)
    want = names[0] if names[0].endswith(".safetensors") else names[0] + ".safetensors"
    if lora.sha256:                  # renamed since: the recorded hash finds it
        return Located(*_by_hash(lora.sha256, model_dirs, LORA_SUBDIRS, f"{what} (no file {want})"), True)
    raise _not_found(what, want, model_dirs, LORA_SUBDIRS, "; or record lora.local (a path inside a model dir) or lora.repo")


def _by_hash(recorded: str, model_dirs, subdirs: tuple[str, ...], what: str) -> tuple[Path, Path]:
    if not model_dirs:
        raise _not_found(what, f"a file with hash {recorded}", model_dirs, subdirs)
    return find_by_hash(recorded, model_dirs, subdirs, what)


def locate_embedding(emb: Embedding, model_dirs) -> Located:
    """``local`` (a .safetensors file inside a model dir), else ``name`` in the model dirs and their embeddings/
    sub-folders (``.safetensors`` added when the name has no such suffix)."""
    what = f"embedding {emb.name}"
    if emb.local:
        _refuse_unsafe(emb.local, what)
        path, root = safe_local_path(emb.local, model_dirs, "embedding")
        if not (path.is_file() and path.name.endswith(".safetensors")):
            raise UnsafeModelError(f"{what}: {path.name} is not a .safetensors file; only safetensors embeddings are loaded")
        return Located(path, root, True)
    found = find_named(emb.name, model_dirs, EMBEDDING_SUBDIRS, what)
    if found is None:
        want = emb.name if emb.name.endswith(".safetensors") else emb.name + ".safetensors"
        if emb.sha256:
            return Located(*_by_hash(emb.sha256, model_dirs, EMBEDDING_SUBDIRS, f"{what} (no file {want})"), True)
        raise _not_found(what, want, model_dirs, EMBEDDING_SUBDIRS, "; or record embedding.local (a path inside a model dir)")
    return found


# --- VAE ----------------------------------------------------------------------------------------
def locate_vae(vae: ComponentRef, model_dirs, allow_network: bool) -> Located:
    """``local`` (folder or .safetensors file; + ``subfolder``), else ``name`` in the model dirs (also VAE/, vae/),
    else ``repo`` (+ ``subfolder``) at ``revision`` through the HF cache."""
    what = vae_label(vae)
    if vae.local:
        _refuse_unsafe(vae.local, what)
        path, root = locate(vae.local, model_dirs, "VAE")    # also under vae/ aliases (Forge: VAE/)
        return _with_subfolder(Located(path, root, path.is_file()), vae, what)
    if vae.name and vae.name.startswith("sha256:") and vae.sha256:
        return Located(*_by_hash(vae.sha256, model_dirs, VAE_SUBDIRS, what), True)
    if vae.name:
        found = find_named(vae.name, model_dirs, VAE_SUBDIRS, what, folders=True)
        if found is not None:
            return _with_subfolder(found, vae, what)
    if vae.repo:
        return Located(hub_folder(vae.repo, vae.revision, vae.subfolder, allow_network, what), None, False)
    raise _not_found(what, f"{vae.name} (a .safetensors file or a diffusers AutoencoderKL folder)", model_dirs, VAE_SUBDIRS,
                     "; or record vae.local (a path inside a model dir) or vae.repo")


def _with_subfolder(loc: Located, vae: ComponentRef, what: str) -> Located:
    if loc.single_file:
        if not loc.path.name.endswith(".safetensors"):
            raise UnsafeModelError(f"{what}: {loc.path.name} is not a .safetensors file; only safetensors VAEs are loaded")
        return loc
    path = loc.path
    if vae.subfolder:
        _check_rel(vae.subfolder, what)
        path = _join_inside(loc.root, path.relative_to(loc.root) / vae.subfolder, what) if loc.root else path / vae.subfolder
    return Located(path, loc.root, False)


def check_vae_folder(loc: Located, what: str) -> None:
    """An AutoencoderKL folder: allowlisted class in config.json, safetensors weights, no code, no escaping links."""
    folder = loc.path
    try:
        config = json.loads((folder / "config.json").read_text("utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{what}: {folder} has no config.json (a diffusers AutoencoderKL folder or a .safetensors file is needed)") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise ModelError(f"{what}: {folder}/config.json cannot be read: {exc}") from None
    cls = config.get("_class_name") if isinstance(config, dict) else None
    if cls not in VAE_CLASSES:
        raise UnsafeModelError(f"{what}: {folder}: class {cls!r} is not allowed for a VAE; allowed: {', '.join(sorted(VAE_CLASSES))}")
    names = [p.name for p in folder.iterdir()]
    if any(n.endswith(".py") for n in names):
        raise UnsafeModelError(f"{what}: {folder} contains Python code; aigif never runs code shipped with a model")
    from .digest import component_files

    if not component_files(folder):
        bad = sorted(n for n in names if n.endswith(UNSAFE_SUFFIXES))
        raise UnsafeModelError(f"{what}: {folder} has no .safetensors weights"
                               + (f" (only {', '.join(bad)}: pickle-based formats can run code and are refused)" if bad else ""))
    if loc.root is not None:
        for p in folder.rglob("*"):
            if p.is_symlink() and not _inside(_resolve(p), loc.root):
                raise UnsafeModelError(f"{what}: {p} links outside the model dir {loc.root}")
