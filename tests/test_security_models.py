"""Safe model references: a stranger's file names models and paths; decoding must never
leave the configured model dirs, run code shipped with a model (custom pipelines,
pickles, .py files), download without permission, or use weights whose digest differs.

The checks run before any weight is loaded, so most tests need no real model; a
real (tiny, embedded) pipeline folder is built once as the positive control.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest

import aigif
from aigif.errors import AigifError, ModelError, ModelMismatchError, UnsafeModelError
from aigif.syntax import Document, Generation, ModelRef
from aigif.syntax.elements import ComponentRef, Lora

pytest.importorskip("diffusers")

from aigif.engine import Engine  # noqa: E402
from aigif.engine import loader  # noqa: E402
from aigif.engine.digest import folder_digest  # noqa: E402

GEN = Generation(prompt="a red cube", seed=3, num_inference_steps=2, guidance_scale=5.0, width=64, height=64)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """models/good (allowlisted, safetensors), outside/evil (a valid pipeline OUTSIDE the model dir), a marker path."""
    from aigif.engine import tiny

    root = tmp_path_factory.mktemp("sec")
    models = root / "models"
    models.mkdir()
    tiny.build_tiny("aigif-tiny-sd", models / "good")
    shutil.copytree(models / "good", root / "outside" / "evil")
    return {"root": root, "models": models, "good": models / "good", "outside": root / "outside" / "evil",
            "digest": folder_digest(models / "good")}


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("AIGIF_HOME", str(tmp_path / "aigif-home"))   # no digest cache shared between tests
    monkeypatch.delenv("AIGIF_MODEL_DIRS", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def variant(world, name: str) -> Path:
    """A fresh copy of the good folder inside the model dir, to be made hostile by the test."""
    dst = world["models"] / name
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(world["good"], dst, symlinks=True)
    return dst


def regenerate(model: ModelRef, model_dirs, **kw):
    return Engine(model_dirs=model_dirs, **kw).regenerate(Document(generation=GEN, model=model))


# --- positive control: the checks do not refuse a proper model -------------------------------------
def test_allowlisted_folder_with_matching_digest_renders(world):
    image = regenerate(ModelRef(local="good", family="sd1", sha256=world["digest"]), [world["models"]])
    assert image.shape == (64, 64, 3)


# --- paths from the file -----------------------------------------------------------------------
@pytest.mark.parametrize("local", ["../outside/evil", "../../etc", "../../../../../../etc/passwd", "good/../../outside/evil",
                                   "/etc", "ABSOLUTE_OUTSIDE", "./../outside/evil"])
def test_local_path_outside_the_model_dirs_is_refused(world, local):
    if local == "ABSOLUTE_OUTSIDE":
        local = str(world["outside"])  # a perfectly valid pipeline, but not in a model dir
    with pytest.raises(UnsafeModelError, match="outside the model dirs"):
        loader.resolve(ModelRef(local=local, family="sd1"), [world["models"]], allow_network=False)
    with pytest.raises(UnsafeModelError):
        regenerate(ModelRef(local=local, family="sd1"), [world["models"]])


def test_local_path_with_nul_is_refused(world):
    with pytest.raises(UnsafeModelError):
        loader.resolve(ModelRef(local="good\0/../../etc", family="sd1"), [world["models"]], allow_network=False)


def test_local_path_without_any_model_dir_is_refused(world, monkeypatch):
    monkeypatch.chdir(world["models"])  # 'good' exists relative to the cwd: it must still not be used
    with pytest.raises(UnsafeModelError, match="no model dirs"):
        regenerate(ModelRef(local="good", family="sd1"), [])


def test_symlinked_model_folder_escaping_the_model_dir(world):
    link = world["models"] / "link-to-outside"
    if not link.is_symlink():
        link.symlink_to(world["outside"], target_is_directory=True)
    with pytest.raises(UnsafeModelError, match="outside the model dirs"):
        regenerate(ModelRef(local="link-to-outside", family="sd1"), [world["models"]])


def test_symlinked_single_file_escaping_the_model_dir(world):
    target = world["root"] / "outside" / "model.safetensors"
    target.write_bytes(b"{}")
    link = world["models"] / "ckpt.safetensors"
    if not link.is_symlink():
        link.symlink_to(target)
    with pytest.raises(UnsafeModelError, match="outside the model dirs"):
        regenerate(ModelRef(local="ckpt.safetensors", family="sd1"), [world["models"]])


def test_symlinked_weights_inside_a_model_folder_escaping(world):
    folder = variant(world, "sneaky")
    weights = next((folder / "unet").glob("*.safetensors"))
    outside = world["root"] / "outside" / "unet.safetensors"
    shutil.copy(weights, outside)
    weights.unlink()
    weights.symlink_to(outside)
    with pytest.raises(UnsafeModelError, match="links outside"):
        regenerate(ModelRef(local="sneaky", family="sd1"), [world["models"]], verify_weights=False)


def test_symlink_loop_is_a_clean_error(world):
    a, b = world["models"] / "loop-a", world["models"] / "loop-b"
    if not a.is_symlink():
        a.symlink_to(b)
        b.symlink_to(a)
    with pytest.raises(AigifError):
        regenerate(ModelRef(local="loop-a", family="sd1"), [world["models"]])


def test_symlink_loop_inside_a_model_folder_is_a_clean_error(world):
    folder = variant(world, "loopy")
    (folder / "unet" / "x").symlink_to(folder / "unet" / "y")
    (folder / "unet" / "y").symlink_to(folder / "unet" / "x")
    with pytest.raises(AigifError):
        regenerate(ModelRef(local="loopy", family="sd1"), [world["models"]], verify_weights=False)


@pytest.mark.parametrize("repo", ["../../etc", "..", "../outside/evil", "ABSOLUTE_OUTSIDE", "outside/evil",
                                  "a/../../outside/evil", "models/../outside/evil", "\\\\server\\share\\evil"])
def test_repo_with_path_traversal_is_never_a_local_path(world, repo, monkeypatch):
    if repo == "ABSOLUTE_OUTSIDE":
        repo = str(world["outside"])
    monkeypatch.chdir(world["root"])  # 'outside/evil' exists relative to the cwd
    with pytest.raises(ModelError):
        regenerate(ModelRef(repo=repo, family="sd1"), [world["models"]])
    # and resolution never lands outside the model dirs / HF cache
    try:
        res = loader.resolve(ModelRef(repo=repo, family="sd1"), [world["models"]], allow_network=False)
    except ModelError:
        return
    assert loader._inside(res.path.resolve(), world["models"].resolve()), res.path


def test_vae_and_lora_paths_are_not_followed(world):
    for ref in (ModelRef(local="good", family="sd1", vae=ComponentRef(local="../outside/evil/vae")),
                ModelRef(local="good", family="sd1", loras=(Lora(local="../../etc/passwd"),))):
        with pytest.raises(ModelError):
            regenerate(ref, [world["models"]])


# --- what a model folder may contain --------------------------------------------------------------
def _edit_index(folder: Path, **changes) -> None:
    p = folder / "model_index.json"
    index = json.loads(p.read_text())
    for k, v in changes.items():
        if v is None:
            index.pop(k, None)
        else:
            index[k] = v
    p.write_text(json.dumps(index))


@pytest.mark.parametrize("change", [
    {"_class_name": "EvilPipeline"},
    {"_class_name": ["pipeline_evil", "EvilPipeline"]},                  # diffusers' custom-pipeline form
    {"_class_name": "DiffusionPipeline"},
    {"unet": ["evil_module", "EvilUNet"]},                                # a component from a foreign module
    {"unet": ["diffusers", "EvilUNet"]},
    {"text_encoder": ["transformers", "AutoModel"]},                      # Auto* classes honour auto_map
    {"feature_extractor": ["pipeline_evil", "Evil"]},
])
def test_model_index_naming_non_allowlisted_classes_is_refused(world, change):
    folder = variant(world, "bad-index")
    _edit_index(folder, **change)
    with pytest.raises(UnsafeModelError):
        regenerate(ModelRef(local="bad-index", family="sd1"), [world["models"]], verify_weights=False)
    with pytest.raises(UnsafeModelError):  # also when the family comes from the folder itself
        regenerate(ModelRef(local="bad-index"), [world["models"]], verify_weights=False)


@pytest.mark.parametrize("where", ["pipeline.py", "unet/modeling_evil.py", "scheduler/scheduler_evil.py"])
def test_python_files_in_a_model_folder_are_refused(world, where, tmp_path):
    folder = variant(world, "with-code")
    marker = tmp_path / "pwned"
    (folder / where).write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    _edit_index(folder, _custom_pipeline="pipeline")
    with pytest.raises(UnsafeModelError, match="Python code"):
        regenerate(ModelRef(local="with-code", family="sd1"), [world["models"]], verify_weights=False)
    assert not marker.exists()


class _Pwn:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("suffix", [".bin", ".ckpt", ".pt", ".pkl"])
def test_folder_with_only_pickle_weights_is_refused(world, suffix, tmp_path):
    folder = variant(world, "pickled")
    marker = tmp_path / "pwned"
    for comp in ("unet", "vae", "text_encoder"):
        for w in (folder / comp).glob("*.safetensors"):
            w.unlink()
        (folder / comp / f"diffusion_pytorch_model{suffix}").write_bytes(pickle.dumps(_Pwn(str(marker))))
    with pytest.raises(UnsafeModelError, match="safetensors"):
        regenerate(ModelRef(local="pickled", family="sd1"), [world["models"]], verify_weights=False)
    assert not marker.exists()


def test_pickle_beside_safetensors_is_never_loaded(world, tmp_path):
    folder = variant(world, "both")
    marker = tmp_path / "pwned"
    (folder / "unet" / "diffusion_pytorch_model.bin").write_bytes(pickle.dumps(_Pwn(str(marker))))
    image = regenerate(ModelRef(local="both", family="sd1"), [world["models"]], verify_weights=False)
    assert image.shape == (64, 64, 3) and not marker.exists()


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".bin", ".pth"])
def test_single_file_pickle_checkpoint_is_refused(world, suffix, tmp_path):
    marker = tmp_path / "pwned"
    (world["models"] / f"model{suffix}").write_bytes(pickle.dumps(_Pwn(str(marker))))
    with pytest.raises(UnsafeModelError, match="safetensors"):
        regenerate(ModelRef(local=f"model{suffix}", family="sd1"), [world["models"]], verify_weights=False)
    assert not marker.exists()


def test_transformers_auto_map_does_not_run_code(world, tmp_path):
    folder = variant(world, "auto-map")
    marker = tmp_path / "pwned"
    cfg = folder / "text_encoder" / "config.json"
    data = json.loads(cfg.read_text())
    data["auto_map"] = {"AutoModel": "someone/evil--modeling_evil.EvilModel", "AutoConfig": "modeling_evil.EvilConfig"}
    cfg.write_text(json.dumps(data))
    try:
        regenerate(ModelRef(local="auto-map", family="sd1"), [world["models"]], verify_weights=False)
    except AigifError:
        pass
    assert not marker.exists()


def test_hostile_model_index_json_is_a_clean_error(world):
    folder = variant(world, "deep-index")
    (folder / "model_index.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(AigifError):
        regenerate(ModelRef(local="deep-index"), [world["models"]], verify_weights=False)
    (folder / "model_index.json").write_bytes(b"\xff\xfe not json")
    with pytest.raises(AigifError):
        regenerate(ModelRef(local="deep-index"), [world["models"]], verify_weights=False)


# --- digests ----------------------------------------------------------------------------------
@pytest.mark.parametrize("recorded", ["00" * 32, "0123456789", "0123456789ab"])
def test_digest_mismatch_is_refused(world, recorded):
    with pytest.raises(ModelMismatchError):
        regenerate(ModelRef(local="good", family="sd1", sha256=recorded), [world["models"]])


def test_short_a1111_hash_of_the_right_weights_is_accepted(world):
    image = regenerate(ModelRef(local="good", family="sd1", sha256=world["digest"][:10]), [world["models"]])
    assert image.shape == (64, 64, 3)


def test_tampered_weights_are_detected(world):
    folder = variant(world, "tampered")
    w = next((folder / "unet").glob("*.safetensors"))
    data = bytearray(w.read_bytes())
    data[-1] ^= 0x01
    w.write_bytes(bytes(data))
    with pytest.raises(ModelMismatchError):
        regenerate(ModelRef(local="tampered", family="sd1", sha256=world["digest"]), [world["models"]])


def test_trusting_a_mismatch_is_an_explicit_choice(world):
    image = regenerate(ModelRef(local="good", family="sd1", sha256="00" * 32), [world["models"]], verify_weights=False)
    assert image.shape == (64, 64, 3)


# --- network and remote code flags --------------------------------------------------------------
def test_no_download_unless_allowed(world, monkeypatch):
    import diffusers

    calls = []

    def fake_download(repo, **kw):
        calls.append(kw)
        raise OSError("no network in tests")

    monkeypatch.setattr(diffusers.DiffusionPipeline, "download", staticmethod(fake_download))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    ref = ModelRef(repo="someone/some-model", revision="ab" * 20, family="sd1")
    with pytest.raises(ModelError, match="offline"):
        regenerate(ref, [world["models"]])                       # Engine default: allow_network=False
    with pytest.raises(ModelError):
        regenerate(ref, [world["models"]], allow_network=True)
    assert [c["local_files_only"] for c in calls] == [True, False]
    assert all(c.get("trust_remote_code") is False and c.get("use_safetensors") is True for c in calls)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")                  # the environment's offline switch wins
    with pytest.raises(ModelError):
        regenerate(ref, [world["models"]], allow_network=True)
    assert calls[-1]["local_files_only"] is True
    assert "custom_pipeline" not in str(calls)


def test_pipeline_loading_never_enables_remote_code_or_pickles(world, monkeypatch):
    import diffusers

    seen = {}

    def fake_from_pretrained(path, **kw):
        seen.update(kw, path=path)
        raise OSError("stop here")

    monkeypatch.setattr(diffusers.StableDiffusionPipeline, "from_pretrained", staticmethod(fake_from_pretrained))
    with pytest.raises(ModelError):
        regenerate(ModelRef(local="good", family="sd1", sha256=world["digest"]), [world["models"]])
    assert seen["trust_remote_code"] is False and seen["use_safetensors"] is True and seen["local_files_only"] is True
    assert "custom_pipeline" not in seen and Path(seen["path"]).resolve() == world["good"].resolve()


def test_cli_decode_refuses_a_traversing_file(world, tmp_path, capsys):
    from aigif.cli import main

    src = tmp_path / "evil.aigif"
    src.write_bytes(aigif.dumps(Document(generation=GEN, model=ModelRef(local="../outside/evil", family="sd1"))))
    out = tmp_path / "out.png"
    assert main(["decode", str(src), "-o", str(out), "--model-dir", str(world["models"]), "-q"]) == 1
    assert "outside the model dirs" in capsys.readouterr().err and not out.exists()


# --- VAE and LoRA references (resolved like model.local) ---------------------------------------------
@pytest.mark.parametrize("lora", [
    Lora(local="../outside/evil/unet/diffusion_pytorch_model.safetensors"),
    Lora(local="ABSOLUTE_OUTSIDE"),
    Lora(name="../../outside/evil/unet/diffusion_pytorch_model"),
    Lora(local="good", weight_name="../../outside/evil/unet/diffusion_pytorch_model.safetensors"),
    Lora(repo="someone/loras", weight_name="../../../etc/passwd.safetensors"),
    Lora(repo="someone/loras", weight_name="/etc/passwd.safetensors"),
])
def test_lora_paths_outside_the_model_dirs_are_refused(world, lora):
    import dataclasses

    if lora.local == "ABSOLUTE_OUTSIDE":
        lora = dataclasses.replace(lora, local=str(next((world["outside"] / "unet").glob("*.safetensors"))))
    with pytest.raises(UnsafeModelError):
        regenerate(ModelRef(local="good", family="sd1", loras=(lora,)), [world["models"]], verify_weights=False)


@pytest.mark.parametrize("suffix", [".pt", ".ckpt", ".bin"])
def test_pickle_lora_is_refused(world, suffix, tmp_path):
    marker = tmp_path / "pwned"
    loras = world["models"] / "Lora"
    loras.mkdir(exist_ok=True)
    (loras / f"style{suffix}").write_bytes(pickle.dumps(_Pwn(str(marker))))
    for lora in (Lora(name="style"), Lora(local=f"Lora/style{suffix}")):
        with pytest.raises(UnsafeModelError):
            regenerate(ModelRef(local="good", family="sd1", loras=(lora,)), [world["models"]], verify_weights=False)
    assert not marker.exists()


@pytest.mark.parametrize("vae", [
    ComponentRef(local="../outside/evil/vae"),
    ComponentRef(local="good", subfolder="../../outside/evil/vae"),
    ComponentRef(name="../../outside/evil/vae"),
    ComponentRef(repo="someone/vae", subfolder="../../../outside"),
])
def test_vae_paths_outside_the_model_dirs_are_refused(world, vae):
    with pytest.raises(UnsafeModelError):
        regenerate(ModelRef(local="good", family="sd1", vae=vae), [world["models"]], verify_weights=False)


def test_vae_folder_with_foreign_class_or_code_is_refused(world):
    folder = variant(world, "vae-host")
    cfg = folder / "vae" / "config.json"
    data = json.loads(cfg.read_text())
    data["_class_name"] = "EvilAutoencoder"
    cfg.write_text(json.dumps(data))
    with pytest.raises(UnsafeModelError):
        regenerate(ModelRef(local="good", family="sd1", vae=ComponentRef(local="vae-host/vae")), [world["models"]],
                   verify_weights=False)
    data["_class_name"] = "AutoencoderKL"
    cfg.write_text(json.dumps(data))
    (folder / "vae" / "modeling_evil.py").write_text("raise SystemExit('pwned')\n")
    with pytest.raises(UnsafeModelError):
        regenerate(ModelRef(local="good", family="sd1", vae=ComponentRef(local="vae-host/vae")), [world["models"]],
                   verify_weights=False)


def test_lora_digest_mismatch_is_refused(world):
    loras = world["models"] / "Lora"
    loras.mkdir(exist_ok=True)
    shutil.copy(next((world["good"] / "unet").glob("*.safetensors")), loras / "notalora.safetensors")
    with pytest.raises(ModelMismatchError):
        regenerate(ModelRef(local="good", family="sd1", sha256=world["digest"],
                            loras=(Lora(local="Lora/notalora.safetensors", sha256="00" * 32),)), [world["models"]])
