"""ComfyUI's layout: a transformer-only file in diffusion_models/ (or unet/), text encoders and VAE in their folders."""
import dataclasses
import shutil

import numpy as np
import pytest

from aigif import api
from aigif.engine import Engine
from aigif.engine.digest import file_sha256
from aigif.engine.tiny import ensure_tiny
from aigif.errors import ModelError, ModelMismatchError
from aigif.syntax import ComponentRef, ModelRef, document_from_dict, dumps, loads

from .comfy_layout import lay_out_tiny_flux

pytestmark = pytest.mark.usefixtures("aigif_home")


@pytest.fixture(scope="module")
def comfy_dir(tmp_path_factory):
    """The embedded FLUX model's weights saved as ComfyUI keeps them."""
    return lay_out_tiny_flux(tmp_path_factory.mktemp("comfy"), ("diffusion_models/tiny-flux.safetensors",
                             "text_encoders/clip_l.safetensors", "text_encoders/t5xxl_tiny.safetensors", "vae/ae.safetensors"))


def _ref(**kw):
    return ModelRef(name="aigif-tiny-flux", local="diffusion_models/tiny-flux.safetensors",
                    text_encoders=(ComponentRef(local="text_encoders/clip_l.safetensors", subfolder="text_encoder"),
                                   ComponentRef(local="text_encoders/t5xxl_tiny.safetensors", subfolder="text_encoder_2")),
                    vae=ComponentRef(local="vae/ae.safetensors"), **kw)


def test_split_files_render_what_the_folder_renders_and_record_every_digest(comfy_dir):
    engine = Engine(model_dirs=[comfy_dir])
    res = api.generate("a red fox", model=_ref(), seed=4, steps=2, engine=engine)
    whole = api.generate("a red fox", model="aigif-tiny-flux", seed=4, steps=2)
    assert np.array_equal(np.asarray(res.image), np.asarray(whole.image))    # same weights, same pixels
    doc = loads(dumps(res.document))
    m = doc.model
    assert m.sha256 == file_sha256(comfy_dir / "diffusion_models/tiny-flux.safetensors")
    assert [t.sha256 for t in m.text_encoders] == [file_sha256(comfy_dir / "text_encoders" / n)
                                                   for n in ("clip_l.safetensors", "t5xxl_tiny.safetensors")]
    assert m.vae.sha256 == file_sha256(comfy_dir / "vae/ae.safetensors")
    assert api.decode(dumps(doc), engine=Engine(model_dirs=[comfy_dir])).status == "exact"


def test_a_changed_text_encoder_file_is_refused(comfy_dir, tmp_path):
    good = _ref()
    wrong = dataclasses.replace(good, text_encoders=(dataclasses.replace(good.text_encoders[0], sha256="ab" * 32),
                                                     good.text_encoders[1]))
    with pytest.raises(ModelMismatchError, match="clip_l"):
        api.generate("x", model=wrong, seed=1, steps=1, engine=Engine(model_dirs=[comfy_dir]))


def test_missing_text_encoders_say_which_files_to_put_where(comfy_dir):
    with pytest.raises(ModelError, match="text_encoders/"):
        api.generate("x", model=dataclasses.replace(_ref(), text_encoders=()), seed=1, steps=1,
                     engine=Engine(model_dirs=[comfy_dir]))


@pytest.mark.parametrize("model,words", [
    ("flux1-dev", ("DIR/flux1-dev/", "transformer/", "text_encoder_2/", "tokenizer_2/", "vae/", "scheduler/",
                   "huggingface-cli download black-forest-labs/FLUX.1-dev --revision 3de623fc",
                   "diffusion_models/ (or unet/) flux1-dev.safetensors", "text_encoders/ (or clip/) clip_l.safetensors, "
                   "t5xxl_fp16.safetensors", "vae/ ae.safetensors")),
    ("sd35-large", ("DIR/sd35-large/", "text_encoder_3/", "tokenizer_3/", "diffusion_models/ (or unet/)",
                    "clip_l.safetensors, clip_g.safetensors, t5xxl_fp16.safetensors")),
])
def test_a_flow_model_without_weights_says_which_files_to_put_where(model, words, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    doc = document_from_dict({"model": model, "prompt": "a cat", "seed": 1})
    with pytest.raises(ModelError) as exc:
        api.decode(dumps(doc), engine=Engine(model_dirs=[tmp_path]))
    assert all(w in str(exc.value) for w in words), str(exc.value)


def test_missing_split_files_are_all_named_with_their_folders(comfy_dir, tmp_path):
    ref = dataclasses.replace(_ref(), name="flux1-dev", local="unet/flux1-dev.safetensors", sha256="cd" * 32)
    for dirs, said in (([], "no model dirs are configured"), ([tmp_path], str(tmp_path))):
        with pytest.raises(ModelError) as exc:
            api.generate("x", model=ref, seed=1, steps=1, width=64, height=64, engine=Engine(model_dirs=dirs))
        text = str(exc.value)
        assert said in text and "DIR/unet/flux1-dev.safetensors  (transformer, sha256 cdcdcdcdcdcdcdcd...)" in text
        assert all(f"DIR/{p}" in text for p in ("text_encoders/clip_l.safetensors", "text_encoders/t5xxl_tiny.safetensors",
                                                 "vae/ae.safetensors")), text
    # only the transformer is missing here: the other files are found and not listed
    with pytest.raises(ModelError) as exc:
        api.generate("x", model=ref, seed=1, steps=1, width=64, height=64, engine=Engine(model_dirs=[comfy_dir]))
    assert "unet/flux1-dev.safetensors" in str(exc.value) and "clip_l" not in str(exc.value)


def _skeleton(dst):
    """The embedded FLUX folder without its weights: what a registry model's configs and tokenizers are."""
    shutil.copytree(ensure_tiny("aigif-tiny-flux"), dst, ignore=shutil.ignore_patterns("*.safetensors"))
    return dst


def test_split_files_take_configs_from_a_weightless_folder_in_a_model_dir(comfy_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    ref = dataclasses.replace(_ref(), name="flux1-dev")
    with pytest.raises(ModelError) as exc:     # no skeleton: says where the configs and tokenizers go
        api.generate("a red fox", model=ref, seed=4, steps=2, width=64, height=64, engine=Engine(model_dirs=[comfy_dir]))
    assert "configs and tokenizers of flux1-dev" in str(exc.value) and "DIR/flux1-dev/" in str(exc.value)
    _skeleton(tmp_path / "models" / "flux1-dev")
    engine = Engine(model_dirs=[comfy_dir, tmp_path / "models"])
    res = api.generate("a red fox", model=ref, seed=4, steps=2, width=64, height=64, engine=engine)
    whole = api.generate("a red fox", model="aigif-tiny-flux", seed=4, steps=2)
    assert np.array_equal(np.asarray(res.image), np.asarray(whole.image))
    assert api.decode(dumps(res.document), engine=engine).status == "exact"
