"""ESRGAN upscaler models (RRDBNet) read from safetensors files, run in float32 tiles (spec/engine.md section 2.1).

The network is that of ESRGAN (Wang et al., "ESRGAN: Enhanced Super-Resolution
Generative Adversarial Networks", ECCV 2018 workshops) and Real-ESRGAN (Wang et
al., 2021): a 3x3 convolution, residual-in-residual dense blocks (three dense
blocks of five convolutions each, residuals scaled by 0.2), a convolution over
the trunk added to its input, then nearest-neighbour x2 enlargements each
followed by a convolution, and two final convolutions; LeakyReLU(0.2) between.
Real-ESRGAN's x2 / x1 models first fold 2x2 / 4x4 pixel blocks into channels
(pixel unshuffle). Two key layouts exist: the original one (``model.0``,
``model.1.sub.N.RDB1.conv1.0``, ...), used by 4x-UltraSharp and most community
models, and Real-ESRGAN's (``conv_first``, ``body.N.rdb1.conv1``, ...). Both are
read into one module; the sizes (features, growth, blocks, enlargements) come
from the tensor shapes, which are checked before any tensor is loaded.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ModelError

MAX_FEATURES = 256      # conv_first / trunk channels (ESRGAN: 64)
MAX_GROWTH = 256        # dense-block growth channels (ESRGAN: 32)
MAX_BLOCKS = 64         # RRDB blocks (ESRGAN: 23, Anime6B: 6)
MAX_PARAMETERS = 10**8  # 400 MB in float32 (4x-UltraSharp: 16.7 million)
MAX_UPSAMPLES = 3       # x2 enlargements (an 8x model has 3)
TILE = 256              # input pixels per tile side
CONTEXT = 16            # input pixels of context around a tile


@dataclass(frozen=True)
class Shape:
    """The sizes of one RRDBNet, read from its weights."""

    features: int
    growth: int
    blocks: int
    upsamples: int
    unshuffle: int          # 1, or 2 / 4: pixel blocks folded into channels first

    @property
    def scale(self) -> int:
        return 2 ** self.upsamples // self.unshuffle

    def tensors(self) -> dict[str, tuple[int, ...]]:
        """Every parameter name (Real-ESRGAN layout) -> its shape."""
        nf, gc = self.features, self.growth
        out = _conv("conv_first", 3 * self.unshuffle ** 2, nf)
        for b in range(self.blocks):
            for r in range(1, 4):
                for c in range(1, 6):
                    out.update(_conv(f"body.{b}.rdb{r}.conv{c}", nf + (c - 1) * gc, nf if c == 5 else gc))
        out.update(_conv("conv_body", nf, nf))
        for u in range(1, self.upsamples + 1):
            out.update(_conv(f"conv_up{u}", nf, nf))
        out.update(_conv("conv_hr", nf, nf))
        out.update(_conv("conv_last", nf, 3))
        return out


def _conv(name: str, cin: int, cout: int) -> dict[str, tuple[int, ...]]:
    return {f"{name}.weight": (cout, cin, 3, 3), f"{name}.bias": (cout,)}


_OLD_BLOCK = re.compile(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$")
_OLD_TOP = re.compile(r"model\.(\d+)\.(weight|bias)$")
_OLD_TRUNK = re.compile(r"model\.1\.sub\.(\d+)\.(weight|bias)$")


def new_layout(keys) -> dict[str, str]:
    """file key -> Real-ESRGAN key; keys of the original layout are renamed, others kept."""
    keys = list(keys)
    if "model.0.weight" not in keys:
        return {k: k for k in keys}
    trunk = [int(m.group(1)) for k in keys if (m := _OLD_TRUNK.match(k))]
    tops = sorted({int(m.group(1)) for k in keys if (m := _OLD_TOP.match(k))})
    ups = [i for i in tops if i not in (0, tops[-1], tops[-1] - 2)] if len(tops) >= 3 else []
    top_names = {0: "conv_first", **{i: f"conv_up{n + 1}" for n, i in enumerate(ups)}}
    if len(tops) >= 3:
        top_names.update({tops[-1] - 2: "conv_hr", tops[-1]: "conv_last"})
    out = {}
    for k in keys:
        if m := _OLD_BLOCK.match(k):
            out[k] = f"body.{m.group(1)}.rdb{m.group(2)}.conv{m.group(3)}.{m.group(4)}"
        elif (m := _OLD_TRUNK.match(k)) and trunk and int(m.group(1)) == max(trunk):
            out[k] = f"conv_body.{m.group(2)}"
        elif (m := _OLD_TOP.match(k)) and int(m.group(1)) in top_names:
            out[k] = f"{top_names[int(m.group(1))]}.{m.group(2)}"
        else:
            out[k] = k
    return out


def read_shape(shapes: dict[str, tuple[int, ...]], what: str) -> Shape:
    """The RRDBNet that *shapes* (Real-ESRGAN key -> shape) describe exactly; :class:`ModelError` otherwise."""
    def dims(key: str, n: int) -> tuple[int, ...]:
        s = shapes.get(key)
        if s is None or len(s) != n:
            raise ModelError(f"{what} is not an ESRGAN (RRDBNet) model: {key} is missing or has the shape {s}")
        return s

    nf, cin = dims("conv_first.weight", 4)[:2]
    gc = dims("body.0.rdb1.conv1.weight", 4)[0]
    blocks = len({k.split(".")[1] for k in shapes if k.startswith("body.")})
    ups = len([k for k in shapes if re.fullmatch(r"conv_up\d+\.weight", k)])
    unshuffle = {3: 1, 12: 2, 48: 4}.get(cin)
    if unshuffle is None or not (0 < nf <= MAX_FEATURES and 0 < gc <= MAX_GROWTH and 0 < blocks <= MAX_BLOCKS
                                 and ups <= MAX_UPSAMPLES) or 2 ** ups < unshuffle:
        raise ModelError(f"{what}: an RRDBNet with {cin} input channels, {nf} features, growth {gc}, {blocks} blocks and "
                         f"{ups} enlargements is not supported (RGB, at most {MAX_FEATURES} features, growth "
                         f"{MAX_GROWTH}, {MAX_BLOCKS} blocks, {MAX_UPSAMPLES} enlargements, scale >= 1)")
    shape = Shape(nf, gc, blocks, ups, unshuffle)
    want = shape.tensors()
    if sum(math.prod(v) for v in want.values()) > MAX_PARAMETERS:
        raise ModelError(f"{what}: an RRDBNet of more than {MAX_PARAMETERS} parameters is not loaded")
    if want != shapes:
        diff = sorted(set(want.items()) ^ set(shapes.items()))[:3]
        raise ModelError(f"{what} is not an ESRGAN (RRDBNet) model of the layout its first tensors say "
                         f"(first differences: {', '.join(f'{k} {v}' for k, v in diff)})")
    return shape


def load_esrgan(path: Path, what: str):
    """The network in *path* (a .safetensors file) as a float32 torch module in eval mode."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            names = new_layout(fh.keys())
            shapes = {names[k]: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
            shape = read_shape(shapes, what)
            state = {names[k]: fh.get_tensor(k) for k in fh.keys()}
    except ModelError:
        raise
    except Exception as exc:  # safetensors raises its own error types for a bad header or data
        raise ModelError(f"{what}: {path} is not a readable safetensors file ({type(exc).__name__}: {exc})") from None
    if any(not t.is_floating_point() for t in state.values()):
        raise ModelError(f"{what}: {path} holds non-float tensors")
    net = RRDBNet(shape)
    net.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)
    return net.eval().requires_grad_(False)


