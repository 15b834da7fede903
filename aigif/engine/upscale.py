"""Pixel upscalers of a hires pass (spec/engine.md section 2.1): PIL resampling filters and ESRGAN model files.

A model is found by name in the model dirs (and their ComfyUI ``upscale_models/``,
A1111 ``ESRGAN/`` / ``RealESRGAN/`` sub-folders), as ``<name>.safetensors`` or under
the file names the registry gives it; pickle files are refused, not read. When the
syntax records the file's sha256 it is checked. The enlargement itself runs in
float32 on the CPU whatever the pipeline's dtype and device.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, LimitError, ModelError
from ..syntax.passes import HiresFix
from .components import find_named
from .digest import check_file_digest, file_sha256

UPSCALER_SUBDIRS = ("", "upscale_models", "ESRGAN", "RealESRGAN")
MAX_MODEL_PASSES = 3      # a model is applied until the image covers the target size, at most this often
MAX_MODEL_PIXELS = 64 * 2**20   # pixels one model pass may output (its float32 result: 12 bytes a pixel)
_CACHE: dict[tuple[str, str], object] = {}   # (file, sha256) -> network; the latest one only
_LOCK = threading.Lock()


@dataclass(frozen=True)
class PixelUpscaler:
    """Enlarges a PIL image to a size: a resampling filter (``resample``) or a network (``net``)."""

    name: str
    resample: str | None = None
    net: object | None = None
    path: Path | None = None
    sha256: str | None = None

    def __call__(self, image, size: tuple[int, int]):
        """*image* (PIL RGB) enlarged to *size* (width, height)."""
        from PIL import Image

        if self.net is None:
            return image.resize(size, getattr(Image.Resampling, self.resample.upper()))
        for _ in range(MAX_MODEL_PASSES):
            if image.width >= size[0] and image.height >= size[1]:
                break
            before = image.size
            image = run_model(self.net, image, self.name)
            if image.size == before:
                break
        return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


def run_model(net, image, name: str = "upscaler"):
    """One pass of an ESRGAN network over a PIL RGB image: uint8 -> [0, 1] float32 -> net -> clip -> round."""
    import numpy as np
    import torch
    from PIL import Image

    from .esrgan import upscale_tiled

    s = net.shape.scale
    if image.width * image.height * s * s > MAX_MODEL_PIXELS:
        raise LimitError(f"upscaler model {name}: x{s} of {image.width}x{image.height} is more than {MAX_MODEL_PIXELS} "
                         "pixels; upscale a smaller first pass")
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None].contiguous()
    with torch.inference_mode():
        y = upscale_tiled(net, x)
    out = torch.round(y[0].clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(out), "RGB")


def model_names(hires: HiresFix) -> list[str]:
    """File names (without .safetensors) the upscaler model may have: its name, then the registry's file stems."""
    entry = hires.upscaler_entry
    name = hires.upscaler[: -len(".safetensors")] if hires.upscaler.endswith(".safetensors") else hires.upscaler
    return list(dict.fromkeys([name, *(entry.files if entry else ())]))


def locate_upscaler(hires: HiresFix, model_dirs) -> Path:
    """The weights file of the pass's upscaler model; :class:`ModelError` naming where it was looked for."""
    what = f"upscaler model {hires.upscaler}"
    for name in model_names(hires):
        found = find_named(name, model_dirs, UPSCALER_SUBDIRS, what)
        if found is not None:
            return found.path
    dirs = ", ".join(str(d) for d in model_dirs) or "none configured"
    files = " or ".join(f"{n}.safetensors" for n in model_names(hires))
    raise ModelError(f"{what} not found in --model-dir: put {files} into a model dir (or its upscale_models/, ESRGAN/ "
                     f"or RealESRGAN/ sub-folder) and pass --model-dir DIR (or set AIGIF_MODEL_DIRS); model dirs: {dirs}")


def pixel_upscaler(hires: HiresFix, model_dirs, verify: bool = True) -> PixelUpscaler | None:
    """What enlarges the decoded first pass of *hires*; None for a latent upscaler. A model is located, checked
    against the recorded sha256 (when *verify*) and loaded; :class:`ConfigError` when no engine can run it."""
    why = hires.not_reproducible()
    if why is not None:
        raise ConfigError(f"not regenerable: {why}")
    entry = hires.upscaler_entry
    if entry is not None and entry.space == "latent":
        return None
    if entry is not None and entry.mode is not None:
        return PixelUpscaler(entry.name, resample=entry.mode)
    path = locate_upscaler(hires, model_dirs)
    what = f"upscaler model {hires.upscaler} ({path})"
    digest = file_sha256(path)
    if verify:
        check_file_digest(what, hires.upscaler_sha256, path, digest)
    return PixelUpscaler(hires.upscaler, net=_network(path, digest, what), path=path, sha256=digest)


def _network(path: Path, digest: str, what: str):
    from .esrgan import load_esrgan

    key = (str(path), digest)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
    net = load_esrgan(path, what)      # the one architecture run (registry.RUN_ARCHS); others fail to read as it
    with _LOCK:
        _CACHE.clear()
        _CACHE[key] = net
    return net

