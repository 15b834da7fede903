"""Write the text-field conformance vectors: `python -m aigif.text.vectors --out spec/conformance/text`.

Each vector is `{"codec": id, "hex": "...", "text": "..."}`; decoders must map
hex -> text exactly. Codecs 0, 3 and 4 are byte-exact on encode as well; zstd
output may differ between library versions, only its decoding is normative.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

CASES = {
    "empty": "",
    "space": " ",
    "typical": "portrait of a cyberpunk woman, highly detailed, digital painting, artstation, concept art, smooth, "
    "sharp focus, illustration, art by artgerm and greg rutkowski and alphonse mucha",
    "weights": "(masterpiece:1.2), best quality, <lora:detail_tweaker:0.7>, [cat|dog], ((red hair)), {a|b}",
    "negative": "lowres, bad anatomy, bad hands, text, error, missing fingers, extra digit, cropped, worst quality, jpeg artifacts",
    "multilingual": "Ein Hund im Schnee, 東京の夜景, Москва ночью, مدينة, 🐱‍👤🚀✨",
    "whitespace": "line one\nline two\r\n\ttabbed  double  spaces  ",
    "novel-words": "xyzzyqqq zorblax frumious bandersnatch Ünïcödé",
    "astral": "\U0010ffff\U00010000\ue000\x00",
    "capitals": "A photo of an astronaut riding a horse on Mars, Greg Rutkowski, EasyNegative, BREAK, SDXL iPhone HDRi",
}


def build(out: Path) -> list[Path]:
    from . import TEXT_CODECS, decode_text, encode_text

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in CASES.items():
        for cid in sorted(TEXT_CODECS):
            if cid in (1, 2) and name not in ("typical", "multilingual", "empty"):
                continue
            data = encode_text(text, codec=cid)
            assert decode_text(data) == text
            p = out / f"{cid}-{TEXT_CODECS[cid].name}-{name}.json"
            p.write_text(json.dumps({"codec": cid, "hex": data.hex(), "text": text}, ensure_ascii=False, indent=1) + "\n",
                         encoding="utf-8")
            written.append(p)
    return written


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    for p in build(a.out):
        print(p)


if __name__ == "__main__":
    main()
