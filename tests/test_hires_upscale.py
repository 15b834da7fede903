"""Hires fix with a pixel upscaler: PIL resampling filters and ESRGAN (RRDBNet) model files in the model dirs."""
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import aigif
from aigif import ConfigError, Document, Generation, HiresFix, ModelRef, dumps, loads
from aigif.engine.esrgan import RRDBNet, Shape, load_esrgan, upscale_tiled
from aigif.errors import AigifError, ModelError, ModelMismatchError, UnsafeModelError

from .fresh_process import decode_in_fresh_process

pytestmark = pytest.mark.usefixtures("aigif_home")

BASE = dict(prompt="a red lighthouse at dawn", seed=7, num_inference_steps=3, guidance_scale=7.5, width=64, height=64)
TINY = ModelRef(name="aigif-tiny-sd")
SMALL = Shape(features=8, growth=4, blocks=1, upsamples=2, unshuffle=1)      # a 4x model
SMALL_X2 = Shape(features=8, growth=4, blocks=2, upsamples=2, unshuffle=2)   # Real-ESRGAN x2plus style


def seeded_state(shape: Shape, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return {k: v.contiguous() for k, v in RRDBNet(shape).state_dict().items()}


def old_layout(state: dict, shape: Shape) -> dict:
    """Real-ESRGAN names -> the original ESRGAN names (model.0, model.1.sub.N.RDBr.convc.0, ...)."""
    n = shape.upsamples
    tops = {"conv_first": 0, **{f"conv_up{u}": 3 * u for u in range(1, n + 1)}, "conv_hr": 3 * n + 2, "conv_last": 3 * n + 4}
    out = {}
    for k, v in state.items():
        parts = k.split(".")
        if parts[0] == "body":
            out[f"model.1.sub.{parts[1]}.RDB{parts[2][3:]}.{parts[3]}.0.{parts[4]}"] = v
        elif parts[0] == "conv_body":
            out[f"model.1.sub.{shape.blocks}.{parts[1]}"] = v
        else:
            out[f"model.{tops[parts[0]]}.{parts[1]}"] = v
    return out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A model dir with the same seeded 4x network twice (both key layouts) and a 2x one."""
    d = tmp_path_factory.mktemp("models")
    (d / "upscale_models").mkdir()
    (d / "ESRGAN").mkdir()
    state = seeded_state(SMALL)
    save_file(state, str(d / "upscale_models" / "tiny-realesrgan.safetensors"))
    save_file(old_layout(state, SMALL), str(d / "ESRGAN" / "4x-tiny-old.safetensors"))
    save_file(seeded_state(SMALL_X2, 1), str(d / "RealESRGAN_x2plus.safetensors"))
    return d


@pytest.fixture(scope="module")
def engine(aigif_home, model_dir):
    from aigif.engine import Engine

    return Engine(model_dirs=[model_dir], threads=1)


def hires(**kw):
    return HiresFix(**{"upscaler": "tiny-realesrgan", "strength": 0.5, "scale": 2.0, "steps": 3, **kw})


# --- the network ---------------------------------------------------------------------------
def test_both_key_layouts_read_as_the_same_network(model_dir):
    new = load_esrgan(model_dir / "upscale_models" / "tiny-realesrgan.safetensors", "new")
    old = load_esrgan(model_dir / "ESRGAN" / "4x-tiny-old.safetensors", "old")
    assert new.shape == old.shape == SMALL and new.shape.scale == 4
    x = torch.rand(1, 3, 12, 20, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        a, b = new(x), old(x)
    assert a.shape == (1, 3, 48, 80) and torch.equal(a, b)
    x2 = load_esrgan(model_dir / "RealESRGAN_x2plus.safetensors", "x2")
    assert x2.shape.scale == 2 and x2(x).shape == (1, 3, 24, 40)


def test_tiles_with_enough_context_equal_the_whole_image(model_dir):
    net = load_esrgan(model_dir / "upscale_models" / "tiny-realesrgan.safetensors", "new")
    x = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        whole = net(x)
        tiled = upscale_tiled(net, x, tile=16, context=32)
        rough = upscale_tiled(net, x, tile=16, context=0)
    assert tiled.shape == whole.shape == (1, 3, 160, 224)
    assert torch.allclose(tiled, whole, atol=1e-5)
    assert not torch.allclose(rough, whole, atol=1e-3)      # the context matters: tiles are really cut
    with torch.inference_mode():
        assert torch.equal(upscale_tiled(net, x, tile=16, context=8), upscale_tiled(net, x, tile=16, context=8))


def _write(path, tensors):
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


@pytest.mark.parametrize("case", ["missing", "extra", "wrong-shape", "huge", "grey", "ints", "other-arch", "garbage", "truncated"])
def test_hostile_weight_files_are_model_errors(tmp_path, case):
    state = seeded_state(SMALL)
    f = tmp_path / "m.safetensors"
    if case == "missing":
        state.pop("conv_hr.bias")
    elif case == "extra":
        state["body.7.rdb1.conv1.weight"] = torch.zeros(4, 8, 3, 3)
    elif case == "wrong-shape":
        state["body.0.rdb2.conv3.weight"] = torch.zeros(4, 15, 3, 3)
    elif case == "huge":
        state = {"conv_first.weight": torch.zeros(4096, 3, 3, 3), "conv_first.bias": torch.zeros(4096),
                 "body.0.rdb1.conv1.weight": torch.zeros(32, 4096, 1, 1)}
    elif case == "grey":
        state["conv_first.weight"] = torch.zeros(8, 1, 3, 3)
    elif case == "ints":
        state = {k: v.to(torch.int32) for k, v in state.items()}
    elif case == "other-arch":
        state = {"body.0.weight": torch.zeros(64, 3, 3, 3), "body.0.bias": torch.zeros(64)}     # SRVGGNetCompact-like
    if case == "garbage":
        f.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    elif case == "truncated":
        f.write_bytes(_write(f, state).read_bytes()[:-100])
    else:
        _write(f, state)
    with pytest.raises(ModelError):
        load_esrgan(f, "upscaler model m")


def test_pickle_files_are_refused_and_missing_models_named(engine, model_dir, tmp_path):
    from aigif.engine.upscale import pixel_upscaler

    (tmp_path / "upscale_models").mkdir()
    (tmp_path / "upscale_models" / "4x-UltraSharp.pth").write_bytes(b"\x80\x02not loaded")
    with pytest.raises(UnsafeModelError, match="Convert it to .safetensors"):
        pixel_upscaler(hires(upscaler="4x-UltraSharp"), [tmp_path])
    with pytest.raises(UnsafeModelError, match="Convert it to .safetensors"):
        pixel_upscaler(hires(upscaler="4x_NMKD-Siax_200k.pth"), [tmp_path])
    with pytest.raises(ModelError, match="upscaler model 4x-UltraSharp not found in --model-dir"):
        pixel_upscaler(hires(upscaler="4x-UltraSharp"), [model_dir])
    with pytest.raises(ConfigError, match="swinir.*not supported"):
        pixel_upscaler(hires(upscaler="SwinIR 4x"), [model_dir])
    assert pixel_upscaler(hires(upscaler="latent-bicubic"), []) is None
    assert pixel_upscaler(hires(upscaler="Lanczos"), []).resample == "lanczos"
    # a registry model is found under the file names A1111 gives it
    assert pixel_upscaler(hires(upscaler="R-ESRGAN 2x+"), [model_dir]).path.name == "RealESRGAN_x2plus.safetensors"


# --- syntax ---------------------------------------------------------------------------------
def test_element_records_the_model_hash_and_reads_old_files():
    sha = "ab" * 32
    h = HiresFix(upscaler="4x-UltraSharp", strength=0.4, scale=2.0, upscaler_sha256=sha)
    doc = Document(generation=Generation(**BASE), model=TINY, hires=h)
    assert loads(dumps(doc)).hires == h
    assert aigif.document_to_dict(doc)["hires"]["upscaler_sha256"] == sha
    old = Document(generation=Generation(**BASE), model=TINY, hires=HiresFix(upscaler="4x-UltraSharp", strength=0.4, scale=2.0))
    assert loads(dumps(old)).hires.upscaler_sha256 is None
    for kw in (dict(upscaler="lanczos", upscaler_sha256=sha), dict(upscaler="latent-bilinear", upscaler_sha256=sha),
               dict(upscaler="4x-UltraSharp", upscaler_sha256="xyz"), dict(upscaler="4x-UltraSharp", upscaler_sha256=5)):
        with pytest.raises(ConfigError):
            HiresFix(strength=0.5, scale=2.0, **kw)


def test_what_no_engine_runs_is_said_by_the_syntax():
    assert HiresFix(upscaler="DAT x4", strength=0.5, scale=2).not_reproducible().startswith("hires fix with the upscaler 'DAT x4'")
    assert "not supported" in HiresFix(upscaler="SwinIR 4x", strength=0.5, scale=2).not_reproducible()
    for name in ("lanczos", "Nearest", "pixel-bicubic", "R-ESRGAN 4x+", "4x_NMKD-Siax_200k", "latent-bicubic"):
        assert HiresFix(upscaler=name, strength=0.5, scale=2).not_reproducible() is None


# --- regeneration ------------------------------------------------------------------------------
def test_generate_then_decode_in_a_fresh_process_is_bit_identical(engine, model_dir, tmp_path, aigif_home, monkeypatch):
    from aigif.engine.digest import file_sha256

    monkeypatch.setenv("AIGIF_MODEL_DIRS", str(model_dir))
    cases = [hires(), hires(upscaler="4x-tiny-old", scale=1.5, seed=3), hires(upscaler="R-ESRGAN 2x+", scale=1.5),
             hires(upscaler="Lanczos", scheduler="euler-a"), hires(upscaler="nearest", width=96, height=128)]
    files, images = [], []
    for i, h in enumerate(cases):
        res = engine.generate(Generation(**BASE), TINY, hires=h)
        w, h2 = res.document.image_size
        assert res.image.shape == (h2, w, 3)
        if res.document.hires.is_model:
            assert res.document.hires.upscaler_sha256 == file_sha256(engine_path(engine, h))
        else:
            assert res.document.hires.upscaler_sha256 is None
        f = tmp_path / f"u{i}.aigif"
        f.write_bytes(dumps(res.document))
        files.append(f)
        images.append(res.image)
    assert images[4].shape == (128, 96, 3)
    decode_in_fresh_process(files, tmp_path / "out", aigif_home, images)


def engine_path(engine, h):
    from aigif.engine.upscale import locate_upscaler

    return locate_upscaler(h, engine.model_dirs)


def test_the_upscaler_changes_the_image_and_both_layouts_agree(engine):
    a = engine.generate(Generation(**BASE), TINY, hires=hires()).image
    b = engine.generate(Generation(**BASE), TINY, hires=hires(upscaler="4x-tiny-old")).image
    c = engine.generate(Generation(**BASE), TINY, hires=hires(upscaler="lanczos")).image
    d = engine.generate(Generation(**BASE), TINY, hires=hires(upscaler="latent-bicubic")).image
    assert a.shape == c.shape == (128, 128, 3)
    assert np.array_equal(a, b) and not np.array_equal(a, c) and not np.array_equal(c, d)


def test_a_recorded_hash_is_checked_before_the_pipeline_loads(engine, model_dir):
    doc = Document(generation=Generation(**BASE), model=ModelRef(name="sd15"),        # sd15 is not installed here
                   hires=hires(upscaler_sha256="0" * 64))
    with pytest.raises(ModelMismatchError, match="upscaler model tiny-realesrgan"):
        engine.regenerate(doc)
    missing = Document(generation=Generation(**BASE), model=ModelRef(name="sd15"), hires=hires(upscaler="4x-UltraSharp"))
    with pytest.raises(ModelError, match="not found in --model-dir"):
        engine.regenerate(missing)
    assert issubclass(ModelMismatchError, AigifError)


# --- imported hires fixes ----------------------------------------------------------------------
A1111 = ("a castle\nSteps: 3, Sampler: Euler a, CFG scale: 7, Seed: 11, Size: 64x64, AIGIF model: aigif-tiny-sd, "
         "Denoising strength: 0.5, Hires upscale: 2, Hires upscaler: {}, Hires steps: 3")


def test_imported_a1111_upscaler_regenerates_from_the_model_dir(engine):
    from aigif.importers.a1111 import map_a1111

    imp = map_a1111(A1111.format("4x-tiny-old"))
    assert imp.regenerable, imp.reason
    doc = Document(generation=imp.generation, model=imp.model, hires=imp.hires)
    made = engine.generate(imp.generation, imp.model, hires=imp.hires).image
    assert made.shape == (128, 128, 3) and np.array_equal(engine.regenerate(doc), made)


def test_import_says_why_an_upscaler_model_cannot_regenerate(aigif_home):
    from aigif.engine import Engine
    from aigif.importers.a1111 import map_a1111
    from aigif.importers.decide import PIXELS, decide

    class Codec:
        def compress_pixels(self, rgb, quality):
            return b"pixels"

    imp = map_a1111(A1111.format("4x-UltraSharp"))
    out = decide(imp, np.zeros((128, 128, 3), np.uint8), engine=Engine(threads=1), codec=Codec())
    assert out.kind == PIXELS and "upscaler model 4x-UltraSharp not found in --model-dir" in out.reason
    swinir = decide(map_a1111(A1111.format("SwinIR 4x")), np.zeros((128, 128, 3), np.uint8), engine=Engine(threads=1),
                    codec=Codec())
    assert "not regenerable" in swinir.reason and "(swinir) is not supported" in swinir.reason


def test_a_model_pass_past_the_pixel_limit_is_refused(model_dir, monkeypatch):
    from PIL import Image

    from aigif.engine import upscale
    from aigif.errors import LimitError

    up = upscale.pixel_upscaler(hires(), [model_dir])
    monkeypatch.setattr(upscale, "MAX_MODEL_PIXELS", 16 * 64 - 1)
    with pytest.raises(LimitError, match="x4 of 4x16"):
        up(Image.new("RGB", (4, 16)), (8, 32))
    monkeypatch.setattr(upscale, "MAX_MODEL_PIXELS", 16 * 64)
    assert up(Image.new("RGB", (4, 16)), (8, 32)).size == (8, 32)


def test_the_a1111_way_back_keeps_the_model_hash():
    from aigif.importers import a1111_parameters
    from aigif.importers.a1111 import map_a1111

    imp = map_a1111(A1111.format("4x-UltraSharp"))
    h = HiresFix(**{**aigif.document_to_dict(Document(generation=imp.generation, model=imp.model, hires=imp.hires))["hires"],
                    "upscaler_sha256": "ab" * 32})
    back = map_a1111(a1111_parameters(Document(generation=imp.generation, model=imp.model, hires=h)))
    assert back.hires == h and back.regenerable
