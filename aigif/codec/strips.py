"""Strip decoding of the NVTC synthesis: the finest stage and the output in horizontal strips.

Working memory then grows with the image's width, not its area; inside a
strip the arithmetic is that of the whole image (float or integer ops alike).
"""
from __future__ import annotations

import math

import torch

#: the three stages' strides, coarse -> fine (1/16, 1/8, 1/4 of the image)
STAGE_FACTORS = (16, 8, 4)
#: finest-stage positions per decoding strip (about 1.3 Mi pixels)
STRIP_POSITIONS = 1 << 16


class StripDecoding:
    """Mixin of :class:`.model.NVTC`: :meth:`synthesize` over strips of the finest stage."""

    def strip_margin(self) -> int:
        """Finest-stage rows a strip needs on each side: every block FC reaches ``block - 1`` rows,
        every residual block 1 row per 3x3 convolution; rounded up to whole blocks."""
        cfg = self.config
        b = int(cfg["block"])
        reach = (b - 1) * int(cfg["units"]) * int(cfg["layers"][2]) + 2 * int(cfg["res_blocks"])
        return b * math.ceil(reach / b)

    @torch.no_grad()
    def synthesize(self, idx: dict, strip_rows: int | None = None, ops=None) -> torch.Tensor:
        """Codeword indices -> the ``ops``' image (:meth:`run`; float ops: run single-threaded).

        The coarse stages run on the whole image; the finest stage and the
        output run in horizontal strips of ``strip_rows`` finest-stage rows
        (default: about ``STRIP_POSITIONS`` positions a strip), each with
        :meth:`strip_margin` rows of context taken with wrap-around like the
        transforms' shifted grids, so working memory grows with the width, not
        the area. Inside a strip the arithmetic is that of the whole image.
        """
        ops = ops or self
        n, h0, w0 = idx[(0, 0)].shape
        h2, w2 = h0 * STAGE_FACTORS[0] // STAGE_FACTORS[2], w0 * STAGE_FACTORS[0] // STAGE_FACTORS[2]
        rows = strip_rows or max(32, STRIP_POSITIONS // w2 // 4 * 4)
        margin = self.strip_margin()

        def given(table):
            return lambda s, l, r, _idx, _shape: (table[(s, l)], self.codewords(s, l, table[(s, l)]))

        if h2 <= rows + 2 * margin:
            return self.run(given(idx), (n, h0 * STAGE_FACTORS[0], w0 * STAGE_FACTORS[0]), ops=ops)[0]
        xh = ops.upsample(0, self.stage(0, ops.zeros(n, h0, w0), given(idx), {}, ops=ops))
        x1 = self.stage(1, xh, given(idx), {}, ops=ops)
        del xh
        h1 = x1.shape[2]
        out = None
        for a in range(0, h2, rows):
            b = min(a + rows, h2)
            lo, hi = a - margin, b + margin  # multiples of the block: the strip keeps the block grid
            xs = ops.upsample(1, x1.index_select(2, torch.arange(lo // 2, hi // 2) % h1))
            sel = torch.arange(lo, hi) % h2
            part = {(2, l): idx[(2, l)].index_select(1, sel) for l in range(len(self.dec_vt[2]))}
            xs = self.stage(2, xs, given(part), {}, ops=ops)
            c0, c1 = max(a - 2, 0), min(b + 2, h2)  # rows the two 3x3 convolutions need (zero padding at the edges)
            y = ops.to_pixels(xs[:, :, c0 - lo : c1 - lo])
            if out is None:
                out = torch.empty(n, 3, 4 * h2, 4 * w2, dtype=y.dtype)
            out[:, :, 4 * a : 4 * b] = y[:, :, 4 * (a - c0) : 4 * (b - c0)]
        return out
