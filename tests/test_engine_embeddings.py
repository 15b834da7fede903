"""Textual-inversion embeddings: bound to their word in the prompts, recorded, regenerated exactly, refused cleanly."""
import hashlib

import numpy as np
import pytest

from aigif import Embedding, Generation, ModelRef, dumps, loads
from aigif.errors import ConfigError, ModelError, ModelMismatchError, UnsafeModelError
from aigif.fidelity import EXACT

from .fresh_process import decode_in_fresh_process
from .test_engine_lora_vae import _seeded

pytestmark = pytest.mark.usefixtures("aigif_home")  # a fresh $AIGIF_HOME per module (conftest.py)


def gen(prompt="a photo of a house in mystyle, at night", seed=3, negative=""):
    return Generation(prompt=prompt, negative_prompt=negative, seed=seed, num_inference_steps=3, guidance_scale=7.5,
                      width=64, height=64)


def make_embedding(path, sets: dict, seed: int, vectors: int = 3):
    """A safetensors embedding: {key: (vectors, width)} tensors (``emb_params`` for SD 1.x, ``clip_l``/``clip_g`` SDXL)."""
    from safetensors.torch import save_file

    save_file({k: _seeded((vectors, w), seed + i, 0.8) for i, (k, w) in enumerate(sets.items())}, str(path))
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, aigif_home):
    d = tmp_path_factory.mktemp("models")
    (d / "embeddings").mkdir()
    make_embedding(d / "embeddings" / "mystyle.safetensors", {"emb_params": 32}, 1)
    make_embedding(d / "embeddings" / "grainzq.safetensors", {"emb_params": 32}, 2, vectors=1)
    make_embedding(d / "xlstyle.safetensors", {"clip_l": 32, "clip_g": 32}, 3)
    return d


@pytest.fixture(scope="module")
def engine(model_dir):
    from aigif.engine import Engine

    return Engine(model_dirs=[model_dir], threads=1)


def sd(*embeddings, model="aigif-tiny-sd"):
    return ModelRef(name=model, embeddings=tuple(embeddings))


def test_an_embedding_changes_the_image_is_recorded_and_regenerates(engine, model_dir, tmp_path, aigif_home, monkeypatch):
    base = engine.generate(gen()).image
    res = engine.generate(gen(), sd(Embedding(name="mystyle")))
    assert not np.array_equal(res.image, base)
    sha = hashlib.sha256((model_dir / "embeddings" / "mystyle.safetensors").read_bytes()).hexdigest()
    doc = loads(dumps(res.document))
    assert doc.model.embeddings == (Embedding(name="mystyle", sha256=sha, text_encoders="text_encoder"),)
    assert np.array_equal(engine.generate(gen()).image, base)                  # unloaded: the plain model again
    assert np.array_equal(engine.generate(gen("a photo of a house in MyStyle, at night"), sd(Embedding(name="mystyle"))).image,
                          res.image)                                               # CLIP lower-cases: any case binds
    unused = engine.generate(gen("a photo of a house, at night"), sd(Embedding(name="mystyle"))).image
    assert np.array_equal(unused, engine.generate(gen("a photo of a house, at night")).image)
    f = tmp_path / "emb.aigif"
    f.write_bytes(dumps(doc))
    monkeypatch.setenv("AIGIF_MODEL_DIRS", str(model_dir))
    decode_in_fresh_process([f], tmp_path / "out", aigif_home, [res.image])


def test_binding_equals_diffusers_own_textual_inversion(engine, model_dir):
    """Three vectors under a private token: the numerics of pipe.load_textual_inversion(file, token=word)."""
    import torch

    from aigif.engine import prepare_pipeline
    from aigif.engine.loader import load_pipeline, resolve
    from aigif.engine.schedulers import make_scheduler

    g = gen("mystyle, a red boat, grainzq", seed=9, negative="blurry mystyle")
    ours = engine.generate(g, sd(Embedding(name="mystyle"), Embedding(name="grainzq"))).image
    pipe = load_pipeline(resolve(ModelRef(name="aigif-tiny-sd"), [], False), torch.float32, "cpu")
    prepare_pipeline(pipe)
    pipe.load_textual_inversion(str(model_dir / "embeddings" / "mystyle.safetensors"), token="mystyle")
    pipe.load_textual_inversion(str(model_dir / "embeddings" / "grainzq.safetensors"), token="grainzq")
    pipe.scheduler = make_scheduler(type(pipe.scheduler).__name__, dict(pipe.scheduler.config), None, None)
    pipe.set_progress_bar_config(disable=True)
    torch.set_num_threads(1)
    out = pipe(g.prompt, negative_prompt=g.negative_prompt, num_inference_steps=3, guidance_scale=7.5, width=64, height=64,
               generator=torch.Generator("cpu").manual_seed(9), output_type="np").images[0]
    assert np.array_equal(np.round(out * 255).astype(np.uint8), ours)


