"""Caps on what a file may ask for: errors in one module, render size, LoRA count and regeneration cost as
aigif.Limits fields, each checked at the limit and at limit + 1."""
import ast
import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import aigif
from aigif import Limits, LimitError
from aigif.syntax import Document, Generation, Lora, ModelRef, dumps

ROOT = Path(aigif.__file__).parent


def bomb(width=2048, height=2048, steps=50) -> bytes:
    """A syntax-only file: the embedded tiny model at width x height in *steps* steps."""
    gen = Generation(prompt="x", seed=1, num_inference_steps=steps, guidance_scale=7.5, width=width, height=height)
    return dumps(Document(generation=gen, model=ModelRef(name="aigif-tiny-sd")))


def test_every_error_and_warning_class_lives_in_errors_and_is_exported():
    from aigif import AigifWarning, OutputExistsError, UnknownExtensionWarning  # noqa: F401

    outside = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name.endswith(("Error", "Warning")) and path.name != "errors.py":
                outside.append(f"{path.relative_to(ROOT)}:{node.name}")
    assert outside == []
    import aigif.errors as errors

    for name, obj in vars(errors).items():
        if isinstance(obj, type) and issubclass(obj, (aigif.AigifError, AigifWarning)):
            assert getattr(aigif, name) is obj and name in aigif.__all__
    assert issubclass(UnknownExtensionWarning, AigifWarning) and issubclass(AigifWarning, UserWarning)


def test_compress_image_refuses_an_existing_output_with_output_exists_error(tmp_path):
    from aigif.cli.codec_cmds import cli_compress_image

    out = tmp_path / "o.aigif"
    out.write_bytes(b"mine")
    with pytest.raises(aigif.OutputExistsError):
        cli_compress_image(tmp_path / "in.png", out)
    assert out.read_bytes() == b"mine"


def test_the_32_byte_2048_file_ends_in_limit_error_within_a_second(tmp_path):
    data = bomb()
    assert len(data) <= 40
    path = tmp_path / "bomb.aigif"
    path.write_bytes(data)
    t0 = time.monotonic()
    with Image.open(path) as im:
        assert im.size == (2048, 2048)
        with pytest.raises(LimitError, match="regeneration_budget") as exc:
            im.load()
    assert time.monotonic() - t0 < 1.0
    assert "2048x2048 in 50 steps" in str(exc.value) and "sd1" in str(exc.value)


def test_regeneration_budget_limit_and_limit_plus_one():
    budget = DEFAULT = aigif.DEFAULT_LIMITS.regeneration_budget["sd1"]
    assert DEFAULT == 1024 * 1024 * 100
    aigif.DEFAULT_LIMITS.check_regeneration("sd1", 1024, 1024, 100)       # exactly at the budget
    with pytest.raises(LimitError, match="regeneration_budget"):
        Limits(regeneration_budget={"sd1": budget - 1}).check_regeneration("sd1", 1024, 1024, 100)
    # a partial mapping raises only the families it names; an unknown family gets the smallest budget
    limits = Limits(regeneration_budget={"sdxl": 10**12})
    assert limits.regeneration_budget["sd1"] == DEFAULT and limits.regeneration_budget["sdxl"] == 10**12
    with pytest.raises(LimitError, match="unknown model family"):
        limits.check_regeneration(None, 1024, 1024, 101)


def test_decode_pillow_and_batch_enforce_the_budget(tmp_path):
    """64x64 in 10 steps = 40960 pixel-steps: decodes at that budget, LimitError at one less (aigif.decode,
    the Pillow plugin and batch decoding go through the same check)."""
    from aigif import batch, pillow_plugin
    from aigif.engine import Engine

    data = bomb(64, 64, 10)
    at, under = Limits(regeneration_budget={"sd1": 64 * 64 * 10}), Limits(regeneration_budget={"sd1": 64 * 64 * 10 - 1})
    assert aigif.decode(data, limits=at).image.size == (64, 64)
    with pytest.raises(LimitError, match="regeneration_budget"):
        aigif.decode(data, limits=under)
    with pytest.raises(LimitError, match="regeneration_budget"):
        aigif.decode(data, engine=Engine(threads=1, limits=under))
    pillow_plugin.set_engine(Engine(threads=1, limits=under))
    try:
        with Image.open(io.BytesIO(data)) as im, pytest.raises(LimitError):
            im.load()
    finally:
        pillow_plugin.set_engine(None)
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.aigif").write_bytes(data)
    summary = batch.run_batch("decode", src, tmp_path / "out", engine=Engine(threads=1, limits=under), echo=None)
    assert [r.status for r in summary.results] == ["error"] and "regeneration budget" in summary.results[0].message
    summary = batch.run_batch("decode", src, tmp_path / "out", engine=Engine(threads=1, limits=at), echo=None)
    assert [r.status for r in summary.results] == ["ok"]
    assert np.asarray(Image.open(tmp_path / "out" / "a.png")).shape == (64, 64, 3)


def test_render_pixels_and_loras_are_limits_fields():
    from aigif.engine import Engine

    assert aigif.DEFAULT_LIMITS.max_render_pixels == 4096 * 4096
    assert aigif.DEFAULT_LIMITS.max_loras == 16
    doc = aigif.loads(bomb(64, 64, 1))
    with pytest.raises(LimitError, match="max_render_pixels"):
        Engine(limits=Limits(max_render_pixels=64 * 64 - 1)).regenerate(doc)
    loras = tuple(Lora(name=f"l{i}") for i in range(17))
    many = Document(generation=doc.generation, model=ModelRef(name="aigif-tiny-sd", loras=loras[:16]))
    assert len(aigif.loads(dumps(many)).model.loras) == 16                 # at the limit
    too_many = Document(generation=doc.generation, model=ModelRef(name="aigif-tiny-sd", loras=loras))
    with pytest.raises(LimitError, match="max_loras"):
        aigif.loads(dumps(too_many))
    with pytest.raises(LimitError, match="max_loras"):                     # the engine, before any file is looked up
        Engine(limits=Limits(max_loras=15)).regenerate(many)
