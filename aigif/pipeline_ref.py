"""What a user's diffusers pipeline is, in the syntax's terms: its model reference and its scheduler.

Used by :func:`aigif.record` (and ``wrap_pipeline``) to write a file the engine
regenerates: the weights folder and digest name the model (a registry name when
the digest is pinned there), the scheduler is matched against the registry and
its config overrides.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import ConfigError, ModelError
from .syntax import registry
from .syntax.elements import Generation, ModelRef
from .syntax.passes import HiresFix


def _folder_of(pipe) -> tuple[Path, str | None, str | None]:
    """(weights folder, hub repo id or None, revision or None) of a pipeline."""
    name = getattr(pipe, "name_or_path", None) or getattr(getattr(pipe, "config", None), "_name_or_path", None)
    if not name:
        raise ModelError("the pipeline does not say where it was loaded from (name_or_path); pass model=ModelRef(...)")
    path = Path(name).expanduser()
    if path.is_dir():
        path = path.resolve()
        parts = path.parts
        if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
            return path, parts[-3][len("models--"):].replace("--", "/"), parts[-1]
        return path, None, None
    if name.count("/") == 1:
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(name, local_files_only=True))
        except Exception as exc:  # hub cache errors come in many types
            raise ModelError(f"{name}: not found in the Hugging Face cache ({type(exc).__name__}); pass model=ModelRef(...)") from None
        return folder, name, folder.name
    raise ModelError(f"cannot find the weights of {name!r}; pass model=ModelRef(...)")


def pipeline_model_ref(pipe, model_dirs: list[str | os.PathLike] | None = None) -> ModelRef:
    """The ModelRef an .aigif records for *pipe*: registry name if the digest matches, else repo/local + sha256."""
    from .engine.digest import folder_digest
    from .engine.families import family_of_pipeline
    from .engine.paths import env_model_dirs

    folder, repo, revision = _folder_of(pipe)
    digest = variant = None
    for variant in (None, "fp16", "bf16"):
        try:
            digest = folder_digest(folder, variant)
            break
        except ModelError:
            continue
    if digest is None:
        raise ModelError(f"{folder} holds no .safetensors weights aigif can hash; pass model=ModelRef(...)")
    for entry in registry.MODELS.values():
        if entry.sha256 == digest:
            return ModelRef(name=entry.name)
    family = family_of_pipeline(type(pipe).__name__)
    if repo is not None:
        return ModelRef(repo=repo, revision=revision, sha256=digest, family=family, variant=variant)
    for root in [Path(p) for p in (model_dirs or [])] + env_model_dirs():
        try:
            rel = folder.relative_to(Path(root).expanduser().resolve()).as_posix()
            return ModelRef(local=rel, sha256=digest, family=family, variant=variant)
        except ValueError:
            continue
    # outside every model dir: recorded by folder name; decode with Engine(model_dirs=[folder.parent])
    return ModelRef(local=folder.name, sha256=digest, family=family, variant=variant)


def _model_scheduler(pipe) -> tuple[str, dict]:
    """(class name, config) of the scheduler the model's folder ships: what registry schedulers are built on."""
    folder = _folder_of(pipe)[0]
    try:
        default = json.loads((folder / "scheduler" / "scheduler_config.json").read_text("utf-8"))
        return default["_class_name"], default
    except (OSError, ValueError, KeyError, TypeError):
        raise ModelError(f"{folder}/scheduler/scheduler_config.json cannot be read") from None


def second_scheduler(pipe, second: Generation, hires: HiresFix):
    """The hires pass's scheduler, built as the engine builds it: the first pass's again, or the pass's own."""
    from .engine.schedulers import make_scheduler

    if hires.scheduler is None:
        return type(pipe.scheduler).from_config(pipe.scheduler.config)
    return make_scheduler(*_model_scheduler(pipe), second.scheduler, second.scheduler_config)


def scheduler_of(pipe) -> tuple[str | None, dict]:
    """(registry scheduler name or None for the model's own, config overrides) reproducing ``pipe.scheduler``."""
    from .engine.schedulers import make_scheduler

    default_cls, default = _model_scheduler(pipe)
    cls = type(pipe.scheduler).__name__
    want = {k: v for k, v in dict(pipe.scheduler.config).items() if not k.startswith("_")}
    candidates = ([None] if cls == default_cls else []) + [e.name for e in registry.SCHEDULERS.values() if e.cls == cls]
    best = None
    for cand in candidates:
        try:
            built = {k: v for k, v in dict(make_scheduler(default_cls, default, cand, None).config).items() if not k.startswith("_")}
        except ConfigError:
            continue
        overrides = {k: v for k, v in want.items() if built.get(k) != v}
        if best is None or len(overrides) < len(best[1]):
            best = (cand, overrides)
    if best is None:
        raise ConfigError(f"scheduler {cls} has no entry in the aigif registry; known: "
                          + ", ".join(sorted({e.cls for e in registry.SCHEDULERS.values()})))
    name, overrides = best
    rebuilt = {k: v for k, v in dict(make_scheduler(default_cls, default, name, overrides).config).items() if not k.startswith("_")}
    if type(make_scheduler(default_cls, default, name, overrides)).__name__ != cls or rebuilt != want:
        raise ConfigError(f"scheduler {cls} with this config cannot be rebuilt from the registry")
    return name, _jsonable(overrides)


def _jsonable(d: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}
