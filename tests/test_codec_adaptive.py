"""Adaptive entropy coding of NVTC layers (flags bit 5, spec/codec-nvtc.md section 4): exact, and it learns."""
from __future__ import annotations

import numpy as np
import pytest

from aigif.codec import QUALITIES, compress_image, decompress_image, payload
from aigif.codec.entropy import (ADAPT_FLAG_STEP, ADAPT_SYMBOL_STEP, FLAG_CONTEXTS, CoderRows, decode_layer,
                                 encode_layer, layer_code_length, quantize_probs)

from .test_codec import photo


def tables(seed: int, contexts: int = 5, k: int = 12) -> tuple:
    rng = np.random.default_rng(seed)
    table = quantize_probs(rng.dirichlet(np.full(k, 0.5), contexts))
    flags = quantize_probs(rng.dirichlet([1.0, 1.0], FLAG_CONTEXTS))
    return table, flags


def code(symbols, contexts, table, flags, adaptive):
    import constriction

    enc = constriction.stream.queue.RangeEncoder()
    encode_layer(enc, symbols, contexts, table, flags, adaptive)
    words = enc.get_compressed()
    dec = constriction.stream.queue.RangeDecoder(words)
    return decode_layer(dec, contexts, table, flags, adaptive), 32 * len(words)


@pytest.mark.parametrize("seed", range(3))
def test_adaptive_layers_round_trip_and_cost_their_ideal_length(seed):
    table, flags = tables(seed)
    rng = np.random.default_rng(100 + seed)
    contexts = rng.integers(0, table.shape[0], (2, 9, 17))
    symbols = rng.integers(0, table.shape[1], (2, 9, 17))
    symbols[:, :, 5:9] = symbols[:, :, 4:5]  # runs: copy flags 1
    out, bits = code(symbols, contexts, table, flags, True)
    assert np.array_equal(out, symbols)
    ideal = layer_code_length(symbols, contexts, table, flags, adaptive=True)
    assert ideal - 1 <= bits <= ideal * 1.02 + 64


def test_adaptive_rows_learn_what_the_table_does_not_expect():
    table, flags = tables(7)
    contexts = np.zeros((1, 40, 60), dtype=np.int64)
    rare = int(np.argmin(table[0]))
    symbols = np.where((np.arange(60) % 2 == 0)[None, None, :], rare, (rare + 1) % table.shape[1])
    symbols = np.broadcast_to(symbols, (1, 40, 60)).copy()
    _, static_bits = code(symbols, contexts, table, flags, False)
    out, adaptive_bits = code(symbols, contexts, table, flags, True)
    assert np.array_equal(out, symbols)
    assert adaptive_bits < 0.5 * static_bits


def test_rows_are_the_table_plus_counts():
    """The normative update: after a column, row c = table[c] + 512 * symbols coded with c so far."""
    table, flags = tables(3)
    rows = CoderRows(table, flags, adaptive=True)
    c, k = np.array([1, 1, 2, 1]), np.array([4, 4, 0, 7])
    f, e = np.array([5, 5, 9]), np.array([1, 0, 1])
    rows.update(c, k, f, e)
    want = table[1].astype(np.int64)
    want[4] += 2 * ADAPT_SYMBOL_STEP
    want[7] += ADAPT_SYMBOL_STEP
    assert np.array_equal(rows.symbol_rows(np.array([1]))[0], want)
    assert np.array_equal(rows.symbol_rows(np.array([0]))[0], table[0])
    assert np.array_equal(rows.flag_rows(np.array([5]))[0], flags[5].astype(np.int64) + ADAPT_FLAG_STEP)
    static = CoderRows(table, flags, adaptive=False)
    static.update(c, k, f, e)
    assert np.array_equal(static.symbol_rows(np.array([1]))[0], table[1])


def test_payloads_are_adaptive_by_default_and_code_the_same_symbols():
    img = photo(96, 128, seed=11)
    q = QUALITIES[1]
    adaptive, static = compress_image(img, q), compress_image(img, q, adaptive=False)
    assert payload.read_header(adaptive).flags & payload.FLAG_ADAPTIVE
    assert not payload.read_header(static).flags & payload.FLAG_ADAPTIVE
    assert "adaptive coding" in payload.describe(adaptive)
    assert np.array_equal(decompress_image(adaptive), decompress_image(static))  # same symbols, same filter
