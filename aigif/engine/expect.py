"""What a decoder on another platform can expect: exact, close (with a measured PSNR range) or unknown.

The recorded platform is compared field by field with the decoder's; each
differing field belongs to a *kind* of difference, and each kind has a PSNR
range measured by ``benchmarks/bench_platform.py`` (CPU) and
``benchmarks/cuda_determinism.py`` (CPU vs CUDA). A difference of a kind that
was never measured (library versions, attention backend, another GPU model)
makes the outcome unknown. spec/engine.md §4.1 holds the same table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..syntax.elements import Platform

EXACT, CLOSE, UNKNOWN = "exact", "close", "unknown"

# kind -> (min, max) PSNR in dB of a regeneration that differs only in that kind (max None: can be identical)
EXPECTED_PSNR = {
    "cpu-isa": (30.2, 64.5),           # ATen default/avx2 x oneDNN SSE41/AVX2 (bench_platform.py, tiny models)
    "threads": (math.inf, None),       # 1, 2, 4 threads: identical (deterministic kernels are pinned)
    "dtype-bfloat16": (16.6, 23.4),    # bfloat16 vs float32 on the CPU
    "dtype-float16": (17.3, 27.4),     # float16 vs float32 on the CPU
    "device": (55.0, 74.0),            # CPU vs CUDA (H200), both float32 (cuda_determinism_h200.txt)
}
# platform field -> kind of difference (fields not listed: unknown effect)
FIELD_KINDS = {"cpu": "cpu-isa", "onednn": "cpu-isa", "threads": "threads", "device": "device"}


@dataclass(frozen=True)
class Expectation:
    """The expected outcome of decoding on this platform, and why."""

    outcome: str                                # exact | close | unknown
    diffs: tuple[str, ...] = ()                 # "dtype float16 -> float32", ...
    kinds: tuple[str, ...] = ()                 # kinds of the differing fields, "unknown:<field>" when unmeasured
    psnr_range: tuple[float, float | None] | None = None   # for close: (min, max) dB, max None = up to identical

    def summary(self) -> str:
        if self.outcome == EXACT:
            return "exact: the platform matches the recorded one" if not self.diffs else \
                "exact expected (measured: this difference does not change the pixels); differs: " + ", ".join(self.diffs)
        if not self.diffs:
            return "unknown: the file records no platform"
        head = "differs: " + ", ".join(self.diffs)
        if self.outcome == CLOSE:
            lo, hi = self.psnr_range
            rng = "identical" if math.isinf(lo) else f"PSNR {lo:.0f}-{hi:.0f} dB" if hi is not None else f"PSNR >= {lo:.0f} dB (or identical)"
            return f"close expected ({rng}); {head}"
        unknown = sorted({k.split(":", 1)[1] for k in self.kinds if k.startswith("unknown:")})
        return f"unknown (no measurement for a difference in {', '.join(unknown)}); {head}"

    def to_dict(self) -> dict:
        return {"outcome": self.outcome, "diffs": list(self.diffs), "kinds": list(self.kinds),
                "psnr_range": None if self.psnr_range is None else [None if v is None or math.isinf(v) else v for v in self.psnr_range]}


def _kind(field: str, recorded: Platform, current: Platform) -> str:
    if field == "dtype":
        pair = {recorded.dtype, current.dtype}
        other = (pair - {"float32"}).pop() if "float32" in pair and len(pair) == 2 else None
        return f"dtype-{other}" if other in ("float16", "bfloat16") else "unknown:dtype"
    if field in ("gpu", "compute_capability", "cuda", "cudnn"):
        # part of a CPU <-> CUDA change when the device kind differs too; on its own: not measured
        return "device" if recorded.device != current.device else f"unknown:{field}"
    if field == "torch" and recorded.device != current.device \
            and (recorded.torch or "").split("+")[0] == (current.torch or "").split("+")[0]:
        return "device"          # the same torch release built for another device (+cpu / +cu130)
    if field == "device" and {recorded.device, current.device} != {"cpu", "cuda"}:
        return "unknown:device"
    return FIELD_KINDS.get(field, f"unknown:{field}")


def expect(recorded: Platform | None, current: Platform, diffs: tuple[str, ...], fields: tuple[str, ...]) -> Expectation:
    """The expectation for differing *fields* (with their human-readable *diffs*) between two platforms."""
    if recorded is None:
        return Expectation(UNKNOWN, (), ("unknown:platform",))
    if not fields:
        return Expectation(EXACT)
    kinds = tuple(dict.fromkeys(_kind(f, recorded, current) for f in fields))
    if any(k.startswith("unknown:") for k in kinds):
        return Expectation(UNKNOWN, diffs, kinds)
    ranges = [EXPECTED_PSNR[k] for k in kinds]
    lo = min(r[0] for r in ranges)
    highs = [r[1] for r in ranges if r[1] is not None]
    hi = min(highs) if highs else None
    if math.isinf(lo):
        return Expectation(EXACT, diffs, kinds)
    return Expectation(CLOSE, diffs, kinds, (lo, hi))
