"""Long fuzzing run over ``aigif.loads``, the text decoders and ``aigif info``; writes a markdown table.

    .venv/bin/python benchmarks/fuzz_long.py --minutes 10                 # structure-aware mutator
    .venv/bin/python benchmarks/fuzz_long.py --minutes 10 --atheris 5     # + coverage-guided atheris (libFuzzer)
    .venv/bin/python benchmarks/fuzz_long.py --minutes 10 --engine 100    # + 100 random syntaxes rendered by the engine

Every mutation has a twin with a recomputed CRC-32, so inputs reach the segment
and field parsers instead of dying at the checksum (see ``tests/fuzz_harness.py``).
Only ``AigifError`` may escape; anything else is a crash, saved under
``runs/fuzz-crashes/`` (git-ignored) and counted. Results:
``benchmarks/results/fuzz.md`` (overwritten; pass --out to keep another).
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CRASH_DIR = ROOT / "runs" / "fuzz-crashes"


def _harness():
    from tests import fuzz_harness

    return fuzz_harness


# --- the structure-aware loop ---------------------------------------------------------------
def run_mutator(minutes: float, seed: int, cli_every: int) -> dict:
    import aigif
    from aigif.errors import AigifError
    from aigif.text import TEXT_CODECS, decode_text, encode_text

    h = _harness()
    warnings.simplefilter("ignore")
    corpus, problems = h.build_corpus()
    seeds = h.seeds(corpus)
    text_seeds = []
    for cid in TEXT_CODECS:
        for p in h.PROMPTS:
            try:
                text_seeds.append(encode_text(p, codec=cid))
            except AigifError:
                pass
    for vec in sorted((ROOT / "spec" / "conformance" / "text").glob("*.json")):  # the text coder's own test vectors
        try:
            text_seeds.append(bytes.fromhex(json.loads(vec.read_text())["hex"]))
        except (ValueError, KeyError, TypeError):
            pass
    rnd = random.Random(seed)
    outcomes: collections.Counter = collections.Counter()
    targets: collections.Counter = collections.Counter()
    crashes: dict[str, dict] = {}
    tmp = Path(tempfile.mkdtemp(prefix="aigif-fuzz-"))
    deadline = time.time() + minutes * 60
    t0 = time.time()
    with h.registered_fuzz_extension():
        n = _loop(h, seeds, text_seeds, rnd, deadline, cli_every, tmp, outcomes, targets, crashes, decode_text, AigifError)
    secs = time.time() - t0
    return {"engine": "structure-aware mutator (tests/fuzz_harness.py)", "seconds": secs, "inputs": n,
            "targets": dict(targets), "outcomes": dict(outcomes), "crashes": crashes, "corpus": len(corpus),
            "seeds": len(seeds), "corpus_problems": problems}


def _loop(h, seeds, text_seeds, rnd, deadline, cli_every, tmp, outcomes, targets, crashes, decode_text, AigifError) -> int:
    n = 0
    while time.time() < deadline:
        n += 1
        r = rnd.random()
        if r < 0.85:
            target = "loads"
            data = seeds[rnd.randrange(len(seeds))]
            for _ in range(rnd.choice((1, 1, 2, 4, 8))):
                data = h.mutate(data, rnd)
            fn = lambda d=data: h.check_input(d)  # noqa: E731
        else:
            target = "decode_text"
            data = text_seeds[rnd.randrange(len(text_seeds))]
            for _ in range(rnd.choice((1, 2, 4))):
                data = h.mutate_bytes(data, rnd) if rnd.random() < 0.9 else h.hostile_blob(rnd)

            def fn(d=data):
                try:
                    decode_text(d)
                    return "ok"
                except AigifError as exc:
                    return type(exc).__name__
                except Exception as exc:  # noqa: BLE001
                    raise h.Crash(f"decode_text raised {type(exc).__name__}: {exc}") from exc
        targets[target] += 1
        try:
            outcomes[fn()] += 1
            if target == "loads" and cli_every and n % cli_every == 0:
                p = tmp / "f.aigif"
                p.write_bytes(data)
                import contextlib
                import io

                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    code = h.run_cli(["info", str(p)])
                targets["aigif info"] += 1
                if code not in (0, 1):
                    raise h.Crash(f"aigif info exited {code}")
        except h.Crash as exc:
            outcomes["CRASH"] += 1
            cause = exc.__cause__ or exc
            tb = traceback.extract_tb(cause.__traceback__)[-1] if cause.__traceback__ else None
            key = f"{type(cause).__name__} at {Path(tb.filename).name}:{tb.lineno}" if tb else str(exc)
            digest = hashlib.sha256(data).hexdigest()[:16]
            if key not in crashes:
                CRASH_DIR.mkdir(parents=True, exist_ok=True)
                (CRASH_DIR / f"crash-{digest}.bin").write_bytes(data)
                crashes[key] = {"count": 0, "example": f"runs/fuzz-crashes/crash-{digest}.bin", "message": str(exc)[:200]}
            crashes[key]["count"] += 1
    return n


# --- atheris (coverage-guided), in a child process ---------------------------------------------
ATHERIS_CHILD = r'''
import atexit, collections, json, os, sys, warnings
sys.path.insert(0, sys.argv[1])
import atheris
with atheris.instrument_imports():
    import aigif, aigif.syntax, aigif.container, aigif.text
from tests import fuzz_harness as h
warnings.simplefilter("ignore")
from aigif.syntax.extensions import register_extension
register_extension(h.fuzz_extension(), replace=True)
counts = collections.Counter()
stats_path = os.environ["AIGIF_FUZZ_STATS"]
def dump():
    with open(stats_path, "w") as fh:
        json.dump(counts, fh)
def one(data):
    counts[h.check_input(bytes(data))] += 1   # Crash propagates: atheris reports it and stops
    if sum(counts.values()) % 2000 == 0:
        dump()
def mutator(data, max_size, seed):
    data = atheris.Mutate(data, max_size)
    return h.fix_crc(data) if seed % 4 else data    # 3 of 4 with a valid CRC-32
atexit.register(dump)
atheris.Setup([sys.argv[0], *sys.argv[2:]], one, custom_mutator=mutator)
atheris.Fuzz()
'''


def run_atheris(minutes: float) -> dict:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return {"engine": "atheris", "skipped": "atheris is not installed (pip install atheris)"}
    h = _harness()
    warnings.simplefilter("ignore")
    corpus, _ = h.build_corpus()
    work = Path(tempfile.mkdtemp(prefix="aigif-atheris-"))
    cdir = work / "corpus"
    cdir.mkdir()
    for i, f in enumerate(h.seeds(corpus)):
        (cdir / f"seed{i:03d}").write_bytes(f)
    child = work / "child.py"
    child.write_text(ATHERIS_CHILD)
    stats = work / "stats.json"
    secs = max(int(minutes * 60), 1)
    t0 = time.time()
    r = subprocess.run([sys.executable, str(child), str(ROOT), str(cdir), f"-max_total_time={secs}", "-print_final_stats=1",
                        "-rss_limit_mb=2048", "-timeout=10", "-max_len=65536", f"-artifact_prefix={work}/"],
                       capture_output=True, text=True, env={**os.environ, "AIGIF_FUZZ_STATS": str(stats), "OMP_NUM_THREADS": "1"})
    secs = time.time() - t0
    execs = None
    for line in r.stderr.splitlines():
        if "stat::number_of_executed_units:" in line:
            execs = int(line.split(":")[-1])
    outcomes = json.loads(stats.read_text()) if stats.exists() else {}
    crashes = {}
    for art in work.glob("crash-*"):
        CRASH_DIR.mkdir(parents=True, exist_ok=True)
        dst = CRASH_DIR / f"atheris-{art.name}"
        dst.write_bytes(art.read_bytes())
        crashes[art.name] = {"count": 1, "example": str(dst.relative_to(ROOT)), "message": r.stderr[-600:]}
    cov = [ln for ln in r.stderr.splitlines() if ln.startswith("#") and "cov:" in ln]
    from importlib.metadata import version

    return {"engine": f"atheris {version('atheris')} (libFuzzer, coverage-guided)", "seconds": secs,
            "inputs": execs or sum(outcomes.values()), "outcomes": outcomes, "crashes": crashes,
            "returncode": r.returncode, "last_status": cov[-1] if cov else "", "targets": {"loads": execs or 0}}


# --- the regeneration engine on random (valid) syntaxes, with the embedded tiny models ------------------
def run_engine(n: int) -> dict:
    """Random generation syntaxes (every field, hypothesis strategies) through ``Engine.decode``; sizes and steps
    are clamped so each render stays small. Only AigifError may escape."""
    import dataclasses

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from aigif.engine import Engine
    from aigif.errors import AigifError
    from aigif.syntax import Document, ModelRef, registry
    from tests.strategies import generations, platforms

    warnings.simplefilter("ignore")
    engine = Engine()
    outcomes: collections.Counter = collections.Counter()
    crashes: dict[str, dict] = {}
    t0 = time.time()

    @settings(max_examples=n, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(generations, st.one_of(st.none(), platforms), st.sampled_from(["aigif-tiny-sd", "aigif-tiny-sdxl"]))
    def one(gen, plat, model):
        side = lambda v: max(8, min(v, 96) // 8 * 8) if v % 5 else min(v, 96)  # noqa: E731 - mostly valid sizes
        gen = dataclasses.replace(gen, width=side(gen.width), height=side(gen.height),
                                  num_inference_steps=min(gen.num_inference_steps, 2),
                                  scheduler=gen.scheduler if gen.seed % 3 == 0 or registry.code_of("scheduler", gen.scheduler or "") else None)
        try:
            engine.decode(Document(generation=gen, model=ModelRef(name=model), platform=plat))
            outcomes["ok"] += 1
        except AigifError as exc:
            outcomes[type(exc).__name__] += 1
        except Exception as exc:  # noqa: BLE001
            tb = traceback.extract_tb(exc.__traceback__)[-1]
            key = f"{type(exc).__name__} at {Path(tb.filename).name}:{tb.lineno}"
            crashes.setdefault(key, {"count": 0, "example": repr(gen)[:300], "message": str(exc)[:200]})["count"] += 1
            outcomes["CRASH"] += 1

    one()
    return {"engine": "Engine.decode on random syntaxes (tiny embedded models)", "seconds": time.time() - t0,
            "inputs": sum(outcomes.values()), "outcomes": dict(outcomes), "crashes": crashes,
            "targets": {"Engine.decode": sum(outcomes.values())}}


# --- report ----------------------------------------------------------------------------------
FOUND = [
    ("`ModelRef.is_registry_only` raised ConfigError for a model with only `repo`/`local` (so `aigif info` failed on valid files)",
     "core `aigif/syntax/elements.py`", "fixed"),
    ("4 MiB of 2-byte unknown fields: 212 MiB peak, 38 s (64 MiB file: ~3.4 GB, ~10 min) — `read_fields` built a list first",
     "core `fields.py`/`schema.py`", "fixed: `iter_fields` + `Limits.max_fields` (1024)"),
    ("msgpack expansion: 4 MiB of `0x80` in `source.extra` = 4 M dicts, 299 MiB peak, 8 s",
     "core `schema.py`", "fixed: `Limits.max_map_bytes` (1 MiB) checked before unpacking"),
    ("str/version/hex fields decoded before their length check (4 bytes of memory per input byte)",
     "core `schema.py`", "fixed: byte length checked first (4 x max_text_chars)"),
    ("`atomic_write(overwrite=False)`: check-then-rename race could clobber a file created meanwhile; no directory fsync",
     "core `fileio.py`", "fixed: hard-link into place (fails if it exists), fsync the folder"),
    ("symlink loop in a model dir / model folder: `RuntimeError` from `Path.resolve` escaped",
     "engine `loader.py`", "fixed (small local change): UnsafeModelError"),
    ("deeply nested `model_index.json`: `RecursionError` escaped", "engine `loader.py`, `digest.py`", "fixed (small local change): ModelError"),
    ("a 7-byte zstd text field could declare a 128 MiB window (reserved address space per decode)",
     "text `zstd_codecs.py`", "fixed (small local change): `max_window_size` 8 MiB"),
    ("`scheduler_config` `{\"num_train_timesteps\": 3e7}` (20 bytes) made diffusers allocate 1.2 GB / 16 s (10**9: OOM); `solver_order` likewise",
     "engine `schedulers.py`", "fixed (small local change): override numbers bounded to +-100,000"),
    ("`aigif info` printed prompts/strings raw: ESC/OSC sequences from a file reached the terminal",
     "CLI `syntax_cmds.py`", "fixed; test `test_cli_info_does_not_echo_terminal_escapes`"),
    ("NVTC: a 24-byte payload announcing 4096x4096 decodes with ~2.5 GB, ~60 s (8192x8192 ~10 GB): torch allocator RuntimeError under a 1 GiB cap",
     "codec `aigif/codec/api.py`", "OPEN: failing test `test_codec_header_only_payload_cannot_demand_gigabytes`"),
    ("`aigif decode a.aigif -o a.aigif --force` replaced the input with a PNG", "CLI `engine_cmds.py`",
     "fixed (small local change): an input is never an output; test `test_decode_never_writes_over_its_input_even_with_force`"),
    ("`aigif encode` batch overwrites an existing non-.aigif file at the output path without --force (same rule in `aigif/batch.py`)",
     "importers `batch.py`, `aigif/batch.py`", "OPEN (design conflict with `tests/test_importers.py`): failing test `test_batch_never_clobbers_a_foreign_file_without_force`"),
]


def limits_table() -> list[str]:
    from aigif.limits import Limits

    what = {
        "max_file_bytes": "whole file (checked before reading: `read_limited`)",
        "max_segments": "segments in a file",
        "max_text_chars": "characters of a text field; str/version/hex fields refuse > 4x this many bytes",
        "max_decompressed_bytes": "reserved (no decoder uses it yet: text is bounded by max_text_chars, pixels by max_image_pixels)",
        "max_image_pixels": "pixels of a decoded image (codec header, importers)",
        "max_nesting": "nesting of msgpack maps and elements",
        "max_loras": "repeated entries (LoRAs) in one element",
        "max_fields": "fields in one element payload (unknown ones included)",
        "max_map_bytes": "bytes of one msgpack map field (scheduler_config, source.extra)",
    }
    rows = ["| limit | default | what | error |", "|---|---|---|---|"]
    for k, v in Limits().__dict__.items():
        rows.append(f"| `{k}` | {v:,} | {what.get(k, '')} | LimitError (`limit`) |")
    return rows


def write_report(results: list[dict], out: Path, rss_mib: float, when: str | None = None) -> None:
    import aigif

    lines = [
        "# Fuzzing aigif (untrusted input)",
        "",
        f"Produced by `benchmarks/fuzz_long.py` on {when or time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"aigif {aigif.__version__}, Python {platform.python_version()}, {platform.machine()} (CPU, shared 2 cores). "
        "The bounded pass in the test suite is `tests/test_fuzz.py`.",
        "",
        "## Runs",
        "",
        "| engine | duration | inputs | inputs/s | crashes (non-AigifError) | outcomes |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        if "skipped" in r:
            lines.append(f"| {r['engine']} | - | - | - | - | skipped: {r['skipped']} |")
            continue
        oc = ", ".join(f"{k} {v:,}" for k, v in sorted(r["outcomes"].items(), key=lambda kv: -kv[1]))
        ncrash = sum(c["count"] for c in r["crashes"].values())
        lines.append(f"| {r['engine']} | {r['seconds'] / 60:.1f} min | {r['inputs']:,} | {r['inputs'] / max(r['seconds'], 1e-9):,.0f} | "
                     f"{ncrash} ({len(r['crashes'])} unique) | {oc} |")
    lines += ["", f"Peak RSS of the fuzzing process: {rss_mib:.0f} MiB.", ""]
    for r in results:
        if r.get("targets"):
            lines.append(f"- {r['engine']}: targets " + ", ".join(f"{k} {v:,}" for k, v in r["targets"].items())
                         + (f"; corpus {r['corpus']} valid files, {r['seeds']} seeds" if "corpus" in r else "")
                         + (f"; last libFuzzer status `{r['last_status']}`" if r.get("last_status") else ""))
        if r.get("corpus_problems"):
            lines.append(f"  - corpus problems (text codecs that could not encode): {'; '.join(r['corpus_problems'])}")
        for key, c in r.get("crashes", {}).items():
            lines.append(f"  - CRASH `{key}` x{c['count']}: {c['message']} (input: `{c['example']}`)")
    lines += ["", "## Crashes and holes found while building the harness", "",
              "| finding | where | status |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in FOUND]
    lines += ["", "## Limits enforced (defaults of `aigif.Limits`, normative table in `spec/security.md`)", ""]
    lines += limits_table()
    lines += ["", "Each limit is tested at `limit` (passes) and `limit - 1` (raises) in `tests/test_fuzz.py`; "
              "`test_memory_bounded_under_rlimit` decodes full-size hostile files (60 MiB of tiny fields, a 60 MiB prompt, "
              "an 8 GiB zstd bomb, 1024 segments, ...) under `RLIMIT_AS` = 3 x 65 MiB + 64 MiB.", "",
              "One-off probes while building the harness (not repeated by this script): 20,000 mutated A1111 infotexts "
              "through `map_a1111` (0 crashes); 4,000 mutated NVTC image/residual payloads with recomputed CRC through "
              "`decompress_image`/`decompress_residual` (0 crashes; a 400-input version runs in the test suite).", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=5.0, help="duration of the structure-aware run")
    ap.add_argument("--atheris", type=float, default=0.0, metavar="MINUTES", help="also run atheris for this long")
    ap.add_argument("--engine", type=int, default=0, metavar="N", help="also render N random syntaxes with the tiny models")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cli-every", type=int, default=200, help="also run `aigif info` on every Nth input (0: never)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fuzz.md")
    ap.add_argument("--add", action="store_true", help="keep the runs saved in the .json and add this one")
    ap.add_argument("--report-only", action="store_true", help="rewrite the markdown from the saved .json of the last run")
    args = ap.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    raw = args.out.with_suffix(".json")
    if args.report_only:
        saved = json.loads(raw.read_text())
        write_report(saved["results"], args.out, saved["rss_mib"], saved.get("when"))
        print(args.out.read_text())
        return 0
    saved = json.loads(raw.read_text()) if args.add and raw.exists() else {"results": [], "rss_mib": 0}
    results = saved["results"]
    if args.minutes > 0:
        results.append(run_mutator(args.minutes, args.seed, args.cli_every))
    if args.atheris > 0:
        results.append(run_atheris(args.atheris))
    if args.engine > 0:
        results.append(run_engine(args.engine))
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, saved["rss_mib"])
    raw.parent.mkdir(parents=True, exist_ok=True)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    raw.write_text(json.dumps({"results": results, "rss_mib": rss, "when": when}, indent=1))
    write_report(results, args.out, rss, when)
    print(args.out.read_text())
    return 1 if any(r.get("crashes") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
