"""The NVTC conformance files (spec/conformance/codec): symbols exact, pixels within the recorded tolerance, errors by kind."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")

from aigif.errors import AigifError  # noqa: E402
from aigif.fileio import sha256_of_file  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent / "spec" / "conformance" / "codec"
FILES = sorted(ROOT.glob("*.nvtc"))


def test_codec_conformance_suite_is_present():
    kinds = [("error" in json.loads(p.with_suffix(".json").read_text())) for p in FILES]
    assert kinds.count(False) >= 7 and kinds.count(True) >= 16
    assert any("post_filter" in json.loads(p.with_suffix(".json").read_text()) for p in FILES)
    assert any(json.loads(p.with_suffix(".json").read_text()).get("layer_directions") for p in FILES)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_codec_conformance_file(path):
    from aigif.codec import decompress_image, decompress_residual

    expected = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    data = path.read_bytes()
    if "error" in expected:
        with pytest.raises(AigifError) as info:
            decompress_image(data)
        assert info.value.kind == expected["error"], str(info.value)
        return
    from spec_codec import header_of, post_filter_of, layer_directions_of, symbols_of, symbols_sha256

    header = header_of(data)
    assert post_filter_of(data) == expected.get("post_filter")
    if header["stream_bytes"]:
        assert layer_directions_of(data) == expected.get("layer_directions")
    assert {k: expected[k] for k in header} == header
    symbols = symbols_of(data) if header["stream_bytes"] else {}
    assert {f"s{s}_l{l}": int(v.size) for (s, l), v in symbols.items()} == expected["symbols"]
    assert symbols_sha256(symbols) == expected["symbols_sha256"]
    if "reference" in expected:
        reference = np.asarray(Image.open(ROOT / expected["reference"]).convert("RGB"))
        out = decompress_residual(data, reference)
    else:
        out = decompress_image(data)
    want = np.asarray(Image.open(ROOT / expected["pixels"]).convert("RGB"))
    assert out.shape == want.shape == (expected["height"], expected["width"], 3)
    assert int(np.abs(out.astype(int) - want.astype(int)).max()) <= expected["max_abs_diff"]


@pytest.fixture(autouse=True)
def _maker_on_path(monkeypatch):
    """The helpers that wrote the files (spec/conformance/make_codec.py) also read them back here."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("spec_codec", ROOT.parent / "make_codec.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "spec_codec", module)


def test_spec_pins_the_shipped_weights():
    """The sha256 table of spec/codec-nvtc.md, the registry and the shipped files agree."""
    import os
    import re

    from aigif.codec import zoo

    spec = (ROOT.parent.parent / "codec-nvtc.md").read_text(encoding="utf-8")
    table = spec.split("<!-- SHA-TABLE -->")[1].split("<!-- /SHA-TABLE -->")[0]
    rows = re.findall(r"\| ([\d, ]+) \| (\d+) \| `([^`]+)` \| (\d+) \| `([0-9a-f]{64})` \|", table)
    assert rows, "no sha256 rows in spec/codec-nvtc.md"
    for qualities, model_id, name, size, sha in rows:
        assert zoo.SHA256[name] == sha
        assert name in (zoo.MODEL_FILES[int(model_id)], zoo.RESTORE_FILES.get(int(model_id)),
                        zoo.INT_FILES.get(int(model_id)))
        assert sorted(int(q) for q in qualities.split(",")) == list(zoo.MODEL_QUALITIES[int(model_id)])
        path = os.path.join(zoo.ASSET_DIR, name)
        assert os.path.getsize(path) == int(size) and sha256_of_file(path) == sha
    assert {name for _q, _m, name, _s, _h in rows} == set(zoo.SHA256)
