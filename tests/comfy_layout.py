"""The embedded FLUX model's weights saved as ComfyUI users keep them: one file per component in its folder."""
import shutil

from aigif.engine.tiny import ensure_tiny

SOURCES = ("transformer/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
           "text_encoder_2/model.safetensors", "vae/diffusion_pytorch_model.safetensors")


def lay_out_tiny_flux(root, places):
    """Copy the transformer, CLIP, T5 and VAE weights to *places* (four paths under *root*, in that order)."""
    tiny = ensure_tiny("aigif-tiny-flux")
    for src, place in zip(SOURCES, places, strict=True):
        (root / place).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tiny / src, root / place)
    return root
