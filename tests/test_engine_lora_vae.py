"""VAE overrides and LoRAs: applied, deterministic across engines, recorded, verified, refused when unsafe."""
import hashlib
import shutil

import numpy as np
import pytest

from aigif import Generation, ModelRef, dumps, loads
from aigif.errors import ModelError, ModelMismatchError, UnsafeModelError
from aigif.fidelity import EXACT, psnr
from aigif.syntax.elements import ComponentRef, Lora


pytestmark = pytest.mark.usefixtures("aigif_home")  # a fresh $AIGIF_HOME per module (conftest.py)


def gen(seed=5, prompt="a red lighthouse at dawn"):
    return Generation(prompt=prompt, seed=seed, num_inference_steps=3, guidance_scale=7.5, width=64, height=64)


def _seeded(shape, seed, scale):
    import torch

    rng = np.random.Generator(np.random.PCG64(seed))
    return torch.from_numpy((rng.standard_normal(shape) * scale).astype(np.float32))


def _lora_state_dicts(seed: int):
    """PEFT LoRA tensors for the tiny SD UNet (attention projections) and its text encoder (q/v), seeded."""
    import diffusers
    import transformers
    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model

    from aigif.engine import tiny

    unet = diffusers.UNet2DConditionModel(**tiny.TINY["aigif-tiny-sd"].config("unet"))
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    te = transformers.CLIPTextModel(transformers.CLIPTextConfig(**tiny._CLIP))
    te = inject_adapter_in_model(LoraConfig(r=2, lora_alpha=2, target_modules=["q_proj", "v_proj"]), te)
    out = []
    for i, module in enumerate((unet, te)):
        sd = get_peft_model_state_dict(module)
        out.append({k: _seeded(tuple(v.shape), seed * 1000 + i * 100 + j, 0.25) for j, (k, v) in enumerate(sorted(sd.items()))})
    return out


def make_lora(folder, name: str, seed: int):
    from diffusers import StableDiffusionPipeline

    unet_sd, te_sd = _lora_state_dicts(seed)
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=unet_sd, text_encoder_lora_layers=te_sd,
                                              weight_name=name, safe_serialization=True)
    return folder / name


def make_kohya_lora(path, seed: int):
    """The same tensors as make_lora(seed) in the kohya/A1111 layout (lora_down/lora_up/alpha)."""
    from safetensors.torch import save_file

    unet_sd, te_sd = _lora_state_dicts(seed)
    out = {}
    for prefix, sd in (("lora_unet_", unet_sd), ("lora_te_text_model_", te_sd)):
        for k, v in sd.items():
            mod, kind = k.split(".lora_")
            base = prefix + mod.replace(".", "_")
            out[f"{base}.{'lora_down' if kind.startswith('A') else 'lora_up'}.weight"] = v.contiguous()
            out[f"{base}.alpha"] = __import__("torch").tensor(float(v.shape[0] if kind.startswith("A") else v.shape[1]))
    save_file(out, str(path))
    return path


def make_vae(folder, seed: int):
    """A tiny AutoencoderKL (the embedded model's config) with other seeded weights."""
    import diffusers

    from aigif.engine import tiny

    vae = diffusers.AutoencoderKL(**tiny._VAE)
    sd = {k: (_seeded(tuple(v.shape), seed + i, 0.3) if v.ndim >= 2 else v) for i, (k, v) in enumerate(sorted(vae.state_dict().items()))}
    vae.load_state_dict(sd)
    vae.save_pretrained(folder, safe_serialization=True)
    return folder


