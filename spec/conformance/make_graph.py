"""Build the ``comfyui-graph`` conformance files: ``comfyui-graph/*.bin`` (a payload) and ``*.json``
(``{"data": <the decoded JSON>}`` or ``{"error": <kind>}``), see ``spec/extensions.md`` section 8.1.

Run from the repository root: ``python spec/conformance/make_graph.py``. The graphs are real
ComfyUI metadata (the importer fixtures); the invalid payloads are edits of valid ones or short
streams written symbol by symbol. ``coding1-*`` payloads are in the byte coding that releases
before the range coding wrote (flags bit 4 clear); readers still decode them.
"""
from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
from aigif.syntax.jsoncode import MISSING  # noqa: E402
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


CODING1 = ("txt2img", "flux-dev", "values")        # also written in coding 1, as earlier releases did


def symbols(write, flags: int = 16) -> bytes:
    """A coding-2 payload (default flags: range-coded only, the prompt one value) of the symbols ``write(writer)`` emits."""
    from aigif.syntax.graph_coder import RangeSink
    from aigif.syntax.graph_segment import _NAME_INDEX
    from aigif.syntax.jsoncode import Writer

    w = Writer(_NAME_INDEX, RangeSink(), deltas=True)
    write(w)
    return bytes([1, flags]) + w.sink.finish()


def zero_delta(w) -> None:
    """An empty node-by-node workflow whose top-level ``revision`` is a zero delta from its prediction 0."""
    from aigif.syntax.graph_segment import _C_LINKS, _C_NODES, _C_WORKFLOW
    from aigif.syntax.jsoncode import DELTA, PATCH_KEYS, SAME

    w.value(None, MISSING, ("prompt", 0, 0))
    w.uint(0, "count", _C_NODES)
    w.tag(SAME, _C_LINKS, 2)
    w.tag(PATCH_KEYS, _C_WORKFLOW, 1)
    w.value(1, MISSING, ("id", 0, 0))
    w.tag(DELTA, ("revision", 0, 0), 4)
    w.uint(0, "delta", ("revision", 0, 0))


def invalid(payloads: dict[str, bytes]) -> dict[str, tuple[bytes, str]]:
    from aigif.syntax.graph_segment import _zdict

    from aigif.container.varint import encode_uvarint
    from aigif.syntax.graph_segment import _C_PROMPT
    from aigif.syntax.jsoncode import LIST, NEW_STR_DEFLATED, NULL, SAME, STRING_TAGS

    good, coded = payloads["coding1-txt2img"], payloads["txt2img"]
    raw_stream = bytes([1, 0])                      # version 1, no flags: one value follows
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, _zdict())
    bomb = bytes([1, 2]) + c.compress(b"\x0f\x00" * (2**21 + 1)) + c.flush()   # 4 MiB + 2 of "array of 0 items"
    return {
        "truncated": (good[:len(good) // 2], "truncated"),
        "empty": (b"", "truncated"),
        "bad-version": (bytes([2]) + good[1:], "corrupt"),
        "unknown-flag": (bytes([good[0], good[1] | 0x20]) + good[2:], "corrupt"),
        "same-without-prediction": (raw_stream + bytes([17]), "corrupt"),
        "name-out-of-range": (raw_stream + bytes([11]) + encode_uvarint(10**6), "corrupt"),
        "reference-before-any-string": (raw_stream + bytes([12, 0]), "corrupt"),
        "trailing-bytes": (raw_stream + bytes([0, 0]), "corrupt"),
        "duplicate-key": (raw_stream + bytes([16, 2, 14, 1, 0, 14, 1, 0]), "corrupt"),
        "inflates-over-limit": (bomb, "limit"),
        "nested-too-deep": (raw_stream + bytes([15, 1]) * 40 + bytes([0]), "limit"),
        "coded-truncated": (coded[:len(coded) // 2], "truncated"),
        "coded-trailing-byte": (coded + b"\x01", "corrupt"),
        "coded-not-canonical": (coded + b"\x00", "corrupt"),
        "coded-and-deflated": (bytes([coded[0], coded[1] | 2]) + coded[2:], "corrupt"),
        "coded-same-without-prediction": (symbols(lambda w: w.tag(SAME, _C_PROMPT, 0)), "corrupt"),
        "coded-string-tag-for-a-key": (symbols(lambda w: (w.tag(16, _C_PROMPT, 0), w.uint(1, "count", _C_PROMPT),
                                                          w.tag(NULL, _C_PROMPT, STRING_TAGS))), "corrupt"),
        "coded-expands-too-far": (symbols(lambda w: w.value([None] * 200000, MISSING, _C_PROMPT)), "limit"),
        "delta-in-coding-1": (raw_stream + bytes([23, 0]), "corrupt"),
        "coded-zero-delta": (symbols(zero_delta, flags=16 | 8 | 1), "corrupt"),
        "coded-deflated-string-first": (symbols(lambda w: (w.tag(NEW_STR_DEFLATED, _C_PROMPT, 0), w.uint(2, "length", _C_PROMPT),
                                                           w.sink.raw(b"\x03\x00"))), "corrupt"),
        "coded-count-too-large": (symbols(lambda w: (w.tag(LIST, _C_PROMPT, 0), w.uint(2**40, "count", _C_PROMPT))),
                                  "limit"),
    }


def main() -> None:
    from aigif.syntax.graph_segment import encode_graph

    OUT.mkdir(exist_ok=True)
    payloads = {}
    cases = valid()
    cases.update({f"coding1-{name}": cases[name] for name in CODING1})
    for name, data in cases.items():
        payloads[name] = encode_graph(data, coding=1 if name.startswith("coding1-") else 2)
        (OUT / f"{name}.bin").write_bytes(payloads[name])
        (OUT / f"{name}.json").write_text(json.dumps({"data": data}, ensure_ascii=False, indent=1) + "\n", "utf-8")
    for name, (payload, kind) in invalid(payloads).items():
        (OUT / f"invalid-{name}.bin").write_bytes(payload)
        (OUT / f"invalid-{name}.json").write_text(json.dumps({"error": kind}) + "\n", "utf-8")
    print(f"{len(payloads)} valid and {len(invalid(payloads))} invalid payloads in {OUT}")


if __name__ == "__main__":
    main()
