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
from aigif.syntax import ComponentRef, ModelRef, dumps, loads

pytestmark = pytest.mark.usefixtures("aigif_home")


@pytest.fixture(scope="module")
def comfy_dir(tmp_path_factory):
    """The embedded FLUX model's weights saved as ComfyUI keeps them."""
    tiny = ensure_tiny("aigif-tiny-flux")
    root = tmp_path_factory.mktemp("comfy")
    for sub, src, name in (("diffusion_models", "transformer/diffusion_pytorch_model.safetensors", "tiny-flux.safetensors"),
                           ("text_encoders", "text_encoder/model.safetensors", "clip_l.safetensors"),
                           ("text_encoders", "text_encoder_2/model.safetensors", "t5xxl_tiny.safetensors"),
                           ("vae", "vae/diffusion_pytorch_model.safetensors", "ae.safetensors")):
        (root / sub).mkdir(exist_ok=True)
        shutil.copy(tiny / src, root / sub / name)
    return root


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
