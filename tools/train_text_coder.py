"""Train the shipped text models from the prompt training set (never dev).

    python tools/train_text_coder.py --train prompts/train.txt.gz --out aigif/assets/text/token_ppm_v1.safetensors.zst
    python tools/train_text_coder.py --train prompts/train.txt.gz --zstd-dict --out aigif/assets/text/zstd_dict_v1.bin
    python tools/train_text_coder.py --train prompts/train.txt.gz --holdout 5000 --out /tmp/m.zst   # tune: report size on held-out train lines

Deterministic: integer counting only, sorted outputs, fixed zstd settings, so
the same input gives the same model bytes. Shipped models are frozen: changing
any parameter here means a new model version and a new codec id.
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aigif.text.model_codec import CHAR_END, CHAR_ESC, EOS, NOVEL
from aigif.text.rangecoder import MAX_TOTAL
from aigif.text.tokenize import split_tokens



@dataclass(frozen=True)
class PPMParams:
    """Training parameters of one model version (frozen once shipped)."""

    token_order: int = 3
    char_order: int = 3
    vocab_min_count: int = 3
    max_vocab: int = 65536
    entry_min_count: tuple = (1, 1, 2, 2)  # per order: entries below this go to the escape
    context_min_total: tuple = (1, 4, 4, 4)  # per order: smaller contexts are dropped
    esc_types_x16: tuple = (16, 16, 16, 16)  # escape = types * x / 16 + pruned count
    char_min_count: int = 2


PARAMS = {1: PPMParams()}


def read_prompts(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8", newline="\n") as f:
        lines = f.read().split("\n")
    return [ln for ln in lines if ln]


def _scale(counts: np.ndarray, esc: int) -> tuple[np.ndarray, int]:
    """Integer downscaling so that sum(counts) + esc <= MAX_TOTAL (every count stays >= 1)."""
    counts = counts.astype(np.int64)
    while int(counts.sum()) + esc > MAX_TOTAL:
        counts = np.maximum(1, counts >> 1)
        esc = max(1, esc >> 1) if esc else 0
    return counts, esc


def build_ppm(seqs: list[list[int]], n_symbols: int, order: int, p: PPMParams, order0_esc: int, prefix: str) -> dict:
    """Count contexts of orders 0..order over symbol sequences (each ends with its end symbol).

    Order 0 counts one extra occurrence of every symbol id, so the last context
    always holds every symbol and the coder never has to escape below it.
    """
    pad = [0] * order
    flat, targets = [], []
    for s in seqs:
        base = len(flat) + order
        flat.extend(pad)
        flat.extend(s)
        targets.append(np.arange(base, base + len(s), dtype=np.int64))
    ids = np.asarray(flat, dtype=np.uint64)
    pos = np.concatenate(targets)
    out = {}
    for k in range(order + 1):
        ctx = np.zeros(len(pos), dtype=np.uint64)
        for j in range(k):
            ctx = (ctx << np.uint64(16)) | ids[pos - k + j]
        full = (ctx << np.uint64(16)) | ids[pos]
        if k == 0:
            full = np.concatenate([full, np.arange(n_symbols, dtype=np.uint64)])
        uniq, cnt = np.unique(full, return_counts=True)
        cctx = uniq >> np.uint64(16)
        sym = (uniq & np.uint64(0xFFFF)).astype(np.uint16)
        cnt = cnt.astype(np.int64)
        # context boundaries
        newc = np.ones(len(uniq), dtype=bool)
        newc[1:] = cctx[1:] != cctx[:-1]
        cstart = np.flatnonzero(newc)
        cend = np.append(cstart[1:], len(uniq))
        keep_e = cnt >= p.entry_min_count[k]
        keys, starts, escs, syms, counts = [], [0], [], [], []
        kept_cum = np.concatenate([[0], np.cumsum(np.where(keep_e, cnt, 0))])
        all_cum = np.concatenate([[0], np.cumsum(cnt)])
        kept_n = np.concatenate([[0], np.cumsum(keep_e)])
        for a, b in zip(cstart.tolist(), cend.tolist()):
            kept_total = int(kept_cum[b] - kept_cum[a])
            if k > 0 and (kept_total < p.context_min_total[k] or kept_n[b] == kept_n[a]):
                continue
            types = b - a
            pruned = int(all_cum[b] - all_cum[a]) - kept_total
            esc = order0_esc if k == 0 else max(1, types * p.esc_types_x16[k] // 16 + pruned)
            sel = slice(a, b)
            m = keep_e[sel] if k > 0 else np.ones(b - a, dtype=bool)
            c, esc = _scale(cnt[sel][m], esc)
            keys.append(int(cctx[a]))
            escs.append(esc)
            syms.append(sym[sel][m])
            counts.append(c)
            starts.append(starts[-1] + len(c))
        out[f"{prefix}.o{k}.keys"] = np.asarray(keys, dtype=np.uint64)
        out[f"{prefix}.o{k}.start"] = np.asarray(starts, dtype=np.uint32)
        out[f"{prefix}.o{k}.esc"] = np.asarray(escs, dtype=np.uint32)
        out[f"{prefix}.o{k}.sym"] = np.concatenate(syms or [[]]).astype(np.uint16)
        out[f"{prefix}.o{k}.count"] = np.concatenate(counts or [[]]).astype(np.uint32)
        print(f"  {prefix} order {k}: {len(keys)} contexts, {len(out[f'{prefix}.o{k}.sym'])} entries", file=sys.stderr)
    return out


_DTYPES = {np.dtype(np.uint8): "U8", np.dtype(np.uint16): "U16", np.dtype(np.uint32): "U32", np.dtype(np.uint64): "U64"}


def save_safetensors(arrays: dict, metadata: dict) -> bytes:
    """Byte-stable safetensors writer (the library's own orders its header by hash).

    Tensors are laid out in sorted-name order, the JSON header has sorted keys and
    is padded with spaces to a multiple of 8 bytes, all little-endian.
    """
    header = {"__metadata__": dict(sorted(metadata.items()))}
    chunks, off = [], 0
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        b = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": _DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        chunks.append(b)
        off += len(b)
    h = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    return len(h).to_bytes(8, "little") + h + b"".join(chunks)


def train_token_ppm(prompts: list[str], p: PPMParams) -> bytes:
    import zstandard as zstd
    toks = [split_tokens(t) for t in prompts]
    freq = Counter(t for ts in toks for t in ts)
    ranked = sorted((t for t, c in freq.items() if c >= p.vocab_min_count), key=lambda t: (-freq[t], t.encode("utf-8")))
    vocab = ["", ""] + ranked[: p.max_vocab - 2]
    index = {t: i for i, t in enumerate(vocab) if i > NOVEL}
    seqs, rare = [], []
    for ts in toks:
        s = []
        for t in ts:
            i = index.get(t, NOVEL)
            s.append(i)
            if i == NOVEL:
                rare.append(t)
        s.append(EOS)
        seqs.append(s)
    print(f"  vocab {len(vocab)}, {len(rare)} novel token occurrences", file=sys.stderr)
    arrays = build_ppm(seqs, len(vocab), p.token_order, p, 0, "tok")
    # character model over the spelling of out-of-vocabulary tokens
    cfreq = Counter(ord(c) for t in rare for c in t)
    chars = [0, 0] + sorted((c for c, n in cfreq.items() if n >= p.char_min_count), key=lambda c: (-cfreq[c], c))
    cindex = {c: i for i, c in enumerate(chars) if i > CHAR_ESC}
    cseqs = [[cindex.get(ord(c), CHAR_ESC) for c in t] + [CHAR_END] for t in rare]
    arrays.update(build_ppm(cseqs, len(chars), p.char_order, p, 0, "chr"))
    vb = [t.encode("utf-8") for t in vocab]
    arrays["vocab.utf8"] = np.frombuffer(b"".join(vb) or b"\0", dtype=np.uint8)
    arrays["vocab.offsets"] = np.concatenate([[0], np.cumsum([len(b) for b in vb])]).astype(np.uint32)
    arrays["chars.codepoints"] = np.asarray(chars, dtype=np.uint32)
    meta = {"format": "aigif-token-ppm", "token_order": str(p.token_order), "char_order": str(p.char_order),
            "params": json.dumps(p.__dict__, sort_keys=True)}
    raw = save_safetensors(arrays, meta)
    return zstd.ZstdCompressor(level=19, write_checksum=True).compress(raw)


def train_zstd_dict(prompts: list[str], size: int, n: int) -> bytes:
    import zstandard as zstd

    samples = [t.encode("utf-8") for t in prompts[:n]]
    d = zstd.train_dictionary(size, samples, k=0, d=8, threads=1, dict_id=1, level=19)
    return d.as_bytes()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=Path, required=True, help="gzip text file of training prompts, one per line")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--version", type=int, default=1)
    ap.add_argument("--zstd-dict", action="store_true", help="train the zstd dictionary instead")
    ap.add_argument("--dict-size", type=int, default=1 << 20)
    ap.add_argument("--dict-samples", type=int, default=100_000)
    ap.add_argument("--holdout", type=int, default=0, help="hold out the last N train lines and report coded size")
    ap.add_argument("--set", action="append", default=[], help="override a parameter, e.g. --set token_order=3")
    a = ap.parse_args(argv)
    prompts = read_prompts(a.train)
    held = []
    if a.holdout:
        prompts, held = prompts[: -a.holdout], prompts[-a.holdout :]
    t0 = time.time()
    if a.zstd_dict:
        blob = train_zstd_dict(prompts, a.dict_size, a.dict_samples)
    else:
        p = PARAMS[a.version]
        for kv in a.set:
            k, v = kv.split("=", 1)
            setattr_val = json.loads(v)
            p = PPMParams(**{**p.__dict__, k: tuple(setattr_val) if isinstance(setattr_val, list) else setattr_val})
        blob = train_token_ppm(prompts, p)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_bytes(blob)
    print(f"wrote {a.out} ({len(blob)} bytes) in {time.time() - t0:.1f}s", file=sys.stderr)
    if held and not a.zstd_dict:
        from aigif.text.model_codec import decode_with, encode_with, parse_model

        m = parse_model(blob)
        sizes = []
        t1 = time.time()
        for t in held[:2000]:
            e = encode_with(m, t)
            sizes.append(len(e) + 1)
            assert decode_with(m, e, 1 << 20, "x") == t
        dt = (time.time() - t1) / len(sizes) * 1000
        print(f"holdout: mean {np.mean(sizes):.2f} B, median {np.median(sizes):.0f}, p90 {np.percentile(sizes, 90):.0f}, "
              f"enc+dec {dt:.2f} ms/prompt", file=sys.stderr)


if __name__ == "__main__":
    main()
