"""Every path that writes an image carries the IPTC digital source type (XMP), unless the caller turns it off."""
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import aigif
from aigif.provenance import TRAINED_ALGORITHMIC_MEDIA, digital_source_type, image_bytes, xmp_packet
from aigif.syntax import Document, dumps

ROOT = Path(__file__).resolve().parents[1]
AI = TRAINED_ALGORITHMIC_MEDIA


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """One generated .aigif (embedded tiny model) and one pixels-only .aigif."""
    from aigif import codec
    from aigif.api import generate

    root = tmp_path_factory.mktemp("made")
    res = generate("a lighthouse at dusk", seed=3, steps=2)
    aigif.dump(res.document, root / "gen.aigif")
    rgb = np.asarray(res.image, dtype=np.uint8)
    (root / "pix.aigif").write_bytes(dumps(Document(pixels=codec.compress_image(rgb, 4))))
    return root


def mark(path) -> str | None:
    return digital_source_type(Path(path).read_bytes())


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_image_bytes_marks_each_format_and_can_leave_it_out(fmt):
    rgb = np.full((8, 8, 3), 90, np.uint8)
    data = image_bytes(rgb, fmt)
    assert Image.open(io.BytesIO(data)).format == fmt
    assert digital_source_type(data) == AI
    assert digital_source_type(image_bytes(rgb, fmt, ai_label=False)) is None


def test_png_mark_is_an_uncompressed_itxt_xmp_chunk_beside_other_text():
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", "a cat")
    data = image_bytes(np.zeros((4, 4, 3), np.uint8), "PNG", pnginfo=info)
    assert b"iTXtXML:com.adobe.xmp\x00\x00\x00" in data      # keyword, no compression flag/method
    assert Image.open(io.BytesIO(data)).info["parameters"] == "a cat"
    assert xmp_packet() in data


def test_cli_generate_png_jpeg_webp(tmp_path):
    from aigif.cli.engine_cmds import cli_generate

    for suffix, fmt in ((".png", "PNG"), (".jpg", "JPEG"), (".webp", "WEBP")):
        out = tmp_path / f"g{suffix}"
        cli_generate("a red boat", tmp_path / f"g{suffix}.aigif", seed=1, steps=2, png=out, progress=False, echo=lambda s: None)
        assert Image.open(out).format == fmt and mark(out) == AI
    cli_generate("a red boat", tmp_path / "n.aigif", seed=1, steps=2, png=tmp_path / "n.png", progress=False,
                 echo=lambda s: None, ai_label=False)
    assert mark(tmp_path / "n.png") is None


def test_cli_decode_marks_generated_not_pixels_only(made, tmp_path):
    from typer.testing import CliRunner

    from aigif.cli import app

    r = CliRunner().invoke(app, ["decode", str(made / "gen.aigif"), "-o", str(tmp_path / "d.png"), "-q", "--embed-parameters"])
    assert r.exit_code == 0, r.output
    assert mark(tmp_path / "d.png") == AI and "parameters" in Image.open(tmp_path / "d.png").info
    r = CliRunner().invoke(app, ["decode", str(made / "gen.aigif"), "-o", str(tmp_path / "d.webp"), "-q"])
    assert r.exit_code == 0 and Image.open(tmp_path / "d.webp").format == "WEBP" and mark(tmp_path / "d.webp") == AI
    r = CliRunner().invoke(app, ["decode", str(made / "gen.aigif"), "-o", str(tmp_path / "off.png"), "-q", "--no-ai-label"])
    assert r.exit_code == 0 and mark(tmp_path / "off.png") is None
    # a pixels-only file records no generation: its pixels may be a photo, so no AI claim is written
    r = CliRunner().invoke(app, ["decode", str(made / "pix.aigif"), "-o", str(tmp_path / "p.png"), "-q"])
    assert r.exit_code == 0 and mark(tmp_path / "p.png") is None


def test_batch_decode_marks(made, tmp_path):
    from aigif import batch

    batch.run_batch("decode", made, tmp_path / "on", echo=None)
    assert mark(tmp_path / "on" / "gen.png") == AI and mark(tmp_path / "on" / "pix.png") is None
    batch.run_batch("decode", made, tmp_path / "off", echo=None, ai_label=False)
    assert mark(tmp_path / "off" / "gen.png") is None


def test_api_png_bytes_and_decoded_save(made, tmp_path):
    from aigif.api import png_bytes

    out = aigif.decode(made / "gen.aigif")
    assert digital_source_type(png_bytes(out.image)) == AI
    assert digital_source_type(png_bytes(out.image, ai_label=False)) is None
    out.save(tmp_path / "s.jpg")
    assert Image.open(tmp_path / "s.jpg").format == "JPEG" and mark(tmp_path / "s.jpg") == AI
    out.save(tmp_path / "s.png", ai_label=False)
    assert mark(tmp_path / "s.png") is None


@pytest.mark.parametrize("target", ["p.png", "p.jpeg", "p.webp"])
def test_pillow_plugin_save_of_regenerated_pixels(made, tmp_path, target):
    aigif.register_pillow()
    with Image.open(made / "gen.aigif") as im:
        im.save(tmp_path / target)
        im.save(tmp_path / ("off-" + target), ai_label=False)
        buf = io.BytesIO()
        im.save(buf, format="PNG")
    assert mark(tmp_path / target) == AI and mark(tmp_path / ("off-" + target)) is None
    assert digital_source_type(buf.getvalue()) == AI


def test_no_image_writer_outside_the_one_writer():
    """A new code path that encodes an image with Pillow must go through aigif.provenance.export."""
    # aigif/codec/avif.py codes the AVIF payload of a pixels segment inside an .aigif, not an image file for users
    allowed = {"aigif/provenance/export.py", "aigif/pillow_plugin.py", "aigif/codec/avif.py"}
    offenders = []
    for path in sorted((ROOT / "aigif").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in allowed or "/train" in rel:
            continue
        text = path.read_text(encoding="utf-8")
        for needle in ('format="PNG"', "format='PNG'", ").save(", "im.save(", "img.save("):
            if needle in text:
                offenders.append(f"{rel}: {needle}")
    assert offenders == []
