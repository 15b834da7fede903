import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import aigif
from aigif import batch
from aigif.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """4 tiny .aigif files (one in a sub-folder), a broken one and a hidden one; plus the expected pixels."""
    from aigif.api import generate

    root = tmp_path_factory.mktemp("in")
    (root / "sub").mkdir()
    expected = {}
    for i, rel in enumerate(["a.aigif", "b.aigif", "sub/c.aigif", "sub/d.aigif"]):
        res = generate(f"a tiny house number {i}", seed=i, steps=2)
        aigif.dump(res.document, root / rel)
        expected[rel] = np.asarray(res.image)
    (root / "broken.aigif").write_bytes(b"\x89AIG\x01\x00garbage")
    (root / ".hidden.aigif").write_bytes(b"ignored")
    (root / "notes.txt").write_text("not an input")
    return root, expected


def test_shard_is_a_deterministic_partition():
    for n_items in range(0, 14):
        items = [f"f{i:03d}" for i in range(n_items)]
        for n in range(1, 6):
            parts = [batch.shard(items, n, i) for i in range(n)]
            assert sum(parts, []) == items                            # contiguous, in order, complete
            sizes = [len(p) for p in parts]
            assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    assert batch.shard(list("abcdefg"), 3, 0) == list("abc")          # accelerate's split: extras go first
    assert batch.shard(list("abcdefg"), 3, 2) == list("fg")
    with pytest.raises(ConfigError):
        batch.shard([1], 2, 2)


def test_list_inputs_sorted_recursive(collection, tmp_path):
    root, _ = collection
    assert batch.list_inputs(root, (".aigif",)) == ["a.aigif", "b.aigif", "broken.aigif", "sub/c.aigif", "sub/d.aigif"]
    os.symlink(root / "a.aigif", tmp_path / "link.aigif")
    assert batch.list_inputs(tmp_path, (".aigif",)) == []
    with pytest.raises(ConfigError):
        batch.list_inputs(tmp_path / "nope", (".aigif",))


def test_single_process_decode_resume_and_summary(collection, tmp_path):
    from accelerate import PartialState

    root, expected = collection
    out = tmp_path / "out"
    lines = []
    s = batch.run_batch("decode", root, out, state=PartialState(cpu=True), echo=lines.append)
    assert s.processes == 1 and s.counts == {"ok": 4, "error": 1}
    assert s.kinds == {"exact": 4}
    assert [r.input for r in s.errors] == ["broken.aigif"]
    for rel, img in expected.items():
        assert np.array_equal(np.asarray(Image.open(out / rel.replace(".aigif", ".png"))), img)
    summary = json.loads((out / batch.SUMMARY_NAME).read_text())
    assert summary["files"] == 5 and summary["counts"]["ok"] == 4
    assert "| converted | 4 |" in lines[0]
    # resume: valid outputs are skipped; a damaged one is not ours to clobber without force
    png = out / "sub" / "c.png"
    damaged = png.read_bytes()[:100]
    png.write_bytes(damaged)
    s2 = batch.run_batch("decode", root, out, echo=None)
    assert {r.input: r.status for r in s2.results} == {"a.aigif": "skipped", "b.aigif": "skipped", "broken.aigif": "error",
                                                       "sub/c.aigif": "error", "sub/d.aigif": "skipped"}
    assert png.read_bytes() == damaged
    s3 = batch.run_batch("decode", root, out, force=True, echo=None)
    assert s3.counts["ok"] == 4
    assert np.array_equal(np.asarray(Image.open(png)), expected["sub/c.aigif"])


def test_encode_images_with_metadata(collection, tmp_path):
    from aigif.importers import png_info_for

    root, expected = collection
    src = tmp_path / "pngs"
    src.mkdir()
    doc = aigif.load(root / "a.aigif")
    Image.fromarray(expected["a.aigif"]).save(src / "gen.png", pnginfo=png_info_for(doc))
    s = batch.run_batch("encode", src, tmp_path / "enc", echo=None)
    assert [(r.input, r.status, r.kind) for r in s.results] == [("gen.png", "ok", "exact")]
    enc = aigif.load(tmp_path / "enc" / "gen.aigif")
    assert enc.generation == doc.generation and enc.pixels is None
    with pytest.raises(ConfigError):
        batch.run_batch("resize", src, tmp_path / "x", echo=None)


