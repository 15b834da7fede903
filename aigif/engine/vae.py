"""VAE overrides: load an ``AutoencoderKL`` (folder or single .safetensors file) and put it into a pipeline."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ..errors import AigifError, ModelError
from .components import Located, check_vae_folder
from .digest import component_digest, file_sha256
from .quiet import quiet


def vae_digest(loc: Located) -> str:
    """Component-folder digest (spec/engine.md 1.4), or the sha256 of a single file."""
    return file_sha256(loc.path) if loc.single_file else component_digest(loc.path)


def load_vae(loc: Located, base_vae, torch_dtype, device: str, what: str):
    """An AutoencoderKL from safetensors only; a single file is read with safetensors and mapped onto the
    base pipeline's VAE config (diffusers' converter handles the original LDM key layout)."""
    import diffusers
    from safetensors.torch import load_file

    try:
        with quiet(False):
            if loc.single_file:
                state = load_file(str(loc.path), device="cpu")
                with tempfile.TemporaryDirectory(prefix="aigif-vae-") as tmp:
                    cfg = {k: v for k, v in dict(base_vae.config).items() if not k.startswith("_")}
                    (Path(tmp) / "config.json").write_text(json.dumps(dict(cfg, _class_name="AutoencoderKL")), "utf-8")
                    vae = diffusers.AutoencoderKL.from_single_file(state, config=tmp, torch_dtype=torch_dtype, local_files_only=True)
            else:
                check_vae_folder(loc, what)
                vae = diffusers.AutoencoderKL.from_pretrained(str(loc.path), torch_dtype=torch_dtype, use_safetensors=True,
                                                              local_files_only=True)
    except AigifError:
        raise
    except Exception as exc:  # corrupt configs/weights surface as many exception types
        raise ModelError(f"{what}: cannot load AutoencoderKL from {loc.path}: {type(exc).__name__}: {exc}") from None
    return vae.to(device).eval()


def swap_vae(pipe, vae, what: str) -> None:
    """Replace the pipeline's VAE; it must speak the UNet's latent space at the same scale factor."""
    old = pipe.vae
    if int(vae.config.latent_channels) != int(old.config.latent_channels) or \
            len(vae.config.block_out_channels) != len(old.config.block_out_channels):
        raise ModelError(f"{what} does not fit this model: {vae.config.latent_channels} latent channels, "
                         f"{len(vae.config.block_out_channels)} levels; the model's VAE has {old.config.latent_channels}, "
                         f"{len(old.config.block_out_channels)} (a VAE of another model family?)")
    pipe.register_modules(vae=vae)
