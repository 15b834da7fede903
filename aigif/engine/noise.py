"""The initial latents, derived from the seed alone (spec/engine.md "Noise").

A CPU ``torch.Generator`` seeded with the 64-bit seed draws float32 standard
normals of shape ``(batch_index + 1, C, H // f, W // f)``; the image's latents
are slice ``batch_index`` (0 when absent), cast to the pipeline dtype and moved
to the device. That is exactly what diffusers draws for image ``k`` of
``pipe(..., num_images_per_prompt=n, generator=torch.Generator("cpu").manual_seed(seed))``
in float32, and it does not depend on how many images the engine batches.
The same generator (its state after this draw) then feeds the scheduler's
per-step noise (ancestral / SDE samplers).
"""
from __future__ import annotations

MAX_BATCH_INDEX = 4096  # never allocate from an untrusted index without a bound


def seeded_generator(seed: int):
    import torch

    return torch.Generator(device="cpu").manual_seed(int(seed))


def initial_latents(seed: int, batch_index: int | None, shape: tuple[int, int, int], *, dtype=None, device="cpu"):
    """(latents of shape (1, *shape), generator to continue with)."""
    import torch

    from ..errors import ConfigError

    k = batch_index or 0
    if k > MAX_BATCH_INDEX:
        raise ConfigError(f"batch_index {k} is above the supported {MAX_BATCH_INDEX}")
    g = seeded_generator(seed)
    noise = torch.randn((k + 1, *shape), generator=g, dtype=torch.float32, device="cpu")[k : k + 1]
    return noise.to(device=device, dtype=dtype or torch.float32), g
