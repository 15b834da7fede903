"""What to put where when a model's weights are not here: the text of the 'model not available' errors.

A file names its model; a user who lacks the weights needs to know the exact
places the engine looks. The layouts come from the model's generator family
(its denoiser, text encoders and ComfyUI file names), so a new family gets
its own instructions by registering, not by editing this module.
"""
from __future__ import annotations

from .families import GeneratorFamily

HF_DOWNLOAD = "huggingface-cli download {repo} --revision {revision}"


def tokenizer_of(text_encoder: str) -> str:
    """``text_encoder_2`` -> ``tokenizer_2`` (diffusers' folder names)."""
    return text_encoder.replace("text_encoder", "tokenizer", 1)


def diffusers_folders(family: GeneratorFamily) -> list[str]:
    """The sub-folders of the family's diffusers model folder (besides ``model_index.json``)."""
    names = [family.denoiser, *family.text_encoders, *map(tokenizer_of, family.text_encoders), "vae", "scheduler"]
    return sorted(dict.fromkeys(names))


def comfy_layout(family: GeneratorFamily, transformer: str) -> str:
    """ComfyUI's split files for *family* under a model dir, e.g. ``diffusion_models/flux1-dev.safetensors``."""
    encoders = [f"{n}.safetensors" for n in family.comfy_text_encoders] or [f"one file per {t}" for t in family.text_encoders]
    vae = f"{family.comfy_vae}.safetensors" if family.comfy_vae else "the VAE .safetensors file"
    return (f"diffusion_models/ (or unet/) {transformer}.safetensors, text_encoders/ (or clip/) {', '.join(encoders)}, "
            f"vae/ {vae}")


def where_to_put(name: str, repo: str, revision: str, family: GeneratorFamily, *, weights: bool = True) -> str:
    """Every place the engine finds model *name*, with the files each needs (``weights=False``: configs and
    tokenizers only, the skeleton of split files)."""
    folders = ", ".join(f"{n}/" for n in diffusers_folders(family))
    get = HF_DOWNLOAD.format(repo=repo, revision=revision)
    what = "its diffusers folder" if weights else "its diffusers folder (configs and tokenizers; weights not needed)"
    lines = [f"To make {name} available, put {what} in one of these places:",
             f"  - the Hugging Face cache (HF_HOME): `{get}`, or run once with --allow-network;",
             f"  - a model dir (--model-dir DIR or AIGIF_MODEL_DIRS): DIR/{name}/ holding model_index.json and "
             f"{folders} (`{get} --local-dir DIR/{name}`)."]
    if weights and family.denoiser == "transformer":
        lines.append(f"  ComfyUI's single files work too when the file records them (model.local, model.text_encoders, "
                     f"model.vae): under a model dir, {comfy_layout(family, name)}; configs and tokenizers then come "
                     f"from DIR/{name}/ or the Hugging Face cache, without weights.")
    return "\n".join(lines)


def missing_files(model: str, missing: list[tuple[str, str, str | None]], model_dirs) -> str:
    """The recorded single files (component, path, sha256) that no model dir holds, one line each."""
    where = (f"the model dirs ({', '.join(map(str, model_dirs))}) lack these files" if model_dirs
             else "no model dirs are configured")
    lines = [f"{model} is recorded as single files (ComfyUI layout) and {where}; put them under a model dir "
             "(--model-dir DIR or AIGIF_MODEL_DIRS, e.g. ComfyUI's models/ folder):"]
    for comp, path, sha in missing:
        lines.append(f"  - DIR/{path}  ({comp}" + (f", sha256 {sha[:16]}...)" if sha else ")"))
    return "\n".join(lines)
