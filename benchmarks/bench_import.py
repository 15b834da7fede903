"""Per tool: bytes of generation metadata embedded in the image vs bytes of the .aigif syntax.

    .venv/bin/python benchmarks/bench_import.py [--n 300]

Two parts:
1. the fixture samples (real metadata texts of each tool, tests/fixtures/importers);
2. each tool's metadata format filled with N prompts of the dev prompt set
   (../shared/data/prompts/dev.txt.gz), the realistic case for a whole library.
".aigif B" is the syntax-only .aigif file as ``aigif encode --syntax-only`` writes it (with the
ComfyUI graph segment and the partial-syntax marker); for metadata without any syntax it is the
file holding the source extra (no pixels counted). Per tool: share of files with syntax, share
regenerable (the syntax describes the whole generation). A third table compares each ComfyUI
graph segment with the compact JSON compressed by zlib -9 (target: <= 25 %).
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aigif import Document, dumps  # noqa: E402
from aigif.importers.decide import Options, decide  # noqa: E402
from aigif.importers.detect import map_embedded  # noqa: E402
from aigif.importers.extract import Embedded  # noqa: E402

SAMPLES = json.loads((ROOT / "tests/fixtures/importers/samples.json").read_text(encoding="utf-8"))
DEV = next((p / "shared/data/prompts/dev.txt.gz" for p in ROOT.parents if (p / "shared/data/prompts/dev.txt.gz").exists()),
           ROOT.parent / "shared/data/prompts/dev.txt.gz")
NEGATIVE = "lowres, bad anatomy, bad hands, text, error, missing fingers, extra digit, cropped, worst quality, low quality, jpeg artifacts, signature, watermark, blurry"


def syntax_bytes(fields: dict) -> tuple[int, int, bool, bool, str]:
    """(metadata bytes, .aigif bytes, has syntax, regenerable, tool) of one image's fields."""
    emb = Embedded(fields, "png-text", sum(len(v.encode()) for v in fields.values()), "PNG", (512, 512))
    imp = map_embedded(emb)
    if imp.has_syntax:
        doc = decide(imp, None, options=Options(syntax_only=True)).document
    else:
        doc = Document(source=imp.source, pixels=b"")
    return emb.nbytes, len(dumps(doc)), imp.has_syntax, imp.regenerable, imp.tool


def variants(tool: str, prompt: str, rng: random.Random) -> dict:
    seed, steps, cfg = rng.randrange(2**32), rng.choice([20, 25, 30, 40]), rng.choice([5, 6.5, 7, 7.5, 8])
    neg = NEGATIVE if rng.random() < 0.7 else ""
    if tool == "A1111":
        text = prompt + (f"\nNegative prompt: {neg}" if neg else "")
        text += (f"\nSteps: {steps}, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: {cfg}, Seed: {seed}, "
                 f"Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.10.1")
        return {"parameters": text}
    if tool == "ComfyUI":
        f = json.loads(json.dumps(SAMPLES["comfyui_txt2img"]["fields"]))
        g, w = json.loads(f["prompt"]), json.loads(f["workflow"])
        g["6"]["inputs"]["text"], g["7"]["inputs"]["text"] = prompt, neg
        g["3"]["inputs"].update(seed=seed, steps=steps, cfg=float(cfg))
        for node in w["nodes"]:
            if node["id"] == 6:
                node["widgets_values"] = [prompt]
            if node["id"] == 7:
                node["widgets_values"] = [neg]
        return {"prompt": json.dumps(g), "workflow": json.dumps(w)}
    if tool == "Forge FLUX":
        settings = SAMPLES["forge_flux_dev"]["fields"]["parameters"].rsplit("\n", 1)[1]
        settings = settings.replace("Seed: 1234567890123", f"Seed: {seed}").replace("CFG scale: 2", "CFG scale: 1")
        return {"parameters": f"{prompt}\n{settings}"}
    if tool == "ComfyUI FLUX":
        f = json.loads(json.dumps(SAMPLES["comfyui_flux_dev"]["fields"]))
        g, w = json.loads(f["prompt"]), json.loads(f["workflow"])
        g["6"]["inputs"]["text"], g["25"]["inputs"]["noise_seed"] = prompt, rng.randrange(2**50)
        g["17"]["inputs"]["steps"], g["26"]["inputs"]["guidance"] = rng.choice([20, 28, 30]), rng.choice([2.5, 3.5, 4.0])
        for node in w["nodes"]:
            if node["id"] == 6:
                node["widgets_values"] = [prompt]
        return {"prompt": json.dumps(g), "workflow": json.dumps(w)}
    if tool == "InvokeAI":
        m = json.loads(SAMPLES["invokeai_v4"]["fields"]["invokeai_metadata"])
        m.update(positive_prompt=prompt, negative_prompt=neg, seed=seed, steps=steps, cfg_scale=float(cfg))
        return {"invokeai_metadata": json.dumps(m, separators=(",", ":"))}
    if tool == "Fooocus":
        m = json.loads(SAMPLES["fooocus_plain"]["fields"]["parameters"])
        m.update(prompt=prompt, full_prompt=[prompt], negative_prompt=neg, full_negative_prompt=[neg] if neg else [],
                 seed=str(seed), steps=steps, guidance_scale=cfg)
        return {"parameters": json.dumps(m), "fooocus_scheme": "fooocus"}
    if tool == "NovelAI":
        f = dict(SAMPLES["novelai"]["fields"])
        c = json.loads(f["Comment"])
        c.update(seed=seed, steps=steps, scale=float(cfg), uc=neg)
        f["Description"], f["Comment"] = prompt, json.dumps(c)
        return f
    raise ValueError(tool)


