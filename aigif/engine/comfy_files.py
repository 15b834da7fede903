"""ComfyUI's model layout: a transformer-only file, the text encoders and the VAE as separate files.

ComfyUI users keep FLUX / SD 3.5 as single files in their model folders
(``diffusion_models/`` or ``unet/``: the transformer; ``text_encoders/`` or
``clip/``: ``clip_l``, ``t5xxl``, ...; ``vae/``). A syntax names them by
``model.local`` (the transformer), ``model.text_encoders`` (each with the
pipeline component it fills as ``subfolder``) and ``model.vae``, each with its
sha256. The engine assembles the pipeline from them: every weight comes from a
recorded file (checked against its digest); configs, tokenizers and the
scheduler come from the model's *skeleton* (the embedded model's folder, or the
registry model's snapshot in the Hugging Face cache), never code.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import AigifError, ModelError, ModelMismatchError, UnsafeModelError
from .digest import file_sha256
from .quiet import quiet

TRANSFORMER_DIRS = ("diffusion_models", "unet")
TEXT_ENCODER_COMPONENTS = ("text_encoder", "text_encoder_2", "text_encoder_3")
# The same files under the other folder names users keep them in: ComfyUI's legacy unet/ and clip/,
# Forge's Stable-diffusion/, text_encoder/ and VAE/. A recorded path is looked up under each.
FOLDER_ALIASES = {
    "diffusion_models": ("unet", "Stable-diffusion"), "unet": ("diffusion_models", "Stable-diffusion"),
    "text_encoders": ("clip", "text_encoder"), "clip": ("text_encoders", "text_encoder"), "vae": ("VAE",),
}


@dataclass(frozen=True)
class SplitFiles:
    """A pipeline assembled from single files: the skeleton folder and (component, file, sha256) for each weight."""

    skeleton: Path
    files: tuple[tuple[str, Path, str], ...]


def is_transformer_path(local: str) -> bool:
    """A recorded path to a transformer-only file: a file under ``diffusion_models/`` or ``unet/`` (sub-folders allowed)."""
    parts = Path(local).parts
    return len(parts) >= 2 and any(p in TRANSFORMER_DIRS for p in parts[:-1]) and Path(local).suffix != ""


def alternatives(local: str) -> list[str]:
    """*local* first, then the same path under each alias of its first folder (``diffusion_models/x`` -> ``unet/x``)."""
    head, sep, rest = local.partition("/")
    return [local, *(f"{a}/{rest}" for a in FOLDER_ALIASES.get(head, ()))] if sep and rest else [local]


def _index(skeleton: Path) -> dict:
    try:
        data = json.loads((skeleton / "model_index.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{skeleton}/model_index.json cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{skeleton}/model_index.json must be a JSON object")
    return data


def _checked(what: str, path: Path, recorded: str | None) -> str:
    if path.suffix != ".safetensors":
        raise UnsafeModelError(f"{what}: {path.name} is not a .safetensors file; only safetensors weights are loaded")
    digest = file_sha256(path)
    if recorded and not digest.startswith(recorded):
        raise ModelMismatchError(f"{what} ({path}) has sha256 {digest}, the file records {recorded}: a different file")
    return digest


def split_files(transformer: Path, skeleton: Path, text_encoders, vae, locate) -> SplitFiles:
    """Check the recorded files against the skeleton's components; *locate(local, what)* resolves a path in the model dirs."""
    index = _index(skeleton)
    files = [("transformer", transformer, file_sha256(transformer))]
    for te in text_encoders:
        comp = te.subfolder
        if comp not in TEXT_ENCODER_COMPONENTS or comp not in index:
            raise ModelError(f"text encoder {te.local or te.name}: subfolder must name a text encoder of this pipeline "
                             f"({', '.join(c for c in TEXT_ENCODER_COMPONENTS if c in index)}), got {comp!r}")
        if not te.local:
            raise ModelError(f"text encoder for {comp}: record its file as local (a path inside a model dir)")
        files.append((comp, locate(te.local, "text encoder"), te.sha256))
    if vae is not None and vae.local:
        files.append(("vae", locate(vae.local, "VAE"), vae.sha256))
    out = [files[0]] + [(c, p, _checked(f"{c} file", p, sha)) for c, p, sha in files[1:]]
    given = {c for c, _, _ in out}
    missing = [c for c in (*TEXT_ENCODER_COMPONENTS, "vae") if c in index and index[c][0] is not None and c not in given]
    if missing:
        raise ModelError(f"{transformer.name} is a transformer-only file; the pipeline also needs "
                         + ", ".join(missing) + ": put the files into text_encoders/ (or clip/) and vae/ of a model dir and "
                         "record them as model.text_encoders (subfolder = the component) and model.vae")
    return SplitFiles(skeleton, tuple(out))


def load_split(pipeline: str, parts: SplitFiles, torch_dtype, device: str):
    """The pipeline with each recorded file's weights; tokenizers and the scheduler come from the skeleton."""
    import diffusers
    import transformers

    index = _index(parts.skeleton)
    comps = {}
    try:
        with quiet(False):
            for comp, path, _ in parts.files:
                lib, cls = index[comp]
                if lib == "diffusers":
                    comps[comp] = getattr(diffusers, cls).from_single_file(
                        str(path), config=str(parts.skeleton), subfolder=comp, torch_dtype=torch_dtype, local_files_only=True)
                else:   # a transformers text encoder: the skeleton's config, the file's weights
                    with tempfile.TemporaryDirectory(prefix="aigif-te-") as tmp:
                        shutil.copy(parts.skeleton / comp / "config.json", Path(tmp) / "config.json")
                        os.symlink(path, Path(tmp) / "model.safetensors")
                        comps[comp] = getattr(transformers, cls).from_pretrained(
                            tmp, torch_dtype=torch_dtype, use_safetensors=True, local_files_only=True)
            pipe = getattr(diffusers, pipeline).from_pretrained(
                str(parts.skeleton), **comps, torch_dtype=torch_dtype, use_safetensors=True, local_files_only=True)
            return pipe.to(device)
    except AigifError:
        raise
    except Exception as exc:  # corrupt configs/weights surface as many exception types
        raise ModelError(f"cannot assemble {pipeline} from {', '.join(str(p) for _, p, _ in parts.files)}: "
                         f"{type(exc).__name__}: {exc}") from None