class DenseBlock(nn.Module):
    """Five 3x3 convolutions, each seeing the block input and every earlier output; residual scaled by 0.2."""

    def __init__(self, nf: int, gc: int):
        super().__init__()
        for c in range(1, 6):
            setattr(self, f"conv{c}", nn.Conv2d(nf + (c - 1) * gc, nf if c == 5 else gc, 3, 1, 1))

    def forward(self, x):
        feats = [x]
        for c in range(1, 5):
            feats.append(F.leaky_relu(getattr(self, f"conv{c}")(torch.cat(feats, 1)), 0.2))
        return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class RRDB(nn.Module):
    """Three dense blocks; residual scaled by 0.2."""

    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = DenseBlock(nf, gc), DenseBlock(nf, gc), DenseBlock(nf, gc)

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """The whole network, named as Real-ESRGAN names it."""

    def __init__(self, shape: Shape):
        super().__init__()
        nf = shape.features
        self.shape = shape
        self.conv_first = nn.Conv2d(3 * shape.unshuffle ** 2, nf, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(nf, shape.growth) for _ in range(shape.blocks)])
        self.conv_body = nn.Conv2d(nf, nf, 3, 1, 1)
        for u in range(1, shape.upsamples + 1):
            setattr(self, f"conv_up{u}", nn.Conv2d(nf, nf, 3, 1, 1))
        self.conv_hr = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, 3, 3, 1, 1)

    def forward(self, x):
        if self.shape.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.shape.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for u in range(1, self.shape.upsamples + 1):
            feat = F.leaky_relu(getattr(self, f"conv_up{u}")(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))


def upscale_tiled(net, x, tile: int = TILE, context: int = CONTEXT):
    """*net* over *x* (1x3xHxW float32): whole when both sides fit in *tile*, else tile by tile in raster order,
    each with up to *context* pixels around it (clipped at the border), only its own part kept."""
    h, w = x.shape[-2:]
    u = net.shape.unshuffle
    if h % u or w % u or tile % u or context % u:
        raise ModelError(f"an x{net.shape.scale} model folding {u}x{u} pixels needs sides that are multiples of {u}, "
                         f"got {w}x{h}")
    if h <= tile and w <= tile:
        return net(x)
    s = net.shape.scale
    out = x.new_zeros((x.shape[0], 3, h * s, w * s))
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            a0, b0 = max(y0 - context, 0), max(x0 - context, 0)
            part = net(x[..., a0:min(y1 + context, h), b0:min(x1 + context, w)])
            out[..., y0 * s:y1 * s, x0 * s:x1 * s] = part[..., (y0 - a0) * s:(y1 - a0) * s, (x0 - b0) * s:(x1 - b0) * s]
    return out
