"""Self-describing NVTC payloads: image and residual codec API (CompressAI shape).

Payload (all integers little-endian, see ``spec/codec-nvtc.md``)::

    magic  4s  b"NVTC"
    version u8 1
    model_id u8   (zoo.MODEL_IDS)
    quality u8    (zoo.MODELS)
    flags  u8     bit0 residual, bit1 empty residual, bits2-3 residual shift, bit4 post filter,
                  bit5 adaptive entropy coding (rows that learn the image, :class:`.entropy.CoderRows`),
                  bit6 transposed (the stream codes the image's transpose: rows run down its columns),
                  bit7 layer directions (a symbol in front of every layer: the way the coder walks it)
    height u16, width u16
    length u32    byte length of the range-coded stream (multiple of 4)
    stream        constriction RangeEncoder words (u32 LE)
    [post  u16 length + block, only with flag bit4: the per-image filter of :mod:`.postfilter`]
    crc32  u32    zlib.crc32 of everything before it
"""
from __future__ import annotations

import contextlib
import struct
import zlib

import numpy as np

from ..errors import AigifError, ConfigError, CorruptError, FormatError, LimitError, TruncatedError, UnknownCodecError
from . import classfilter, postfilter, zoo

MAGIC = b"NVTC"
VERSION = 1
HEADER = struct.Struct("<4sBBBBHHI")
FLAG_RESIDUAL = 1
FLAG_EMPTY = 2
FLAG_POST = 16
FLAG_ADAPTIVE = 32
FLAG_TRANSPOSED = 64
FLAG_DIRECTIONS = 128
#: RD slope of the shipped model on Kodak, dB per e-fold of rate: the encoder keeps a post filter only when
#: its PSNR gain beats what the filter's bytes would buy on the codec's own curve
POST_FILTER_DB_PER_NEPER = 3.8
DEFAULT_MAX_PIXELS = zoo.DEFAULT_MAX_PIXELS
DECODE_THREADS = 1


def _check_image(rgb, what: str = "image") -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ConfigError(f"{what} must be a uint8 numpy array of shape (H, W, 3), got "
                          f"{getattr(rgb, 'dtype', type(rgb))} {getattr(rgb, 'shape', '')}")
    h, w = rgb.shape[:2]
    if not (1 <= h <= 0xFFFF and 1 <= w <= 0xFFFF):
        raise ConfigError(f"{what} size {w}x{h} outside 1..65535")
    return rgb


def _payload_bytes(stream: bytes, post: bytes = b"") -> int:
    """Length of the payload :func:`pack_payload` writes around ``stream`` and ``post``."""
    return HEADER.size + len(stream) + (2 + len(post) if post else 0) + 4


def pack_payload(model_id: int, quality: int, flags: int, h: int, w: int, stream: bytes, post: bytes = b"") -> bytes:
    if post:
        flags |= FLAG_POST
    post_block = struct.pack("<H", len(post)) + post if post else b""
    body = HEADER.pack(MAGIC, VERSION, model_id, quality, flags, h, w, len(stream)) + stream + post_block
    return body + struct.pack("<I", zlib.crc32(body))


