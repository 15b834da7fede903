"""Rate-distortion benchmark of the NVTC codec against JPEG, WebP and AVIF (Pillow).

    python benchmarks/bench_codec.py            # 6 Kodak images
    python benchmarks/bench_codec.py --all      # all 24
    python benchmarks/bench_codec.py --ablation # also without adaptive coding / post filter / restoration network / transposing

Rates are real payload sizes (bytes * 8 / pixels); PSNR is on RGB, 8 bit.
Prints a table, BD-rate vs WebP and vs AVIF side by side, writes
benchmarks/results/codec_rd.json and codec_rd.png. Curves are averaged over
images per quality setting. "pixels segment" is what the pixels-segment
encoder stores: per image the smaller of the NVTC payload and the AVIF payload
of the lowest quality reaching the same PSNR (aigif.codec.pixels).
"""
from __future__ import annotations

import argparse
import glob
import io
import json
import os
import sys
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

KODAK = "/work/shared/data/images/kodak/kodim*.png"
SUBSET = ["kodim01", "kodim04", "kodim07", "kodim13", "kodim19", "kodim23"]
PIL_SETTINGS = {
    "JPEG": ("JPEG", [5, 10, 20, 30, 45, 60, 75, 85, 92]),
    "WebP": ("WEBP", [0, 5, 15, 30, 50, 70, 85, 95]),
    "AVIF": ("AVIF", [5, 10, 25, 40, 55, 70, 85]),
}
#: --ablation: NVTC curves with parts of the coding switched off (compress_image keywords)
ABLATION = {
    "NVTC static rows, no filter": {"adaptive": False, "post_filter": False},
    "NVTC no post filter": {"post_filter": False},
    "NVTC no restoration network": {"restoration": False},
    "NVTC static rows": {"adaptive": False},
    "NVTC best (both orientations)": {"transpose": None},
    "NVTC no layer directions": {"layer_directions": False},
    "NVTC both orientations, no layer directions": {"transpose": None, "layer_directions": False},
}
ANCHORS = {
    "WebP (published Kodak)": [(0.234, 28.33), (0.461, 30.94)],
    "JPEG (published Kodak)": [(0.423, 28.04)],
    "Hyperprior 2018 (published)": [(0.209, 29.20), (0.478, 32.84)],
}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def pil_point(img: np.ndarray, fmt: str, q: int) -> tuple:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, quality=q)
    data = buf.getvalue()
    rec = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return len(data) * 8 / (img.shape[0] * img.shape[1]), psnr(img, rec)


def bd_rate(anchor: list, test: list) -> float | None:
    """Bjontegaard delta rate (%) of ``test`` vs ``anchor``; lists of (bpp, psnr)."""
    if len(anchor) < 4 or len(test) < 4:
        return None
    a = np.array(sorted(anchor, key=lambda p: p[1]))
    t = np.array(sorted(test, key=lambda p: p[1]))
    lo, hi = max(a[:, 1].min(), t[:, 1].min()), min(a[:, 1].max(), t[:, 1].max())
    if hi <= lo:
        return None
    pa = np.polyfit(a[:, 1], np.log(a[:, 0]), 3)
    pt = np.polyfit(t[:, 1], np.log(t[:, 0]), 3)
    ia = np.polyval(np.polyint(pa), hi) - np.polyval(np.polyint(pa), lo)
    it = np.polyval(np.polyint(pt), hi) - np.polyval(np.polyint(pt), lo)
    return float((np.exp((it - ia) / (hi - lo)) - 1) * 100)


