"""NVTC layer directions (flags bit 7, spec section 4): every layer is walked along rows or columns, either way."""
from __future__ import annotations

import numpy as np
import pytest

from aigif.codec import QUALITIES, compress_image, compress_residual, decompress_image, decompress_residual, payload
from aigif.errors import AigifError
from aigif.fidelity.metrics import mse

from .test_codec import photo
from .test_codec_postfilter import recrc
from .test_codec_transpose import _columns_image

torch = pytest.importorskip("torch")


def _random_layer(seed: int, n=1, h=6, w=9, k=16, rows=4):
    """Symbols with horizontal runs, their contexts and valid integer tables."""
    from aigif.codec.entropy import FLAG_CONTEXTS, quantize_probs

    rng = np.random.default_rng(seed)
    sym = np.repeat(rng.integers(0, k, (n, h, (w + 2) // 3)), 3, axis=2)[..., :w]
    ctx = rng.integers(0, rows, (n, h, w))
    table = quantize_probs(rng.dirichlet(np.ones(k), rows))
    flags = quantize_probs(rng.dirichlet(np.ones(2), FLAG_CONTEXTS))
    return sym.astype(np.int64), ctx.astype(np.int64), table, flags


@pytest.mark.parametrize("direction", [1, 2, 3])
@pytest.mark.parametrize("adaptive", [False, True])
def test_walked_layer_round_trip_and_length(adaptive, direction):
    """A layer walked in a direction is its walked grids coded as they are: same bits, decoded back in place."""
    import constriction

    from aigif.codec.entropy import (decode_direction, decode_layer, encode_direction, encode_layer,
                                     layer_code_length, unwalk_grid, walk_grid)

    sym, ctx, table, flags = _random_layer(1)
    enc = constriction.stream.queue.RangeEncoder()
    encode_direction(enc, direction)
    encode_layer(enc, sym, ctx, table, flags, adaptive, direction)
    encode_direction(enc, 0)
    encode_layer(enc, sym, ctx, table, flags, adaptive)
    dec = constriction.stream.queue.RangeDecoder(enc.get_compressed())
    assert decode_direction(dec) == direction
    assert np.array_equal(decode_layer(dec, ctx, table, flags, adaptive, direction), sym)
    assert decode_direction(dec) == 0
    assert np.array_equal(decode_layer(dec, ctx, table, flags, adaptive), sym)
    walked = walk_grid(sym, direction)
    assert np.array_equal(unwalk_grid(walked, direction), sym)
    assert layer_code_length(sym, ctx, table, flags, adaptive, direction) == pytest.approx(
        layer_code_length(walked, walk_grid(ctx, direction), table, flags, adaptive))
    if direction % 2:  # runs go along rows here: walking the columns costs more
        assert layer_code_length(sym, ctx, table, flags, direction=direction) > layer_code_length(sym, ctx, table,
                                                                                                   flags)


def test_walk_grids_follow_the_spec_table():
    """spec section 4: t=1 I'[y,x] = I[x,y]; t=2 I[y, W-1-x]; t=3 I[H-1-x, y]; residuals (N, d, H, W) walk alike."""
    from aigif.codec.entropy import unwalk_grid, walk_grid

    a = np.arange(2 * 3 * 5).reshape(2, 3, 5)
    h, w = 3, 5
    for t, want in ((0, lambda y, x: a[:, y, x]), (1, lambda y, x: a[:, x, y]), (2, lambda y, x: a[:, y, w - 1 - x]),
                    (3, lambda y, x: a[:, h - 1 - x, y])):
        g = walk_grid(a, t)
        assert g.shape == ((2, h, w) if t % 2 == 0 else (2, w, h))
        for y in range(g.shape[1]):
            for x in range(g.shape[2]):
                assert np.array_equal(g[:, y, x], want(y, x))
        assert np.array_equal(unwalk_grid(g, t), a)
        feats = np.stack([a, -a], 1)  # (N, d, H, W)
        assert np.array_equal(walk_grid(feats, t)[:, 0], g) and np.array_equal(walk_grid(feats, t)[:, 1], -g)


def test_layers_follow_the_structure():
    """Column structure: most layers are walked down the columns; its transpose: most along rows."""
    from aigif.codec import zoo

    model = zoo.load_model(QUALITIES[0])
    img = _columns_image(64, 128)
    counts = []
    for src in (img, np.ascontiguousarray(img.transpose(1, 0, 2))):
        x = torch.from_numpy(src).permute(2, 0, 1)[None].float() / 255 - 0.5
        idx, directions = model.encode_indices(x, directions=True)
        _, rows_only = model.encode_indices(x)
        assert not any(rows_only.values())
        counts.append(sum(d % 2 for d in directions.values()))
    assert counts[0] > len(idx) // 2 > counts[1]


def test_chosen_direction_is_the_cheapest():
    """The encoder keeps, per layer, the direction whose search found the lowest distortion + rate."""
    from aigif.codec import zoo
    from aigif.codec.entropy import unwalk_grid
    from aigif.codec.model import contexts_for

    model = zoo.load_model(QUALITIES[1])
    x = torch.from_numpy(photo(64, 128, seed=5)).permute(2, 0, 1)[None].float() / 255 - 0.5
    seen = []
    orig = model.assign_rows

    def spy(s, l, r, ctx, tables):
        out = orig(s, l, r, ctx, tables)
        seen.append(out)
        return out

    model.assign_rows = spy
    try:
        targets = model.analysis(x)
        shape = (1, 64 // 16, 128 // 16)
        xh = torch.zeros(1, model.config["channels"], *shape[1:])
        r = model.proj_in[0][0](targets[0][0] - xh)
        ctx = contexts_for(0, 0, {}, shape)
        chosen, t = model.assign_directed(0, 0, r, ctx, model.tables)
    finally:
        del model.assign_rows
    assert len(seen) == 4
    found = [torch.from_numpy(unwalk_grid(i.numpy(), d)) for d, i in enumerate(seen)]
    costs = [model.layer_cost(0, 0, r, ctx, i, model.tables, d) for d, i in enumerate(found)]
    assert t == int(np.argmin(costs))
    assert torch.equal(chosen, found[t])


def test_payload_flag_and_decoding():
    img = photo(80, 112, seed=7)
    q = QUALITIES[2]
    data = compress_image(img, q)
    plain = compress_image(img, q, layer_directions=False)
    assert data[7] & payload.FLAG_DIRECTIONS and not plain[7] & payload.FLAG_DIRECTIONS
    assert "layer directions" in payload.describe(data) and "layer directions" not in payload.describe(plain)
    out = decompress_image(data)
    assert out.shape == img.shape
    assert mse(out, img) < mse(np.full_like(img, 128), img) / 10
    # the decoder reads the direction bits only with the flag: a stream read the other way decodes otherwise
    body = data[:-4]
    try:
        wrong = decompress_image(recrc(body[:7] + bytes([body[7] & ~payload.FLAG_DIRECTIONS]) + body[8:]))
    except AigifError:
        wrong = None
    assert wrong is None or not np.array_equal(wrong, out)


def test_residual_with_layer_directions():
    original = photo(48, 80, seed=12)
    y, x = np.mgrid[0:48, 0:80]
    reference = np.clip(original.astype(np.int16) + (20 * np.sin(y / 7.0))[..., None].astype(np.int16), 0, 255
                        ).astype(np.uint8)
    data = compress_residual(original, reference, QUALITIES[-1])
    assert data[7] & payload.FLAG_DIRECTIONS and data[7] & payload.FLAG_RESIDUAL
    out = decompress_residual(data, reference)
    assert mse(out, original) < mse(reference, original)
