"""The encoder's row trellis (aigif.codec.rdo): exact on what it models, better than greedy ECVQ."""
from __future__ import annotations

import itertools

import numpy as np

from aigif.codec.entropy import (FLAG_CONTEXTS, candidate_flag_contexts, code_lengths, column_costs, flag_context,
                                 flag_neighbours, layer_code_length, left_features, quantize_probs)
from aigif.codec.rdo import trellis


def random_tables(rng, contexts: int, k: int, peaked: float = 3.0):
    table = quantize_probs(rng.dirichlet(np.full(k, 0.5), size=contexts) * peaked + 1e-3)
    flags = quantize_probs(rng.uniform(0.05, 0.95, size=(FLAG_CONTEXTS, 1)) * np.array([[1.0, -1.0]]) + [[0.0, 1.0]])
    return table, flags


def path_cost(sym, ctx, d, table, flags, lmbda):
    """Distortion + real code length / lambda of whole rows (the coder's own accounting)."""
    rows = np.arange(sym.shape[0])
    dist = sum(d[rows, x, sym[:, x]].sum() for x in range(sym.shape[1]))
    return dist + layer_code_length(sym[:, None, :], ctx[:, None, :], table, flags) / lmbda


def test_candidate_flag_contexts_match_the_coder_definition():
    rng = np.random.default_rng(0)
    k, rows = 12, 40
    table, _ = random_tables(rng, 5, k)
    lf = left_features(table)
    sym = rng.integers(0, k, size=(rows, 6))
    sym[::3, 2] = sym[::3, 1]  # some equal neighbours, so every feature bit fires
    sym[1::4, 4] = sym[2::4, 4][: len(sym[1::4, 4])]
    ctx = rng.integers(0, 5, size=(rows, 6))
    for x in range(1, 6):
        c = ctx[:, x]
        nb = flag_neighbours(sym, x, 2)
        cand = candidate_flag_contexts(c, c == ctx[:, x - 1], *nb, lf)
        for j in range(k):
            want = flag_context(np.full(rows, j), c, c == ctx[:, x - 1], *nb, lf)
            assert np.array_equal(cand[:, j], want)


def test_trellis_finds_the_exact_row_optimum():
    """With the cross-row and left-left flag features made irrelevant, the search is exact: brute force agrees."""
    rng = np.random.default_rng(1)
    k, w, rows = 4, 5, 6
    for trial in range(4):
        table, flags = random_tables(rng, 3, k)
        flags[1::2] = flags[0::2]  # bit 0 (left-left) of the flag context changes nothing
        ctx = rng.integers(0, 3, size=(rows, w))
        d = rng.uniform(0, 4, size=(rows, w, k)).astype(np.float32)
        lmbda = [0.3, 1.0, 3.0, 10.0][trial]
        got = trellis(lambda a, b: d[a:b], ctx, np.zeros((rows, w), np.int64), table, flags, lmbda, n_images=rows,
                      rounds=1)
        for y in range(rows):  # one row per image: no up-left / down-left neighbours
            best = min(path_cost(np.array([p]), ctx[y : y + 1], d[y : y + 1], table, flags, lmbda)
                       for p in itertools.product(range(k), repeat=w))
            mine = path_cost(got[y : y + 1], ctx[y : y + 1], d[y : y + 1], table, flags, lmbda)
            assert mine <= best + 1e-6


def test_trellis_beats_greedy_ecvq():
    """On smooth data (where runs pay off) the trellis spends less distortion + rate than column-wise greedy."""
    rng = np.random.default_rng(2)
    k, w, rows, n = 16, 24, 16, 2
    table, flags = random_tables(rng, 4, k)
    flags[:, 1] = quantize_probs(np.tile([[0.4, 0.6]], (FLAG_CONTEXTS, 1)))[:, 1]
    flags[:, 0] = 65536 - flags[:, 1].astype(np.int64)
    ctx = rng.integers(0, 4, size=(rows, w))
    base = rng.uniform(0, 1, size=(rows, 1, k)) + 0.2 * rng.uniform(0, 1, size=(rows, w, k))
    d = base.astype(np.float32)
    lmbda = 2.0
    sym_bits, flag_bits = code_lengths(table, flags)
    lf = left_features(table)
    greedy = np.zeros((rows, w), np.int64)
    for x in range(w):
        cost = d[:, x] + column_costs(greedy, ctx, x, table, lf, n, sym_bits, flag_bits) / lmbda
        greedy[:, x] = cost.argmin(1)
    got = trellis(lambda a, b: d[a:b], ctx, greedy, table, flags, lmbda, n_images=n, rounds=2)

    def total(sym):
        rows_ = np.arange(rows)
        dist = sum(d[rows_, x, sym[:, x]].sum() for x in range(w))
        return dist + layer_code_length(sym.reshape(n, rows // n, w), ctx.reshape(n, rows // n, w), table, flags) / lmbda

    assert total(got) < total(greedy)