def interp_psnr(curve: list, bpp: float) -> float | None:
    c = sorted(curve)
    xs, ys = np.log([p[0] for p in c]), [p[1] for p in c]
    if not (xs[0] <= np.log(bpp) <= xs[-1]):
        return None
    return float(np.interp(np.log(bpp), xs, ys))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--all", action="store_true", help="all 24 Kodak images (default: 6)")
    ap.add_argument("--qualities", default="", help="comma list (default: all shipped)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ablation", action="store_true",
                    help="also measure NVTC without adaptive coding and/or the post filter or layer directions, "
                         "and with both orientations tried")
    args = ap.parse_args(argv)

    import torch

    from aigif.codec import QUALITIES, compress_image, decompress_image
    from aigif.codec.pixels import avif_reaching, decompress_pixels

    torch.set_num_threads(args.threads)
    files = sorted(glob.glob(KODAK))
    if not args.all:
        files = [f for f in files if os.path.basename(f)[:-4] in SUBSET]
    qualities = [int(q) for q in args.qualities.split(",")] if args.qualities else list(QUALITIES)
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]

    curves: dict = {}
    picked: dict = {}        # quality -> [(bpp, psnr, codec)] of the pixels-segment choice

    def nvtc_points(pixels_choice: bool = False, **options) -> dict:
        per_q = {}
        for q in qualities:
            bpps, psnrs, enc_t, dec_t = [], [], [], []
            compress_image(images[0][:64, :64], q)  # load weights outside the timing
            for img in images:
                t0 = time.perf_counter()
                data = compress_image(img, q, **options)
                t1 = time.perf_counter()
                rec = decompress_image(data)
                t2 = time.perf_counter()
                bpps.append(len(data) * 8 / (img.shape[0] * img.shape[1]))
                psnrs.append(psnr(img, rec))
                if pixels_choice:
                    other = avif_reaching(img, psnrs[-1])
                    best = other if other is not None and len(other) < len(data) else data
                    picked.setdefault(q, []).append((len(best) * 8 / (img.shape[0] * img.shape[1]),
                                                     psnr(img, decompress_pixels(best)), best[:4].decode("ascii")))
                enc_t.append(t1 - t0)
                dec_t.append(t2 - t1)
            per_q[q] = {"bpp": float(np.mean(bpps)), "psnr": float(np.mean(psnrs)),
                        "encode_s": float(np.mean(enc_t)), "decode_s": float(np.mean(dec_t)),
                        "decode_s_max": float(np.max(dec_t))}
        return per_q

    per_q = nvtc_points(pixels_choice=True)
    curves["NVTC (ours)"] = [(v["bpp"], v["psnr"]) for v in per_q.values()]
    curves["pixels segment (NVTC or AVIF)"] = [(float(np.mean([p[0] for p in pts])), float(np.mean([p[1] for p in pts])))
                                               for pts in picked.values()]
    if args.ablation:
        for name, options in ABLATION.items():
            curves[name] = [(v["bpp"], v["psnr"]) for v in nvtc_points(**options).values()]
    for name, (fmt, settings) in PIL_SETTINGS.items():
        pts = []
        for s in settings:
            r = [pil_point(img, fmt, s) for img in images]
            pts.append((float(np.mean([p[0] for p in r])), float(np.mean([p[1] for p in r]))))
        curves[name] = pts

    print(f"Kodak, {len(images)} images, RGB PSNR, torch threads {args.threads}")
    print(f"{'quality':>7} {'bpp':>7} {'PSNR':>7} {'enc s':>6} {'dec s':>6} | PSNR at same bpp: {'JPEG':>6} {'WebP':>6} {'AVIF':>6}")
    for q, v in per_q.items():
        m = {n: interp_psnr(curves[n], v["bpp"]) for n in ("JPEG", "WebP", "AVIF")}
        fm = {n: (f"{x:6.2f}" if x is not None else "   n/a") for n, x in m.items()}
        print(f"{q:>7} {v['bpp']:7.3f} {v['psnr']:7.2f} {v['encode_s']:6.2f} {v['decode_s']:6.2f} |"
              f"                   {fm['JPEG']} {fm['WebP']} {fm['AVIF']}")
        v["matched"] = m
    for q, pts in picked.items():
        print(f"pixels segment q{q}: AVIF chosen for {sum(p[2] == 'AVIF' for p in pts)}/{len(pts)} images")
    bd = {n: bd_rate(curves["WebP"], curves[n]) for n in curves if n != "WebP"}
    bd_avif = {n: bd_rate(curves["AVIF"], curves[n]) for n in curves if n != "AVIF"}
    fmt = lambda x: "n/a" if x is None else f"{x:+.1f} %"  # noqa: E731
    print(f"{'BD-rate':44s} {'vs WebP':>9} {'vs AVIF':>9}")
    for n in curves:
        print(f"{n:44s} {fmt(bd.get(n)) if n != 'WebP' else '—':>9} {fmt(bd_avif.get(n)) if n != 'AVIF' else '—':>9}")

    os.makedirs(args.out, exist_ok=True)
    result = {"images": [os.path.basename(f) for f in files], "curves": curves, "nvtc": per_q,
              "bd_rate_vs_webp_percent": bd, "bd_rate_vs_avif_percent": bd_avif,
              "pixels_segment_codecs": {q: [p[2] for p in pts] for q, pts in picked.items()},
              "published_anchors": ANCHORS, "torch_threads": args.threads}
    with open(os.path.join(args.out, "codec_rd.json"), "w") as f:
        json.dump(result, f, indent=1)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot written")
        return
    fig, ax = plt.subplots(figsize=(7, 5))
    for n, pts in curves.items():
        pts = sorted(pts)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-" if "ours" in n else ".-", label=n, lw=2 if "ours" in n else 1)
    for n, pts in ANCHORS.items():
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "x", ms=8, label=n)
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("RGB PSNR (dB)")
    ax.set_xlim(0, 1.2)
    ax.set_title(f"Kodak ({len(images)} images)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "codec_rd.png"), dpi=110)
    print(f"wrote {args.out}/codec_rd.json and codec_rd.png")


if __name__ == "__main__":
    main()
