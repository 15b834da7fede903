"""Entropy models of the NVTC codec, kept apart from the transforms.

Every probability the entropy coder sees is a row of an *integer* frequency
table (uint16, each row sums to 2**16, every entry >= 1) selected by an
already-decoded discrete context (the co-located codeword index of the coarser
stage, or of the previous residual layer). Symbol decoding is therefore exact
on every machine; no float computed by a network reaches the coder.

Coder: ``constriction.stream.queue.RangeEncoder`` / ``RangeDecoder`` (32-bit
words, 24-bit model precision), each table row wrapped in
``constriction.stream.model.Categorical(row_as_float64, perfect=False)``.

Training-time entropy models (:class:`ConditionalLogits`) hold float logits;
:func:`quantize_probs` turns them into the integer tables that are shipped.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TABLE_BITS = 16
TABLE_TOTAL = 1 << TABLE_BITS


def quantize_probs(p: np.ndarray) -> np.ndarray:
    """Float probabilities (rows) -> uint16 frequencies, rows sum to 2**16, entries >= 1."""
    p = np.asarray(p, dtype=np.float64)
    p = p / p.sum(axis=-1, keepdims=True)
    k = p.shape[-1]
    f = 1 + np.floor(p * (TABLE_TOTAL - k)).astype(np.int64)
    deficit = TABLE_TOTAL - f.sum(axis=-1)
    rows = np.arange(f.shape[0])
    f[rows, p.argmax(axis=-1)] += deficit
    assert (f.sum(-1) == TABLE_TOTAL).all() and f.min() >= 1 and f.max() < 65536
    return f.astype(np.uint16)


@dataclass
class IntegerTables:
    """Shipped entropy model of one quality: ``tables[(stage, layer)]`` -> uint16 (contexts, K)."""

    tables: dict = field(default_factory=dict)

    def bits(self, stage: int, layer: int) -> np.ndarray:
        """Code length in bits of every (context, symbol); used only by the encoder's ECVQ."""
        f = self.tables[(stage, layer)].astype(np.float64)
        return (TABLE_BITS - np.log2(f)).astype(np.float32)

    def rows(self, stage: int, layer: int) -> int:
        return self.tables[(stage, layer)].shape[0]


def encode_symbols(encoder, symbols: np.ndarray, contexts: np.ndarray, table: np.ndarray) -> None:
    """Append ``symbols`` (flat, raster order) to ``encoder``, grouped by context value.

    Order on the wire: contexts ascending; inside a context, raster order.
    """
    import constriction

    symbols = symbols.reshape(-1).astype(np.int32)
    contexts = contexts.reshape(-1)
    for c in np.unique(contexts):
        model = constriction.stream.model.Categorical(table[int(c)].astype(np.float64), perfect=False)
        encoder.encode(symbols[contexts == c], model)


def decode_symbols(decoder, contexts: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_symbols`; ``contexts`` are already-decoded indices."""
    import constriction

    flat = contexts.reshape(-1)
    out = np.zeros(flat.shape, dtype=np.int64)
    for c in np.unique(flat):
        sel = flat == c
        model = constriction.stream.model.Categorical(table[int(c)].astype(np.float64), perfect=False)
        out[sel] = decoder.decode(model, int(sel.sum()))
    return out.reshape(contexts.shape)


def conditional_logits(n_qualities: int, plan: list):
    """Training-time entropy model: float logits per (quality, stage, layer).

    ``plan`` lists (stage, layer, n_contexts, n_symbols). Returns an
    ``nn.ParameterDict`` keyed ``"q{q}_s{s}_l{l}"``.
    """
    import torch
    from torch import nn

    return nn.ParameterDict(
        {f"q{q}_s{s}_l{l}": nn.Parameter(torch.zeros(rows, k)) for q in range(n_qualities) for s, l, rows, k in plan}
    )
