"""Build the extension conformance files: ``valid/ext-*.aigif`` (+ expected ``aigif info --json``)
and ``invalid/ext-*.aigif`` (+ the expected error kind).

Run from the repository root: ``python spec/conformance/make_ext.py``. Every file is written
with ``aigif.dumps``; extension payloads use private or unassigned codes, so the expected
output is the same for every conforming decoder whatever plugins it has installed.
"""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import msgpack

HERE = Path(__file__).resolve().parent


def _base():
    from aigif import Document, Generation, ModelRef

    gen = Generation(prompt="a red fox in the snow, golden hour", negative_prompt="blurry", seed=1234,
                     num_inference_steps=20, guidance_scale=7.5, width=512, height=512, scheduler="dpmpp-2m-karras")
    return Document(generation=gen, model=ModelRef(name="sd15"))


def extension_segments() -> dict[str, list]:
    """name -> the extension segments of that file (the part this script owns byte for byte)."""
    from aigif.container import Segment

    note = msgpack.packb({"note": "kept verbatim by decoders without this extension", "v": 1}, use_bin_type=True)
    return {
        # one ancillary segment in the private range: decoded with a warning, kept as raw bytes
        "valid/ext-ancillary-private": [Segment(0x4000, note)],
        # several ancillary segments: public-but-unassigned code, empty payload, a 4-byte varint code;
        # their order and bytes must survive a rewrite
        "valid/ext-ancillary-many": [Segment(0x3FFE, b"\x00\x01\x02\xff"), Segment(0x4002, b""),
                                     Segment(0x200000, msgpack.packb([1, "two", None], use_bin_type=True))],
        # a critical segment (odd code) no decoder knows: the file must be refused
        "invalid/ext-critical-unknown": [Segment(0x4000, note), Segment(0x4001, msgpack.packb({"strength": 0.5}))],
    }


def build() -> dict[str, tuple[bytes, dict]]:
    """name -> (file bytes, expected sidecar JSON)."""
    import aigif

    out = {}
    for name, segs in extension_segments().items():
        data = aigif.dumps(_base().replace(extensions=tuple(segs)))
        if name.startswith("invalid/"):
            expected = {"error": "unknown-critical"}
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = aigif.document_to_dict(aigif.loads(data))
        out[name] = (data, expected)
    return out


def main() -> int:
    for name, (data, expected) in build().items():
        (HERE / f"{name}.aigif").write_bytes(data)
        text = json.dumps(expected) if "error" in expected else json.dumps(expected, indent=2, ensure_ascii=False)
        (HERE / f"{name}.json").write_text(text + "\n", "utf-8")
        print(f"{name}.aigif: {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
