"""Per tool: bytes of generation metadata embedded in the image vs bytes of the .aigif syntax.

    .venv/bin/python benchmarks/bench_import.py [--n 300]

Two parts:
1. the fixture samples (real metadata texts of each tool, tests/fixtures/importers);
2. each tool's metadata format filled with N prompts of the dev prompt set
   (../shared/data/prompts/dev.txt.gz), the realistic case for a whole library.
"Syntax bytes" is the syntax-only .aigif file (container, generation, model, source);
for unsupported metadata it is the file holding the source extra (no pixels counted).
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
from aigif.importers.detect import map_embedded  # noqa: E402
from aigif.importers.extract import Embedded  # noqa: E402

SAMPLES = json.loads((ROOT / "tests/fixtures/importers/samples.json").read_text(encoding="utf-8"))
DEV = ROOT.parent / "shared/data/prompts/dev.txt.gz"
NEGATIVE = "lowres, bad anatomy, bad hands, text, error, missing fingers, extra digit, cropped, worst quality, low quality, jpeg artifacts, signature, watermark, blurry"


def syntax_bytes(fields: dict) -> tuple[int, int, bool, str]:
    emb = Embedded(fields, "png-text", sum(len(v.encode()) for v in fields.values()), "PNG", (512, 512))
    imp = map_embedded(emb)
    if imp.has_syntax:
        doc = Document(generation=imp.generation, model=imp.model, source=imp.source)
    else:
        doc = Document(source=imp.source, pixels=b"")
    return emb.nbytes, len(dumps(doc)), imp.has_syntax, imp.tool


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


def row(name: str, meta: list[int], syn: list[int], mapped: int) -> str:
    mb, sb = statistics.mean(meta), statistics.mean(syn)
    return f"| {name:<24} | {len(meta):>5} | {mb:>9.0f} | {sb:>9.0f} | {mb / sb:>6.1f}x | {mapped:>3}/{len(meta):<3} |"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300, help="dev prompts per tool")
    args = ap.parse_args(argv)
    head = ("| samples                  |     n | meta B    | .aigif B  |  ratio | syntax  |\n"
            "|--------------------------|-------|-----------|-----------|--------|---------|")
    print("## Fixture samples (real metadata texts)\n")
    print(head)
    for name, s in SAMPLES.items():
        if not s["fields"]:
            continue
        m, b, ok, tool = syntax_bytes(s["fields"])
        print(row(f"{tool}: {name}", [m], [b], int(ok)))
    if not DEV.exists():
        print(f"\n({DEV} not found: dev-prompt part skipped)")
        return
    with gzip.open(DEV, "rt", encoding="utf-8") as fh:
        prompts = [line.rstrip("\n") for line, _ in zip(fh, range(args.n))]
    print(f"\n## Each tool's format with {len(prompts)} dev prompts\n")
    print(head)
    for tool in ("A1111", "ComfyUI", "InvokeAI", "NovelAI", "Fooocus"):
        rng = random.Random(0)
        meta, syn, mapped = [], [], 0
        for p in prompts:
            m, b, ok, _ = syntax_bytes(variants(tool, p, rng))
            meta.append(m)
            syn.append(b)
            mapped += ok
        print(row(tool, meta, syn, mapped))


if __name__ == "__main__":
    main()
