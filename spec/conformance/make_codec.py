"""Write the NVTC codec conformance files (``spec/conformance/codec/``).

    .venv/bin/python spec/conformance/make_codec.py

Each ``NAME.nvtc`` payload has a ``NAME.json``:

* valid image payloads: header fields, the number of symbols of every
  (stage, layer), ``symbols_sha256`` (SHA-256 of every decoded symbol as
  uint16 little-endian, in decode order: the normative, machine-independent
  part) and ``pixels`` (the reference decoder's output, a PNG; another float
  implementation may differ by ``max_abs_diff``);
* residual payloads: the same plus ``reference`` (the PNG the residual is
  added to);
* payloads with a post filter (flags bit 4) also record it as ``post_filter``
  (``shape``, ``shift`` and the integer ``weights``..., section 5a; shape 3 as
  ``{"shape": 3, "inner": <the inner block's record or null>}``);
* payloads with layer directions (flags bit 7) list every layer's walk
  direction in decode order as ``layer_directions`` (section 4);
* invalid payloads: ``{"error": KIND}`` with the ``AigifError.kind`` a decoder
  raises (``spec/codec-nvtc.md`` section 1).

The source images are synthetic (no benchmark data). Rerun only when the
payload format or the shipped model changes; the test suite checks that the
library still decodes every file as recorded.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "codec")


def synthetic(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth, photo-like image: gradients, an edge, waves, mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 80 * np.sin(x / 9.0 + seed) * np.cos(y / 13.0)
    g = 90 + 0.6 * x + 0.3 * y
    b = 60 + 120 * (x + y > (h + w) / 2)
    return np.clip(np.stack([r, g, b], -1) + rng.normal(0, 3, (h, w, 3)), 0, 255).astype(np.uint8)


def symbols_of(data: bytes) -> dict:
    """Decoded symbols of a payload, {(stage, layer): array}, in decode order."""
    return decode_symbols(data)[0]


def layer_directions_of(data: bytes) -> list | None:
    """Every layer's walk direction in decode order (flags bit 7, section 4), or None without bit 7."""
    from aigif.codec import payload

    if not data[7] & payload.FLAG_DIRECTIONS:
        return None
    return list(decode_symbols(data)[1].values())


def decode_symbols(data: bytes) -> tuple:
    """({(stage, layer): symbols}, {(stage, layer): walk direction}) of a payload, in decode order."""
    from aigif.codec import payload, zoo
    from aigif.codec.model import pad_multiple

    p = payload.read_header(data)
    model = zoo.load_model(p.quality)
    m = pad_multiple(model.config)
    h, w = p.coded_shape  # section 5b: a transposed stream codes a width x height image
    idx, directions = model.decode_indices([p.stream], (h + (-h % m), w + (-w % m)),
                                           bool(p.flags & payload.FLAG_ADAPTIVE), bool(p.flags & payload.FLAG_DIRECTIONS))
    return {k: v.numpy() for k, v in idx.items()}, directions


def symbols_sha256(symbols: dict) -> str:
    h = hashlib.sha256()
    for key in symbols:  # decode order
        h.update(symbols[key].astype("<u2").tobytes())
    return h.hexdigest()


def post_filter_of(data: bytes) -> dict | None:
    """The parsed post filter of a payload (section 5a), or None."""
    from aigif.codec import payload, postfilter

    p = payload.read_header(data)
    return _filter_dict(p.post, postfilter.unpack(p.post, *p.coded_shape)) if p.post else None


def _filter_dict(post: bytes, pf) -> dict | None:
    if not post:
        return None
    if post[0] == 3:
        return {"shape": 3, "inner": _filter_dict(post[1:], pf.inner)}
    if post[0] == 1:
        return {"shape": 1, "shift": pf.shift, "weights": pf.weights.tolist()}
    return {"shape": post[0], "shift": pf.shift, "starts": list(pf.starts), "order": pf.order,
            "band_order": pf.band_order, "offsets": None if pf.offsets is None else pf.offsets.tolist(),
            "block_log2": pf.block_log2, "block_order": pf.block_order,
            "blocks": None if pf.blocks is None else pf.blocks.tolist(), "weights": pf.weights.tolist()}


def header_of(data: bytes) -> dict:
    from aigif.codec import payload

    _m, version, model_id, quality, flags, h, w, length = payload.HEADER.unpack_from(data)
    return {"version": version, "model_id": model_id, "quality": quality, "flags": flags, "height": h, "width": w,
            "stream_bytes": length}


#: largest difference a conforming decoder may show per model id: id 6 decodes in integers (exact), id 5's
#: float synthesis and restoration network differ by CPU instruction set (up to 3 levels measured)
MAX_ABS_DIFF = {5: 3, 6: 0}