def test_sdxl_embeddings_carry_clip_l_and_clip_g(engine, model_dir):
    from aigif.engine import Engine

    base = engine.generate(gen("a xlstyle cat"), ModelRef(name="aigif-tiny-sdxl")).image
    res = engine.generate(gen("a xlstyle cat"), sd(Embedding(name="xlstyle"), model="aigif-tiny-sdxl"))
    assert not np.array_equal(res.image, base)
    doc = loads(dumps(res.document))
    assert doc.model.embeddings[0].text_encoders == "text_encoder,text_encoder_2"
    out = Engine(model_dirs=[model_dir], threads=1).decode(doc)
    assert out.report.status == EXACT and np.array_equal(out.image, res.image)
    with pytest.raises(ModelError, match="no vectors for text_encoder_2"):       # an SD 1.x embedding on SDXL
        engine.generate(gen("a mystyle cat"), sd(Embedding(name="mystyle"), model="aigif-tiny-sdxl"))
    assert np.array_equal(engine.generate(gen("a xlstyle cat"), ModelRef(name="aigif-tiny-sdxl")).image, base)


def test_embeddings_that_cannot_be_used_are_refused_with_the_reason(engine, model_dir):
    sha = hashlib.sha256((model_dir / "embeddings" / "mystyle.safetensors").read_bytes()).hexdigest()
    engine.generate(gen(), sd(Embedding(name="mystyle", sha256=sha[:12])))        # A1111's TI hash: 12 hex of sha256
    with pytest.raises(ModelMismatchError):
        engine.generate(gen(), sd(Embedding(name="mystyle", sha256="0" * 12)))
    (model_dir / "embeddings" / "pickled.pt").write_bytes(b"\x80\x04pickle")
    for emb in (Embedding(name="pickled"), Embedding(name="pickled.pt"), Embedding(name="x", local="embeddings/pickled.pt")):
        with pytest.raises(UnsafeModelError, match="Convert it to .safetensors|only safetensors"):
            engine.generate(gen(), sd(emb))
    for emb in (Embedding(name="../../etc/passwd"), Embedding(name="x", local="../x.safetensors")):
        with pytest.raises(UnsafeModelError, match="outside"):
            engine.generate(gen(), sd(emb))
    with pytest.raises(ModelError, match="not found.*embeddings/") as info:
        engine.generate(gen(), sd(Embedding(name="nowhere")))
    assert "nowhere.safetensors" in str(info.value) and "--model-dir" in str(info.value)
    make_embedding(model_dir / "wide.safetensors", {"emb_params": 48}, 5)
    with pytest.raises(ModelError, match="width 48"):
        engine.generate(gen("a wide cat"), sd(Embedding(name="wide")))
    from safetensors.torch import save_file

    save_file({"a": _seeded((2, 32), 1, 1.0), "b": _seeded((2, 32), 2, 1.0)}, str(model_dir / "two.safetensors"))
    with pytest.raises(ModelError, match="which text encoder"):
        engine.generate(gen(), sd(Embedding(name="two")))
    (model_dir / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    with pytest.raises(ModelError, match="not a readable safetensors"):
        engine.generate(gen(), sd(Embedding(name="junk")))
    with pytest.raises(ConfigError, match="two embeddings use the token"):
        engine.generate(gen(), sd(Embedding(name="mystyle"), Embedding(name="grainzq", token="MYSTYLE")))
    with pytest.raises(ModelError, match="no vectors for text_encoder_2"):       # FLUX.1: T5 takes no embedding
        engine.generate(gen(), sd(Embedding(name="mystyle"), model="aigif-tiny-flux"))
    assert np.array_equal(engine.generate(gen()).image, engine.generate(gen()).image)


def test_cli_generate_with_an_embedding(tmp_path, model_dir):
    from aigif.cli import main
    from aigif.engine.refs import parse_embedding

    assert parse_embedding("mystyle", [model_dir]) == (Embedding(name="mystyle"), [model_dir])
    out = tmp_path / "e.aigif"
    assert main(["generate", "-p", "a boat in mystyle", "-o", str(out), "--steps", "2", "--seed", "3", "--threads", "1", "-q",
                 "--model-dir", str(model_dir), "--embedding", "mystyle",
                 "--embedding", str(model_dir / "xlstyle.safetensors")]) == 0
    assert [(e.name, e.local) for e in loads(out.read_bytes()).model.embeddings] == \
        [("mystyle", None), ("xlstyle", "xlstyle.safetensors")]
    assert main(["decode", str(out), "-o", str(tmp_path / "e.png"), "-q", "--model-dir", str(model_dir)]) == 0