def _unpack(data: bytes, max_pixels: int) -> tuple:
    """Validate a payload; returns (quality, flags, h, w, stream, post block). Never trusts a length."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FormatError(f"NVTC payload must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 4:
        raise TruncatedError(f"NVTC payload: {len(data)} bytes, header needs {HEADER.size + 4}")
    if data[:4] != MAGIC:
        raise FormatError(f"NVTC payload: bad magic {data[:4]!r} at offset 0, expected {MAGIC!r}")
    if len(data) < HEADER.size + 4:
        raise TruncatedError(f"NVTC payload: {len(data)} bytes, header needs {HEADER.size + 4}")
    _, version, model_id, quality, flags, h, w, length = HEADER.unpack_from(data)
    end = HEADER.size + length
    if len(data) < end + 4:
        raise TruncatedError(f"NVTC payload: stream of {length} bytes announced at offset 12, only "
                             f"{max(len(data) - HEADER.size - 4, 0)} present")
    post_at = end
    if flags & FLAG_POST:
        if len(data) < end + 2 + 4:
            raise TruncatedError(f"NVTC payload: post-filter length missing at offset {end}")
        (post_len,) = struct.unpack_from("<H", data, end)
        end += 2 + post_len
        if len(data) < end + 4:
            raise TruncatedError(f"NVTC payload: post filter of {post_len} bytes announced at offset {post_at}, "
                                 f"only {max(len(data) - post_at - 2 - 4, 0)} present")
    if len(data) > end + 4:
        raise CorruptError(f"NVTC payload: {len(data) - end - 4} trailing bytes after the crc at offset {end}")
    (crc,) = struct.unpack_from("<I", data, end)
    if zlib.crc32(data[:end]) != crc:
        raise CorruptError(f"NVTC payload: crc32 mismatch at offset {end}")
    if version != VERSION:
        raise CorruptError(f"NVTC payload: version {version} at offset 4, expected {VERSION}")
    if model_id in zoo.RETIRED_MODEL_IDS:
        raise UnknownCodecError(f"NVTC payload: model id {model_id} at offset 5 is retired "
                                f"({zoo.RETIRED_MODEL_IDS[model_id]}); re-encode the source image with this version")
    if model_id not in zoo.MODEL_IDS:
        raise UnknownCodecError(f"NVTC payload: unknown model id {model_id} at offset 5; known: {sorted(zoo.MODEL_IDS)}")
    if quality not in zoo.MODEL_QUALITIES[model_id]:
        raise UnknownCodecError(f"NVTC payload: unknown quality {quality} at offset 6; known: {list(zoo.QUALITIES)}")
    if h == 0 or w == 0:
        raise CorruptError(f"NVTC payload: empty image {w}x{h} at offset 8")
    if h * w > max_pixels:
        raise LimitError(f"NVTC payload: {w}x{h} = {w * h} pixels exceeds max_pixels={max_pixels}")
    if length % 4:
        raise CorruptError(f"NVTC payload: stream length {length} at offset 12 is not a multiple of 4")
    if (flags & FLAG_EMPTY) and (length or not flags & FLAG_RESIDUAL
                                 or flags & (FLAG_POST | FLAG_ADAPTIVE | FLAG_TRANSPOSED | FLAG_DIRECTIONS)):
        raise CorruptError("NVTC payload: empty flag on a non-empty, post-filtered, adaptive, transposed, "
                           "layer-directed or non-residual payload")
    post = b""
    if flags & FLAG_POST:
        post = data[post_at + 2 : end]
        coded = (w, h) if flags & FLAG_TRANSPOSED else (h, w)  # the filter runs on the coded image (5b)
        postfilter.unpack(post, *coded)  # validate (exact syntax, bounded sizes) before anything is decoded
    return quality, flags, h, w, data[HEADER.size : HEADER.size + length], post


def describe(data: bytes) -> str:
    """One line on a payload from its header (for ``aigif info``); never raises, never decodes."""
    try:
        quality, flags, h, w, _stream, post_block = _unpack(data, max_pixels=0xFFFF * 0xFFFF)
    except AigifError as exc:
        return f"<{len(data)} bytes, invalid: {exc}>"
    kind = "empty residual" if flags & FLAG_EMPTY else "residual" if flags & FLAG_RESIDUAL else "image"
    model = zoo.MODEL_IDS[data[5]]
    restored = " (restoration network)" if post_block[:1] == bytes([postfilter.SHAPE_RESTORED]) else ""
    post = ((f" + post filter{restored}" if flags & FLAG_POST else "") + (", adaptive coding" if flags & FLAG_ADAPTIVE else "")
            + (", transposed" if flags & FLAG_TRANSPOSED else "")
            + (", layer directions" if flags & FLAG_DIRECTIONS else ""))
    return f"NVTC {model} quality {quality}, {kind} {w}x{h}{post}, {len(data)} bytes ({len(data) * 8 / (w * h):.3f} bpp)"


def _encode(rgb: np.ndarray, quality: int, post_filter: bool = True, adaptive: bool = True,
            directions: bool = True, restoration: bool = True) -> tuple:
    """(range-coded stream, post-filter block or b"", what the decoder will output or None) of ``rgb``.

    The decoder's output is known only when the post filter was tried (it needs one decoder pass).
    """
    model, coded = _compress_symbols(rgb, quality, adaptive, directions)
    stream = coded["strings"][0]
    if not post_filter:
        return stream, b"", None
    h, w = rgb.shape[:2]
    decoded = _synthesize(model, coded["indices"], h, w, _integer_ops(zoo.MODELS[quality][1]["model_id"]))
    post, decoded = _choose_post_filter(decoded, rgb, _payload_bytes(stream), quality, restoration)
    return stream, post, decoded


def _compress_symbols(rgb: np.ndarray, quality: int, adaptive: bool, directions: bool) -> tuple:
    """(the quality's model, its ``compress`` output: range-coded strings and indices) of ``rgb``, edge-padded
    to the model's multiple; the closed loop follows the decoder of the model id the encoder writes."""
    import torch

    from .intsynth import exact_matmul
    from .model import pad_multiple

    model = zoo.load_model(quality)
    m = pad_multiple(model.config)
    h, w = rgb.shape[:2]
    padded = np.pad(rgb, ((0, -h % m), (0, -w % m), (0, 0)), mode="edge")
    x = torch.from_numpy(np.ascontiguousarray(padded)).permute(2, 0, 1)[None].float() / 255.0 - 0.5
    with exact_matmul():
        return model, model.compress(x, adaptive, directions, _integer_ops(zoo.MODELS[quality][1]["model_id"]))


def _transposed(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img.transpose(1, 0, 2))


def _encode_oriented(rgb: np.ndarray, quality: int, post_filter: bool, adaptive: bool, transpose,
                     directions: bool, restoration: bool = True) -> tuple:
    """(flag bits, stream, post-filter block, the decoder's output in ``rgb``'s orientation or None) of the better
    orientation: the rows of the coder's copy flags run along the image's rows, or (transposed) down its
    columns. ``transpose`` None tries both and keeps the one with the lower rate-distortion cost on the
    codec's own curve (``POST_FILTER_DB_PER_NEPER``); True / False forces one."""
    import math

    best = None
    options = (False, True) if transpose is None else (bool(transpose),)
    for t in options:
        src = _transposed(rgb) if t else rgb
        stream, post, decoded = _encode(src, quality, post_filter, adaptive, directions, restoration)
        if decoded is None and len(options) > 1:
            decoded = _decode(stream, quality, src.shape[0], src.shape[1], post, adaptive, directions)
        if t and decoded is not None:
            decoded = _transposed(decoded)
        found = (FLAG_TRANSPOSED if t else 0, stream, post, decoded)
        if len(options) == 1:
            return found
        mse = _mse(decoded, rgb)
        cost = (10 * math.log10(mse) if mse else -math.inf) + POST_FILTER_DB_PER_NEPER * math.log(
            _payload_bytes(stream, post))
        if best is None or cost < best[0]:
            best = (cost, found)
    return best[1]


def _choose_post_filter(decoded: np.ndarray, target: np.ndarray, payload_bytes: int, quality: int,
                        restoration: bool = True) -> tuple:
    """(post-filter block, the decoder's output with it) of the lowest rate-distortion cost on the codec's
    own curve (``POST_FILTER_DB_PER_NEPER``) among: nothing (b"", ``decoded``), the per-image filters of
    :mod:`.classfilter` fitted to this image, the model's restoration network (shape 3, :mod:`.restore`)
    and the network followed by filters fitted to its output."""
    import math

    def cost(out: np.ndarray, block: bytes) -> float:
        mse = _mse(out, target)
        return (-math.inf if mse == 0 else 10 * math.log10(mse)) + POST_FILTER_DB_PER_NEPER * math.log(
            payload_bytes + (2 + len(block) if block else 0))

    best = (cost(decoded, b""), b"", decoded)
    starts = [(b"", decoded)]
    if restoration and zoo.has_restorer(quality):
        restored = _restore(decoded, quality)
        starts.append((postfilter.pack(postfilter.Restored()), restored))
    for prefix, src in starts:
        if prefix:
            best = min(best, (cost(src, prefix), prefix, src), key=lambda c: c[0])
        pf = classfilter.fit(src, target, payload_bytes + len(prefix), POST_FILTER_DB_PER_NEPER)
        if pf is not None:
            block = prefix + classfilter.pack(pf)
            filtered = classfilter.apply(src, pf)
            best = min(best, (cost(filtered, block), block, filtered), key=lambda c: c[0])
    return best[1], best[2]


def _restore(img: np.ndarray, quality: int, model_id: int | None = None) -> np.ndarray:
    """The restoration network of ``model_id`` (default: the encoder's) on ``img`` decoded at ``quality``:
    in integers (any thread count), or the float network with ``DECODE_THREADS`` torch threads."""
    from .intsynth import exact_matmul
    from .restore import restore

    model_id = zoo.check_quality(quality)[1]["model_id"] if model_id is None else model_id
    if model_id in zoo.INT_FILES:
        with exact_matmul():
            return restore(zoo.load_integer(model_id)[1], img, quality)
    with _decode_threads():
        return restore(zoo.load_restorer(model_id), img, quality)


def _post_filtered(img: np.ndarray, quality: int, pf, model_id: int | None = None) -> np.ndarray:
    """``img`` after a parsed post-filter block: the restoration network first when it names it (shape 3)."""
    if isinstance(pf, postfilter.Restored):
        img, pf = _restore(img, quality, model_id), pf.inner
    return img if pf is None else postfilter.apply(img, pf)


def _integer_ops(model_id: int):
    """The integer synthesis of ``model_id`` (:mod:`.intsynth`), or None for a float model id."""
    return zoo.load_integer(model_id)[0] if model_id in zoo.INT_FILES else None


@contextlib.contextmanager
def _decode_threads():
    """Run a float decoding step with ``DECODE_THREADS`` torch threads (its bytes must not depend on the
    caller's thread count), restoring the caller's count after."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(DECODE_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _synthesize(model, idx: dict, h: int, w: int, ops=None) -> np.ndarray:
    """Indices -> uint8 (h, w, 3), cropped: the integer ``ops`` (any thread count) or, without them, the float
    path with ``DECODE_THREADS`` torch threads, rounded."""
    from .intsynth import exact_matmul

    with _decode_threads() if ops is None else exact_matmul():
        x = model.synthesize(idx, ops=ops)
    img = (ops or model).to_uint8(x[0]).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(img[:h, :w])


def _decode_payload(quality: int, flags: int, h: int, w: int, stream: bytes, post: bytes,
                    model_id: int | None = None) -> np.ndarray:
    """The coded image of an unpacked payload, in the payload's (h, w) orientation."""
    adaptive, directions = bool(flags & FLAG_ADAPTIVE), bool(flags & FLAG_DIRECTIONS)
    if flags & FLAG_TRANSPOSED:
        return _transposed(_decode(stream, quality, w, h, post, adaptive, directions, model_id))
    return _decode(stream, quality, h, w, post, adaptive, directions, model_id)


def _decode(stream: bytes, quality: int, h: int, w: int, post: bytes = b"", adaptive: bool = False,
            directions: bool = False, model_id: int | None = None) -> np.ndarray:
    """The coded image of a stream of ``model_id`` (default: the one the encoder writes)."""
    from .model import pad_multiple

    model = zoo.load_model(quality)
    m = pad_multiple(model.config)
    shape = (h + (-h % m), w + (-w % m))
    try:
        idx = model.decode_indices([stream], shape, adaptive, directions)[0]
    except AigifError:
        raise
    except Exception as exc:  # constriction rejects some impossible streams
        raise CorruptError(f"NVTC payload: range-coded stream does not decode ({exc})") from exc
    model_id = zoo.check_quality(quality)[1]["model_id"] if model_id is None else model_id
    img = _synthesize(model, idx, h, w, _integer_ops(model_id))
    return _post_filtered(img, quality, postfilter.unpack(post, h, w), model_id) if post else img


def compress_image(rgb: np.ndarray, quality: int, *, post_filter: bool = True, adaptive: bool = True,
                   transpose: bool | None = False, layer_directions: bool = True, restoration: bool = True) -> bytes:
    """Code an RGB image with the learned NVTC codec at ``quality`` (see ``QUALITIES``).

    ``post_filter``: let the encoder add the per-image filters of :mod:`.classfilter` (one per run
    of activity classes) and/or name the model's restoration network (:mod:`.restore`) when they pay
    for themselves (costs one decoder pass at encode time); ``restoration=False`` leaves the network out
    (the decoder then skips its ~0.2 s per 768x512 image; about 6 points of BD-rate on Kodak).
    ``adaptive``: entropy-code with rows that learn the image (flags bit 5; 1-2 % smaller).
    ``layer_directions``: every quantisation layer is coded in the direction its search finds
    cheapest: along rows or columns, either way (flags bit 7; about 3 % smaller at equal PSNR on
    Kodak; the index search runs four times, doubling the encoding time).
    ``transpose``: True codes the image's transpose (flags bit 6), None codes it both ways and
    keeps the better (twice the encoding time again, ~0.5 % smaller with layer directions).
    """
    _check_image(rgb)
    name, fixed = zoo.check_quality(quality)
    h, w = rgb.shape[:2]
    orient, stream, post, _decoded = _encode_oriented(rgb, quality, post_filter, adaptive, transpose, layer_directions,
                                                      restoration)
    return pack_payload(fixed["model_id"], quality, orient | _coding_flags(adaptive, layer_directions), h, w, stream, post)


def _coding_flags(adaptive: bool, layer_directions: bool) -> int:
    return (FLAG_ADAPTIVE if adaptive else 0) | (FLAG_DIRECTIONS if layer_directions else 0)


def decompress_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a :func:`compress_image` payload to a uint8 (H, W, 3) array."""
    quality, flags, h, w, stream, post = _unpack(data, max_pixels)
    if flags & FLAG_RESIDUAL:
        raise CorruptError("NVTC payload is a residual; use decompress_residual(data, reference)")
    return _decode_payload(quality, flags, h, w, stream, post, data[5])


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def compress_residual(original: np.ndarray, reference: np.ndarray, quality: int, *, post_filter: bool = True,
                      adaptive: bool = True, transpose: bool | None = False, layer_directions: bool = True,
                      restoration: bool = True) -> bytes:
    """Code ``original - reference`` (reference = the regenerated image).

    The residual is mapped to an image ``128 + round(diff / 2**shift)`` (shift 0
    or 1, chosen from its range) and coded like any image. When coding does not
    lower the error of the reference, an empty residual (header only) is written.
    """
    _check_image(original, "original")
    _check_image(reference, "reference")
    if original.shape != reference.shape:
        raise ConfigError(f"original {original.shape} and reference {reference.shape} differ in shape")
    name, fixed = zoo.check_quality(quality)
    h, w = original.shape[:2]
    diff = original.astype(np.int16) - reference.astype(np.int16)
    shift = 0 if np.percentile(np.abs(diff), 99.5) <= 120 else 1
    coded = np.clip(np.round(diff / float(1 << shift)) + 128, 0, 255).astype(np.uint8)
    orient, stream, post, decoded = _encode_oriented(coded, quality, post_filter, adaptive, transpose, layer_directions,
                                                     restoration)
    flags = FLAG_RESIDUAL | (shift << 2) | _coding_flags(adaptive, layer_directions) | orient
    if decoded is None:
        decoded = _decode_payload(quality, flags, h, w, stream, post)
    approx = _apply_residual(reference, decoded, shift)
    if _mse(approx, original) >= _mse(reference, original):
        return pack_payload(fixed["model_id"], quality, FLAG_RESIDUAL | FLAG_EMPTY, h, w, b"")
    return pack_payload(fixed["model_id"], quality, flags, h, w, stream, post)


def _apply_residual(reference: np.ndarray, coded: np.ndarray, shift: int) -> np.ndarray:
    diff = (coded.astype(np.int32) - 128) << shift
    return np.clip(reference.astype(np.int32) + diff, 0, 255).astype(np.uint8)


def decompress_residual(data: bytes, reference: np.ndarray, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Approximate original = reference + decoded residual."""
    _check_image(reference, "reference")
    quality, flags, h, w, stream, post = _unpack(data, max_pixels)
    if not flags & FLAG_RESIDUAL:
        raise CorruptError("NVTC payload is an image, not a residual; use decompress_image")
    if reference.shape[:2] != (h, w):
        raise CorruptError(f"NVTC residual is {w}x{h}, reference is {reference.shape[1]}x{reference.shape[0]}")
    if flags & FLAG_EMPTY:
        return reference.copy()
    return _apply_residual(reference, _decode_payload(quality, flags, h, w, stream, post, data[5]), (flags >> 2) & 3)
