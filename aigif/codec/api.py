"""NVTC image and residual coding (CompressAI shape): ``compress_*`` writes a payload
(:mod:`.payload`), ``decompress_*`` reads one back."""
from __future__ import annotations

import contextlib

import numpy as np

from ..errors import AigifError, ConfigError, CorruptError
from ..fidelity.metrics import mse
from . import classfilter, postfilter, zoo
from .payload import (FLAG_ADAPTIVE, FLAG_DIRECTIONS, FLAG_EMPTY, FLAG_RESIDUAL, FLAG_TRANSPOSED, Payload, pack,
                      read_header, size)

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
    decoded = _synthesize(model, coded["indices"], h, w, _integer_ops(zoo.encoder_model_id(quality)))
    post, decoded = _choose_post_filter(decoded, rgb, size(stream), quality, restoration)
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
        return model, model.compress(x, adaptive, directions, _integer_ops(zoo.encoder_model_id(quality)))


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
        err = mse(decoded, rgb)
        cost = (10 * math.log10(err) if err else -math.inf) + POST_FILTER_DB_PER_NEPER * math.log(
            size(stream, post))
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
        err = mse(out, target)
        return (-math.inf if err == 0 else 10 * math.log10(err)) + POST_FILTER_DB_PER_NEPER * math.log(
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

    model_id = zoo.encoder_model_id(quality) if model_id is None else model_id
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


def _decode_payload(p: Payload) -> np.ndarray:
    """The coded image of a validated payload, in the image's (height, width) orientation."""
    img = _decode(p.stream, p.quality, *p.coded_shape, p.post, bool(p.flags & FLAG_ADAPTIVE),
                  bool(p.flags & FLAG_DIRECTIONS), p.model_id)
    return _transposed(img) if p.flags & FLAG_TRANSPOSED else img


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
    model_id = zoo.encoder_model_id(quality) if model_id is None else model_id
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
    return pack(fixed["model_id"], quality, orient | _coding_flags(adaptive, layer_directions), h, w, stream, post)


def _coding_flags(adaptive: bool, layer_directions: bool) -> int:
    return (FLAG_ADAPTIVE if adaptive else 0) | (FLAG_DIRECTIONS if layer_directions else 0)


def decompress_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a :func:`compress_image` payload to a uint8 (H, W, 3) array."""
    p = read_header(data, max_pixels)
    if p.flags & FLAG_RESIDUAL:
        raise CorruptError("NVTC payload is a residual; use decompress_residual(data, reference)")
    return _decode_payload(p)


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
        decoded = _decode_payload(Payload(fixed["model_id"], quality, flags, h, w, stream, post))
    approx = _apply_residual(reference, decoded, shift)
    if mse(approx, original) >= mse(reference, original):
        return pack(fixed["model_id"], quality, FLAG_RESIDUAL | FLAG_EMPTY, h, w, b"")
    return pack(fixed["model_id"], quality, flags, h, w, stream, post)


def _apply_residual(reference: np.ndarray, coded: np.ndarray, shift: int) -> np.ndarray:
    diff = (coded.astype(np.int32) - 128) << shift
    return np.clip(reference.astype(np.int32) + diff, 0, 255).astype(np.uint8)


def decompress_residual(data: bytes, reference: np.ndarray, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Approximate original = reference + decoded residual."""
    _check_image(reference, "reference")
    p = read_header(data, max_pixels)
    if not p.flags & FLAG_RESIDUAL:
        raise CorruptError("NVTC payload is an image, not a residual; use decompress_image")
    if reference.shape[:2] != (p.height, p.width):
        raise CorruptError(f"NVTC residual is {p.width}x{p.height}, reference is {reference.shape[1]}x{reference.shape[0]}")
    if p.flags & FLAG_EMPTY:
        return reference.copy()
    return _apply_residual(reference, _decode_payload(p), p.residual_shift)
