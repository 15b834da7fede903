"""Restoration network: a small fixed CNN that the decoder may run on its 8-bit output (post-filter shape 3).

NVTC's synthesis ends in a 1x1 convolution and a 4x pixel shuffle, so nothing
in the shared decoder looks across the 4x4 pixel blocks of its finest stage at
full resolution. This network does: ``layers + 2`` 3x3 convolutions at half
resolution (pixel-unshuffle by 2), ReLU between them, a residual on the
pixels, conditioned on the quality by one-hot input planes. Its weights ship
with the model (one file per model id, sha256-pinned like the model's), are
trained on the training photos' decodes (tools/train_nvtc_restore.py), and it runs
before the per-image integer filters of :mod:`.classfilter`, which then fit
what it leaves. On Kodak 24 it takes the BD-rate against WebP from -8.9 % to
-15.3 % for ~0.2 s per 768x512 image.

Model id 5 runs this float32 network (``spec/codec-nvtc.md`` §5a, shape 3; platform-dependent
rounding, as for §5); model id 6 runs its integer version (:mod:`.intsynth`, §5c), exact everywhere.
Either runs in horizontal strips of bounded size with enough context rows that each strip
computes what the whole image would.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_CONFIG = {"arch": "restore-v1", "channels": 64, "layers": 3, "qualities": 4}
#: half-resolution positions per strip (each of the network's activations then takes ~50 MB,
#: whatever the image size); a strip has at least ``MIN_STRIP_ROWS`` rows
STRIP_POSITIONS = 1 << 18
MIN_STRIP_ROWS = 8


class RestoreNet(nn.Module):
    """x (N, 3, H, W) in [-0.5, 0.5], H and W even; quality index q in 0..qualities-1 -> restored x."""

    def __init__(self, cfg: dict):
        super().__init__()
        c, q = int(cfg["channels"]), int(cfg["qualities"])
        self.config = dict(cfg)
        self.qualities = q
        self.inp = nn.Conv2d(12 + q, c, 3, padding=1)
        self.mid = nn.ModuleList([nn.Conv2d(c, c, 3, padding=1) for _ in range(int(cfg["layers"]))])
        self.out = nn.Conv2d(c, 12, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # starts as the identity
        nn.init.zeros_(self.out.bias)

    @property
    def reach(self) -> int:
        """Half-resolution rows of context one output row depends on, each side."""
        return len(self.mid) + 2

    def forward(self, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        z = F.pixel_unshuffle(x, 2)
        planes = F.one_hot(q, self.qualities).to(z.dtype)[:, :, None, None].expand(-1, -1, *z.shape[2:])
        h = F.relu(self.inp(torch.cat([z, planes], 1)))
        for conv in self.mid:
            h = F.relu(conv(h))
        return x + F.pixel_shuffle(self.out(h), 2)


def strip_rows_for(width: int) -> int:
    """Half-resolution rows per strip of an image ``width`` pixels wide."""
    return max(MIN_STRIP_ROWS, STRIP_POSITIONS // max(1, (width + 1) // 2))


def restore(net, img: np.ndarray, quality: int, strip_rows: int | None = None) -> np.ndarray:
    """The restored image (uint8 (H, W, 3)) of ``img`` decoded at ``quality`` (1-based) by ``net``: a float
    :class:`RestoreNet` (input in [-0.5, 0.5]) or the integer network of :mod:`.intsynth` (8-bit samples).

    Odd sides are edge-replicated to even first and cropped after; the network runs on strips of
    ``strip_rows`` half-resolution rows (default :func:`strip_rows_for`) plus ``net.reach`` context
    rows each side (the image's own rows, zero padding only at its top and bottom), so working
    memory is bounded and the result is the whole image's."""
    h, w = img.shape[:2]
    strip_rows = strip_rows or strip_rows_for(w)
    padded = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    integer = getattr(net, "integer", False)
    x = torch.from_numpy(np.ascontiguousarray(padded)).permute(2, 0, 1)[None].float()
    x = x if integer else x / 255.0 - 0.5
    q = torch.tensor([quality - 1])
    rows = x.shape[2] // 2
    reach = net.reach
    out = torch.empty_like(x)
    with torch.no_grad():
        for a in range(0, rows, strip_rows):
            b = min(a + strip_rows, rows)
            lo, hi = max(a - reach, 0), min(b + reach, rows)
            y = net(x[:, :, 2 * lo : 2 * hi], q)
            out[:, :, 2 * a : 2 * b] = y[:, :, 2 * (a - lo) : 2 * (b - lo)]
    pixels = out[0] if integer else ((out[0] + 0.5) * 255.0).round().clamp(0, 255)
    pixels = pixels.to(torch.uint8).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(pixels[:h, :w])
