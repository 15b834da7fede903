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
import functools
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


#: 0.5 as a tensor: ``torch.add(HALF, v, alpha=2**-pre)`` is ``v / 2**pre + 1/2`` in one pass (exact: a power-of-two
#: scaling and a sum below 2**24)
HALF = torch.tensor(0.5)


class IntLayer:
    """One integer layer: weight (O, I), (O, I, 3, 3) or, for a block FC, (C, b*b, b*b); bias (O,); output
    shifts (O,); input pre-shift and clamp. ``kind``: "1x1", "3x3" or "block".

    The weights and ``bias + 2**(S-1)`` are stored multiplied by ``2**-S`` of their output channel: scaling
    by a power of two is exact, so the product (plus the offset, through the BLAS / convolution bias) is
    ``(W u + B + 2**(S-1)) / 2**S`` exactly and one ``floor`` makes it the layer's output."""

    def __init__(self, kind: str, weight, bias, shift, pre: int, clamp: int):
        self.kind, self.pre, self.clamp = kind, int(pre), int(clamp)
        w = torch.as_tensor(np.asarray(weight, dtype=np.float64))
        scale = torch.exp2(-torch.as_tensor(np.asarray(shift, dtype=np.float64)))
        self.weight = (w * scale.view(-1, *[1] * (w.dim() - 1))).float()
        self.offset = ((torch.as_tensor(np.asarray(bias, dtype=np.float64)) + 0.5 / scale) * scale).float()
        if kind == "3x3":  # tap-major: (9, O, I), tap t = 3 * (dy + 1) + (dx + 1)
            self.taps = self.weight.permute(2, 3, 0, 1).reshape(9, *self.weight.shape[:2]).contiguous()

    def to(self, device) -> "IntLayer":
        for name in ("weight", "offset") + (("taps",) if self.kind == "3x3" else ()):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def inputs(self, v: torch.Tensor, low: int | None = None) -> torch.Tensor:
        """``clamp(rshift(v, pre), low, m)`` in a new tensor; ``low`` is -m, or 0 after a ReLU (``max(v, 0)``
        then the shift and the clamp equals the shift then a clamp at 0)."""
        low = -self.clamp if low is None else low
        if not self.pre:
            return torch.clamp(v, low, self.clamp)
        return torch.add(HALF.to(v.device), v, alpha=2.0 ** -self.pre).floor_().clamp_(low, self.clamp)

    def product(self, u: torch.Tensor) -> torch.Tensor:
        """``(W u + B + 2**(S-1)) / 2**S`` (floor it for the output) of layer inputs ``u``: (I, P) or
        (N, I, P) for a 1x1 layer, (N, I, H, W) for a 3x3 one, (C, blocks, b*b) for a block FC."""
        if self.kind == "1x1":
            if u.dim() == 2:
                return torch.addmm(self.offset.view(-1, 1), self.weight, u)
            return torch.baddbmm(self.offset.view(-1, 1), self.weight.expand(u.shape[0], -1, -1), u)
        if self.kind == "3x3":
            return conv3x3(u, self.weight, self.taps, self.offset)
        return torch.baddbmm(self.offset.view(-1, 1, 1), u, self.weight)

    def __call__(self, v: torch.Tensor, low: int | None = None) -> torch.Tensor:
        """(N, I, H, W) integers -> (N, O, H, W) integers, for 1x1 and 3x3 layers."""
        u = self.inputs(v, low)
        if self.kind == "3x3":
            return self.product(u).floor_()
        n, c, h, w = u.shape
        return self.product(u.view(n, c, h * w)).floor_().view(n, -1, h, w)


#: x86-64 CPUs run 3x3 convolutions with oneDNN's direct convolution (what torch picks for float32 on a batch
#: of one: no Winograd, no FFT, no NNPACK), other devices as nine matrix products; both are exact sums
DIRECT_CONV = platform.machine().lower() in ("x86_64", "amd64")