def to_ldm_vae(sd: dict, levels: int = 4) -> dict:
    """diffusers AutoencoderKL keys -> the original LDM layout of A1111/ComfyUI VAE files (1x1 conv attention)."""
    import re

    attn = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    out = {}
    for k, v in sd.items():
        n = re.sub(r"^encoder\.down_blocks\.(\d+)\.resnets\.", r"encoder.down.\1.block.", k)
        n = re.sub(r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", n)
        n = re.sub(r"^decoder\.up_blocks\.(\d+)\.resnets\.", lambda m: f"decoder.up.{levels - 1 - int(m[1])}.block.", n)
        n = re.sub(r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.", lambda m: f"decoder.up.{levels - 1 - int(m[1])}.upsample.", n)
        n = re.sub(r"\.mid_block\.resnets\.(\d)\.", lambda m: f".mid.block_{int(m[1]) + 1}.", n)
        m = re.match(r"^(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(weight|bias)$", n)
        if m:
            n = f"{m[1]}.mid.attn_1.{attn[m[2]]}.{m[3]}"
            if v.ndim == 2:
                v = v[:, :, None, None]
        n = n.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
        out[n] = v.contiguous()
    return out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, aigif_home):
    d = tmp_path_factory.mktemp("models")
    (d / "Lora").mkdir()
    make_lora(d / "Lora", "style.safetensors", 1)
    make_lora(d, "other.safetensors", 2)
    make_vae(d / "myvae", 7)
    return d


@pytest.fixture(scope="module")
def engine(model_dir):
    from aigif.engine import Engine

    return Engine(model_dirs=[model_dir], threads=1)


@pytest.fixture(scope="module")
def base(engine):
    return engine.generate(gen()).image


def _fresh(model_dir, **kw):
    from aigif.engine import Engine

    return Engine(model_dirs=[model_dir], threads=1, **kw)


def test_lora_changes_the_image_and_decodes_bit_identically(engine, model_dir, base):
    sha = hashlib.sha256((model_dir / "Lora" / "style.safetensors").read_bytes()).hexdigest()
    images = {}
    for w in (0.8, -0.5):
        res = engine.generate(gen(), ModelRef(name="aigif-tiny-sd", loras=(Lora(name="style", weight=w),)))
        assert not np.array_equal(res.image, base) and psnr(res.image, base) < 45
        doc = loads(dumps(res.document))
        (lo,) = doc.model.loras
        assert lo.weight == w and lo.name == "style" and lo.sha256 == sha          # weight and digest recorded
        out = _fresh(model_dir).decode(doc)                                        # a new engine, a new pipeline
        assert out.report.status == EXACT and np.array_equal(out.image, res.image)
        images[w] = res.image
    assert not np.array_equal(images[0.8], images[-0.5])
    # adapters do not leak: the same engine renders the plain model exactly as before
    assert np.array_equal(engine.generate(gen()).image, base)


def test_lora_order_history_and_stacking_are_deterministic(engine, model_dir, monkeypatch):
    one = ModelRef(name="aigif-tiny-sd", loras=(Lora(name="style", weight=0.8),))
    two = ModelRef(name="aigif-tiny-sd", loras=(Lora(name="style", weight=0.8), Lora(name="other", weight=0.6)))
    a = engine.generate(gen(seed=9), one).image
    b = engine.generate(gen(seed=9), two).image
    assert not np.array_equal(a, b)
    assert np.array_equal(engine.generate(gen(seed=9), one).image, a)      # 'other' still loaded, inactive
    fresh = _fresh(model_dir)
    assert np.array_equal(fresh.generate(gen(seed=9), two).image, b)
    assert np.array_equal(fresh.generate(gen(seed=9), one).image, a)
    reversed_ = ModelRef(name="aigif-tiny-sd", loras=two.loras[::-1])
    assert psnr(fresh.generate(gen(seed=9), reversed_).image, b) > 40          # same sum, other order: (nearly) equal
    # over the adapter budget: everything is unloaded and the request reloaded, same pixels
    import aigif.engine.lora as lora_mod

    monkeypatch.setattr(lora_mod, "MAX_LOADED", 1)
    small = _fresh(model_dir)
    assert np.array_equal(small.generate(gen(seed=9), one).image, a)
    assert np.array_equal(small.generate(gen(seed=9), two).image, b)
    assert np.array_equal(small.generate(gen(seed=9), one).image, a)


def test_lora_equals_diffusers_own_lora_path(engine, model_dir):
    """Un-fused adapters: the same numerics as a bare diffusers pipeline with load_lora_weights + set_adapters (UNet)."""
    import torch
    from safetensors.torch import load_file, save_file

    from aigif.engine.schedulers import make_scheduler

    unet_only = {k: v for k, v in load_file(str(model_dir / "Lora" / "style.safetensors")).items() if k.startswith("unet.")}
    save_file(unet_only, str(model_dir / "unet_only.safetensors"))
    ours = engine.generate(gen(seed=13), ModelRef(name="aigif-tiny-sd", loras=(Lora(local="unet_only.safetensors", weight=0.7),))).image
    from aigif.engine.loader import load_pipeline, resolve
    from aigif.engine import prepare_pipeline

    res = resolve(ModelRef(name="aigif-tiny-sd"), [], False)
    pipe = load_pipeline(res, torch.float32, "cpu")
    prepare_pipeline(pipe)
    pipe.load_lora_weights(str(model_dir), weight_name="unet_only.safetensors", adapter_name="x")
    pipe.set_adapters(["x"], adapter_weights=[0.7])
    pipe.scheduler = make_scheduler(type(pipe.scheduler).__name__, dict(pipe.scheduler.config), None, None)
    pipe.set_progress_bar_config(disable=True)
    torch.set_num_threads(1)
    out = pipe(gen().prompt, num_inference_steps=3, guidance_scale=7.5, width=64, height=64,
               generator=torch.Generator("cpu").manual_seed(13), output_type="np").images[0]
    assert np.array_equal(np.round(out * 255).astype(np.uint8), ours)


def test_kohya_layout_gives_the_same_image(engine, model_dir):
    make_kohya_lora(model_dir / "Lora" / "style_kohya.safetensors", 1)
    a = engine.generate(gen(seed=17), ModelRef(name="aigif-tiny-sd", loras=(Lora(name="style", weight=0.8),))).image
    b = engine.generate(gen(seed=17), ModelRef(name="aigif-tiny-sd", loras=(Lora(name="style_kohya", weight=0.8),))).image
    assert np.array_equal(a, b)


def test_lora_hashes_missing_and_unsafe(engine, model_dir):
    from aigif.engine.digest import safetensors_data_sha256

    f = model_dir / "Lora" / "style.safetensors"
    sha = hashlib.sha256(f.read_bytes()).hexdigest()
    ok = [sha, sha[:10], safetensors_data_sha256(f)[:12]]          # full, AutoV2, A1111 "Lora hashes" (AutoV3)
    for h in ok:
        engine.generate(gen(), ModelRef(name="aigif-tiny-sd", loras=(Lora(name="style", sha256=h),)))
    blob = f.read_bytes()
    n = int.from_bytes(blob[:8], "little")
    assert safetensors_data_sha256(f) == hashlib.sha256(blob[8 + n:]).hexdigest()
    with pytest.raises(ModelMismatchError, match="trust-model-mismatch"):
        engine.generate(gen(), ModelRef(name="aigif-tiny-sd", loras=(Lora(name="style", sha256="0" * 64),)))
    _fresh(model_dir, verify_weights=False).generate(gen(), ModelRef(name="aigif-tiny-sd", loras=(Lora(name="style", sha256="0" * 10),)))
    with pytest.raises(ModelError, match="not found.*model dir") as info:
        engine.generate(gen(), ModelRef(name="aigif-tiny-sd", loras=(Lora(name="nowhere"),)))
    assert "nowhere.safetensors" in str(info.value) and "--model-dir" in str(info.value)
    (model_dir / "Lora" / "pickled.bin").write_bytes(b"\x80\x04pickle")
    for lora in (Lora(local="Lora/pickled.bin"), Lora(name="pickled"), Lora(name="x", weight_name="x.pt")):
        with pytest.raises(UnsafeModelError, match="safetensors"):
            engine.generate(gen(), ModelRef(name="aigif-tiny-sd", loras=(lora,)))
    for lora in (Lora(local="../x.safetensors"), Lora(name="../../etc/passwd")):
        with pytest.raises(UnsafeModelError, match="outside"):
            engine.generate(gen(), ModelRef(name="aigif-tiny-sd", loras=(lora,)))
    from aigif.engine import Engine

    with pytest.raises(ModelError, match="not found"):           # no model dirs at all: still actionable
        Engine(threads=1).generate(gen(), ModelRef(name="aigif-tiny-sd", loras=(Lora(name="style"),)))


def test_lora_for_another_model_is_refused_cleanly(engine, model_dir, base):
    from safetensors.torch import save_file

    save_file({"unet.nowhere.to_q.lora_A.weight": _seeded((4, 32), 1, 1.0),
               "unet.nowhere.to_q.lora_B.weight": _seeded((32, 4), 2, 1.0)}, str(model_dir / "alien.safetensors"))
    with pytest.raises(ModelError, match="another model family|match"):
        engine.generate(gen(), ModelRef(name="aigif-tiny-sd", loras=(Lora(local="alien.safetensors"),)))
    assert np.array_equal(engine.generate(gen()).image, base)


def test_vae_override_folder_and_single_file(engine, model_dir, base):
    from aigif.engine.digest import component_digest

    res = engine.generate(gen(), ModelRef(name="aigif-tiny-sd", vae=ComponentRef(name="myvae")))
    assert not np.array_equal(res.image, base)
    doc = loads(dumps(res.document))
    digest = component_digest(model_dir / "myvae")
    w = hashlib.sha256((model_dir / "myvae" / "diffusion_pytorch_model.safetensors").read_bytes()).hexdigest()
    assert digest == hashlib.sha256(f"diffusion_pytorch_model.safetensors\0{w}\n".encode()).hexdigest()
    assert doc.model.vae == ComponentRef(name="myvae", sha256=digest)
    out = _fresh(model_dir).decode(doc)
    assert out.report.status == EXACT and np.array_equal(out.image, res.image)
    # the same weights as one .safetensors file (in VAE/) give the same pixels; its digest is the file's sha256
    (model_dir / "VAE").mkdir(exist_ok=True)
    shutil.copy(model_dir / "myvae" / "diffusion_pytorch_model.safetensors", model_dir / "VAE" / "myvae-single.safetensors")
    single = engine.generate(gen(), ModelRef(name="aigif-tiny-sd", vae=ComponentRef(name="myvae-single.safetensors", sha256=w[:10])))
    assert np.array_equal(single.image, res.image)
    # the original LDM layout (what A1111/ComfyUI VAE files use) is converted onto the model's VAE config
    from safetensors.torch import load_file, save_file

    save_file(to_ldm_vae(load_file(str(model_dir / "myvae" / "diffusion_pytorch_model.safetensors"))),
              str(model_dir / "VAE" / "myvae-ldm.safetensors"))
    ldm = engine.generate(gen(), ModelRef(name="aigif-tiny-sd", vae=ComponentRef(name="myvae-ldm")))
    assert np.array_equal(ldm.image, res.image)
    # A1111 "VAE hash" without a VAE name: found by its AutoV2 hash among the VAE files
    by_hash = engine.generate(gen(), ModelRef(name="aigif-tiny-sd", vae=ComponentRef(name=f"sha256:{w[:10]}", sha256=w[:10])))
    assert np.array_equal(by_hash.image, res.image)
    assert np.array_equal(engine.generate(gen()).image, base)   # the plain model keeps its own VAE
    # with a LoRA on top, still exact in a fresh engine
    both = engine.generate(gen(), ModelRef(name="aigif-tiny-sd", vae=ComponentRef(local="myvae"), loras=(Lora(name="style", weight=0.8),)))
    assert _fresh(model_dir).decode(loads(dumps(both.document))).report.status == EXACT


def test_vae_mismatch_missing_and_unsafe(engine, model_dir):
    with pytest.raises(ModelMismatchError):
        engine.generate(gen(), ModelRef(name="aigif-tiny-sd", vae=ComponentRef(name="myvae", sha256="1" * 64)))
    with pytest.raises(ModelError, match="not found") as info:
        engine.generate(gen(), ModelRef(name="aigif-tiny-sd", vae=ComponentRef(name="vae-ft-mse-840000-ema-pruned")))
    assert "--model-dir" in str(info.value)
    with pytest.raises(UnsafeModelError, match="outside"):
        engine.generate(gen(), ModelRef(name="aigif-tiny-sd", vae=ComponentRef(local="../x")))
    (model_dir / "kl-f8.pt").write_bytes(b"\x80\x04pickle")
    with pytest.raises(UnsafeModelError, match="safetensors"):
        engine.generate(gen(), ModelRef(name="aigif-tiny-sd", vae=ComponentRef(name="kl-f8.pt")))
    bad = model_dir / "pickled_vae"
    shutil.copytree(model_dir / "myvae", bad, dirs_exist_ok=True)
    (bad / "diffusion_pytorch_model.safetensors").rename(bad / "diffusion_pytorch_model.bin")
    with pytest.raises(UnsafeModelError, match="pickle"):
        engine.generate(gen(), ModelRef(name="aigif-tiny-sd", vae=ComponentRef(local="pickled_vae")))
    evil = model_dir / "evil_vae"
    shutil.copytree(model_dir / "myvae", evil, dirs_exist_ok=True)
    (evil / "config.json").write_text((evil / "config.json").read_text().replace('"AutoencoderKL"', '"EvilAutoencoder"'))
    with pytest.raises(UnsafeModelError, match="not allowed"):
        engine.generate(gen(), ModelRef(name="aigif-tiny-sd", vae=ComponentRef(local="evil_vae")))


def test_cli_generate_with_lora_and_vae(tmp_path, model_dir):
    from aigif.cli.engine_cmds import cli_decode, cli_generate
    from aigif.engine.refs import parse_lora

    assert parse_lora("style:0.8", [model_dir]) == Lora(name="style", weight=0.8)
    assert parse_lora("style", [model_dir]) == Lora(name="style", weight=1.0)
    assert parse_lora("style:0.8:0", [model_dir]) == Lora(name="style", weight=0.8, text_weight=0.0)
    assert parse_lora("owner/repo:-0.5", [model_dir]) == Lora(repo="owner/repo", revision="main", weight=-0.5)
    from aigif.cli import main

    assert main(["generate", "--help"]) == 0          # help texts render (no stray rich markup)
    lines = []
    out = tmp_path / "l.aigif"
    assert main(["generate", "-p", "a small boat", "-o", str(out), "--steps", "2", "--seed", "3", "--threads", "1", "-q",
                 "--model-dir", str(model_dir), "--lora", "style:0.8", "--lora", str(model_dir / "other.safetensors") + ":-0.5",
                 "--vae", str(model_dir / "myvae")]) == 0
    # a LoRA file outside the model dirs: its folder becomes one, and the user is told to pass it when decoding
    outside = make_lora(tmp_path, "mine.safetensors", 3)
    assert cli_generate("a small boat", tmp_path / "m.aigif", steps=2, seed=3, threads=1, progress=False, echo=lines.append,
                        loras=[f"{outside}:0.5"]) == 0
    assert any(f"--model-dir {tmp_path}" in line for line in lines)
    doc = loads(out.read_bytes())
    assert [(lo.name, lo.local, lo.weight) for lo in doc.model.loras] == [("style", None, 0.8), (None, "other.safetensors", -0.5)]
    assert doc.model.vae.local == "myvae" and doc.model.vae.sha256
    assert cli_decode([out], tmp_path / "l.png", progress=False, echo=lines.append, model_dirs=[model_dir]) == 0
    assert any(": exact" in line for line in lines)


def test_missing_hub_lora_and_vae_offline_say_how_to_get_them(engine, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for ref in (ModelRef(name="aigif-tiny-sd", loras=(Lora(repo="aigif-test/no-lora", weight_name="x.safetensors"),)),
                ModelRef(name="aigif-tiny-sd", vae=ComponentRef(repo="aigif-test/no-vae", subfolder="vae"))):
        with pytest.raises(ModelError) as info:
            engine.generate(gen(), ref)
        msg = str(info.value)
        assert "huggingface-cli download aigif-test/no-" in msg and "--allow-network" in msg and "--model-dir" in msg
    with pytest.raises(UnsafeModelError):
        engine.generate(gen(), ModelRef(name="aigif-tiny-sd", loras=(Lora(repo="a/b", weight_name="../../x.safetensors"),)))


def test_lora_metadata_alpha_is_used_and_unsafe_keys_are_dropped(engine, model_dir, base):
    """diffusers' adapter metadata sets lora_alpha; initialisers that rewrite base weights (PiSSA) and dropout are ignored."""
    from diffusers import StableDiffusionPipeline

    unet_sd, _ = _lora_state_dicts(4)
    StableDiffusionPipeline.save_lora_weights(model_dir, unet_lora_layers=unet_sd, weight_name="a4.safetensors")
    StableDiffusionPipeline.save_lora_weights(
        model_dir, unet_lora_layers=unet_sd, weight_name="a8.safetensors",
        unet_lora_adapter_metadata={"r": 4, "lora_alpha": 8, "target_modules": ["to_q", "to_k", "to_v", "to_out.0"],
                                    "lora_dropout": 0.5, "init_lora_weights": "pissa"})
    a4 = engine.generate(gen(seed=23), ModelRef(name="aigif-tiny-sd", loras=(Lora(local="a4.safetensors", weight=1.0),))).image
    a8 = engine.generate(gen(seed=23), ModelRef(name="aigif-tiny-sd", loras=(Lora(local="a8.safetensors", weight=0.5),))).image
    assert np.array_equal(a4, a8)                       # 0.5 * 8/4 == 1.0 * 4/4, no dropout noise
    assert np.array_equal(engine.generate(gen()).image, base)   # base weights untouched
