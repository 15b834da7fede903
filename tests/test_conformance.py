"""Every conformance file in spec/conformance decodes to its expected JSON or fails with its error kind."""
import json
from pathlib import Path

import pytest

from aigif.errors import AigifError
from aigif.syntax import document_to_dict, loads

ROOT = Path(__file__).resolve().parent.parent / "spec" / "conformance"
FILES = sorted(ROOT.glob("*/*.aigif"))


def test_conformance_suite_is_present():
    kinds = {p.parent.name for p in FILES}
    assert {"valid", "invalid"} <= kinds and len(FILES) >= 20


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_conformance_file(path):
    expected = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    data = path.read_bytes()
    if "error" in expected:
        with pytest.raises(AigifError) as info:
            loads(data)
        assert info.value.kind == expected["error"], str(info.value)
    else:
        assert document_to_dict(loads(data)) == expected


NONCANONICAL = ("any-order", "unknown-field", "stamp-future-values", "stamp-v1-cuda", "stamp-v1-cpu", "older-writer")
CANONICAL = [p for p in FILES if p.parent.name == "valid" and p.stem not in NONCANONICAL]


@pytest.mark.parametrize("path", CANONICAL, ids=lambda p: p.stem)
def test_valid_files_rewrite_byte_identical(path):
    from aigif.syntax import dumps

    from aigif.container import read_container
    from aigif.syntax.registry import SEG_GENERATION

    data = path.read_bytes()
    doc = loads(data)
    rewritten = dumps(doc)
    assert loads(rewritten) == doc
    # Byte-identical except the text fields, whose codec a newer encoder may choose better.
    strip = lambda b: [s for s in read_container(b)[1] if s.type != SEG_GENERATION]  # noqa: E731
    assert strip(rewritten) == strip(data)


def test_noncanonical_files_rewrite_to_the_same_document():
    from aigif.syntax import dumps

    for stem in NONCANONICAL:
        doc = loads((ROOT / "valid" / f"{stem}.aigif").read_bytes())
        rewritten = dumps(doc)
        assert rewritten != (ROOT / "valid" / f"{stem}.aigif").read_bytes() and loads(rewritten) == doc
