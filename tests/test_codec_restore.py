"""Post filter shape 3 (spec/codec-nvtc.md section 5a): the model's restoration network, then optional filters."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from aigif.codec import api, classfilter, compress_image, decompress_image, payload, postfilter, zoo
from aigif.codec.restore import RestoreNet, restore
from aigif.errors import CorruptError, ModelError, ModelMismatchError
from aigif.fileio import sha256_of_file
from tests.test_codec import photo, psnr

FLOAT_ID = 5  # the float network (model id 6 runs its integer version, tests/test_codec_integer.py)


def _net() -> RestoreNet:
    return zoo.load_restorer(FLOAT_ID)


def _whole(net: RestoreNet, img: np.ndarray, quality: int) -> np.ndarray:
    """The spec's formula on the whole image at once (edge-replicate to even, network, round, crop)."""
    h, w = img.shape[:2]
    p = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    x = torch.from_numpy(p).permute(2, 0, 1)[None].float() / 255 - 0.5
    with torch.no_grad():
        y = net(x, torch.tensor([quality - 1]))
    return ((y[0] + 0.5) * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()[:h, :w]


@pytest.mark.parametrize("shape,strip", [((37, 29), 3), ((64, 50), 5), ((9, 1), 1), ((1, 1), 4)])
def test_strips_compute_the_whole_image(shape, strip):
    """Strips with ``reach`` context rows give the whole image's output (float rounding aside: at most one
    level in a few pixels); a strip without enough context would change whole rows."""
    net = _net()
    img = photo(*shape, seed=shape[0])
    torch.set_num_threads(1)
    whole = _whole(net, img, 2)
    out = restore(net, img, 2, strip_rows=strip)
    assert out.shape == img.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - whole)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_the_shipped_network_restores_a_decode():
    """On a decoded photo-like image the network lowers the error at every quality (it is not the identity)."""
    img = photo(96, 112, seed=3)
    for q in (1, 4):
        plain = compress_image(img, q, post_filter=False, transpose=False)
        decoded, p = decompress_image(plain), payload.read_header(plain)
        restored = decompress_image(payload.pack(p.model_id, q, p.flags, p.height, p.width, p.stream, b"\x03"))
        assert not np.array_equal(restored, decoded)
        assert psnr(restored, img) > psnr(decoded, img)


def test_shape3_blocks_round_trip():
    bare = postfilter.unpack(b"\x03", 20, 20)
    assert bare == postfilter.Restored(None) and postfilter.pack(bare) == b"\x03"
    inner = classfilter.ClassifiedFilter(8, (0, 5), np.arange(2 * 3 * classfilter.WEIGHTS_PER_CHANNEL).reshape(
        2, 3, -1) - 40, order=2)
    block = postfilter.pack(postfilter.Restored(inner))
    assert block[0] == 3 and block[1:] == classfilter.pack(inner)
    back = postfilter.unpack(block, 20, 20)
    assert isinstance(back, postfilter.Restored) and back.inner.starts == inner.starts
    assert np.array_equal(back.inner.weights, inner.weights)


@pytest.mark.parametrize("block,match", [(b"\x03\x03", "shape 3 inside shape 3"), (b"\x03\x09\x08", "unknown shape 9"),
                                         (b"\x03\x01", "needs at least 2"), (b"\x03\x02\x08", "needs at least 8")])
def test_bad_shape3_blocks_are_corrupt(block, match):
    with pytest.raises(CorruptError, match=match):
        postfilter.unpack(block, 20, 20)


def test_encoder_picks_the_cheapest_post_filter_and_decoder_agrees():
    """The encoder's predicted output is what the decoder computes, whichever option (none, filters, network,
    network + filters) it kept; on a photo-like image it keeps the network."""
    img = photo(80, 96, seed=5)
    flags, stream, post, predicted = api._encode_oriented(img, 2, True, True, False, True)
    assert post[:1] == b"\x03"
    data = compress_image(img, 2, transpose=False)
    assert np.array_equal(decompress_image(data), predicted)
    assert "restoration network" in payload.describe(data)
    without = compress_image(img, 2, transpose=False, restoration=False)
    parts, parts_with = payload.read_header(without), payload.read_header(data)
    assert parts.post[:1] in (b"", b"\x02") and parts.stream == parts_with.stream  # same stream, only the filter differs


