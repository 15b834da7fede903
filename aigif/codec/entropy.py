"""Entropy models of the NVTC codec, kept apart from the transforms.

Every probability the entropy coder sees is a row of an *integer* frequency
table (uint16, each row sums to 2**16, every entry >= 1) selected by an
already-decoded discrete context (the co-located codeword index of the coarser
stage, or of the previous residual layer). Layers are coded column by column:
after the first column every symbol is preceded by a copy flag ("same as the
left neighbour") whose context is made of integer features of already-decoded
symbols. Symbol decoding is therefore exact on every machine; no float
computed by a network reaches the coder.

Coder: ``constriction.stream.queue.RangeEncoder`` / ``RangeDecoder`` (32-bit
words, 24-bit model precision) with the model family
``constriction.stream.model.Categorical(perfect=False)`` and one float64 row
of integer weights per symbol.

*Adaptive* layers (payload flag, :class:`CoderRows`) add to every table row
the counts of what this layer has coded with it in the columns before, so
the rows learn the image as it is decoded: still integers only, updated
after each whole column.

Training-time entropy models (:func:`conditional_logits`) hold float logits;
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
    """Shipped entropy model of one quality.

    ``tables[(stage, layer)]``: uint16 (contexts, K) symbol tables;
    ``flags[(stage, layer)]``: uint16 (FLAG_CONTEXTS, 2) tables of the copy flag.
    """

    tables: dict = field(default_factory=dict)
    flags: dict = field(default_factory=dict)


# ---- copy flags -------------------------------------------------------------
#: contexts of the copy flag (see :func:`flag_contexts`)
FLAG_CONTEXTS = 128
FLAG_BUCKETS = (1311, 6554, 26214)  # 0.02, 0.1, 0.4 of 2**16


def left_features(table: np.ndarray) -> np.ndarray:
    """(contexts, K) part of the copy-flag context fixed by (context c, left symbol k):
    64 * [k is row c's most probable symbol] + 8 * (thresholds ``FLAG_BUCKETS`` that ``table[c, k]`` reaches)."""
    bucket = sum((table >= v).astype(np.int64) for v in FLAG_BUCKETS)
    return 64 * (np.arange(table.shape[1]) == table.argmax(-1)[:, None]) + 8 * bucket


def flag_context(left: np.ndarray, c: np.ndarray, same_ctx: np.ndarray, up_left: np.ndarray,
                 down_left: np.ndarray, left_left: np.ndarray, lf: np.ndarray) -> np.ndarray:
    """Copy-flag context (0..127) of a symbol with context ``c`` whose left neighbour is ``left``.

    ``lf[c, left]`` (:func:`left_features`) + 32 * [same context as the left]
    + 4 * [up-left = left] + 2 * [down-left = left] + [left-left = left].
    All arguments are (rows,).
    """
    return lf[c, left] + 32 * same_ctx + 4 * (up_left == left) + 2 * (down_left == left) + (left_left == left)


def candidate_flag_contexts(c: np.ndarray, same_ctx: np.ndarray, up_left: np.ndarray, down_left: np.ndarray,
                            left_left: np.ndarray, lf: np.ndarray) -> np.ndarray:
    """(rows, K): :func:`flag_context` for every possible left symbol at once (the encoder's trellis).

    Each neighbour term matches one candidate per row, so it is added to that entry only.
    """
    f = lf[c] + 32 * same_ctx[:, None]
    rows = np.arange(len(c))
    for bit, other in ((4, up_left), (2, down_left), (1, left_left)):
        hit = other >= 0
        f[rows[hit], other[hit]] += bit
    return f


def flag_neighbours(sym: np.ndarray, x: int, n_images: int) -> tuple:
    """(up-left, down-left, left-left) of every row at column ``x`` > 0 (-1 outside the image)."""
    col = sym[:, x - 1].reshape(n_images, -1)
    up_left = np.full_like(col, -1)
    up_left[:, 1:] = col[:, :-1]
    down_left = np.full_like(col, -1)
    down_left[:, :-1] = col[:, 1:]
    left_left = sym[:, x - 2] if x >= 2 else np.full(len(sym), -1, dtype=sym.dtype)
    return up_left.ravel(), down_left.ravel(), left_left


def flag_contexts(sym: np.ndarray, ctx: np.ndarray, x: int, lf: np.ndarray, n_images: int) -> np.ndarray:
    """Context (0..127) of the copy flags of column ``x`` > 0; integer features of decoded symbols only.

    ``sym``/``ctx`` are (rows, W) with rows = images x H (columns < x of ``sym``
    decoded); ``lf`` is :func:`left_features` of the layer's table.
    """
    c = ctx[:, x]
    return flag_context(sym[:, x - 1], c, c == ctx[:, x - 1], *flag_neighbours(sym, x, n_images), lf)


#: adaptive rows: a symbol coded with context c adds this much to its entry of row c (the table's rows sum
#: to 2**16, so the table weighs as much as 128 symbols), a copy flag this much to its flag row (64 flags)
ADAPT_SYMBOL_STEP = 512
ADAPT_FLAG_STEP = 1024


class CoderRows:
    """The integer weight rows the coder uses for one layer (float64 arrays of exact integers).

    Static: the table's rows. Adaptive: ``table[c] + ADAPT_SYMBOL_STEP * count[c]``
    and ``flags[f] + ADAPT_FLAG_STEP * count[f]`` with the counts of the
    symbols / flags this layer coded in earlier columns (:meth:`update`).
    """

    def __init__(self, table: np.ndarray, flags: np.ndarray, adaptive: bool = False):
        self.tf, self.ff = table.astype(np.float64), flags.astype(np.float64)
        self.adaptive = adaptive
        self.sym_counts = np.zeros_like(self.tf) if adaptive else None
        self.flag_counts = np.zeros_like(self.ff) if adaptive else None

    def symbol_rows(self, c: np.ndarray) -> np.ndarray:
        rows = self.tf[c]
        return rows + ADAPT_SYMBOL_STEP * self.sym_counts[c] if self.adaptive else rows

    def flag_rows(self, f: np.ndarray) -> np.ndarray:
        rows = self.ff[f]
        return rows + ADAPT_FLAG_STEP * self.flag_counts[f] if self.adaptive else rows

    def update(self, c: np.ndarray, k: np.ndarray, f: np.ndarray | None = None, e: np.ndarray | None = None) -> None:
        """After a column: symbols ``k`` were coded with rows ``c``, flags ``e`` with flag rows ``f``."""
        if not self.adaptive:
            return
        np.add.at(self.sym_counts, (c, k), 1.0)
        if f is not None:
            np.add.at(self.flag_counts, (f, e), 1.0)


def _columns(a: np.ndarray) -> np.ndarray:
    """(N, H, W) -> (N*H, W): the coder walks columns, every row of every image at once."""
    return a.reshape(-1, a.shape[-1])


def _rows_without_left(rows: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Context rows with the left symbol's weight set to 0 (a flag 0 says the symbol is not the left one)."""
    rows[np.arange(len(rows)), left] = 0.0
    return rows


def _walk_layer(ctx: np.ndarray, n_images: int, table: np.ndarray, flags: np.ndarray, adaptive: bool, code,
                sym: np.ndarray | None = None) -> np.ndarray:
    """The column walk of ``spec/codec-nvtc.md`` section 4, shared by encoder, decoder and code length.

    ``code(weights, values)`` codes ``values`` with one weight row each and
    returns them; with ``values`` None (decoding) it returns the decoded ones.
    ``sym`` (rows, W) are the known symbols when encoding. Returns the symbols.
    """
    out = np.zeros(ctx.shape, dtype=np.int64) if sym is None else sym

    def known(v):
        return None if sym is None else v

    rows, lf = CoderRows(table, flags, adaptive), left_features(table)
    out[:, 0] = code(rows.symbol_rows(ctx[:, 0]), known(out[:, 0]))
    rows.update(ctx[:, 0], out[:, 0])
    for x in range(1, ctx.shape[1]):
        left = out[:, x - 1]
        f = flag_contexts(out, ctx, x, lf, n_images)
        copy = code(rows.flag_rows(f), known((out[:, x] == left).astype(np.int64))).astype(bool)
        col = left.copy()
        new = ~copy
        if new.any():
            col[new] = code(_rows_without_left(rows.symbol_rows(ctx[new, x]), left[new]), known(out[new, x]))
        out[:, x] = col
        rows.update(ctx[new, x], col[new], f, copy.astype(np.int64))
    return out


#: the ways the coder may walk a layer (payload flags bit 7): 0 rows left to right, 1 columns top to
#: bottom, 2 rows right to left, 3 columns bottom to top (spec/codec-nvtc.md section 4)
DIRECTIONS = 4


def walk_grid(a: np.ndarray, direction: int) -> np.ndarray:
    """A layer's grid (last two axes: (..., H, W); symbols, contexts or the encoder's residuals) as the
    coder walks it in ``direction``: the grid whose rows, left to right, it codes."""
    if direction == 1:
        a = a.swapaxes(-1, -2)
    elif direction == 2:
        a = a[..., ::-1]
    elif direction == 3:
        a = a.swapaxes(-1, -2)[..., ::-1]
    return np.ascontiguousarray(a)


def unwalk_grid(a: np.ndarray, direction: int) -> np.ndarray:
    """Inverse of :func:`walk_grid`."""
    if direction == 3:
        return np.ascontiguousarray(a[..., ::-1].swapaxes(-1, -2))
    return walk_grid(a, direction)  # the other walks are their own inverses


def encode_layer(encoder, symbols: np.ndarray, contexts: np.ndarray, table: np.ndarray, flags: np.ndarray,
                 adaptive: bool = False, direction: int = 0) -> None:
    """Append one layer's symbols (N, H, W) to ``encoder`` (order: ``spec/codec-nvtc.md`` section 4).

    Column 0: every row's symbol with its context's row. Column x > 0: first
    every row's copy flag ``symbol == left neighbour``, then the symbols of the
    rows whose flag is 0, each with its context's row minus the left symbol.
    ``adaptive``: rows of :class:`CoderRows` that count what earlier columns coded.
    ``direction``: the way the coder walks the layer (:func:`walk_grid`; 0 = along its rows).
    """
    import constriction

    fam = constriction.stream.model.Categorical(perfect=False)

    def code(weights, values):
        encoder.encode(values.astype(np.int32), fam, weights)
        return values

    symbols, contexts = walk_grid(symbols, direction), walk_grid(contexts, direction)
    _walk_layer(_columns(contexts).astype(np.int64), symbols.shape[0], table, flags, adaptive, code,
                _columns(symbols).astype(np.int64))


def decode_layer(decoder, contexts: np.ndarray, table: np.ndarray, flags: np.ndarray,
                 adaptive: bool = False, direction: int = 0) -> np.ndarray:
    """Inverse of :func:`encode_layer`; ``contexts`` (N, H, W) are already-decoded indices."""
    import constriction

    fam = constriction.stream.model.Categorical(perfect=False)

    def code(weights, _values):
        return decoder.decode(fam, weights).astype(np.int64)

    walked = walk_grid(contexts, direction)
    out = _walk_layer(_columns(walked).astype(np.int64), walked.shape[0], table, flags, adaptive, code)
    return unwalk_grid(out.reshape(walked.shape), direction)


#: weights of a layer's direction symbol (payload flags bit 7): all four equally likely, exactly 2 bits
DIRECTION_WEIGHTS = np.ones((1, DIRECTIONS))


def encode_direction(encoder, direction: int) -> None:
    """The symbol in front of a layer's symbols: the way the coder walks it (:func:`walk_grid`)."""
    import constriction

    encoder.encode(np.array([direction], dtype=np.int32), constriction.stream.model.Categorical(perfect=False),
                   DIRECTION_WEIGHTS)


def decode_direction(decoder) -> int:
    import constriction

    return int(decoder.decode(constriction.stream.model.Categorical(perfect=False), DIRECTION_WEIGHTS)[0])


def code_lengths(table: np.ndarray, flags: np.ndarray) -> tuple:
    """(symbol bits (contexts, K), flag bits (FLAG_CONTEXTS, 2)) of integer tables, float64."""
    t, fl = table.astype(np.float64), flags.astype(np.float64)
    return TABLE_BITS - np.log2(t), np.log2(fl.sum(-1, keepdims=True)) - np.log2(fl)


def exclusion_bits(t: np.ndarray) -> np.ndarray:
    """Bits a symbol saves when the row it is coded with drops the left symbol, whose entry is ``t``
    (``log2(65536 - t) - 16``, <= 0): the renormalisation after a copy flag 0."""
    return np.log2(TABLE_TOTAL - np.asarray(t, dtype=np.float64)) - TABLE_BITS


def column_costs(sym: np.ndarray, ctx: np.ndarray, x: int, table: np.ndarray, lf: np.ndarray, n_images: int,
                 sym_bits: np.ndarray, flag_bits: np.ndarray) -> np.ndarray:
    """(rows, K) bits :func:`encode_layer` spends on each possible symbol of column ``x`` (columns < x known).

    Column 0: the context row. Column x > 0: the symbol equal to the left costs
    its copy flag 1; any other the flag 0 plus its code length in the row
    without the left symbol. The encoder's ECVQ and the tests use these.
    """
    if x == 0:
        return sym_bits[ctx[:, 0]]
    left, c = sym[:, x - 1], ctx[:, x]
    f = flag_contexts(sym, ctx, x, lf, n_images)
    bits = sym_bits[c] + (flag_bits[f, 0] + exclusion_bits(table[c, left]))[:, None]
    bits[np.arange(len(c)), left] = flag_bits[f, 1]
    return bits


def layer_code_length(symbols: np.ndarray, contexts: np.ndarray, table: np.ndarray, flags: np.ndarray,
                      adaptive: bool = False, direction: int = 0) -> float:
    """Ideal code length in bits of :func:`encode_layer` with these integer tables (tests, table design)."""
    symbols, contexts = walk_grid(symbols, direction), walk_grid(contexts, direction)
    if adaptive:
        return _adaptive_code_length(symbols, contexts, table, flags)
    n = symbols.shape[0]
    sym, ctx = _columns(symbols).astype(np.int64), _columns(contexts).astype(np.int64)
    sym_bits, flag_bits = code_lengths(table, flags)
    lf = left_features(table)
    rows = np.arange(len(sym))
    return float(sum(np.sum(column_costs(sym, ctx, x, table, lf, n, sym_bits, flag_bits)[rows, sym[:, x]])
                     for x in range(sym.shape[1])))


def _adaptive_code_length(symbols: np.ndarray, contexts: np.ndarray, table: np.ndarray, flags: np.ndarray) -> float:
    total = [0.0]

    def code(weights, values):
        total[0] += float(np.sum(np.log2(weights.sum(-1)) - np.log2(weights[np.arange(len(values)), values])))
        return values

    _walk_layer(_columns(contexts).astype(np.int64), symbols.shape[0], table, flags, True, code,
                _columns(symbols).astype(np.int64))
    return total[0]


def flag_counts(symbols: np.ndarray, contexts: np.ndarray, table: np.ndarray) -> tuple:
    """Counts of one layer (N, H, W) for table design: ``(flags (FLAG_CONTEXTS, 2), coded)``.

    ``coded`` is the (rows, W) mask of the symbols coded with their context row
    (column 0 and those whose copy flag is 0).
    """
    n = symbols.shape[0]
    sym, ctx = _columns(symbols).astype(np.int64), _columns(contexts).astype(np.int64)
    lf = left_features(table)
    out = np.zeros((FLAG_CONTEXTS, 2))
    coded = np.ones(sym.shape, dtype=bool)
    for x in range(1, sym.shape[1]):
        copy = sym[:, x] == sym[:, x - 1]
        np.add.at(out, (flag_contexts(sym, ctx, x, lf, n), copy.astype(np.int64)), 1.0)
        coded[:, x] = ~copy
    return out, coded


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
