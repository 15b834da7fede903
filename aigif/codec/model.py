"""NVTC-lite: multi-stage product/residual vector quantisation with vector transforms.

After Feng et al., "NVTC: Nonlinear Vector Transform Coding", CVPR 2023:

* coarse-to-fine stages at 1/16, 1/8 and 1/4 resolution (pixel-unshuffle);
* per stage, a latent vector per position (``d`` dims) quantised by a
  multi-layer residual VQ (``K`` codewords per layer);
* vector-transform units (depthwise block FC + channel MLP) for analysis and
  synthesis; each finer stage is conditioned on the synthesis output of the
  coarser ones (the "prior" ``p``);
* entropy-constrained VQ: ``argmin_k ||r - c_k||^2 + gamma * bits(k | ctx)``;
* entropy models: unconditional for the first layer of the coarsest stage,
  conditional elsewhere, the context being a discrete, already-decoded index
  (co-located coarser-stage codeword, or the previous layer's codeword).

Unlike the reference code, :meth:`NVTC.compress` writes real range-coded bits.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .entropy import IntegerTables, conditional_logits, decode_symbols, encode_symbols
from .layers import vt_stack

DEFAULT_CONFIG = {
    "arch": "nvtc-lite",
    "channels": 64,
    "dim": 8,
    "codebook": 256,
    "layers": [2, 2, 2],  # residual VQ layers per stage, coarse -> fine
    "depth": 2,
    "block": 4,
    "gammas": [1.5, 0.6, 0.25, 0.08],
}


def pad_multiple(cfg: dict) -> int:
    """Image sides are padded to this multiple (coarsest stage stride x block)."""
    return 16 * int(cfg["block"])


def context_plan(cfg: dict) -> list:
    """(stage, layer, n_contexts) for every entropy table, in decode order."""
    k = int(cfg["codebook"])
    return [(s, l, 1 if (s == 0 and l == 0) else k) for s, n in enumerate(cfg["layers"]) for l in range(n)]


def contexts_for(stage: int, layer: int, idx: dict, shape, device=None) -> torch.Tensor:
    """Discrete context of every symbol of (stage, layer); ``idx[(s, l)]`` are (N, H, W) int64."""
    if layer > 0:
        return idx[(stage, layer - 1)]
    if stage == 0:
        return torch.zeros(shape, dtype=torch.long, device=device)
    parent = idx[(stage - 1, 0)]
    return parent.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)


class NVTC(nn.Module):
    """Transforms + codebooks. Entropy model: ``logits`` (training) or ``tables`` (coding)."""

    def __init__(self, config: dict | None = None, n_qualities: int | None = None):
        super().__init__()
        cfg = dict(DEFAULT_CONFIG if config is None else config)
        self.config = cfg
        c, d, k, b, depth = cfg["channels"], cfg["dim"], cfg["codebook"], cfg["block"], cfg["depth"]
        self.n_stages = len(cfg["layers"])
        assert self.n_stages == 3
        # analysis, fine -> coarse (resolutions 1/4, 1/8, 1/16)
        self.enc_in = nn.Conv2d(48, c, 1)
        self.enc = nn.ModuleList([vt_stack(c, b, depth) for _ in range(3)])
        self.down = nn.ModuleList([nn.Conv2d(4 * c, c, 1) for _ in range(2)])
        # per stage (coarse -> fine): latent projection (encoder side)
        self.z_in = nn.ModuleList([nn.Conv2d(c if s == 0 else 2 * c, c, 1) for s in range(3)])
        self.z_vt = nn.ModuleList([vt_stack(c, b, 1) for _ in range(3)])
        self.z_out = nn.ModuleList([nn.Conv2d(c, d, 1) for _ in range(3)])
        self.z_norm = nn.ModuleList([nn.BatchNorm2d(d, affine=False) for _ in range(3)])
        # codebooks (decoder side)
        self.codebooks = nn.ParameterList(
            [nn.Parameter(torch.randn(n, k, d) * (0.5 ** torch.arange(n, dtype=torch.float32))[:, None, None]) for n in cfg["layers"]]
        )
        # synthesis per stage
        self.q_in = nn.ModuleList([nn.Conv2d(d, c, 1) for _ in range(3)])
        self.p_in = nn.ModuleList([nn.Conv2d(c, c, 1) for _ in range(3)])
        self.dec = nn.ModuleList([vt_stack(c, b, depth) for _ in range(3)])
        self.up = nn.ModuleList([nn.Conv2d(c, 4 * c, 1) for _ in range(2)])
        self.out = nn.Conv2d(c, 48, 1)
        nq = len(cfg["gammas"]) if n_qualities is None else n_qualities
        self.logits = conditional_logits(nq, context_plan(cfg), k) if nq else None
        self.tables: IntegerTables | None = None
        self.gamma: float = float(cfg["gammas"][0])

    # ---- transforms -------------------------------------------------------
    def analysis(self, x: torch.Tensor) -> list:
        """x in [-0.5, 0.5], (N, 3, H, W) -> features coarse -> fine."""
        e = self.enc[0](self.enc_in(F.pixel_unshuffle(x, 4)))
        feats = [e]
        for i in range(2):
            e = self.enc[i + 1](self.down[i](F.pixel_unshuffle(e, 2)))
            feats.append(e)
        return feats[::-1]

    def latent(self, s: int, e: torch.Tensor, p: torch.Tensor | None) -> torch.Tensor:
        h = self.z_in[s](e if p is None else torch.cat([e, p], 1))
        return self.z_norm[s](self.z_out[s](self.z_vt[s](h)))

    def synthesis_stage(self, s: int, qz: torch.Tensor, p: torch.Tensor | None) -> torch.Tensor:
        h = self.q_in[s](qz)
        if p is not None:
            h = h + self.p_in[s](p)
        h = self.dec[s](h)
        if s < 2:
            return F.pixel_shuffle(self.up[s](h), 2)
        return F.pixel_shuffle(self.out(h), 4)

    def codewords(self, s: int, l: int, idx: torch.Tensor) -> torch.Tensor:
        """(N, H, W) indices -> (N, d, H, W) codewords."""
        return self.codebooks[s][l][idx].permute(0, 3, 1, 2)

    # ---- ECVQ -------------------------------------------------------------
    def assign(self, s: int, l: int, r: torch.Tensor, bits: torch.Tensor | None, gamma: float) -> torch.Tensor:
        """argmin_k ||r - c_k||^2 + gamma * bits[..., k]; r (N, d, H, W), bits (N, H, W, K)."""
        cb = self.codebooks[s][l].detach()
        rr = r.detach().permute(0, 2, 3, 1)
        dist = (rr * rr).sum(-1, keepdim=True) - 2 * rr @ cb.t() + (cb * cb).sum(-1)
        if bits is not None and gamma > 0:
            dist = dist + gamma * bits
        return dist.argmin(-1)

    # ---- training ---------------------------------------------------------
    def forward(self, x: torch.Tensor, quality: int = 0, active: int = 3, ecvq: bool = True) -> dict:
        """Training pass. Returns x_hat, est. bits (learned logits), vq loss, indices."""
        feats = self.analysis(x)
        gamma = float(self.config["gammas"][quality])
        p = None
        idx: dict = {}
        bits_total = x.new_zeros(())
        vq_loss = x.new_zeros(())
        for s in range(3):
            z = self.latent(s, feats[s], p)
            n, _, h, w = z.shape
            r = z
            qz = torch.zeros_like(z)
            for l in range(self.config["layers"][s]):
                ctx = contexts_for(s, l, idx, (n, h, w), z.device)
                logits = self.logits[f"q{quality}_s{s}_l{l}"]
                logp = F.log_softmax(logits, -1)[ctx]  # (N, H, W, K)
                bits = -logp.detach() / np.log(2.0)
                i = self.assign(s, l, r, bits if ecvq else None, gamma)
                idx[(s, l)] = i
                cw = self.codewords(s, l, i)
                vq_loss = vq_loss + F.mse_loss(cw, r.detach())
                if s < active:
                    bits_total = bits_total - logp.gather(-1, i.unsqueeze(-1)).sum() / np.log(2.0)
                r = r - cw.detach()
                qz = qz + cw
            vq_loss = vq_loss + 0.25 * F.mse_loss(z, qz.detach())
            q_ste = qz + (z - z.detach())
            if s >= active:
                q_ste = torch.zeros_like(q_ste)
            p = self.synthesis_stage(s, q_ste, p)
        return {"x_hat": p, "bits": bits_total, "vq_loss": vq_loss, "idx": idx}

    # ---- coding -----------------------------------------------------------
    def _require_tables(self) -> IntegerTables:
        if self.tables is None:
            raise RuntimeError("entropy tables not loaded: load the model with aigif.codec.zoo.load_model(quality)")
        return self.tables

    @torch.no_grad()
    def encode_indices(self, x: torch.Tensor) -> dict:
        """ECVQ codeword indices of x (1, 3, Hp, Wp); the closed loop runs the synthesis for the priors."""
        tables = self._require_tables()
        feats = self.analysis(x)
        p = None
        idx: dict = {}
        for s in range(3):
            z = self.latent(s, feats[s], p)
            n, _, h, w = z.shape
            r = z
            qz = torch.zeros_like(z)
            for l in range(self.config["layers"][s]):
                ctx = contexts_for(s, l, idx, (n, h, w), z.device)
                bits = torch.from_numpy(tables.bits(s, l))[ctx]
                i = self.assign(s, l, r, bits, self.gamma)
                idx[(s, l)] = i
                cw = self.codewords(s, l, i)
                r = r - cw
                qz = qz + cw
            p = self.synthesis_stage(s, qz, p)
        return idx

    @torch.no_grad()
    def compress(self, x: torch.Tensor) -> dict:
        """x: (1, 3, Hp, Wp) in [-0.5, 0.5], sides multiple of :func:`pad_multiple`.

        Returns {"strings": [range-coded bytes], "shape": (Hp, Wp)}.
        """
        import constriction

        tables = self._require_tables()
        idx = self.encode_indices(x)
        encoder = constriction.stream.queue.RangeEncoder()
        for s in range(3):
            for l in range(self.config["layers"][s]):
                i = idx[(s, l)]
                ctx = contexts_for(s, l, idx, i.shape)
                encode_symbols(encoder, i.numpy(), ctx.numpy(), tables.tables[(s, l)])
        words = encoder.get_compressed()
        return {"strings": [words.astype("<u4").tobytes()], "shape": tuple(x.shape[-2:])}

    @torch.no_grad()
    def decode_indices(self, strings: list, shape) -> dict:
        """Entropy-decode every codeword index (exact integer arithmetic only)."""
        import constriction

        tables = self._require_tables()
        hp, wp = shape
        words = np.frombuffer(strings[0], dtype="<u4").astype(np.uint32)
        decoder = constriction.stream.queue.RangeDecoder(words)
        idx: dict = {}
        for s in range(3):
            f = 16 >> s
            shp = (1, hp // f, wp // f)
            for l in range(self.config["layers"][s]):
                ctx = contexts_for(s, l, idx, shp)
                idx[(s, l)] = torch.from_numpy(decode_symbols(decoder, ctx.numpy(), tables.tables[(s, l)]))
        return idx

    @torch.no_grad()
    def synthesize(self, idx: dict) -> torch.Tensor:
        """Codeword indices -> image in [-0.5, 0.5] (float path; run single-threaded)."""
        p = None
        for s in range(3):
            qz = sum(self.codewords(s, l, idx[(s, l)]) for l in range(self.config["layers"][s]))
            p = self.synthesis_stage(s, qz, p)
        return p

    @torch.no_grad()
    def decompress(self, strings: list, shape) -> torch.Tensor:
        """Inverse of :meth:`compress`: (1, 3, Hp, Wp) in [-0.5, 0.5]."""
        return self.synthesize(self.decode_indices(strings, shape))