def test_restoration_weights_are_checked(tmp_path, monkeypatch):
    """A restoration file whose bytes differ from the registry's sha256 is refused; a missing one is a
    ModelError naming the file."""
    import shutil

    name = zoo.RESTORE_FILES[FLOAT_ID]
    shutil.copy(f"{zoo.ASSET_DIR}/{name}", tmp_path / name)
    with open(tmp_path / name, "r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))
    monkeypatch.setattr(zoo, "ASSET_DIR", str(tmp_path))
    zoo.load_restorer.cache_clear()
    try:
        with pytest.raises(ModelMismatchError, match="sha256"):
            zoo.load_restorer(FLOAT_ID)
        (tmp_path / name).unlink()
        with pytest.raises(ModelError, match="missing"):
            zoo.load_restorer(FLOAT_ID)
    finally:
        zoo.load_restorer.cache_clear()


def test_training_and_export_round_trip(tmp_path):
    """A few training steps lower the loss on toy pairs; the exported file loads into the same network."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from tools.train_nvtc_restore import export, train

    rng = np.random.default_rng(0)
    target = photo(40, 40, seed=1)
    noisy = np.clip(target.astype(int) + rng.integers(-12, 13, target.shape), 0, 255).astype(np.uint8)
    cfg = {"arch": "restore-v1", "channels": 8, "layers": 1, "qualities": 4}
    net = train([(0, noisy, target)], cfg, steps=300, batch=4, crop=24, lr=1e-2, log_every=0)
    assert psnr(restore(net, noisy, 1), target) > psnr(noisy, target)
    sha = export(net, str(tmp_path / "r.safetensors"))
    assert sha == sha256_of_file(str(tmp_path / "r.safetensors"))
    with safe_open(str(tmp_path / "r.safetensors"), framework="pt") as f:
        assert '"channels": 8' in f.metadata()["config"]
    back = RestoreNet(cfg)
    back.load_state_dict(load_file(str(tmp_path / "r.safetensors")))
    assert np.array_equal(restore(back.eval(), noisy, 3), restore(net, noisy, 3))


def test_strips_bound_the_working_memory():
    """Wide images get fewer rows per strip (about 2**18 half-resolution positions), never fewer than 8."""
    from aigif.codec import restore as r

    assert r.strip_rows_for(768) == 682 and r.strip_rows_for(65535) == 8 and r.strip_rows_for(1) == 1 << 18
    calls = []
    net = _net()
    forward = net.forward
    try:
        net.forward = lambda x, q: calls.append(x.shape[2]) or forward(x, q)
        restore(net, photo(40, 30, seed=1), 1, strip_rows=4)
    finally:
        del net.forward
    assert max(calls) == 2 * (4 + 2 * net.reach) and len(calls) == 5


def test_training_decodes_are_the_decoders_output_before_post_filters(tmp_path):
    """``decode`` caches what the decoder outputs for the default encoder's symbols, before any post filter."""
    from PIL import Image

    from tools.train_nvtc_restore import decode_training_set, load_pairs

    img = photo(40, 56, seed=7)
    Image.fromarray(img).save(tmp_path / "p.png")
    decode_training_set([str(tmp_path / "p.png")], str(tmp_path / "dec"), qualities=(1,))
    plain = decompress_image(compress_image(img, 1, post_filter=False, transpose=False))
    ((q, dec, target),) = load_pairs([str(tmp_path / "p.png")], str(tmp_path / "dec"), qualities=1)
    assert q == 0 and np.array_equal(dec, plain) and np.array_equal(target, img)


def _wrong_tensors(path: str) -> None:
    from safetensors.torch import save_file

    save_file({"inp.weight": torch.zeros(4, 4, 3, 3)}, path,
              metadata={"config": '{"arch": "restore-v1", "channels": 48, "layers": 3, "qualities": 4}'})


def _fewer_qualities(path: str) -> None:
    from tools.train_nvtc_restore import export

    export(RestoreNet({"arch": "restore-v1", "channels": 8, "layers": 1, "qualities": 2}), path)


@pytest.mark.parametrize("write,match", [(_wrong_tensors, "not a restore-v1 network"),
                                         (_fewer_qualities, "conditioned on 2 qualities")])
def test_restoration_file_that_does_not_fit_is_a_model_error(tmp_path, monkeypatch, write, match):
    """Weights that do not fit the configured network, or a network conditioned on fewer qualities than
    the model has (it would fail mid-decode), are refused by name at load (with the registry's hash
    switched off, as for a development file)."""
    name = zoo.RESTORE_FILES[FLOAT_ID]
    write(str(tmp_path / name))
    monkeypatch.setattr(zoo, "ASSET_DIR", str(tmp_path))
    monkeypatch.setattr(zoo, "SHA256", {})
    zoo.load_restorer.cache_clear()
    try:
        with pytest.raises(ModelError, match=match):
            zoo.load_restorer(FLOAT_ID)
    finally:
        zoo.load_restorer.cache_clear()