def conv3x3(u: torch.Tensor, weight: torch.Tensor, taps: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """3x3 convolution with zero padding 1 of integers plus ``bias``: every output a plain sum of products."""
    if DIRECT_CONV and u.device.type == "cpu" and u.shape[0] == 1 and torch.backends.mkldnn.is_available():
        return F.conv2d(u, weight, bias, padding=1)
    return conv3x3_taps(u, taps, bias)


def conv3x3_taps(u: torch.Tensor, taps: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """3x3 convolution with zero padding 1 plus ``bias`` as nine accumulated integer matrix products."""
    n, c, h, w = u.shape
    p = F.pad(u, (1, 1, 1, 1))
    acc = bias.view(1, -1, 1).repeat(n, 1, h * w)
    for t in range(9):
        dy, dx = divmod(t, 3)
        acc.baddbmm_(taps[t].expand(n, -1, -1), p[:, :, dy : dy + h, dx : dx + w].reshape(n, c, h * w))
    return acc.view(n, -1, h, w)


class GeluInputs:
    """GELU (the stored table T, §5c) composed with the next layer's input step, as one table ``U``:
    ``U[clamp(v, -n, hi) + n] = clamp(rshift(g(v), pre), -m, m)``, one gather instead of a chain of passes.

    ``hi`` is the smallest value from which the next layer's clamp holds ``m`` (at least n), capped by
    ``top``, the bound of the previous layer's output, so the table stays small."""

    def __init__(self, lut, nxt: IntLayer, top: int):
        t = np.asarray(lut, dtype=np.int64)
        n, pre, m = t.size // 2, nxt.pre, nxt.clamp
        full = m << pre if not pre else (m << pre) - (1 << (pre - 1))
        self.n, self.hi = n, max(n, min(full, top))
        v = np.arange(-n, self.hi + 1)
        g = np.where(v < n, t[np.minimum(v, n - 1) + n], v)
        q = (g + (1 << (pre - 1))) >> pre if pre else g
        self.table = torch.from_numpy(np.clip(q, -m, m).astype(np.float32))

    def to(self, device) -> "GeluInputs":
        self.table = self.table.to(device)
        return self

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        """The next layer's inputs for a layer's output ``v`` (integers; ``v`` is overwritten)."""
        i = v.clamp_(-self.n, self.hi).add_(self.n).to(torch.int32)
        return torch.index_select(self.table, 0, i.view(-1)).view(v.shape)


def layers_from(arrays: dict, prefix: str, kind: str) -> IntLayer:
    """The :class:`IntLayer` stored as ``{prefix}.weight / .bias / .shift / .input`` (input = (pre, clamp))."""
    pre, clamp = (int(x) for x in arrays[f"{prefix}.input"])
    return IntLayer(kind, arrays[f"{prefix}.weight"], arrays[f"{prefix}.bias"], arrays[f"{prefix}.shift"], pre, clamp)


def gelu_into(arrays: dict, prefix: str, nxt: IntLayer, cache: dict) -> GeluInputs:
    """The :class:`GeluInputs` between layer ``prefix`` and ``nxt`` (shared by every pair with the same bound)."""
    pre, clamp = (int(x) for x in arrays[f"{prefix}.input"])
    top = check_layer(prefix, arrays[f"{prefix}.weight"], arrays[f"{prefix}.bias"], arrays[f"{prefix}.shift"], clamp)
    key = (nxt.pre, nxt.clamp, top)
    if key not in cache:
        cache[key] = GeluInputs(arrays["gelu.lut"], nxt, top)
    return cache[key]


@functools.lru_cache(maxsize=32)
def block_order(h: int, w: int, b: int, shift: int | None) -> torch.Tensor:
    """The flat positions of an (h, w) image listed block by block (row-major inside each b x b block) on
    the block grid of the image rolled by ``shift`` on both axes (wrap-around, as ``torch.roll``); None:
    the image's own row-major order."""
    if shift is None:
        return torch.arange(h * w)
    rows, cols = (torch.arange(h) - shift) % h, (torch.arange(w) - shift) % w
    return (rows.view(-1, 1) * w + cols).view(h // b, b, w // b, b).permute(0, 2, 1, 3).reshape(-1)


@functools.lru_cache(maxsize=32)
def regroup(h: int, w: int, b: int, src: int | None, dst: int | None, device: torch.device) -> torch.Tensor:
    """Gather index (``index_select`` on the positions) from the order :func:`block_order` ``src`` to ``dst``:
    one pass of the state instead of a roll and two permuting copies."""
    return torch.argsort(block_order(h, w, b, src))[block_order(h, w, b, dst)].to(device)


#: positions processed at a time by a VT unit (whole blocks): the unit's
#: temporaries then stay in the CPU's cache instead of streaming whole-stage tensors through memory
CHUNK_POSITIONS = 1024


class IntSynthesis:
    """The decoder ops of model id 6 for :meth:`.model.NVTC.run` / ``synthesize`` (state: integers at
    scale ``2**-frac``)."""

    integer = True

    def __init__(self, arrays: dict, cfg: dict, meta: dict):
        self.cfg, self.frac, self.limit = cfg, int(meta["stream_frac"]), int(meta["stream_clamp"])
        self.device = torch.device("cpu")
        self.block = int(cfg["block"])
        gelus: dict = {}
        self.table = {}
        self.vt = {}
        for s, n in enumerate(cfg["layers"]):
            for l in range(n):
                self.table[(s, l)] = torch.as_tensor(arrays[f"syn.cw.{s}.{l}"]).float().t().contiguous()  # (C, K)
                for u in range(int(cfg["units"])):
                    p = f"syn.vt.{s}.{l}.{u}"
                    fc2 = layers_from(arrays, f"{p}.fc2", "1x1")
                    self.vt[(s, l, u)] = (layers_from(arrays, f"{p}.block", "block"), layers_from(arrays, f"{p}.fc1", "1x1"),
                                          gelu_into(arrays, f"{p}.fc1", fc2, gelus), fc2)
        self.up = [layers_from(arrays, f"syn.up.{s}", "1x1") for s in range(2)]
        self.res = []
        for r in range(int(cfg["res_blocks"])):
            conv2 = layers_from(arrays, f"syn.res.{r}.conv2", "3x3")
            self.res.append((layers_from(arrays, f"syn.res.{r}.conv1", "3x3"),
                             gelu_into(arrays, f"syn.res.{r}.conv1", conv2, gelus), conv2))
        self.out = layers_from(arrays, "syn.out", "1x1")

    def _stream(self, x: torch.Tensor) -> torch.Tensor:
        """Clamp a sum on the stream (in place)."""
        return x.clamp_(-self.limit, self.limit)

    def to(self, device) -> "IntSynthesis":
        """Move every table and layer to ``device`` (the integers do not change)."""
        self.device = torch.device(device)
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
        """x plus the codeword of every position's index: columns of the (C, K) table gathered in the
        state's own layout (no permuted operand)."""
        n, h, w = idx.shape
        codewords = self.table[(s, l)].index_select(1, idx.reshape(-1)).view(-1, n, h, w).transpose(0, 1)
        return self._stream(x + codewords)

    def vt_stack(self, s: int, l: int, x: torch.Tensor) -> torch.Tensor:
        """The VT units of layer (s, l). Each unit runs on the state gathered into its block grid (every
        block's b*b values next to each other, :func:`regroup`), so the block FC is a plain batched
        product, and in chunks of whole blocks, so its temporaries stay in the CPU's cache."""
        b = self.block
        n, c, h, w = x.shape
        out = torch.empty_like(x, memory_format=torch.contiguous_format)
        step = max(1, CHUNK_POSITIONS // (b * b)) * b * b
        for i in range(n):
            v, grid = x[i].reshape(c, h * w), None
            for u in range(int(self.cfg["units"])):
                shift = b // 2 if u % 2 else 0
                v, grid = v.index_select(1, regroup(h, w, b, grid, shift, v.device)), shift
                for a in range(0, h * w, step):
                    self._unit(self.vt[(s, l, u)], v[:, a : a + step])
            torch.index_select(v, 1, regroup(h, w, b, grid, None, v.device), out=out[i].view(c, h * w))
        return out

    def _unit(self, layers: tuple, x: torch.Tensor) -> None:
        """One VT unit on ``x`` (C, P), whole blocks of the unit's grid, in place:
        ``x = clampX(x + block(x))``, then ``x = clampX(x + fc2(g(fc1(x))))``."""
        blk, fc1, gelu, fc2 = layers
        c, p = x.shape
        y = blk.product(blk.inputs(x).view(c, -1, self.block**2)).floor_()
        self._stream(x.add_(y.view(c, p)))
        y = fc2.product(gelu(fc1.product(fc1.inputs(x)).floor_())).floor_()
        self._stream(x.add_(y))

    def upsample(self, s: int, x: torch.Tensor) -> torch.Tensor:
        return self._stream(F.pixel_shuffle(self.up[s](x), 2))

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Finest-stage state -> 8-bit samples (0..255, still float32 integers), (N, 3, 4H, 4W)."""
        for conv1, gelu, conv2 in self.res:
            x = self._stream(x + conv2.product(gelu(conv1(x))).floor_())
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
        """d: (1, 3, H, W) 8-bit samples (float32 integers, H and W even); q: (1,) quality index 0..Q-1.
        Every ReLU is the next layer's input clamp at 0 (:meth:`IntLayer.inputs`)."""
        d = d.to(self.device)
        z = F.pixel_unshuffle(2 * d - 255, 2)
        planes = torch.zeros(1, self.qualities, *z.shape[2:], device=self.device)
        planes[:, int(q[0])] = 1
        h = self.inp(torch.cat([z, planes], 1).contiguous(memory_format=torch.channels_last))
        for layer in [*self.mid, self.out]:
            h = layer(h, low=0)
        return (d + F.pixel_shuffle(h, 2)).clamp_(0, 255)


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
