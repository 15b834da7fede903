"""Library benchmark: index 100,000 syntax-only files, search latency, first gallery page, thumbnail throughput.

Files are packed from the dev prompts (cycled, with varied seeds, models, sizes, steps and LoRAs)
into a temporary folder outside the repository (reused with --workdir). Prints a table and
writes benchmarks/results/library.json.

    python benchmarks/bench_index.py [--files 100000] [--workdir /tmp/aigif-bench-library] [--thumbs 8]
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["sd15", "sdxl", "sd21", "sdxl-turbo", "aigif-tiny-sd"]
SIZES = [(512, 512), (512, 768), (768, 512), (1024, 1024), (832, 1216)]
LORAS = ["detail-tweaker", "add-more-details", "film-grain", "pixel-art"]
PER_FOLDER = 1000


def _dev_path() -> Path:
    for base in (ROOT.parent, ROOT.parent.parent):
        p = base / "shared/data/prompts/dev.txt.gz"
        if p.exists():
            return p
    raise SystemExit("dev prompts not found; pass --dev")


def _pack(job: tuple[str, list[tuple[int, str]]]) -> int:
    import aigif

    folder, items = job
    os.makedirs(folder, exist_ok=True)
    for i, prompt in items:
        rng = random.Random(i)
        w, h = SIZES[i % len(SIZES)]
        model: object = MODELS[i % len(MODELS)]
        if i % 7 == 0:
            model = {"name": model, "loras": [{"name": rng.choice(LORAS), "weight": 0.5 + (i % 5) / 10}]}
        doc = aigif.document_from_dict({"model": model, "prompt": prompt, "seed": rng.getrandbits(32),
                                        "num_inference_steps": rng.choice([20, 25, 30, 50]), "guidance_scale": 7.0,
                                        "width": w, "height": h, "scheduler": "dpmpp-2m-karras"})
        Path(folder, f"{i:06d}.aigif").write_bytes(aigif.dumps(doc))
    return len(items)


def make_library(workdir: Path, n: int, dev: Path) -> Path:
    lib = workdir / f"library-{n}"
    done = lib / ".complete"
    if done.exists():
        return lib
    prompts = [p for p in gzip.open(dev, "rt", encoding="utf-8").read().split("\n") if p]
    jobs = []
    for start in range(0, n, PER_FOLDER):
        items = [(i, prompts[i % len(prompts)]) for i in range(start, min(n, start + PER_FOLDER))]
        jobs.append((str(lib / f"{start // PER_FOLDER:03d}"), items))
    t = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2) as pool:
        written = sum(pool.map(_pack, jobs))
    print(f"packed {written} files in {time.perf_counter() - t:.0f} s into {lib}")
    done.write_text("")
    return lib


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def bench_search(conn, roots: tuple[str, ...], prompts: list[str]) -> dict:
    from aigif.library import Query, search

    rng = random.Random(1)
    words = [w for p in prompts[:2000] for w in p.replace(",", " ").split() if w.isalpha() and len(w) > 3]
    queries = []
    for k in range(300):
        kind = k % 5
        text = " ".join(rng.sample(words, 1 + k % 2)) if kind != 4 else ""
        q = Query(text=text, roots=roots, limit=60)
        if kind == 1:
            q = Query(text=text, model=rng.choice(MODELS), roots=roots, limit=60)
        elif kind == 2:
            q = Query(text=text, lora=rng.choice(LORAS), roots=roots, limit=60)
        elif kind == 4:
            q = Query(seed=rng.getrandbits(32), roots=roots, limit=60)
        queries.append(q)
    times = []
    for q in queries:
        t = time.perf_counter()
        search(conn, q)
        times.append((time.perf_counter() - t) * 1000)
    return {"queries": len(times), "p50_ms": round(statistics.median(times), 2), "p95_ms": round(pct(times, 0.95), 2),
            "max_ms": round(max(times), 2)}


def bench_first_page(db: Path, lib: Path, tmp: Path) -> dict:
    from starlette.testclient import TestClient

    from aigif.library.server import create_app
    from aigif.library.thumbs import ThumbCache

    client = TestClient(create_app(db, [lib], ThumbCache(tmp / "thumbs")), base_url="http://127.0.0.1")
    times = []
    for _ in range(21):
        t = time.perf_counter()
        r = client.get("/api/files")
        times.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200 and len(r.json()["items"]) == 60
    t = time.perf_counter()
    client.get("/")
    html_ms = (time.perf_counter() - t) * 1000
    return {"first_ms": round(times[0], 1), "p50_ms": round(statistics.median(times[1:]), 1),
            "p95_ms": round(pct(times[1:], 0.95), 1), "html_ms": round(html_ms, 1)}


def bench_thumbs(n: int, tmp: Path) -> dict:
    import aigif
    from aigif.library import connect, index_folders
    from aigif.library.thumbs import ThumbCache, ThumbWorker

    lib = tmp / "tiny"
    lib.mkdir()
    for i in range(n):
        aigif.generate(f"a lighthouse at dusk, number {i}", seed=i, output=str(lib / f"{i}.aigif"))
    db = tmp / "tiny.sqlite"
    conn = connect(db)
    index_folders(conn, [lib])
    rows = conn.execute("SELECT id, path, content_hash FROM files").fetchall()
    conn.close()
    worker = ThumbWorker(ThumbCache(tmp / "tiny-thumbs"), db)
    t0 = time.perf_counter()
    worker.request(rows[0][0], rows[0][2], rows[0][1])
    worker.wait(rows[0][2], 600)
    first = time.perf_counter() - t0
    t1 = time.perf_counter()
    for r in rows[1:]:
        worker.request(r[0], r[2], r[1])
    for r in rows[1:]:
        worker.wait(r[2], 600)
    rest = time.perf_counter() - t1
    progress = worker.progress()
    worker.close()
    return {"model": "aigif-tiny-sd (64x64, 10 steps, CPU)", "images": n, "failed": progress["failed"],
            "first_s_with_model_load": round(first, 2), "per_image_s": round(rest / max(1, n - 1), 3),
            "images_per_s": round((n - 1) / rest, 2) if rest else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "aigif-bench-library")
    ap.add_argument("--dev", type=Path, default=None)
    ap.add_argument("--thumbs", type=int, default=8)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/library.json")
    args = ap.parse_args()
    os.environ.setdefault("AIGIF_HOME", str(args.workdir / "home"))
    from aigif.library import connect, index_folders

    dev = args.dev or _dev_path()
    lib = make_library(args.workdir, args.files, dev)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        db = tmp / "library.sqlite"
        conn = connect(db)
        t = time.perf_counter()
        report = index_folders(conn, [lib])
        index_s = time.perf_counter() - t
        t = time.perf_counter()
        again = index_folders(conn, [lib])
        rerun_s = time.perf_counter() - t
        assert report.added == args.files and not report.errors and again.unchanged == args.files
        prompts = [p for p in gzip.open(dev, "rt", encoding="utf-8").read().split("\n") if p]
        search_res = bench_search(conn, (str(lib),), prompts)
        conn.close()
        page = bench_first_page(db, lib, tmp)
        thumbs = bench_thumbs(args.thumbs, tmp) if args.thumbs else None
        db_mb = db.stat().st_size / 2**20
    result = {"files": args.files, "cpus": os.cpu_count(), "index_s": round(index_s, 1),
              "files_per_s": round(args.files / index_s), "rerun_unchanged_s": round(rerun_s, 1),
              "db_mb": round(db_mb, 1), "search": search_res, "first_page": page, "thumbnails": thumbs,
              "targets": {"index_s": 120, "search_p95_ms": 50, "first_page_ms": 200}}
    rows = [("files indexed", f"{args.files:,}", ""),
            ("index, fresh database", f"{index_s:.1f} s ({args.files / index_s:,.0f} files/s)", "<= 120 s"),
            ("index again, nothing changed", f"{rerun_s:.1f} s", ""),
            ("database size", f"{db_mb:.1f} MB", ""),
            ("search p50 / p95", f"{search_res['p50_ms']} / {search_res['p95_ms']} ms", "p95 <= 50 ms"),
            ("first gallery page (60 items) first / p95", f"{page['first_ms']} / {page['p95_ms']} ms", "<= 200 ms")]
    if thumbs:
        rows.append((f"thumbnails, {thumbs['model']}", f"{thumbs['per_image_s']} s per image "
                     f"(first {thumbs['first_s_with_model_load']} s with model load)", ""))
    width = max(len(r[0]) for r in rows)
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:<40} {target}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