def row(name: str, meta: list[int], syn: list[int], mapped: int, regen: int) -> str:
    mb, sb, n = statistics.mean(meta), statistics.mean(syn), len(meta)
    return (f"| {name:<40} | {n:>5} | {mb:>9.0f} | {sb:>9.0f} | {mb / sb:>6.1f}x | {100 * mapped / n:>5.0f} % "
            f"| {100 * regen / n:>5.0f} % |")


def _without_texts(v):
    """The value with every string of 32 or more characters emptied (notes, prompts): what the rest costs."""
    if isinstance(v, dict):
        return {k: _without_texts(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_without_texts(x) for x in v]
    return "" if isinstance(v, str) and len(v) >= 32 else v


def graph_table() -> None:
    import zlib

    from aigif.syntax.graph_segment import encode_graph

    print("\n## ComfyUI graph segment vs compact JSON + zlib -9\n")
    print("| sample | JSON B | zlib -9 B | segment B | of which texts B | segment / zlib |\n|---|---|---|---|---|---|")
    ratios = []
    for name, s in SAMPLES.items():
        f = s["fields"]
        if "prompt" not in f:
            continue
        data = {"prompt": json.loads(f["prompt"]), **({"workflow": json.loads(f["workflow"])} if "workflow" in f else {})}
        js = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        z, seg = len(zlib.compress(js, 9)), len(encode_graph(data))
        texts = seg - len(encode_graph(_without_texts(data)))
        ratios.append(seg / z)
        print(f"| {name} | {len(js)} | {z} | {seg} | {texts} | {100 * seg / z:.0f} % |")
    print(f"| median of {len(ratios)} | | | | | {100 * statistics.median(ratios):.0f} % |")
    print("\n\"of which texts\": what the strings of 32 or more characters (prompts, notes) cost, the segment "
          "minus that of the graph with them emptied; they go through the prompt coder or deflate against the "
          "texts before them, and bound what the rest of the coding can gain.")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300, help="dev prompts per tool")
    args = ap.parse_args(argv)
    head = ("| samples                                  |     n | meta B    | .aigif B  |  ratio | syntax  | regen.  |\n"
            "|------------------------------------------|-------|-----------|-----------|--------|---------|---------|")
    print("## Fixture samples (real metadata texts), per tool\n")
    print(head)
    per_tool: dict[str, list] = {}
    for name, s in SAMPLES.items():
        if not s["fields"]:
            continue
        per_tool.setdefault(syntax_bytes(s["fields"])[4], []).append(syntax_bytes(s["fields"]))
    for tool, rows in sorted(per_tool.items()):
        print(row(tool, [r[0] for r in rows], [r[1] for r in rows], sum(r[2] for r in rows), sum(r[3] for r in rows)))
    graph_table()
    if not DEV.exists():
        print(f"\n({DEV} not found: dev-prompt part skipped)")
        return
    with gzip.open(DEV, "rt", encoding="utf-8") as fh:
        prompts = [line.rstrip("\n") for line, _ in zip(fh, range(args.n))]
    print(f"\n## Each tool's format with {len(prompts)} dev prompts\n")
    print(head)
    for tool in ("A1111", "Forge FLUX", "ComfyUI", "ComfyUI FLUX", "InvokeAI", "NovelAI", "Fooocus"):
        rng = random.Random(0)
        meta, syn, mapped, regen = [], [], 0, 0
        for p in prompts:
            m, b, ok, rg, _ = syntax_bytes(variants(tool, p, rng))
            meta.append(m)
            syn.append(b)
            mapped += ok
            regen += rg
        print(row(tool, meta, syn, mapped, regen))
        if tool == "A1111":
            print(f"|   (A1111 median .aigif B: {statistics.median(syn):.0f}) | | | | | | |")


if __name__ == "__main__":
    main()
