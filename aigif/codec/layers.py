"""Vector-transform building blocks of NVTC.

Feng, Jiang, Liu, Fang, Zhou, "NVTC: Nonlinear Vector Transform Coding", CVPR 2023.
A vector-transform (VT) unit mixes features *within* small spatial blocks
(depthwise block FC, the "intra-vector" transform) and *across* channels (a
channel MLP, the "inter-vector" transform). It has no normalisation layers, so
the synthesis path is a fixed sequence of linear maps and GELUs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BlockFC(nn.Module):
    """Depthwise fully-connected mixing of the b*b positions of each block.

    Every channel has its own (b*b x b*b) matrix. ``shift`` rolls the grid by
    half a block first (and back after) so alternate units see staggered block
    boundaries; without it a block codec shows a fixed block grid.
    """

    def __init__(self, channels: int, block: int, shift: bool = False):
        super().__init__()
        self.block = block
        self.shift = block // 2 if shift else 0
        k = block * block
        self.weight = nn.Parameter(torch.zeros(channels, k, k))
        self.bias = nn.Parameter(torch.zeros(channels, 1, 1, 1, 1))  # per channel, added after the mixing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        b = self.block
        if self.shift:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(2, 3))
        y = x.reshape(n, c, h // b, b, w // b, b).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h // b, w // b, b * b)
        y = torch.einsum("nchwk,ckl->nchwl", y, self.weight) + self.bias.view(1, c, 1, 1, 1)
        y = y.reshape(n, c, h // b, w // b, b, b).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(2, 3))
        return y


class VTUnit(nn.Module):
    """One NVTC vector-transform unit: x + BlockFC(x), then x + MLP(x)."""

    def __init__(self, channels: int, block: int, shift: bool = False, hidden: int | None = None):
        super().__init__()
        hidden = 2 * channels if hidden is None else hidden
        self.block_fc = BlockFC(channels, block, shift)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.block_fc(x)
        return x + self.fc2(F.gelu(self.fc1(x)))


def vt_stack(channels: int, block: int, depth: int, hidden: int | None = None) -> nn.Sequential:
    """``depth`` VT units with alternating (shifted) block grids."""
    return nn.Sequential(*[VTUnit(channels, block, shift=bool(i % 2), hidden=hidden) for i in range(depth)])


class ResBlock(nn.Module):
    """x + conv3x3(GELU(conv3x3(x))): the only layer that mixes across block borders.

    Used once at the finest stage on each side; it removes the block grid that
    block-local transforms leave at low rates.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.gelu(self.conv1(x)))