def write_valid(name: str, data: bytes, decoded: np.ndarray, reference: np.ndarray | None = None) -> None:
    symbols = symbols_of(data) if len(data) > 20 else {}
    expected = header_of(data)
    expected["symbols"] = {f"s{s}_l{l}": int(v.size) for (s, l), v in symbols.items()}
    expected["symbols_sha256"] = symbols_sha256(symbols)
    expected["pixels"] = f"{name}.png"
    expected["max_abs_diff"] = MAX_ABS_DIFF[expected["model_id"]]
    post = post_filter_of(data)
    if post is not None:
        expected["post_filter"] = post
    directions = layer_directions_of(data) if symbols else None
    if directions is not None:
        expected["layer_directions"] = directions
    if reference is not None:
        expected["reference"] = f"{name}.reference.png"
        Image.fromarray(reference).save(os.path.join(OUT, f"{name}.reference.png"))
    Image.fromarray(decoded).save(os.path.join(OUT, f"{name}.png"))
    with open(os.path.join(OUT, f"{name}.nvtc"), "wb") as f:
        f.write(data)
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


def write_invalid(name: str, data: bytes, kind: str) -> None:
    with open(os.path.join(OUT, f"{name}.nvtc"), "wb") as f:
        f.write(data)
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump({"error": kind}, f)
        f.write("\n")


