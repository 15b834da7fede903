import json
import subprocess
import sys
from pathlib import Path

from aigif.cli import EXIT_ERROR, main

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "astronaut.json"


def test_pack_then_info_json_gives_back_the_description(tmp_path, capsys):
    out = tmp_path / "a.aigif"
    assert main(["pack", str(EXAMPLE), "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(EXAMPLE.read_text())


def test_info_text_lists_segments(tmp_path, capsys):
    out = tmp_path / "a.aigif"
    main(["pack", str(EXAMPLE), "-o", str(out)])
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "generation" in text and "critical" in text and "a photo of an astronaut" in text


def test_pack_refuses_to_overwrite_and_unknown_keys(tmp_path, capsys):
    out = tmp_path / "a.aigif"
    out.write_bytes(b"keep me")
    assert main(["pack", str(EXAMPLE), "-o", str(out)]) == EXIT_ERROR
    assert out.read_bytes() == b"keep me"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": "sd15", "prompt": "x", "seed": 1, "steps": 20}))
    assert main(["pack", str(bad), "-o", str(tmp_path / "b.aigif")]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "unknown key(s) steps" in err and not (tmp_path / "b.aigif").exists()


def test_info_on_bad_input_is_a_clean_error(tmp_path, capsys):
    for content in (b"", b"\x89AIG\x01", b"not an aigif file at all", EXAMPLE.read_bytes()):
        p = tmp_path / "x.aigif"
        p.write_bytes(content)
        assert main(["info", str(p)]) == EXIT_ERROR
        err = capsys.readouterr().err
        assert err.startswith("aigif: error:") and "Traceback" not in err
    assert main(["info", str(tmp_path / "missing.aigif")]) == EXIT_ERROR


def test_console_script_runs(tmp_path):
    out = tmp_path / "a.aigif"
    r = subprocess.run([sys.executable, "-m", "aigif", "pack", str(EXAMPLE), "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size < 100
