"""Prompt-coding benchmark: bytes per prompt on held-out dev prompts, vs general compressors.

    .venv/bin/python benchmarks/bench_prompts.py            # first 2000 dev prompts
    .venv/bin/python benchmarks/bench_prompts.py --all      # all 10,000

Baselines are the compressors' plain outputs (standard frames); aigif rows are
complete text fields (codec byte included). Targets (issue 3): mean <= 40 B,
encode + decode <= 5 ms per prompt.
"""
from __future__ import annotations

import argparse
import gzip
import sys
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEV = ROOT / ".." / "shared" / "data" / "prompts" / "dev.txt.gz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--all", action="store_true", help="all dev prompts instead of the first --n")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--dev", type=Path, default=DEV)
    a = ap.parse_args()

    import zstandard as zstd

    from aigif.text import TEXT_CODECS, decode_text, encode_text
    from aigif.text.model_codec import MODEL_ASSETS
    from aigif.text.zstd_codecs import ZSTD_DICT_ASSETS, load_zstd_dict

    with gzip.open(a.dev, "rt", encoding="utf-8", newline="\n") as f:
        prompts = [ln for ln in f.read().split("\n") if ln]
    if not a.all:
        prompts = prompts[: a.n]
    raw = [p.encode("utf-8") for p in prompts]

    try:
        import brotli
    except ImportError:  # optional test dependency
        brotli = None
    z19 = zstd.ZstdCompressor(level=19)
    zd = zstd.ZstdCompressor(level=19, dict_data=zstd.ZstdCompressionDict(load_zstd_dict(1)))
    rows = []

    def row(name, sizes, ms=None):
        s = np.asarray(sizes, dtype=np.float64)
        rows.append((name, s.mean(), np.median(s), np.percentile(s, 90), s.sum() / sum(map(len, raw)) * 8, ms))

    row("utf-8 (raw)", [len(b) for b in raw])
    row("zlib-9", [len(zlib.compress(b, 9)) for b in raw])
    if brotli is not None:
        row("brotli-11", [len(brotli.compress(b, quality=11)) for b in raw])
    row("zstd-19", [len(z19.compress(b)) for b in raw])
    row("zstd-19 + 1 MB dict (v1)", [len(zd.compress(b)) for b in raw])

    for cid in sorted(TEXT_CODECS):
        encode_text("warm up", codec=cid)
        decode_text(encode_text("warm up", codec=cid))
        t0 = time.perf_counter()
        enc = [encode_text(p, codec=cid) for p in prompts]
        t1 = time.perf_counter()
        dec = [decode_text(e) for e in enc]
        t2 = time.perf_counter()
        assert dec == prompts, f"codec {cid} is not lossless"
        row(f"aigif codec {cid} ({TEXT_CODECS[cid].name})", [len(e) for e in enc], (t2 - t0) / len(prompts) * 1e3)
    # The shared prompts are lowercase; real ones are not. Capitalised variants
    # show how the case-aware codec 4 keeps the gain (rows marked "Title Case").
    titled = [p.title() if i % 2 else p[:1].upper() + p[1:] for i, p in enumerate(prompts)]
    traw = sum(len(p.encode("utf-8")) for p in titled)
    case_rows = []
    for cid in (2, 3, 4, None):
        enc_t = [encode_text(p, codec=cid) for p in titled]
        assert [decode_text(e) for e in enc_t] == titled
        s = np.asarray([len(e) for e in enc_t], dtype=np.float64)
        name = f"codec {cid} ({TEXT_CODECS[cid].name})" if cid is not None else "encode_text (best)"
        case_rows.append((name, s.mean(), np.median(s), np.percentile(s, 90), s.sum() * 8 / traw))

    t0 = time.perf_counter()
    enc = [encode_text(p) for p in prompts]
    t1 = time.perf_counter()
    dec = [decode_text(e) for e in enc]
    t2 = time.perf_counter()
    assert dec == prompts
    row("aigif encode_text (best)", [len(e) for e in enc], (t2 - t0) / len(prompts) * 1e3)
    picks = np.bincount([e[0] for e in enc], minlength=5)

    print(f"{len(prompts)} dev prompts, mean {np.mean([len(b) for b in raw]):.1f} UTF-8 bytes")
    print(f"{'coder':40s} {'mean B':>8s} {'median':>7s} {'p90':>6s} {'bits/byte':>9s} {'enc+dec ms':>11s}")
    for name, mean, med, p90, bpc, ms in rows:
        ms_s = f"{ms:11.3f}" if ms is not None else f"{'':11s}"
        print(f"{name:40s} {mean:8.2f} {med:7.0f} {p90:6.0f} {bpc:9.3f} {ms_s}")
    print(f"encode_text picks per codec id: { {i: int(n) for i, n in enumerate(picks) if n} }")
    print(f"  (encode {1e3 * (t1 - t0) / len(prompts):.3f} ms, decode {1e3 * (t2 - t1) / len(prompts):.3f} ms per prompt)")
    print("\nsame prompts capitalised (odd: Title Case, even: first letter):")
    for name, mean, med, p90, bpc in case_rows:
        print(f"{name:40s} {mean:8.2f} {med:7.0f} {p90:6.0f} {bpc:9.3f}")
    assets = ROOT / "aigif" / "assets" / "text"
    files = [assets / n for n in list(MODEL_ASSETS.values()) + list(ZSTD_DICT_ASSETS.values())]
    total = sum(p.stat().st_size for p in files)
    for p in files:
        print(f"shipped asset {p.name}: {p.stat().st_size / 1e6:.2f} MB")
    print(f"total shipped text models: {total / 1e6:.2f} MB (budget 6 MB)")
    ok = rows[-1][1] <= 40 and rows[-1][5] <= 5
    print(f"targets (mean <= 40 B, enc+dec <= 5 ms): {'MET' if ok else 'NOT MET'}")


if __name__ == "__main__":
    main()
