"""No lost data: outputs are written atomically, inputs are never modified, existing
outputs are never clobbered without --force, and a killed batch resumes cleanly."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import aigif
from aigif.errors import AigifError
from aigif.fileio import OutputExistsError, atomic_write

ROOT = Path(__file__).resolve().parents[1]


def temp_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.tmp"))


# --- atomic_write ------------------------------------------------------------------------------
def test_interrupted_replace_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "out.aigif"
    target.write_bytes(b"old contents")

    def boom(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="simulated"):
        atomic_write(target, b"new contents" * 1000)
    assert target.read_bytes() == b"old contents"
    assert temp_files(tmp_path) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["out.aigif"]


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_interrupted_write_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch, where):
    """Ctrl-C (KeyboardInterrupt) while the temp file is being written: old file intact, temp removed."""
    target = tmp_path / "out.aigif"
    target.write_bytes(b"old contents")
    if where == "fsync":
        def interrupted(fd):
            raise KeyboardInterrupt
        monkeypatch.setattr(os, "fsync", interrupted)
    else:
        import io

        real_write = io.BufferedWriter.write

        class Writer(io.BufferedWriter):
            def write(self, b):
                real_write(self, b[: len(b) // 2])
                raise KeyboardInterrupt

        real_fdopen = os.fdopen
        monkeypatch.setattr(os, "fdopen", lambda fd, mode: Writer(real_fdopen(fd, mode, buffering=0)))
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, b"new contents" * 1000)
    assert target.read_bytes() == b"old contents"
    assert temp_files(tmp_path) == []


def test_no_overwrite_refuses_and_keeps_the_file(tmp_path):
    target = tmp_path / "out.aigif"
    target.write_bytes(b"precious")
    with pytest.raises(OutputExistsError):
        atomic_write(target, b"new", overwrite=False)
    assert target.read_bytes() == b"precious" and temp_files(tmp_path) == []
    atomic_write(target, b"new", overwrite=True)
    assert target.read_bytes() == b"new"


def test_no_overwrite_does_not_follow_a_dangling_symlink(tmp_path):
    victim = tmp_path / "elsewhere.txt"
    link = tmp_path / "out.aigif"
    link.symlink_to(victim)  # dangling: exists() is False, but writing through it would create the victim
    with pytest.raises(OutputExistsError):
        atomic_write(link, b"data", overwrite=False)
    assert not victim.exists()


def test_no_overwrite_has_no_check_then_clobber_race(tmp_path, monkeypatch):
    """The file appears between the existence check and the rename: it must survive."""
    target = tmp_path / "out.aigif"
    real_fsync = os.fsync

    def fsync_then_race(fd):
        real_fsync(fd)
        if not target.exists():
            target.write_bytes(b"written by someone else meanwhile")

    monkeypatch.setattr(os, "fsync", fsync_then_race)
    with pytest.raises(OutputExistsError):
        atomic_write(target, b"mine", overwrite=False)
    assert target.read_bytes() == b"written by someone else meanwhile"
    assert temp_files(tmp_path) == []


def test_replace_keeps_readers_whole(tmp_path):
    """A reader that opened the old file keeps reading the old bytes (rename, not truncate-in-place)."""
    target = tmp_path / "out.aigif"
    target.write_bytes(b"A" * 100_000)
    with open(target, "rb") as reader:
        atomic_write(target, b"B" * 50_000)
        assert reader.read() == b"A" * 100_000
    assert target.read_bytes() == b"B" * 50_000


def test_pack_refuses_to_clobber_without_force(tmp_path, capsys):
    from aigif.cli import main

    cfg = tmp_path / "g.json"
    cfg.write_text('{"model": "sd15", "prompt": "a cat", "seed": 1}')
    out = tmp_path / "o.aigif"
    out.write_bytes(b"precious")
    assert main(["pack", str(cfg), "-o", str(out)]) == 1
    assert out.read_bytes() == b"precious"
    assert main(["pack", str(cfg), "-o", str(out), "--force"]) == 0
    assert aigif.load(out).generation.prompt == "a cat"
    capsys.readouterr()


def test_decode_refuses_to_clobber_without_force(tmp_path, capsys):
    from aigif.cli import main

    doc = aigif.Document(pixels=b"not a codec payload")
    src = tmp_path / "a.aigif"
    src.write_bytes(aigif.dumps(doc))
    before = src.read_bytes()
    out = tmp_path / "a.png"
    out.write_bytes(b"precious")
    assert main(["decode", str(src), "-o", str(out), "-q"]) == 1
    assert out.read_bytes() == b"precious" and src.read_bytes() == before
    capsys.readouterr()


# --- aigif encode: batch, kill, resume -------------------------------------------------------------
def make_a1111_images(folder: Path, n: int) -> list[Path]:
    """Small PNGs with A1111 'parameters' text chunks (distinct seeds, so every output differs)."""
    import numpy as np
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        rgb = np.full((16, 16, 3), (i * 7) % 256, dtype=np.uint8)
        info = PngInfo()
        info.add_text("parameters", f"a photo of cat number {i}, highly detailed\nNegative prompt: blurry\n"
                                    f"Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: {1000 + i}, Size: 512x512, "
                                    f"Model hash: 6ce0161689, Model: v1-5-pruned-emaonly")
        p = folder / f"img{i:04d}.png"
        Image.fromarray(rgb).save(p, pnginfo=info)
        paths.append(p)
    return paths


def digests(paths) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def encode_cmd(src: Path, out: Path) -> list[str]:
    return [sys.executable, "-c", "import sys; from aigif.cli import main; sys.exit(main(sys.argv[1:]))",
            "encode", str(src), "-o", str(out) + "/", "--syntax-only", "--no-progress"]


def test_killed_batch_resumes_without_lost_or_half_written_files(tmp_path):
    n = 120
    src = tmp_path / "in"
    images = make_a1111_images(src, n)
    before = digests(images)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(encode_cmd(src, out), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        done = len(list(out.glob("*.aigif"))) if out.exists() else 0
        if done >= 10:
            proc.send_signal(signal.SIGKILL)
            killed_at = done
            break
        time.sleep(0.005)
    proc.wait(timeout=30)
    assert killed_at is not None and killed_at < n, "the batch finished before it could be killed; use more images"

    # after the kill: every .aigif present is complete and valid; at most one temp file (the one being written)
    outputs = sorted(out.glob("*.aigif"))
    for p in outputs:
        aigif.load(p)
    stale = temp_files(out)
    assert len(stale) <= 1, stale
    assert digests(images) == before

    # re-run: resumes (skips the finished ones), completes the rest
    first_mtimes = {p.name: p.stat().st_mtime_ns for p in outputs}
    r = subprocess.run(encode_cmd(src, out), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    outputs = sorted(out.glob("*.aigif"))
    assert [p.stem for p in outputs] == [p.stem for p in images]
    for p in outputs:
        doc = aigif.load(p)
        i = int(p.stem[3:])
        assert doc.generation.seed == 1000 + i and doc.generation.prompt.startswith(f"a photo of cat number {i},")
    assert all(out.joinpath(k).stat().st_mtime_ns == v for k, v in first_mtimes.items()), "finished outputs were rewritten"
    assert digests(images) == before
    assert [p for p in temp_files(out) if p not in stale] == []


def test_batch_never_clobbers_a_foreign_file_without_force(tmp_path):
    """An existing output that is not a valid .aigif (the user's own file) is kept unless --force."""
    from aigif.batch import Settings, run_files
    from aigif.importers.decide import Options

    src = tmp_path / "in"
    images = make_a1111_images(src, 2)
    before = digests(images)
    out = tmp_path / "out"
    out.mkdir()
    foreign = out / "img0000.aigif"
    foreign.write_bytes(b"the user's own notes, not an aigif file")
    settings = Settings(options=Options(syntax_only=True))
    summary = run_files("encode", [src], str(out) + "/", settings, progress=False)
    assert foreign.read_bytes() == b"the user's own notes, not an aigif file"
    assert len(summary.errors) == 1
    aigif.load(out / "img0001.aigif")
    run_files("encode", [src], str(out) + "/", settings, progress=False, force=True)
    aigif.load(foreign)
    assert digests(images) == before


def test_encode_never_writes_over_its_input(tmp_path):
    src = tmp_path / "in"
    images = make_a1111_images(src, 1)
    fake = src / "img0000.aigif"
    fake.write_bytes(images[0].read_bytes())  # an image that happens to end in .aigif
    before = digests([images[0], fake])
    from aigif.cli import main

    code = main(["encode", str(fake), "-o", str(fake), "--syntax-only", "--no-progress", "--force"])
    assert code in (0, 1)
    assert digests([images[0], fake]) == before


def test_decode_never_writes_over_its_input_even_with_force(tmp_path, capsys):
    from aigif.cli import main

    doc = aigif.Document(generation=aigif.Generation(prompt="a cat", seed=1, num_inference_steps=1, guidance_scale=7.5,
                                                     width=64, height=64), model=aigif.ModelRef(name="sd15"))
    src = tmp_path / "a.aigif"
    src.write_bytes(aigif.dumps(doc))
    before = src.read_bytes()
    assert main(["decode", str(src), "-o", str(src), "--force", "-q"]) == 1
    assert main(["decode", str(src), "-o", str(tmp_path) + "/", "--force", "-q"]) == 1   # a.png is fine, but sd15 is absent
    assert src.read_bytes() == before
    assert "one of the inputs" in capsys.readouterr().err
