import io
import json

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

import aigif
from aigif import pillow_plugin
from aigif.errors import AigifError, ConfigError, ModelError
from aigif.fidelity import fingerprint
from aigif.syntax import Document, Generation, ModelRef, document_to_dict, dumps, loads

GEN = Generation(prompt="a small red house", seed=11, num_inference_steps=3, guidance_scale=7.5, width=64, height=64)


@pytest.fixture(scope="module")
def generated():
    from aigif.engine import default_engine

    return default_engine().generate(GEN)


@pytest.fixture(scope="module")
def aigif_bytes(generated):
    return dumps(generated.document)


class CountingEngine:
    def __init__(self):
        self.calls = 0

    def decode(self, doc):
        self.calls += 1
        raise AssertionError("open() must not regenerate")


def test_accept_and_registration():
    assert pillow_plugin._accept(b"\x89AIG\x01rest")
    assert not pillow_plugin._accept(b"\x89PNG\r\n\x1a\n")
    pillow_plugin.register()
    pillow_plugin.register()
    assert Image.ID.count("AIGIF") == 1
    assert Image.EXTENSION[".aigif"] == "AIGIF"
    assert Image.MIME["AIGIF"] == "image/x-aigif"
    assert "AIGIF" in Image.SAVE


def test_open_parses_syntax_only_and_is_lazy(tmp_path, aigif_bytes, generated):
    path = tmp_path / "house.aigif"
    path.write_bytes(aigif_bytes)
    fake = CountingEngine()
    pillow_plugin.set_engine(fake)
    try:
        with Image.open(path) as im:
            assert (im.format, im.size, im.mode) == ("AIGIF", (64, 64), "RGB")
            assert im.get_format_mimetype() == "image/x-aigif"
            assert json.loads(im.info["aigif"]) == document_to_dict(generated.document)
            assert im.info["aigif_kind"] == "syntax"
            assert im.aigif_document == generated.document
    finally:
        pillow_plugin.set_engine(None)
    assert fake.calls == 0


def test_load_regenerates_the_pixels(tmp_path, aigif_bytes, generated):
    path = tmp_path / "house.aigif"
    path.write_bytes(aigif_bytes)
    with Image.open(path) as im:
        px = np.asarray(im)              # first pixel access regenerates
        assert np.array_equal(px, generated.image)
        assert im.aigif_report.status == "exact"
        assert im.info["aigif_fidelity"] == "exact"
        assert im.aigif_source == "regenerated"
    with Image.open(io.BytesIO(aigif_bytes)) as im:   # file objects work too
        assert np.array_equal(np.asarray(im.convert("L")), np.asarray(Image.fromarray(generated.image).convert("L")))


def test_missing_model_raises_on_load_not_open(tmp_path):
    doc = Document(generation=GEN, model=ModelRef(local="no-such-model", family="sd1"))
    path = tmp_path / "missing.aigif"
    path.write_bytes(dumps(doc))
    im = Image.open(path)                 # fine: only the syntax is read
    assert im.size == (64, 64)
    with pytest.raises(ModelError):
        im.load()
    im.close()


def test_bad_files(tmp_path, aigif_bytes):
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(b"not an image at all"))
    for cut in (5, len(aigif_bytes) // 2, len(aigif_bytes) - 1):
        with pytest.raises(AigifError):
            Image.open(io.BytesIO(aigif_bytes[:cut]))
    flipped = bytearray(aigif_bytes)
    flipped[len(flipped) // 2] ^= 0xFF
    with pytest.raises(AigifError):
        Image.open(io.BytesIO(bytes(flipped)))


def test_save_with_syntax_records_the_fingerprint(tmp_path, generated):
    bare = generated.document.replace(fingerprint=None)
    img = Image.fromarray(generated.image)
    img.save(tmp_path / "a.aigif", syntax=bare)
    doc = aigif.load(tmp_path / "a.aigif")
    assert doc.fingerprint == fingerprint(generated.image)
    assert doc.generation == GEN and doc.pixels is None
    # a dict syntax (the JSON form) works too, and the fingerprint follows the pixels actually saved
    other = generated.image.copy()
    other[0, 0] ^= 1
    Image.fromarray(other).save(tmp_path / "b.aigif", syntax=document_to_dict(bare))
    assert aigif.load(tmp_path / "b.aigif").fingerprint == fingerprint(other)
    buf = io.BytesIO()
    img.save(buf, format="AIGIF", syntax=bare, fingerprint=False)
    assert loads(buf.getvalue()).fingerprint is None


def test_save_refuses_inconsistent_options(tmp_path, generated):
    img = Image.fromarray(generated.image)
    with pytest.raises(ConfigError):
        img.resize((32, 32)).save(tmp_path / "c.aigif", syntax=generated.document)
    with pytest.raises(ConfigError):
        img.save(tmp_path / "c.aigif", syntax=generated.document, quality=2)
    with pytest.raises(ConfigError):
        img.save(tmp_path / "c.aigif", syntax=42)


def test_save_pixels_mode_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    rgb = (np.linspace(0, 255, 48 * 40 * 3).reshape(40, 48, 3) + rng.integers(0, 8, (40, 48, 3))).clip(0, 255).astype(np.uint8)
    rgba = Image.fromarray(rgb).convert("RGBA")
    rgba.save(tmp_path / "p.aigif", quality=2)
    doc = aigif.load(tmp_path / "p.aigif")
    assert doc.pixels is not None and doc.generation is None
    with Image.open(tmp_path / "p.aigif") as im:
        assert im.size == (48, 40) and im.info["aigif_kind"] == "pixels"
        assert "base64" not in im.info["aigif"]
        out = np.asarray(im)
        assert im.aigif_report.status == "exact"      # fingerprint = what the decoder shows
        assert im.aigif_source == "pixels"
    from aigif import codec

    assert np.array_equal(out, codec.decompress_pixels(doc.pixels))   # the codec's image, alpha dropped


def test_resave_opened_file_keeps_the_syntax(tmp_path, aigif_bytes):
    src = tmp_path / "src.aigif"
    src.write_bytes(aigif_bytes)
    with Image.open(src) as im:
        im.save(tmp_path / "copy.aigif")
    assert (tmp_path / "copy.aigif").read_bytes() == aigif_bytes


def test_plugin_import_is_light():
    import subprocess
    import sys

    code = ("import sys, aigif.pillow_plugin; from PIL import Image; "
            "bad = [m for m in ('torch', 'diffusers', 'numpy', 'aigif.engine', 'aigif.codec') if m in sys.modules]; "
            "print(bad); assert not bad")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_undecodable_ancillary_extension_still_opens(aigif_bytes):
    from aigif.container import Segment

    doc = loads(aigif_bytes)
    odd = doc.replace(extensions=(Segment(0x4010, b"\xc1 not msgpack"),))
    with Image.open(io.BytesIO(dumps(odd))) as im:
        assert json.loads(im.info["aigif"])["prompt"] == GEN.prompt
