"""Build the ``comfyui-graph`` conformance files: ``comfyui-graph/*.bin`` (a payload) and ``*.json``
(``{"data": <the decoded JSON>}`` or ``{"error": <kind>}``), see ``spec/extensions.md`` section 8.1.

Run from the repository root: ``python spec/conformance/make_graph.py``. The graphs are real
ComfyUI metadata (the importer fixtures); the invalid payloads are edits of valid ones.
"""
from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = HERE / "comfyui-graph"
SAMPLES = ROOT / "tests" / "fixtures" / "importers" / "samples.json"

TRICKY = {"prompt": {"values": [0, -1, 2**64 - 1, 2**64, -(2**70), 0.1, 1.0, -0.0, 1e308, 5e-324, 422.84503173828125,
                                1e-7, "", "007", "0", "12345", "héllo wörld", None, True, False, [], {}, [[1, [2, [3]]]]],
                     "keys": {"b": 1, "a": 2, "class_type": "not a node"}}}


def valid() -> dict[str, dict]:
    samples = json.loads(SAMPLES.read_text("utf-8"))

    def graph(name: str, workflow: bool = True) -> dict:
        f = samples[name]["fields"]
        return {"prompt": json.loads(f["prompt"]), **({"workflow": json.loads(f["workflow"])} if workflow else {})}

    return {
        "txt2img": graph("comfyui_txt2img"),
        "api-only": graph("comfyui_txt2img", workflow=False),
        "flux-dev": graph("comfyui_flux_dev"),
        "area-composition": graph("comfyui_complex"),
        "values": TRICKY,
    }


def invalid(payloads: dict[str, bytes]) -> dict[str, tuple[bytes, str]]:
    from aigif.syntax.graph_segment import _zdict

    good = payloads["txt2img"]
    raw_stream = bytes([1, 0])                      # version 1, no flags: one value follows
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, _zdict())
    bomb = bytes([1, 2]) + c.compress(b"\x0f\x00" * (2**21 + 1)) + c.flush()   # 4 MiB + 2 of "array of 0 items"
    return {
        "truncated": (good[:len(good) // 2], "truncated"),
        "empty": (b"", "truncated"),
        "bad-version": (bytes([2]) + good[1:], "corrupt"),
        "unknown-flag": (bytes([good[0], good[1] | 0x10]) + good[2:], "corrupt"),
        "same-without-prediction": (raw_stream + bytes([17]), "corrupt"),
        "name-out-of-range": (raw_stream + bytes([11]) + (10**6).to_bytes(3, "little"), "corrupt"),
        "reference-before-any-string": (raw_stream + bytes([12, 0]), "corrupt"),
        "trailing-bytes": (raw_stream + bytes([0, 0]), "corrupt"),
        "duplicate-key": (raw_stream + bytes([16, 2, 14, 1, 0, 14, 1, 0]), "corrupt"),
        "inflates-over-limit": (bomb, "limit"),
        "nested-too-deep": (raw_stream + bytes([15, 1]) * 40 + bytes([0]), "limit"),
    }


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from aigif.syntax.graph_segment import encode_graph

    OUT.mkdir(exist_ok=True)
    payloads = {}
    for name, data in valid().items():
        payloads[name] = encode_graph(data)
        (OUT / f"{name}.bin").write_bytes(payloads[name])
        (OUT / f"{name}.json").write_text(json.dumps({"data": data}, ensure_ascii=False, indent=1) + "\n", "utf-8")
    for name, (payload, kind) in invalid(payloads).items():
        (OUT / f"invalid-{name}.bin").write_bytes(payload)
        (OUT / f"invalid-{name}.json").write_text(json.dumps({"error": kind}) + "\n", "utf-8")
    print(f"{len(payloads)} valid and {len(invalid(payloads))} invalid payloads in {OUT}")


if __name__ == "__main__":
    main()
