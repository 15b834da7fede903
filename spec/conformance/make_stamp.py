"""Write the conformance files of the stamp segment (aigif-v1.md §4.6): valid/stamp-*, invalid/stamp-*.

Run from the repository root: ``python spec/conformance/make_stamp.py``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import aigif
from aigif.container import Segment, encode_uvarint, write_container
from aigif.syntax import dumps
from aigif.syntax.schema import encode_element
from aigif.syntax.stamp import stamp_values

sys.path.insert(0, str(Path(__file__).parent))
from make_core import write_files  # noqa: E402
GEN = {"model": "sd15", "prompt": "a watercolor fox in a misty forest", "seed": 3141592653, "num_inference_steps": 25,
       "guidance_scale": 7.0, "width": 512, "height": 768, "scheduler": "dpmpp-2m-karras"}
FP = {"pixel_sha256": "0123456789abcdef", "width": 512, "height": 768, "perceptual": "1b6ce4a0"}
CUDA = {"device": "cuda", "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "cuda": "12.8", "cudnn": "9.7.1",
        "torch": "2.13.0+cu128", "diffusers": "0.42.1", "transformers": "5.24.0", "dtype": "float16", "attention": "sdpa",
        "deterministic": True, "cpu": "x86_64-avx512"}
CPU = {"device": "cpu", "torch": "2.13.0+cpu", "diffusers": "0.42.1", "transformers": "5.24.0", "dtype": "float32",
       "attention": "sdpa", "deterministic": True, "cpu": "x86_64-avx2", "onednn": "avx2", "threads": 2}
HASHES = bytes.fromhex(FP["pixel_sha256"] + FP["perceptual"])


def stamp_file(values: list[int], head: bytes = HASHES, extra: tuple = (), seg_type: int = 0x0E) -> bytes:
    doc = aigif.document_from_dict(GEN)
    stamp = head + b"".join(encode_uvarint(v) for v in values)
    return write_container([Segment(3, encode_element(doc.model)), Segment(5, encode_element(doc.generation)),
                            Segment(seg_type, stamp), *extra])


def v1_file(platform: dict) -> bytes:
    """What writers before the 0x0E stamp wrote: the same platform in the 0x08 stamp."""
    return stamp_file(stamp_values(aigif.document_from_dict({**GEN, "platform": platform}).platform, 0x08), seg_type=0x08)


def main() -> int:
    cuda = dumps(aigif.document_from_dict({**GEN, "platform": CUDA, "fingerprint": FP}))
    cpu = dumps(aigif.document_from_dict({**GEN, "platform": CPU, "fingerprint": FP}))
    assert b"\x0e" in cuda and len(cuda) < 100, "the CUDA example must be written as a stamp"
    setup = 2 | 2 << 3 | 2 << 5          # float16, deterministic, sdpa
    valid = {
        "stamp-cuda": cuda,
        "stamp-cpu": cpu,
        "stamp-hashes-only": stamp_file([]),
        "stamp-future-values": stamp_file([setup, 1, 0, 0, 0, 0, 0, 0, 0, 0, 7, 99, 2**63]),
        "stamp-v1-cuda": v1_file(CUDA),
        "stamp-v1-cpu": v1_file(CPU),
    }
    v1 = {"seg_type": 0x08}
    platform_seg = Segment(2, encode_element(aigif.document_from_dict({**GEN, "platform": CPU}).platform))
    invalid = {
        "stamp-short": ("truncated", stamp_file([], head=HASHES[:11])),
        "stamp-truncated-value": ("truncated", stamp_file([], head=HASHES + b"\x82")),
        "stamp-no-generation": ("corrupt", write_container([Segment(9, b"\x00"), Segment(0x0E, HASHES)])),
        "stamp-and-platform": ("corrupt", stamp_file([setup], extra=(platform_seg,))),
        "stamp-twice": ("corrupt", stamp_file([setup], extra=(Segment(0x0E, HASHES),))),
        "stamp-and-stamp-v1": ("corrupt", stamp_file([setup], extra=(Segment(0x08, HASHES),))),
        "stamp-unknown-hardware": ("corrupt", stamp_file([setup, 127])),
        "stamp-unknown-dtype": ("corrupt", stamp_file([7 | 2 << 3 | 2 << 5])),
        "stamp-bad-deterministic": ("corrupt", stamp_file([2 | 3 << 3])),
        "stamp-unknown-cpu": ("corrupt", stamp_file([setup, 1, 100])),
        "stamp-torch-build-reserved": ("corrupt", stamp_file([setup, 1, 0, 24 * 4 + 3 + 1])),
        "stamp-torch-cu-without-cuda": ("corrupt", stamp_file([setup, 1, 0, 24 * 4 + 2 + 1])),
        "stamp-unknown-release": ("corrupt", stamp_file([setup, 1, 0, 0, 0, 1000])),
        "stamp-threads-too-many": ("corrupt", stamp_file([setup, 1, 0, 0, 0, 0, 0, 0, 0, 65536])),
        "stamp-v1-torch-build-reserved": ("corrupt", stamp_file([setup, 1, 0, 0, (2129 * 4 + 3) + 1], **v1)),
        "stamp-v1-threads-too-many": ("corrupt", stamp_file([setup, 1, 0, 0, 0, 0, 0, 0, 0, 65536], **v1)),
        "stamp-too-many-values": ("limit", stamp_file([0] * 1025)),
    }
    write_files(valid, invalid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
