"""`aigif compress-image`: a pixels-only .aigif that `aigif decode` reproduces exactly."""
import numpy as np
import pytest
from PIL import Image

import aigif
from aigif.cli import EXIT_ERROR, main
from aigif.cli.codec_cmds import cli_compress_image
from aigif.fidelity import psnr


def _photo(h=64, w=96):
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 80 * np.sin(x / 7.0) * np.cos(y / 11.0), 100 + 60 * np.cos(x / 5.0 + y / 9.0),
                    90 + 50 * np.sin((x + y) / 13.0)], axis=-1)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def photo_png(tmp_path):
    p = tmp_path / "photo.png"
    Image.fromarray(_photo()).save(p)
    return p


def test_compress_image_then_decode_is_exact(tmp_path, photo_png, capsys):
    out = tmp_path / "p.aigif"
    assert main(["compress-image", str(photo_png), "-o", str(out), "--quality", "2", "--codec", "nvtc"]) == 0
    doc = aigif.load(out)
    assert doc.pixels and doc.generation is None and doc.fingerprint.width == 96
    png = tmp_path / "p.png"
    assert main(["decode", str(out), "-o", str(png), "-q"]) == 0
    assert "exact [pixels]" in capsys.readouterr().out
    decoded = np.asarray(Image.open(png))
    assert decoded.shape == (64, 96, 3) and psnr(_photo(), decoded) > 18
    assert main(["info", str(out)]) == 0
    assert "pixels: NVTC nvtc-v2-int quality 2, image 96x64" in capsys.readouterr().out


def test_compress_image_effort_options(tmp_path, capsys):
    """``--fast`` codes every layer along rows, the default lets each layer pick its direction, ``--best``
    also tries the transposed image: the payloads ``compress_image`` writes with those options."""
    from aigif.codec import compress_image
    from aigif.codec.payload import FLAG_DIRECTIONS
    from aigif.errors import ConfigError

    from .test_codec_transpose import _columns_image

    src = tmp_path / "columns.png"
    img = _columns_image(64, 128)
    Image.fromarray(img).save(src)
    payloads = {}
    for name, extra in (("default", []), ("fast", ["--fast"]), ("best", ["--best"])):
        out = tmp_path / f"{name}.aigif"
        assert main(["compress-image", str(src), "-o", str(out), "--quality", "1", "--codec", "nvtc", *extra]) == 0
        payloads[name] = aigif.load(out).pixels
    assert payloads["default"] == compress_image(img, 1) and payloads["default"][7] & FLAG_DIRECTIONS
    assert payloads["fast"] == compress_image(img, 1, layer_directions=False)
    assert not payloads["fast"][7] & FLAG_DIRECTIONS
    assert payloads["best"] == compress_image(img, 1, transpose=None)
    with pytest.raises(ConfigError):
        cli_compress_image(src, tmp_path / "x.aigif", quality=1, fast=True, best=True)


def test_compress_image_avif_then_decode_is_exact(tmp_path, photo_png, capsys):
    """--codec avif stores AVIF at the PSNR NVTC reaches; auto keeps whichever payload is smaller."""
    from aigif.codec import avif

    if not avif.available():
        pytest.skip("this Pillow has no AVIF support")
    sizes = {}
    for choice in ("avif", "nvtc", "auto"):
        out = tmp_path / f"{choice}.aigif"
        assert main(["compress-image", str(photo_png), "-o", str(out), "--quality", "2", "--codec", choice]) == 0
        sizes[choice] = len(aigif.load(out).pixels)
    assert aigif.load(tmp_path / "avif.aigif").pixels[:4] == b"AVIF"
    assert sizes["auto"] == min(sizes["avif"], sizes["nvtc"])
    png = tmp_path / "a.png"
    assert main(["decode", str(tmp_path / "avif.aigif"), "-o", str(png), "-q"]) == 0
    assert "exact [pixels]" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "avif.aigif")]) == 0
    assert "pixels: AVIF image 96x64" in capsys.readouterr().out
    assert main(["compress-image", str(photo_png), "-o", str(tmp_path / "x.aigif"), "--codec", "webp"]) == EXIT_ERROR


def test_info_describes_a_broken_payload_without_decoding_it(tmp_path, capsys):
    from aigif.codec.payload import describe

    assert describe(b"NVTC\x01") == "<5 bytes, invalid: NVTC payload: 5 bytes, header needs 20>"
    assert "crc32 mismatch" in describe(b"NVTC" + bytes(16))


def test_target_psnr_picks_the_lowest_quality_that_reaches_it(tmp_path, photo_png):
    from aigif.codec import QUALITIES, compress_to_target

    low = compress_to_target(_photo(), target_psnr=0.0)
    high = compress_to_target(_photo(), target_psnr=99.0)
    assert low[0] == min(QUALITIES) and high[0] == max(QUALITIES) and len(low[1]) < len(high[1])


def test_compress_image_refuses_to_overwrite(tmp_path, photo_png):
    out = tmp_path / "p.aigif"
    out.write_bytes(b"mine")
    assert main(["compress-image", str(photo_png), "-o", str(out)]) == EXIT_ERROR
    assert out.read_bytes() == b"mine"
