"""Rate-distortion optimised choice of a layer's codeword indices (encoder only).

Greedy ECVQ picks each symbol on its own: ``argmin_k ||r - c_k||^2 + bits(k) / lambda``.
But a symbol's code length depends on its left neighbour (the copy flag of
:mod:`.entropy`), so whether to start a run of equal symbols is a decision
about the whole row. Along one row the cost is a chain: column x costs

* ``D[x, k] + flag1(f(k)) / lambda`` if ``k`` equals the left symbol (a copy);
* ``D[x, k] + (flag0(f(j)) + renorm(j) + bits(k | ctx)) / lambda`` after a
  different left symbol ``j`` (its row renormalised without ``j``),

so a Viterbi search over the K codewords finds the row's exact optimum (Feng
et al.'s ECVQ is the one-column special case). The only cross-row terms, the
up-left / down-left / left-left features of the copy-flag context, are taken
from the previous pass (greedy first), and the search is repeated ``rounds``
times. Nothing here is normative: any index choice decodes the same way.
"""
from __future__ import annotations

import numpy as np

from .entropy import candidate_flag_contexts, code_lengths, exclusion_bits, flag_neighbours, left_features

#: entries of the (rows, W, K) distance and back-pointer arrays held at once (~6 bytes each)
CHUNK_ENTRIES = 1 << 24


def trellis(dist, ctx: np.ndarray, guess: np.ndarray, table: np.ndarray, flags: np.ndarray, lmbda: float,
            n_images: int, rounds: int = 2) -> np.ndarray:
    """Indices (rows, W) minimising distortion + code length / ``lmbda`` row by row.

    ``dist(a, b)`` returns the float32 (b - a, W, K) squared distances of rows
    a..b to every codeword; ``ctx`` (rows, W) are the symbols' table contexts;
    ``guess`` (rows, W) is a first choice (greedy ECVQ) for the cross-row
    features. Works on row chunks, so memory stays ~``CHUNK_ENTRIES`` entries.
    """
    rows, w = ctx.shape
    k = table.shape[1]
    sym_bits, flag_bits = code_lengths(table, flags)
    renorm = exclusion_bits(table)  # (contexts, K): after a copy flag 0 with each possible left symbol
    lf = left_features(table)
    step = max(1, CHUNK_ENTRIES // max(1, w * k))
    out = guess
    for _ in range(rounds):
        nb = [flag_neighbours(out, x, n_images) if x else None for x in range(w)]
        new = np.empty_like(out)
        for a in range(0, rows, step):
            b = min(a + step, rows)
            new[a:b] = _viterbi(dist(a, b), ctx[a:b], [None] + [tuple(v[a:b] for v in nb[x]) for x in range(1, w)],
                                lf, sym_bits, flag_bits, renorm, lmbda)
        out = new
    return out


def _viterbi(d: np.ndarray, ctx: np.ndarray, nb: list, lf, sym_bits, flag_bits, renorm,
             lmbda: float) -> np.ndarray:
    rows, w, k = d.shape
    r = np.arange(rows)
    cand = np.broadcast_to(np.arange(k), (rows, k))
    v = d[:, 0] + sym_bits[ctx[:, 0]] / lmbda
    back = np.empty((rows, w, k), dtype=np.int16)
    for x in range(1, w):
        c = ctx[:, x]
        f = candidate_flag_contexts(c, c == ctx[:, x - 1], *nb[x], lf)  # (rows, K): left = each candidate
        copy = v + flag_bits[f, 1] / lmbda
        leave = v + (flag_bits[f, 0] + renorm[c]) / lmbda  # cost of having j on the left and coding a new symbol
        j1 = leave.argmin(1)  # best and second-best left symbol: a new symbol k may follow any j != k
        second = leave.copy()
        second[r, j1] = np.inf
        j2 = second.argmin(1)
        src = np.repeat(j1[:, None], k, 1)
        src[r, j1] = j2
        fresh = leave[r[:, None], src] + sym_bits[c] / lmbda
        use_copy = copy <= fresh
        back[:, x] = np.where(use_copy, cand, src)
        v = d[:, x] + np.where(use_copy, copy, fresh)
    out = np.empty((rows, w), dtype=np.int64)
    out[:, -1] = v.argmin(1)
    for x in range(w - 1, 0, -1):
        out[:, x - 1] = back[r, x, out[:, x]]
    return out
