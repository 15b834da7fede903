"""NVTC: multi-stage, multi-layer vector quantisation with vector transforms.

After Feng et al., "NVTC: Nonlinear Vector Transform Coding", CVPR 2023:

* three resolution stages, decoded coarse -> fine: 1/16, 1/8, 1/4 of the
  image (pixel-unshuffle + 1x1 conv between them);
* per stage, ``layers[s]`` quantisation layers. The encoder runs one chain of
  vector-transform (VT) units per stage and keeps every layer's output; the
  decoder starts from the prediction handed down by the coarser stage and,
  layer by layer, quantises the difference between the encoder's vector and
  its own current estimate (projected to ``dims[s]`` dimensions), adds the
  codeword back and applies a decoder VT unit. The last encoder layer is
  decoded first, so each decoder VT undoes one encoder VT;
* entropy-constrained VQ: ``argmin_k ||r - c_k||^2 + bits(k | ctx) / lambda``;
* entropy models: every index is coded with an integer table row chosen by a
  *discrete*, already-decoded context (the previous layer's index at the same
  position, or for a stage's first layer the co-located index of the coarser
  stage's first layer) and, after a layer's first column, a copy flag ("same
  as the left neighbour", see :mod:`.entropy`), so decoding never depends on
  float rounding. The encoder's ECVQ prices those real code lengths.

One loop, :meth:`NVTC.run`, serves training, encoding and decoding; only the
way a layer picks its codeword differs (a ``pick`` callback).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .entropy import (DIRECTIONS, IntegerTables, code_lengths, column_costs, conditional_logits, decode_direction,
                      decode_layer, encode_direction, encode_layer, layer_code_length, left_features, unwalk_grid,
                      walk_grid)
from .layers import ResBlock, vt_stack
from .rdo import trellis
from .strips import STAGE_FACTORS, StripDecoding

DEFAULT_CONFIG = {
    "arch": "nvtc-v2",
    "channels": 128,
    "hidden": 128,  # channel-MLP width of a VT unit
    "units": 2,  # VT units per layer (encoder and decoder each)
    "block": 4,  # spatial block of the depthwise block FC
    "res_blocks": 1,  # 3x3 residual blocks at the finest stage, each side
    "layers": [3, 4, 4],  # quantisation layers per stage, coarse -> fine (1/16, 1/8, 1/4)
    "dims": [16, 8, 4],  # codeword dimension per stage
    "codebooks": [512, 256, 256],  # codewords per layer, per stage
    "lambdas": [40, 85, 180, 400],  # one entropy model per rate point (per-dimension MSE weight)
}
#: trellis passes of the encoder's index search (0: greedy ECVQ only); see :mod:`.rdo`
RDO_ROUNDS = 2
#: encoder-only multiplier of lambda per stage (coarse -> fine): a coarse codeword's error spreads
#: over the finer stages, so they get more bits (measured on Kodak: BD-rate 1.7 points lower)
STAGE_LAMBDA_SCALE = (1.4, 1.4, 0.8)


def pad_multiple(cfg: dict) -> int:
    """Image sides are padded to this multiple (coarsest stage stride x block)."""
    return STAGE_FACTORS[0] * int(cfg["block"])


def context_plan(cfg: dict) -> list:
    """(stage, layer, n_contexts, n_symbols) for every entropy table, in decode order."""
    ks = cfg["codebooks"]
    plan = []
    for s, n in enumerate(cfg["layers"]):
        for l in range(n):
            rows = 1 if (s == 0 and l == 0) else (ks[s] if l > 0 else ks[s - 1])
            plan.append((s, l, rows, ks[s]))
    return plan


def contexts_for(stage: int, layer: int, idx: dict, shape, device=None) -> torch.Tensor:
    """Discrete context of every symbol of (stage, layer); ``idx[(s, l)]`` are (N, H, W) int64."""
    if layer > 0:
        return idx[(stage, layer - 1)]
    if stage == 0:
        return torch.zeros(shape, dtype=torch.long, device=device)
    parent = idx[(stage - 1, 0)]
    return parent.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)


def squared_distances(v: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """||v - c_k||^2 for every vector (last axis) of ``v`` and codeword row of ``codebook``: (..., K)."""
    return (v * v).sum(-1, keepdim=True) - 2 * v @ codebook.t() + (codebook * codebook).sum(-1)


class NVTC(StripDecoding, nn.Module):
    """Transforms + codebooks. Entropy model: ``logits`` (training) or ``tables`` (coding)."""

    def __init__(self, config: dict | None = None, n_qualities: int | None = None):
        super().__init__()
        cfg = dict(DEFAULT_CONFIG)
        cfg.update(config or {})
        self.config = cfg
        c, b, units, hid = cfg["channels"], cfg["block"], cfg["units"], cfg["hidden"]
        layers, dims, ks = cfg["layers"], cfg["dims"], cfg["codebooks"]
        if not (len(layers) == len(dims) == len(ks) == 3):
            raise ValueError("NVTC config: layers, dims and codebooks need one entry per stage (3)")
        # encoder: pixels -> 1/4 -> 1/8 -> 1/16
        self.enc_in = nn.Sequential(nn.Conv2d(48, c, 1), *[ResBlock(c) for _ in range(cfg["res_blocks"])])
        self.enc_down = nn.ModuleList([nn.Conv2d(4 * c, c, 1) for _ in range(2)])  # into stage 0, stage 1
        self.enc_vt = nn.ModuleList(
            [nn.ModuleList([vt_stack(c, b, units, hid) for _ in range(n)]) for n in layers])
        self.proj_in = nn.ModuleList([nn.ModuleList([nn.Conv2d(c, dims[s], 1) for _ in range(n)])
                                      for s, n in enumerate(layers)])
        # decoder
        self.codebooks = nn.ParameterList(
            [nn.Parameter(torch.randn(n, ks[s], dims[s]) / math.sqrt(dims[s])) for s, n in enumerate(layers)])
        self.proj_out = nn.ModuleList([nn.ModuleList([nn.Conv2d(dims[s], c, 1) for _ in range(n)])
                                       for s, n in enumerate(layers)])
        self.dec_vt = nn.ModuleList(
            [nn.ModuleList([vt_stack(c, b, units, hid) for _ in range(n)]) for n in layers])
        self.dec_up = nn.ModuleList([nn.Conv2d(c, 4 * c, 1) for _ in range(2)])  # out of stage 0, stage 1
        self.dec_out = nn.Sequential(*[ResBlock(c) for _ in range(cfg["res_blocks"])], nn.Conv2d(c, 48, 1))
        nq = len(cfg["lambdas"]) if n_qualities is None else n_qualities
        self.logits = conditional_logits(nq, context_plan(cfg)) if nq else None
        self.tables: IntegerTables | None = None
        self.lmbda: float = float(cfg["lambdas"][0])
        self.rdo_rounds: int = RDO_ROUNDS

    # ---- transforms -------------------------------------------------------
    def analysis(self, x: torch.Tensor) -> list:
        """x in [-0.5, 0.5], (N, 3, H, W) -> per stage (coarse -> fine) the target of every layer, decode order."""
        h = self.enc_in(F.pixel_unshuffle(x, 4))
        targets: list = [None, None, None]
        for s in (2, 1, 0):
            if s < 2:
                h = self.enc_down[s](F.pixel_unshuffle(h, 2))
            outs = []
            for vt in self.enc_vt[s]:
                h = vt(h)
                outs.append(h)
            targets[s] = outs[::-1]
        return targets

    def codewords(self, s: int, l: int, idx: torch.Tensor) -> torch.Tensor:
        """(N, H, W) indices -> (N, d, H, W) codewords."""
        return self.codebooks[s][l][idx].permute(0, 3, 1, 2)

    def stage(self, s: int, xh: torch.Tensor, pick, idx: dict, targets: list | None = None,
              active: int = 3, ops=None) -> torch.Tensor:
        """The layers of stage ``s`` on the decoder state ``xh`` (N, C, H_s, W_s), before up-sampling.

        ``pick(s, l, r, idx, shape) -> (indices, codewords)`` chooses layer l's
        codewords; ``r`` (the projected residual) is None when decoding. Stages
        ``>= active`` add no codewords (progressive training). ``ops``: the decoder's arithmetic, this
        float module (default) or the integer one of model id 6 (:class:`.intsynth.IntSynthesis`).
        """
        ops = ops or self
        n, _, hs, ws = xh.shape
        for l in range(len(self.dec_vt[s])):
            if s < active:
                r = None if targets is None else self.proj_in[s][l](targets[s][l] - ops.as_float(xh))
                i, q = pick(s, l, r, idx, (n, hs, ws))
                idx[(s, l)] = i
                xh = ops.add_codeword(s, l, xh, i, q)
            xh = ops.vt_stack(s, l, xh)
        return xh

    # ---- the float decoder's arithmetic (model id 5, training) ---------------
    def zeros(self, n: int, h: int, w: int) -> torch.Tensor:
        ref = self.codebooks[0]
        return torch.zeros(n, self.config["channels"], h, w, device=ref.device, dtype=ref.dtype)

    def as_float(self, xh: torch.Tensor) -> torch.Tensor:
        return xh

    def add_codeword(self, s: int, l: int, xh: torch.Tensor, _idx, q: torch.Tensor) -> torch.Tensor:
        return xh + self.proj_out[s][l](q.to(xh.dtype))

    def vt_stack(self, s: int, l: int, xh: torch.Tensor) -> torch.Tensor:
        return self.dec_vt[s][l](xh)

    def upsample(self, s: int, xh: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.dec_up[s](xh), 2)

    def to_pixels(self, xh: torch.Tensor) -> torch.Tensor:
        """Finest-stage state -> image in [-0.5, 0.5]."""
        return F.pixel_shuffle(self.dec_out(xh), 4)

    def to_uint8(self, out: torch.Tensor) -> torch.Tensor:
        return ((out + 0.5) * 255.0).round().clamp(0, 255).to(torch.uint8)

    def run(self, pick, shape, targets: list | None = None, active: int = 3, ops=None) -> tuple:
        """The decoder loop (training, encoding, whole-image decoding). ``shape`` is (N, Hp, Wp).

        Returns (the ``ops``' image: in [-0.5, 0.5], or 8-bit samples for the integer ops; indices).
        """
        ops = ops or self
        n, hp, wp = shape
        xh = ops.zeros(n, hp // STAGE_FACTORS[0], wp // STAGE_FACTORS[0])
        idx: dict = {}
        for s in range(3):
            xh = self.stage(s, xh, pick, idx, targets, active, ops)
            if s < 2:
                xh = ops.upsample(s, xh)
        return ops.to_pixels(xh), idx

    # ---- ECVQ -------------------------------------------------------------
    def assign(self, s: int, l: int, r: torch.Tensor, bits: torch.Tensor | None, lmbda: float) -> torch.Tensor:
        """argmin_k ||r - c_k||^2 + bits[..., k] / lmbda; r (N, d, H, W), bits (N, H, W, K). float32."""
        cb = self.codebooks[s][l].detach().float()
        dist = squared_distances(r.detach().float().permute(0, 2, 3, 1), cb)
        if bits is not None:
            dist = dist + bits.float() / lmbda
        return dist.argmin(-1)

    # ---- training ---------------------------------------------------------
    def add_copy_logits(self) -> None:
        """Training-time copy-flag model for ``forward(copy_aware=True)``: per (quality, stage, layer) a
        (2, 2) logit table, flag context "same table context as the left neighbour" x flag. Kept in
        ``logits`` (key suffix ``_copy``) so it trains with the entropy model; ``export`` ignores it."""
        for key in [k for k in self.logits.keys() if not k.endswith("_copy")]:
            if f"{key}_copy" not in self.logits:
                self.logits[f"{key}_copy"] = nn.Parameter(torch.zeros(2, 2, device=self.logits[key].device))

    def assign_copy_aware(self, s: int, l: int, r: torch.Tensor, ctx: torch.Tensor, sym_bits: torch.Tensor,
                          flag_bits: torch.Tensor, lmbda: float) -> tuple:
        """Greedy ECVQ column by column with the coder's copy flag: the left neighbour's codeword costs
        its flag-1 bits, any other the flag-0 bits plus its code length (the row's renormalisation
        without the left symbol is left out). Returns (indices, flag contexts, copied) as (N, H, W)."""
        cb = self.codebooks[s][l].detach().float()
        # column-major (W, N, H, K): every column a contiguous block
        dist = squared_distances(r.detach().float().permute(3, 0, 2, 1), cb)
        cost = dist + sym_bits[ctx.permute(2, 0, 1)] / lmbda
        fc = torch.zeros_like(ctx)
        fc[..., 1:] = (ctx[..., 1:] == ctx[..., :-1]).long()
        fcol = fc.permute(2, 0, 1)
        new_bits, copy_bits = (flag_bits[fcol, 0] / lmbda)[..., None], (flag_bits[fcol, 1] / lmbda)[..., None]
        out = torch.empty(fcol.shape, dtype=torch.long, device=ctx.device)
        out[0] = cost[0].argmin(-1)
        for x in range(1, len(out)):
            left = out[x - 1][..., None]
            c = cost[x] + new_bits[x]
            out[x] = c.scatter_(-1, left, dist[x].gather(-1, left) + copy_bits[x]).argmin(-1)
        out = out.permute(1, 2, 0)
        copied = torch.zeros_like(ctx, dtype=torch.bool)
        copied[..., 1:] = out[..., 1:] == out[..., :-1]
        return out, fc, copied

    def forward(self, x: torch.Tensor, quality: int = 0, active: int = 3, ecvq: bool = True,
                copy_aware: bool = False) -> dict:
        """Training pass: x_hat, bits (learned logits), vq loss (sum of squared errors / numel), indices, residuals.

        ``copy_aware`` (needs :meth:`add_copy_logits`): ECVQ and the rate count the copy flags the
        coder spends (a symbol equal to its left neighbour costs a flag only), as the encoder prices them.
        """
        lmbda = float(self.config["lambdas"][quality])
        numel = x.numel()
        acc = {"bits": x.new_zeros((), dtype=torch.float32), "vq": x.new_zeros((), dtype=torch.float32), "res": {}}
        ln2 = math.log(2.0)

        def pick(s, l, r, idx, shape):
            ctx = contexts_for(s, l, idx, shape, r.device)
            key = f"q{quality}_s{s}_l{l}"
            logp = F.log_softmax(self.logits[key].float(), -1)  # (contexts, K)
            rows, k = logp.shape
            coded = None
            if ecvq and copy_aware:
                flogp = F.log_softmax(self.logits[f"{key}_copy"].float(), -1)  # (flag contexts, 2)
                i, fc, copied = self.assign_copy_aware(s, l, r, ctx, -logp.detach() / ln2, -flogp.detach() / ln2,
                                                       lmbda)
                coded = ~copied
                fflat = (fc[..., 1:] * 2 + copied[..., 1:].long()).flatten()
                fcounts = flogp.new_zeros(4).index_add_(0, fflat, flogp.new_ones(fflat.shape)).view(2, 2)
                acc["bits"] = acc["bits"] - (fcounts * flogp).sum() / ln2
            else:
                bits = (-logp.detach() / ln2)[ctx] if ecvq else None  # (N, H, W, K), no backward
                i = self.assign(s, l, r, bits, lmbda)
            cw = self.codewords(s, l, i).float()
            rf = r.float()
            acc["vq"] = acc["vq"] + ((rf - cw) ** 2).sum() / numel
            # code length of the chosen indices from (context, symbol) counts: a dense, cheap backward.
            # index_add_, not bincount: on CUDA bincount reads its maximum back (a sync per layer)
            flat = (ctx * k + i).flatten()
            ones = logp.new_ones(flat.shape) if coded is None else coded.flatten().to(logp.dtype)
            counts = logp.new_zeros(rows * k).index_add_(0, flat, ones).view(rows, k)
            acc["bits"] = acc["bits"] - (counts * logp).sum() / ln2
            acc["res"][(s, l)] = rf.detach().permute(0, 2, 3, 1).reshape(-1, rf.shape[1])
            return i, rf + (cw - rf).detach()

        x_hat, idx = self.run(pick, (x.shape[0], x.shape[2], x.shape[3]), self.analysis(x), active)
        return {"x_hat": x_hat, "bits": acc["bits"], "vq_loss": acc["vq"], "idx": idx, "residuals": acc["res"]}

    # ---- coding -----------------------------------------------------------
    def _require_tables(self) -> IntegerTables:
        if self.tables is None:
            raise RuntimeError("entropy tables not loaded: load the model with aigif.codec.zoo.load_model(quality)")
        return self.tables

    def _rows_of(self, s: int, l: int, r: torch.Tensor) -> tuple:
        """(codebook (K, d), residuals as (images x H, W, d)) in float32: the coder's row/column layout."""
        n, _, h, w = r.shape
        return self.codebooks[s][l].detach().float(), r.detach().float().permute(0, 2, 3, 1).reshape(n * h, w, -1)

    def assign_columns(self, s: int, l: int, r: torch.Tensor, ctx: torch.Tensor, tables: IntegerTables,
                       lmbda: float | None = None) -> torch.Tensor:
        """ECVQ with the code lengths the coder really spends (copy flags included), column by column.

        Costs come from :func:`.entropy.column_costs`, so the encoder prices
        exactly what :func:`.entropy.encode_layer` writes.
        """
        table = tables.tables[(s, l)]
        sym_bits, flag_bits = code_lengths(table, tables.flags[(s, l)])
        lf = left_features(table)
        n, _, h, w = r.shape
        cb, rr = self._rows_of(s, l, r)
        cnp = ctx.reshape(n * h, w).numpy()
        out = np.zeros((n * h, w), dtype=np.int64)
        for x in range(w):
            bits = torch.from_numpy(column_costs(out, cnp, x, table, lf, n, sym_bits, flag_bits)).float()
            out[:, x] = (squared_distances(rr[:, x], cb) + bits / (lmbda or self.lmbda)).argmin(-1).numpy()
        return torch.from_numpy(out.reshape(n, h, w))

    def assign_rows(self, s: int, l: int, r: torch.Tensor, ctx: torch.Tensor, tables: IntegerTables) -> torch.Tensor:
        """Greedy ECVQ (:meth:`assign_columns`), then ``rdo_rounds`` passes of the row trellis of :mod:`.rdo`,
        both with the quality's lambda times ``STAGE_LAMBDA_SCALE[s]``."""
        lmbda = self.lmbda * STAGE_LAMBDA_SCALE[s]
        greedy = self.assign_columns(s, l, r, ctx, tables, lmbda)
        if not self.rdo_rounds:
            return greedy
        n, _, h, w = r.shape
        cb, rr = self._rows_of(s, l, r)

        def dist(a, b):
            return squared_distances(rr[a:b], cb).numpy()

        out = trellis(dist, ctx.reshape(n * h, w).numpy().astype(np.int64), greedy.reshape(n * h, w).numpy(),
                      tables.tables[(s, l)], tables.flags[(s, l)], lmbda, n, self.rdo_rounds)
        return torch.from_numpy(out.reshape(n, h, w))

    def layer_cost(self, s: int, l: int, r: torch.Tensor, ctx: torch.Tensor, idx: torch.Tensor,
                   tables: IntegerTables, direction: int = 0) -> float:
        """Distortion + static code length / lambda of one layer's indices (N, H, W) coded in ``direction``
        (:func:`.entropy.walk_grid`): what the row trellis minimises, measured exactly."""
        cb, rr = self._rows_of(s, l, r)
        dist = float(((rr - cb[idx.reshape(rr.shape[:2])]) ** 2).sum())
        bits = layer_code_length(idx.numpy(), ctx.numpy(), tables.tables[(s, l)], tables.flags[(s, l)],
                                 direction=direction)
        return dist + bits / (self.lmbda * STAGE_LAMBDA_SCALE[s])

    def assign_directed(self, s: int, l: int, r: torch.Tensor, ctx: torch.Tensor, tables: IntegerTables) -> tuple:
        """(indices, direction): the row search of :meth:`assign_rows` run on the layer's grid walked in each
        of the coder's four directions (rows or columns, either way), keeping the one with the lowest
        :meth:`layer_cost`. Layers differ in which way their runs go."""
        best = None
        for d in range(DIRECTIONS):
            walked = (torch.from_numpy(walk_grid(r.detach().numpy(), d)), torch.from_numpy(walk_grid(ctx.numpy(), d)))
            i = self.assign_rows(s, l, *walked, tables)
            i = torch.from_numpy(unwalk_grid(i.numpy(), d))
            cost = self.layer_cost(s, l, r, ctx, i, tables, d)
            if best is None or cost < best[0]:
                best = (cost, i, d)
        return best[1], best[2]

    @torch.no_grad()
    def encode_indices(self, x: torch.Tensor, directions: bool = False, ops=None) -> tuple:
        """RD-optimised codeword indices of x (1, 3, Hp, Wp) with the integer tables' code lengths (closed loop).

        Returns (indices, directions): ``directions[(s, l)]`` is the way the coder walks the layer
        (:func:`.entropy.walk_grid`), chosen per layer with ``directions``, else 0 (along rows).
        ``ops``: the decoder's arithmetic the loop follows (:meth:`stage`).
        """
        tables = self._require_tables()
        chosen: dict = {}

        def pick(s, l, r, idx, shape):
            ctx = contexts_for(s, l, idx, shape)
            if directions:
                i, chosen[(s, l)] = self.assign_directed(s, l, r, ctx, tables)
            else:
                i, chosen[(s, l)] = self.assign_rows(s, l, r, ctx, tables), 0
            return i, self.codewords(s, l, i)

        return self.run(pick, (x.shape[0], x.shape[2], x.shape[3]), self.analysis(x), ops=ops)[1], chosen

    @torch.no_grad()
    def compress(self, x: torch.Tensor, adaptive: bool = False, directions: bool = False, ops=None) -> dict:
        """x: (1, 3, Hp, Wp) in [-0.5, 0.5], sides multiple of :func:`pad_multiple`.
        ``adaptive``: code with rows that learn the image (:class:`.entropy.CoderRows`).
        ``directions``: every layer starts with a symbol saying which way the coder walks it, the
        encoder trying all four (flags bit 7 of the payload).

        Returns {"strings": [range-coded bytes], "shape": (Hp, Wp), "indices": the coded indices,
        "directions": every layer's walk direction}.
        """
        import constriction

        tables = self._require_tables()
        idx, chosen = self.encode_indices(x, directions, ops)
        encoder = constriction.stream.queue.RangeEncoder()
        for (s, l), i in idx.items():  # decode order
            ctx = contexts_for(s, l, idx, i.shape)
            if directions:
                encode_direction(encoder, chosen[(s, l)])
            encode_layer(encoder, i.numpy(), ctx.numpy(), tables.tables[(s, l)], tables.flags[(s, l)], adaptive,
                         chosen[(s, l)])
        words = encoder.get_compressed()
        return {"strings": [words.astype("<u4").tobytes()], "shape": tuple(x.shape[-2:]), "indices": idx,
                "directions": chosen}

    @torch.no_grad()
    def decode_indices(self, strings: list, shape, adaptive: bool = False, directions: bool = False) -> tuple:
        """Entropy-decode every codeword index (exact integer arithmetic only): (indices, walk directions)."""
        import constriction

        tables = self._require_tables()
        hp, wp = shape
        words = np.frombuffer(strings[0], dtype="<u4").astype(np.uint32)
        decoder = constriction.stream.queue.RangeDecoder(words)
        idx: dict = {}
        chosen: dict = {}
        for s, l, _rows, _k in context_plan(self.config):
            f = STAGE_FACTORS[s]
            ctx = contexts_for(s, l, idx, (1, hp // f, wp // f))
            chosen[(s, l)] = decode_direction(decoder) if directions else 0
            idx[(s, l)] = torch.from_numpy(decode_layer(decoder, ctx.numpy(), tables.tables[(s, l)],
                                                        tables.flags[(s, l)], adaptive, chosen[(s, l)]))
        return idx, chosen

    @torch.no_grad()
    def decompress(self, strings: list, shape, adaptive: bool = False, directions: bool = False) -> torch.Tensor:
        """Inverse of :meth:`compress`: (1, 3, Hp, Wp) in [-0.5, 0.5]."""
        return self.synthesize(self.decode_indices(strings, shape, adaptive, directions)[0])
