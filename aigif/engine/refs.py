"""Model, LoRA and VAE strings -> the references a file records: one parser for the CLI and the Python API.

``--model`` / ``model=``: a registry name, an existing folder or file (recorded
relative to the model dir it lies in; outside every model dir, its parent
becomes one), or a Hugging Face repo id ``owner/name[@revision]``.
``--lora NAME[:WEIGHT[:TEXT_WEIGHT]]`` and ``--vae`` also find names in the model dirs
(``Lora/``, ``VAE/``, ... subfolders). Every parser returns the reference and the
model dirs a decoder needs (the given ones, maybe plus one).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Iterable

from ..errors import ConfigError
from ..syntax import registry
from ..syntax.elements import ComponentRef, Embedding, Lora, ModelRef
from .components import LORA_SUBDIRS, VAE_SUBDIRS, find_named


def _as_local(path: Path, model_dirs: list[Path]) -> tuple[str, list[Path]]:
    """An existing path as recorded in a file: relative to its model dir, else its parent becomes one."""
    path = path.resolve()
    for root in model_dirs:
        try:
            return path.relative_to(Path(root).expanduser().resolve()).as_posix(), model_dirs
        except ValueError:
            continue
    return path.name, [*model_dirs, path.parent]


def _is_repo(text: str, parts: int = 2) -> bool:
    bits = text.split("/")
    return len(bits) == parts and not text.startswith((".", "/")) and all(bits)


def parse_model(spec: str | ModelRef | None, model_dirs: list[Path], revision: str | None = None
                ) -> tuple[ModelRef | None, list[Path]]:
    """``--model`` / ``model=``; *revision* (``--revision``) wins over an ``@revision`` suffix."""
    if spec is None or isinstance(spec, ModelRef):
        return spec, model_dirs
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"model must be a registry name, a path, a repo id or a ModelRef, got {spec!r}")
    if registry.code_of("model", spec) is not None:
        return ModelRef(name=spec), model_dirs
    path = Path(spec).expanduser()
    if path.exists():
        rel, dirs = _as_local(path, model_dirs)
        return ModelRef(local=rel), dirs
    repo, _, at = spec.partition("@")
    if _is_repo(repo):
        return ModelRef(repo=repo, revision=revision or at or "main"), model_dirs
    raise ConfigError(f"model {spec!r} is neither a registry name ({', '.join(sorted(m.name for m in registry.MODELS.values()))}), "
                      "an existing folder/file, nor a Hugging Face repo id (owner/name[@revision])")


def _split_weight(spec: str) -> tuple[str, float | None]:
    head, sep, tail = spec.rpartition(":")
    if sep:
        try:
            w = float(tail)
        except ValueError:
            return spec, None
        if w != w or abs(w) == float("inf"):
            raise ConfigError(f"--lora {spec!r}: the weight must be a finite number")
        return head, w
    return spec, None


def _split_weights(spec: str) -> tuple[str, float, float | None]:
    """``NAME[:WEIGHT[:TEXT_WEIGHT]]`` -> (NAME, WEIGHT (default 1), TEXT_WEIGHT or None)."""
    head, last = _split_weight(spec)
    if last is None:
        return spec, 1.0, None
    name, first = _split_weight(head)
    return (head, last, None) if first is None else (name, first, last)


def parse_lora_dirs(spec: str | Lora, model_dirs: list[Path]) -> tuple[Lora, list[Path]]:
    """``--lora NAME[:WEIGHT[:TEXT_WEIGHT]]``: a file path, a name in the model dirs (also Lora/, loras/), or a hub
    repo (``owner/name`` with pytorch_lora_weights.safetensors, or ``owner/name/file.safetensors``)."""
    if isinstance(spec, Lora):
        return spec, model_dirs
    head, weight, text_weight = _split_weights(spec)
    lora, dirs = _lora_of(head, spec, weight, model_dirs)
    return (replace(lora, text_weight=text_weight) if text_weight is not None else lora), dirs


def _lora_of(head: str, spec: str, weight: float, model_dirs: list[Path]) -> tuple[Lora, list[Path]]:
    if not head:
        raise ConfigError(f"--lora {spec!r}: give a LoRA name, file or repo")
    path = Path(head).expanduser()
    if path.is_file():
        rel, dirs = _as_local(path, model_dirs)
        return Lora(local=rel, weight=weight), dirs
    if find_named(head, model_dirs, LORA_SUBDIRS, f"LoRA {head}") is not None:
        return Lora(name=head, weight=weight), model_dirs
    parts = head.split("/")
    if _is_repo(head):
        return Lora(repo=head, revision="main", weight=weight), model_dirs
    if len(parts) > 2 and not head.startswith((".", "/")) and head.endswith(".safetensors") and all(parts):
        return Lora(repo="/".join(parts[:2]), revision="main", weight_name="/".join(parts[2:]), weight=weight), model_dirs
    return Lora(name=head, weight=weight), model_dirs   # the engine says where it looked


def parse_lora(spec: str | Lora, model_dirs: list[Path]) -> Lora:
    return parse_lora_dirs(spec, model_dirs)[0]


def parse_vae(spec: str | ComponentRef | None, model_dirs: list[Path]) -> tuple[ComponentRef | None, list[Path]]:
    """``--vae``: a folder/.safetensors path, a name in the model dirs (also VAE/, vae/), or ``owner/name[/subfolder]``."""
    if spec is None or isinstance(spec, ComponentRef):
        return spec, model_dirs
    path = Path(spec).expanduser()
    if path.exists():
        rel, dirs = _as_local(path, model_dirs)
        return ComponentRef(local=rel), dirs
    if find_named(spec, model_dirs, VAE_SUBDIRS, f"VAE {spec}", folders=True) is not None:
        return ComponentRef(name=spec), model_dirs
    parts = spec.split("/")
    if len(parts) >= 2 and not spec.startswith((".", "/")) and all(parts):
        return ComponentRef(repo="/".join(parts[:2]), revision="main", subfolder="/".join(parts[2:]) or None), model_dirs
    return ComponentRef(name=spec), model_dirs


def parse_embedding(spec: str | Embedding, model_dirs: list[Path]) -> tuple[Embedding, list[Path]]:
    """``--embedding NAME``: a name in the model dirs (also embeddings/), the word the prompt uses; or a
    ``.safetensors`` path, whose stem the prompt uses."""
    if isinstance(spec, Embedding):
        return spec, model_dirs
    path = Path(spec).expanduser()
    if path.is_file():
        rel, dirs = _as_local(path, model_dirs)
        return Embedding(name=path.stem, local=rel), dirs
    return Embedding(name=spec), model_dirs   # the engine says where it looked


def parse_request(model: str | ModelRef | None, model_dirs: Iterable[Path], *, loras: Iterable[str | Lora] = (),
                  vae: str | ComponentRef | None = None, revision: str | None = None,
                  embeddings: Iterable[str | Embedding] = ()) -> tuple[ModelRef | None, list[Path]]:
    """The model reference of a generation request with its LoRAs (in order), embeddings and VAE override,
    and the model dirs it needs. No LoRA, embedding or VAE on no model: None (the engine's default model)."""
    from ..syntax.defaults import DEFAULT_MODEL

    ref, dirs = parse_model(model, list(model_dirs), revision)
    parsed = []
    for spec in loras or ():
        lo, dirs = parse_lora_dirs(spec, dirs)
        parsed.append(lo)
    embs = []
    for spec in embeddings or ():
        emb, dirs = parse_embedding(spec, dirs)
        embs.append(emb)
    vae_ref, dirs = parse_vae(vae, dirs)
    if parsed or embs or vae_ref is not None:
        ref = replace(ref or ModelRef(name=DEFAULT_MODEL), vae=vae_ref or (ref.vae if ref else None),
                      loras=(*(ref.loras if ref else ()), *parsed), embeddings=(*(ref.embeddings if ref else ()), *embs))
    return ref, dirs