def test_cli_batch_decode(collection, tmp_path):
    from typer.testing import CliRunner

    import aigif.cli.batch_cmds  # noqa: F401 - registers the commands (COMMAND_MODULES lists it once wired)
    from aigif.cli import app

    root, _ = collection
    res = CliRunner().invoke(app, ["batch-decode", str(root), str(tmp_path / "o"), "--no-progress"])
    assert res.exit_code == 1, res.output                     # broken.aigif failed
    assert sorted(p.name for p in (tmp_path / "o").rglob("*.png")) == ["a.png", "b.png", "c.png", "d.png"]
    res = CliRunner().invoke(app, ["batch-decode", str(tmp_path / "missing"), str(tmp_path / "o")])
    assert res.exit_code != 0


def test_two_processes_with_torch_distributed(collection, tmp_path):
    """Real 2-process run (gloo on CPU, what ``accelerate launch`` does per GPU); outputs split between the ranks."""
    root, expected = collection
    out = tmp_path / "out2"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    port = str(29500 + os.getpid() % 2000)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port,
           "-m", "aigif.batch", "decode", str(root), str(out), "--cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180, cwd=tmp_path)
    summary = json.loads((out / batch.SUMMARY_NAME).read_text())
    assert summary["processes"] == 2, proc.stderr[-2000:]
    ranks = {r["input"]: r["rank"] for r in summary["results"]}
    assert ranks == {"a.aigif": 0, "b.aigif": 0, "broken.aigif": 0, "sub/c.aigif": 1, "sub/d.aigif": 1}
    assert summary["kinds"] == {"exact": 4} and summary["counts"] == {"ok": 4, "error": 1}
    for rel, img in expected.items():
        assert np.array_equal(np.asarray(Image.open(out / rel.replace(".aigif", ".png"))), img)


def test_planner_names_walks_and_refuses_like_one_system(tmp_path):
    """a.png and a.jpg keep their suffix instead of both becoming a.aigif; hidden files and symlinks are skipped."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / ".cache").mkdir()
    for rel in ("a.png", "a.jpg", "sub/b.webp", ".hidden.png", ".cache/c.png", "notes.txt"):
        (src / rel).write_bytes(b"x")
    (src / "link.png").symlink_to(src / "a.png")
    items = batch.plan(batch.walk([src], batch.IMAGE_SUFFIXES), tmp_path / "out", ".aigif")
    assert [(p.rel, p.out_rel) for p in items] == [("a.jpg", "a.jpg.aigif"), ("a.png", "a.png.aigif"), ("sub/b.webp", "sub/b.aigif")]
    assert batch.output_names(["x.aigif", "y/z.aigif"], ".png") == ["x.png", "y/z.png"]


def test_encode_dir_and_batch_encode_dir_name_outputs_alike(tmp_path):
    """`aigif encode DIR` and `aigif batch-encode DIR` plan the same output names (here: images without metadata,
    so every file fails fast and the names come from the journal and the summary)."""
    from aigif.cli.import_cmds import cli_encode

    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for rel in ("a.png", "a.jpg", "sub/b.webp", "sub/c.png"):
        Image.new("RGB", (8, 8)).save(src / rel)
    assert cli_encode([src], tmp_path / "o1", syntax_only=True, progress=False, echo=lambda *a, **k: None) == 1
    journal = [json.loads(x) for x in (tmp_path / "o1" / batch.JOURNAL_NAME).read_text().splitlines()]
    s = batch.run_batch("encode", src, tmp_path / "o2", engine=object(), echo=None)
    names = sorted((r["input"], r["output"]) for r in journal)
    assert names == sorted((r.input, r.output) for r in s.results)
    assert names == [("a.jpg", "a.jpg.aigif"), ("a.png", "a.png.aigif"), ("sub/b.webp", "sub/b.aigif"), ("sub/c.png", "sub/c.aigif")]
    assert {r["status"] for r in journal} == {r.status for r in s.results} == {"error"}
