"""Where aigif keeps its own files: ``$AIGIF_HOME`` (default ``~/.cache/aigif``)."""
from __future__ import annotations

import os
from pathlib import Path


def aigif_home() -> Path:
    """Root of aigif's caches: built embedded models and the weight-digest cache."""
    env = os.environ.get("AIGIF_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "aigif"


def models_home() -> Path:
    return aigif_home() / "models"


def env_model_dirs() -> list[Path]:
    """Model folders from ``AIGIF_MODEL_DIRS`` (``os.pathsep``-separated)."""
    raw = os.environ.get("AIGIF_MODEL_DIRS", "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]
