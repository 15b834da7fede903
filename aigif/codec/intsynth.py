"""Integer decoding of model id 6: the NVTC synthesis and the restoration network in fixed point.

Every tensor here holds integers. They are float32 tensors only so that the
matrix products run on the BLAS (CPU) or cuBLAS (GPU): every weight, input and
partial sum is an integer of magnitude below 2**24 (checked for every layer
when the weights are quantised, tools/quantise_nvtc.py), so each product and each
partial sum is exact in float32 whatever the summation order, the blocking,
the SIMD width, the thread count or the device, and the result is the same
integer everywhere (``spec/codec-nvtc.md`` §5c). Rounding is explicit:
:func:`rshift` is ``floor((v + 2**(s-1)) / 2**s)``; GELU is a table.

A layer (:class:`IntLayer`) maps an integer tensor ``v`` to
``rshift(W @ clamp(rshift(v, pre), -m, m) + b, shift[o])`` per output channel o.
"""
from __future__ import annotations

import contextlib
import json
import platform

import numpy as np
import torch
import torch.nn.functional as F

#: every integer a product, partial sum or stored activation may reach is below this (float32 exact)
EXACT = 1 << 24


def check_layer(name: str, w: np.ndarray, b: np.ndarray, shift: np.ndarray, clamp: int) -> int:
    """The largest |output| of a layer, after checking that its arithmetic is exact in float32: every output
    shift at least 1 and, per output channel, ``sum |W| * clamp + |bias| + 2**(shift-1) < 2**24`` (every
    partial sum of the product, the bias and the rounding offset included). ValueError otherwise."""
    w, b, shift = (np.asarray(a, dtype=np.int64) for a in (w, b, shift))
    sums = np.abs(w).sum(1).max(1) if w.ndim == 3 else np.abs(w).reshape(w.shape[0], -1).sum(1)
    if shift.min() < 1 or clamp < 0:
        raise ValueError(f"{name}: output shift below 1 or negative input clamp")
    worst = sums * clamp + np.abs(b) + (np.int64(1) << (shift - 1))
    if int(worst.max()) >= EXACT:
        raise ValueError(f"{name}: a partial sum may reach {int(worst.max())} >= 2**24")
    return int((-(-worst // (np.int64(1) << shift))).max())


def rshift(v: torch.Tensor, s) -> torch.Tensor:
    """``floor((v + 2**(s-1)) / 2**s)``: division by 2**s rounding halves up (``s`` may be a per-channel
    tensor; ``s = 0`` returns ``v`` itself). A new tensor otherwise; exact in float32 for integers below 2**24."""
    if isinstance(s, int):
        return (v + 2.0 ** (s - 1)).mul_(2.0 ** -s).floor_() if s > 0 else v
    return (v + torch.exp2(s - 1)).mul_(torch.exp2(-s)).floor_()


#: torch's float32 precision switches (each may allow TF32 or bfloat16 inside a product); "ieee" = full
PRECISION_SWITCHES = ("backends", "backends.mkldnn", "backends.mkldnn.matmul", "backends.mkldnn.conv",
                      "backends.cuda.matmul", "backends.cudnn", "backends.cudnn.conv")


@contextlib.contextmanager
def exact_matmul():
    """Full-precision float32 products for the duration (no TF32 on CUDA, no bfloat16 inside oneDNN),
    restored after: the bound of 2**24 makes them exact only at full precision."""
    saved = []
    for path in PRECISION_SWITCHES:
        obj = torch
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if obj is not None and hasattr(obj, "fp32_precision"):
            saved.append((obj, obj.fp32_precision))
    legacy = torch.get_float32_matmul_precision()
    for obj, _value in saved:  # all read before any is set: setting one may change its children
        obj.fp32_precision = "ieee"
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(legacy)
        for obj, value in saved:  # parents first: setting one may reset its children
            obj.fp32_precision = value


class IntLayer:
    """One integer layer: weight (O, I), (O, I, 3, 3) or, for a block FC, (C, b*b, b*b); bias (O,); output
    shifts (O,); input pre-shift and clamp. ``kind``: "1x1", "3x3" or "block"."""

    def __init__(self, kind: str, weight, bias, shift, pre: int, clamp: int):
        self.kind, self.pre, self.clamp = kind, int(pre), int(clamp)
        self.weight = torch.as_tensor(weight).float()
        self.bias = torch.as_tensor(bias).float()
        self.shift = torch.as_tensor(shift).float()
        if kind == "3x3":  # tap-major: (9, O, I), tap t = 3 * (dy + 1) + (dx + 1)
            self.taps = self.weight.permute(2, 3, 0, 1).reshape(9, *self.weight.shape[:2]).contiguous()
        self._fold()

    def _fold(self) -> None:
        """Per-channel constants of the output step: bias + 2**(shift-1) and 2**-shift, shaped (1, O, 1, 1)."""
        self.offset = (self.bias + torch.exp2(self.shift - 1)).view(1, -1, 1, 1)
        self.scale = torch.exp2(-self.shift).view(1, -1, 1, 1)

    def to(self, device) -> "IntLayer":
        for name in ("weight", "bias", "shift") + (("taps",) if self.kind == "3x3" else ()):
            setattr(self, name, getattr(self, name).to(device))
        self._fold()
        return self

    def inputs(self, v: torch.Tensor) -> torch.Tensor:
        if not self.pre:
            return v.clamp(-self.clamp, self.clamp)  # a new tensor: v stays as it is
        return rshift(v, self.pre).clamp_(-self.clamp, self.clamp)

    def __call__(self, v: torch.Tensor, block: int = 4) -> torch.Tensor:
        """(N, I, H, W) integers -> (N, O, H, W) integers (a block FC keeps the channels)."""
        u = self.inputs(v)
        n, c, h, w = u.shape
        if self.kind == "1x1":
            acc = torch.matmul(self.weight, u.reshape(n, c, h * w)).reshape(n, -1, h, w)
        elif self.kind == "3x3":
            acc = conv3x3(u, self.weight, self.taps)
        else:
            b = block
            y = u.reshape(n, c, h // b, b, w // b, b).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h // b, w // b, b * b)
            y = torch.einsum("nchwk,ckl->nchwl", y, self.weight)
            acc = y.reshape(n, c, h // b, w // b, b, b).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)
        return acc.add_(self.offset).mul_(self.scale).floor_()  # rshift(acc + bias, shift), in place


#: x86-64 CPUs run 3x3 convolutions with oneDNN's direct convolution (what torch picks for float32 on a batch
#: of one: no Winograd, no FFT, no NNPACK), other devices as nine matrix products; both are exact sums
DIRECT_CONV = platform.machine().lower() in ("x86_64", "amd64")


def conv3x3(u: torch.Tensor, weight: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """3x3 convolution with zero padding 1 of integers, without bias: every output a plain sum of products."""
    if DIRECT_CONV and u.device.type == "cpu" and u.shape[0] == 1 and torch.backends.mkldnn.is_available():
        return F.conv2d(u, weight, padding=1)
    return conv3x3_taps(u, taps)


def conv3x3_taps(u: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """3x3 convolution with zero padding 1 as nine integer matrix products (no Winograd, no FFT)."""
    n, c, h, w = u.shape
    p = F.pad(u, (1, 1, 1, 1))
    acc = None
    for t in range(9):
        dy, dx = divmod(t, 3)
        part = torch.matmul(taps[t], p[:, :, dy : dy + h, dx : dx + w].reshape(n, c, h * w))
        acc = part if acc is None else acc.add_(part)
    return acc.reshape(n, -1, h, w)


class Gelu:
    """GELU on integers at scale 2**-frac: ``lut[v + n]`` for ``-n <= v < n``, ``v`` above, ``lut[0]`` below."""

    def __init__(self, lut):
        self.lut = torch.as_tensor(lut).float()
        self.n = self.lut.numel() // 2

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        i = v.clamp(-self.n, self.n - 1).add_(self.n).long()
        return torch.where(v >= self.n, v, torch.take(self.lut, i))


def layers_from(arrays: dict, prefix: str, kind: str) -> IntLayer:
    """The :class:`IntLayer` stored as ``{prefix}.weight / .bias / .shift / .input`` (input = (pre, clamp))."""
    pre, clamp = (int(x) for x in arrays[f"{prefix}.input"])
    return IntLayer(kind, arrays[f"{prefix}.weight"], arrays[f"{prefix}.bias"], arrays[f"{prefix}.shift"], pre, clamp)


class IntSynthesis:
    """The decoder ops of model id 6 for :meth:`.model.NVTC.run` / ``synthesize`` (state: integers at
    scale ``2**-frac``)."""

    integer = True

    def __init__(self, arrays: dict, cfg: dict, meta: dict):
        self.cfg, self.frac, self.limit = cfg, int(meta["stream_frac"]), int(meta["stream_clamp"])
        self.device = torch.device("cpu")
        self.block = int(cfg["block"])
        self.gelu = Gelu(arrays["gelu.lut"])
        self.table = {}
        self.vt = {}
        for s, n in enumerate(cfg["layers"]):
            for l in range(n):
                self.table[(s, l)] = torch.as_tensor(arrays[f"syn.cw.{s}.{l}"]).float()
                for u in range(int(cfg["units"])):
                    p = f"syn.vt.{s}.{l}.{u}"
                    self.vt[(s, l, u)] = (layers_from(arrays, f"{p}.block", "block"),
                                          layers_from(arrays, f"{p}.fc1", "1x1"), layers_from(arrays, f"{p}.fc2", "1x1"))
        self.up = [layers_from(arrays, f"syn.up.{s}", "1x1") for s in range(2)]
        self.res = [(layers_from(arrays, f"syn.res.{r}.conv1", "3x3"), layers_from(arrays, f"syn.res.{r}.conv2", "3x3"))
                    for r in range(int(cfg["res_blocks"]))]
        self.out = layers_from(arrays, "syn.out", "1x1")

    def _stream(self, x: torch.Tensor) -> torch.Tensor:
        """Clamp a sum on the stream (in place)."""
        return x.clamp_(-self.limit, self.limit)

    def to(self, device) -> "IntSynthesis":
        """Move every table and layer to ``device`` (the integers do not change)."""
        self.device = torch.device(device)
        self.gelu.lut = self.gelu.lut.to(device)
        self.table = {k: v.to(device) for k, v in self.table.items()}
        for layer in [x for v in self.vt.values() for x in v] + self.up + [x for r in self.res for x in r] + [self.out]:
            layer.to(device)
        return self

    def zeros(self, n: int, h: int, w: int) -> torch.Tensor:
        return torch.zeros(n, int(self.cfg["channels"]), h, w, device=self.device)

    def as_float(self, x: torch.Tensor) -> torch.Tensor:
        """The real value the state stands for (the encoder's closed loop subtracts it from its targets)."""
        return x * 2.0 ** -self.frac

    def add_codeword(self, s: int, l: int, x: torch.Tensor, idx: torch.Tensor, _q) -> torch.Tensor:
        return self._stream(x + self.table[(s, l)][idx].permute(0, 3, 1, 2))

    def vt_stack(self, s: int, l: int, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        for u in range(int(self.cfg["units"])):
            blk, fc1, fc2 = self.vt[(s, l, u)]
            shift = b // 2 if u % 2 else 0
            v = torch.roll(x, shifts=(shift, shift), dims=(2, 3)) if shift else x
            y = blk(v, b)
            if shift:
                y = torch.roll(y, shifts=(-shift, -shift), dims=(2, 3))
            x = self._stream(x + y)
            x = self._stream(x + fc2(self.gelu(fc1(x))))
        return x

    def upsample(self, s: int, x: torch.Tensor) -> torch.Tensor:
        return self._stream(F.pixel_shuffle(self.up[s](x), 2))

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Finest-stage state -> 8-bit samples (0..255, still float32 integers), (N, 3, 4H, 4W)."""
        for conv1, conv2 in self.res:
            x = self._stream(x + conv2(self.gelu(conv1(x))))
        return F.pixel_shuffle(self.out(x).clamp_(0, 255), 4)

    def to_uint8(self, out: torch.Tensor) -> torch.Tensor:
        return out.to(torch.uint8)


class IntRestore:
    """The restoration network of model id 6 in integers (post-filter shape 3)."""

    integer = True

    def __init__(self, arrays: dict, meta: dict):
        cfg = json.loads(meta["restore_config"]) if isinstance(meta.get("restore_config"), str) else meta["restore_config"]
        self.qualities = int(cfg["qualities"])
        self.device = torch.device("cpu")
        self.inp = layers_from(arrays, "res.inp", "3x3")
        self.mid = [layers_from(arrays, f"res.mid.{i}", "3x3") for i in range(int(cfg["layers"]))]
        self.out = layers_from(arrays, "res.out", "3x3")

    @property
    def reach(self) -> int:
        return len(self.mid) + 2

    def to(self, device) -> "IntRestore":
        self.device = torch.device(device)
        for layer in [self.inp, *self.mid, self.out]:
            layer.to(device)
        return self

    def __call__(self, d: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """d: (1, 3, H, W) 8-bit samples (float32 integers, H and W even); q: (1,) quality index 0..Q-1."""
        d = d.to(self.device)
        z = F.pixel_unshuffle(2 * d - 255, 2)
        planes = torch.zeros(1, self.qualities, *z.shape[2:], device=self.device)
        planes[:, int(q[0])] = 1
        h = self.inp(torch.cat([z, planes], 1)).clamp_(min=0)
        for layer in self.mid:
            h = layer(h).clamp_(min=0)
        return (d + F.pixel_shuffle(self.out(h), 2)).clamp_(0, 255)


def verify(arrays: dict, meta: dict, cfg: dict) -> None:
    """Check that every layer's arithmetic is exact in float32 (:func:`check_layer`), that no layer output,
    stream value or table entry reaches 2**23 (so sums of two stay below 2**24), and that the GELU table,
    the codeword tables and the restoration network fit the config. ValueError otherwise."""
    half = 1 << 23
    limit = int(meta["stream_clamp"])
    if not 0 < limit <= half:
        raise ValueError(f"stream clamp {limit} outside 1..2**23")
    for key in arrays:
        if key.endswith(".weight"):
            p = key[: -len(".weight")]
            pre, clamp = (int(v) for v in arrays[f"{p}.input"])
            if not 0 <= pre <= 23:
                raise ValueError(f"{p}: input shift {pre} outside 0..23")
            if check_layer(p, arrays[key], arrays[f"{p}.bias"], arrays[f"{p}.shift"], clamp) >= half:
                raise ValueError(f"{p}: outputs may reach 2**23")
    lut = np.asarray(arrays["gelu.lut"], dtype=np.int64)
    if lut.ndim != 1 or lut.size % 2 or lut.size > 1 << 20 or np.abs(lut).max() >= half:
        raise ValueError("GELU table: not an even-length vector of values below 2**23")
    for s, n in enumerate(cfg["layers"]):
        for l in range(n):
            t = np.asarray(arrays[f"syn.cw.{s}.{l}"], dtype=np.int64)
            if t.shape != (cfg["codebooks"][s], cfg["channels"]) or np.abs(t).max() > limit:
                raise ValueError(f"codeword table {s}.{l}: shape {t.shape} or values beyond the stream clamp")