def recrc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def main() -> None:
    import torch

    from aigif.codec import QUALITIES, api, compress_image, compress_residual, decompress_image, decompress_residual
    from aigif.codec import payload, postfilter, zoo
    model_id = zoo.DEFAULT_MODEL_ID
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    for old in os.listdir(OUT):
        os.remove(os.path.join(OUT, old))
    img = synthetic(80, 96, seed=1)
    payloads = {}
    for q in QUALITIES:
        data = compress_image(img, q)
        payloads[q] = data
        write_valid(f"image-q{q}-96x80", data, decompress_image(data))
    tall = synthetic(200, 24, seed=2)  # several 64-row pads, a narrow image
    data = compress_image(tall, QUALITIES[0])
    write_valid("image-q1-24x200", data, decompress_image(data))
    plain = compress_image(img, QUALITIES[2], post_filter=False, adaptive=False, transpose=False,
                           layer_directions=False)
    write_valid("image-q3-96x80-plain", plain, decompress_image(plain))  # flags 0: static rows, no filter
    static = compress_image(img, QUALITIES[3], adaptive=False, transpose=False, layer_directions=False)
    write_valid("image-q4-96x80-static-rows", static, decompress_image(static))
    directed = compress_image(synthetic(96, 128, seed=6), QUALITIES[0], adaptive=False, transpose=False)
    assert len(set(layer_directions_of(directed))) >= 3  # several directions occur
    write_valid("image-q1-128x96-static-directions", directed, decompress_image(directed))
    keep, has_restorer = api.POST_FILTER_DB_PER_NEPER, zoo.has_restorer
    api.POST_FILTER_DB_PER_NEPER = 0.0  # keep every filter that helps: small images rarely pay for one
    try:
        restored = compress_image(synthetic(80, 96, seed=4), QUALITIES[1])
        zoo.has_restorer = lambda quality: False  # shape 2 alone (the mutations below edit its fields)
        post = compress_image(synthetic(80, 96, seed=4), QUALITIES[1])
    finally:
        api.POST_FILTER_DB_PER_NEPER, zoo.has_restorer = keep, has_restorer
    assert post_filter_of(post)["shape"] == 2 and len(post_filter_of(post)["starts"]) > 1
    write_valid("image-q2-96x80-post-filter", post, decompress_image(post))
    assert post_filter_of(restored)["shape"] == 3 and post_filter_of(restored)["inner"]["shape"] == 2
    write_valid("image-q2-96x80-restored", restored, decompress_image(restored))  # network, then shape 2
    p = payload.read_header(restored)
    bare = payload.pack(model_id, p.quality, p.flags, p.height, p.width, p.stream, b"\x03")
    write_valid("image-q2-96x80-restored-bare", bare, decompress_image(bare))  # the network alone
    # model id 5: the same symbols and filter through the float synthesis and network (platform-dependent)
    float5 = payload.pack(5, *p[1:])
    write_valid("image-q2-96x80-restored-id5-float", float5, decompress_image(float5))
    # shape 1 (one filter for the whole image; the reference encoder now writes shape 2)
    src = synthetic(80, 96, seed=4)
    unfiltered = compress_image(src, QUALITIES[1], post_filter=False)
    p = payload.read_header(unfiltered)
    block = postfilter.pack(postfilter.fit(decompress_image(unfiltered), src))
    shape1 = payload.pack(model_id, p.quality, p.flags, p.height, p.width, p.stream, block)
    assert post_filter_of(shape1)["shape"] == 1
    write_valid("image-q2-96x80-post-filter-shape1", shape1, decompress_image(shape1))
    flipped = compress_image(synthetic(96, 72, seed=5), QUALITIES[1], transpose=True, layer_directions=False)
    assert flipped[7] & payload.FLAG_TRANSPOSED
    write_valid("image-q2-72x96-transposed", flipped, decompress_image(flipped))  # coded as 72 rows x 96 columns

    original = synthetic(64, 64, seed=3)
    y, x = np.mgrid[0:64, 0:64]
    offset = (25 * np.sin(x / 20.0) + 15 * np.cos(y / 15.0)).astype(np.int16)[..., None]
    reference = np.clip(original.astype(np.int16) + offset, 0, 255).astype(np.uint8)
    data = compress_residual(original, reference, QUALITIES[-1])
    write_valid("residual-q4-64x64", data, decompress_residual(data, reference), reference)
    empty = recrc(struct.pack("<4sBBBBHHI", b"NVTC", 1, model_id, 1, 3, 64, 64, 0))
    write_valid("residual-empty-64x64", empty, decompress_residual(empty, reference), reference)

    good = payloads[QUALITIES[0]]
    body = good[:-4]
    write_invalid("bad-magic", b"NVTX" + good[4:], "format")
    write_invalid("truncated-header", good[:10], "truncated")
    write_invalid("truncated-stream", good[:-9], "truncated")
    write_invalid("trailing-bytes", good + b"\x00", "corrupt")
    write_invalid("bad-crc", body + bytes([good[-4] ^ 1]) + good[-3:], "corrupt")
    write_invalid("version-2", recrc(body[:4] + b"\x02" + body[5:]), "corrupt")
    write_invalid("model-id-1-retired", recrc(body[:5] + b"\x01" + body[6:]), "unknown-codec")
    write_invalid("model-id-2-retired", recrc(body[:5] + b"\x02" + body[6:]), "unknown-codec")
    write_invalid("model-id-3-retired", recrc(body[:5] + b"\x03" + body[6:]), "unknown-codec")
    write_invalid("model-id-4-retired", recrc(body[:5] + b"\x04" + body[6:]), "unknown-codec")
    write_invalid("unknown-quality", recrc(body[:6] + b"\x09" + body[7:]), "unknown-codec")
    (length,) = struct.unpack_from("<I", post, 12)
    at = 16 + length  # the post filter's u16 length
    pbody = post[:-4]
    write_invalid("post-filter-missing", recrc(pbody[:at]), "truncated")
    write_invalid("post-filter-truncated", pbody[:-3] + post[-4:], "truncated")
    write_invalid("post-filter-bad-shape", recrc(pbody[: at + 2] + b"\x07" + pbody[at + 3 :]), "corrupt")
    write_invalid("post-filter-shift-0", recrc(pbody[: at + 3] + b"\x00" + pbody[at + 4 :]), "corrupt")
    write_invalid("post-filter-13-filters", recrc(pbody[: at + 4] + b"\x0d" + pbody[at + 5 :]), "corrupt")
    write_invalid("post-filter-class-starts-not-increasing",
                  recrc(pbody[: at + 10] + b"\x00" + pbody[at + 11 :]), "corrupt")
    write_invalid("post-filter-7-bands", recrc(pbody[: at + 6] + b"\x07" + pbody[at + 7 :]), "corrupt")
    write_invalid("post-filter-blocks-of-8", recrc(pbody[: at + 8] + b"\x03" + pbody[at + 9 :]), "corrupt")
    write_invalid("post-filter-extra-byte",
                  recrc(pbody[:at] + struct.pack("<H", len(pbody) - at - 1) + pbody[at + 2 :] + b"\x00"), "corrupt")
    (rlength,) = struct.unpack_from("<I", restored, 12)
    rat, rbody = 16 + rlength, restored[:-4]  # rbody[rat + 2] is the shape byte 3
    write_invalid("post-filter-restoration-nested", recrc(rbody[: rat + 3] + b"\x03" + rbody[rat + 4 :]), "corrupt")
    write_invalid("post-filter-restoration-bad-inner", recrc(rbody[: rat + 3] + b"\x07" + rbody[rat + 4 :]), "corrupt")
    write_invalid("post-filter-on-empty-residual", recrc(pbody[:7] + bytes([pbody[7] | 3]) + pbody[8:]), "corrupt")
    write_invalid("transposed-empty-residual",
                  recrc(empty[:7] + bytes([empty[7] | payload.FLAG_TRANSPOSED]) + empty[8:-4]), "corrupt")
    write_invalid("directions-empty-residual",
                  recrc(empty[:7] + bytes([empty[7] | payload.FLAG_DIRECTIONS]) + empty[8:-4]), "corrupt")
    write_invalid("post-filter-on-image-without-flag", recrc(pbody[:7] + bytes([pbody[7] & ~16]) + pbody[8:]), "corrupt")
    write_invalid("empty-flag-on-image", recrc(body[:7] + b"\x02" + body[8:]), "corrupt")
    write_invalid("zero-width", recrc(body[:10] + b"\x00\x00" + body[12:]), "corrupt")
    write_invalid("over-pixel-limit", recrc(struct.pack("<4sBBBBHHI", b"NVTC", 1, model_id, 1, 0, 65535, 65535, 0)), "limit")
    write_invalid("stream-length-not-words", recrc(struct.pack("<4sBBBBHHI", b"NVTC", 1, model_id, 1, 0, 8, 8, 3) + b"abc"),
                  "corrupt")
    print(f"wrote {len(os.listdir(OUT))} files to {OUT}")


if __name__ == "__main__":
    main()
