"""Find, check and load the pipeline a ModelRef names — never running code from the model.

Rules (spec/engine.md "Model identity and safety"): registry names, Hugging
Face repo ids (pinned revision, through the HF cache; network only when
allowed) or folders inside the configured model dirs; ``model_index.json``
may name only allowlisted pipeline/component classes; weights must be
safetensors; the model digest is compared with the one recorded in the file.
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from ..errors import AigifError, ModelError, UnsafeModelError
from ..syntax import registry
from ..syntax.defaults import DEFAULT_MODEL
from ..syntax.elements import ModelRef
from . import tiny
from .comfy_files import SplitFiles, alternatives, is_transformer_path, load_split, split_files
from .digest import file_sha256, folder_digest
from .families import allowed_pipelines, family_for_pipeline, family_of_pipeline, family_pipeline, get_family
from .model_help import missing_files, where_to_put
from .schedulers import ALLOWED_SCHEDULERS
from .quiet import quiet as _quiet

UNSAFE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl", ".pickle", ".msgpack", ".h5", ".onnx", ".gguf")
# diffusers names its own pipeline sub-packages as libraries (real SD 1.x: ["stable_diffusion", "StableDiffusionSafetyChecker"])
_LIBRARIES = {"diffusers", "transformers", "stable_diffusion", "stable_diffusion_xl"}


@dataclass(frozen=True)
class Resolved:
    """Where a model's weights are and what they must hash to."""

    path: Path
    pipeline: str               # diffusers pipeline class name
    family: str
    recorded_sha256: str | None
    variant: str | None = None
    single_file: bool = False
    local: bool = False          # a folder from the model dirs (symlinks must stay inside)
    root: Path | None = None
    split: SplitFiles | None = None   # a transformer-only file + text encoder / VAE files (ComfyUI layout)


# --- resolution -----------------------------------------------------------------
def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def _resolve(path: Path) -> Path:
    """``Path.resolve`` whose symlink-loop RuntimeError (Python < 3.13) becomes an UnsafeModelError."""
    try:
        return path.resolve()
    except (RuntimeError, OSError) as exc:
        raise UnsafeModelError(f"{path} cannot be resolved ({exc}); symlink loops are refused") from None


def safe_local_path(local: str, model_dirs: list[Path], what: str = "model") -> tuple[Path, Path]:
    """Resolve *local* (as written in a file) inside one of the model dirs; anything else is refused."""
    if not model_dirs:
        raise UnsafeModelError(f"the file names a local {what} {local!r} but no model dirs are configured; "
                               "pass --model-dir DIR (or set AIGIF_MODEL_DIRS) to the folder that holds it")
    if "\0" in local:
        raise UnsafeModelError(f"local {what} path contains NUL")
    inside_any = False
    for root in model_dirs:
        root = Path(root).expanduser().resolve()
        cand = _resolve(root / local)
        if not _inside(cand, root):
            continue
        inside_any = True
        if cand.exists():
            return cand, root
    if not inside_any:
        raise UnsafeModelError(f"local {what} {local!r} resolves outside the model dirs ({', '.join(map(str, model_dirs))}); "
                               "aigif never follows a path from a file outside them")
    raise ModelError(f"local {what} {local!r} not found in the model dirs ({', '.join(map(str, model_dirs))}); "
                     + ("put the diffusers folder there or pass --model-dir" if what == "model" else
                        "put the .safetensors file (or folder) there or pass --model-dir"))


def _recorded(ref: ModelRef | None, entry: registry.ModelEntry | None) -> str | None:
    if ref is not None and ref.sha256:
        return ref.sha256
    return entry.sha256 if entry else None


def _family_for(ref: ModelRef | None, entry, folder: Path | None) -> tuple[str, str]:
    """(family, pipeline class) from the reference, the registry or the folder's model_index.json."""
    fam = (ref.family if ref else None) or (entry.family if entry else None)
    if fam:
        return fam, family_pipeline(fam)
    if folder is not None and (folder / "model_index.json").exists():
        cls = _read_index(folder).get("_class_name")
        if isinstance(cls, str) and cls in allowed_pipelines():
            return family_of_pipeline(cls), cls
        raise UnsafeModelError(f"{folder}: pipeline class {cls!r} is not allowed; allowed: {', '.join(sorted(allowed_pipelines()))}")
    raise ModelError("cannot tell the pipeline family of this model; record model.family in the file")


def resolve(ref: ModelRef | None, model_dirs: list[Path], allow_network: bool) -> Resolved:
    name = ref.name if ref else DEFAULT_MODEL
    entry = None
    if name and registry.code_of("model", name) is not None:
        entry = registry.model_entry(name)
    elif name and not (ref and (ref.repo or ref.local)):
        raise ModelError(f"unknown model name {name!r}; known: {', '.join(sorted(m.name for m in registry.MODELS.values()))}")
    family = (ref.family if ref else None) or (entry.family if entry else None)
    if family:
        family_pipeline(family)   # a family this decoder lacks is refused by name before any weights are looked for
    # 1. embedded tiny models
    if entry is not None and entry.embedded and not (ref and (ref.repo or ref.local)):
        fam, pipe = entry.family, family_pipeline(entry.family)
        return Resolved(tiny.ensure_tiny(entry.name, verify=False), pipe, fam, _recorded(ref, entry))
    # 2. a local folder / file named by the file: only inside the model dirs
    if ref is not None and ref.local:
        if is_transformer_path(ref.local):
            _check_split_present(ref, model_dirs)
            path, root = locate(ref.local, model_dirs)
            if path.is_file():
                return _split(path, root, ref, entry, model_dirs, allow_network)
        path, root = safe_local_path(ref.local, model_dirs)
        return _local(path, root, ref, entry)
    # 3. a registry name or repo that the user keeps in a model dir
    for cand in _model_dir_candidates(ref, entry, model_dirs):
        return _local(cand[0], cand[1], ref, entry)
    # 4. the Hugging Face hub (cache first; network only when allowed)
    repo = (ref.repo if ref and ref.repo else None) or (entry.repo if entry else None)
    revision = (ref.revision if ref and ref.revision else None) or (entry.revision if entry else None) or "main"
    if not repo:
        raise ModelError("the model reference names no repo and no local folder")
    if ref is not None and ref.weights_file:
        raise ModelError(f"single-file checkpoints from the hub ({repo}/{ref.weights_file}) are not supported; "
                         "download the file into a model dir and reference it with model.local")
    name = entry.name if entry is not None and repo == entry.repo else repo.split("/")[-1]
    help_text = where_to_put(name, repo, revision, get_family(family)) if family else ""
    folder = _hub_folder(repo, revision, ref.variant if ref else None, allow_network, help_text)
    fam, pipe = _family_for(ref, entry, folder)
    return Resolved(folder, pipe, fam, _recorded(ref, entry), variant=ref.variant if ref else None)


def locate(local: str, model_dirs: list[Path], what: str = "model") -> tuple[Path, Path]:
    """:func:`safe_local_path` of *local*, else of the same file under the alias folders of ComfyUI's layout
    (``diffusion_models/`` = ``unet/``, ``text_encoders/`` = ``clip/``...); the error names the recorded path."""
    first = None
    for cand in alternatives(local):
        try:
            return safe_local_path(cand, model_dirs, what)
        except UnsafeModelError:
            raise
        except ModelError as exc:
            first = first or exc
    raise first


def _check_split_present(ref: ModelRef, model_dirs) -> None:
    """Name every recorded single file that no model dir holds, at once (not the first one only)."""
    wanted = [("transformer", ref.local, ref.sha256)]
    wanted += [(te.subfolder or "text encoder", te.local, te.sha256) for te in ref.text_encoders if te.local]
    if ref.vae is not None and ref.vae.local:
        wanted.append(("vae", ref.vae.local, ref.vae.sha256))
    missing = []
    for comp, local, sha in wanted:
        if not model_dirs:
            missing.append((comp, local, sha))
            continue
        try:
            locate(local, model_dirs, comp)
        except UnsafeModelError:
            raise
        except ModelError:
            missing.append((comp, local, sha))
    if missing:
        raise ModelError(missing_files(ref.name or Path(ref.local).stem, missing, model_dirs))


def _model_dir_candidates(ref, entry, model_dirs):
    names = []
    if entry is not None:
        names += [entry.name, entry.repo.split("/")[-1]]
    if ref is not None and ref.repo:
        names += [ref.repo.replace("/", "--"), ref.repo.split("/")[-1]]
    for root in model_dirs:
        root = Path(root).expanduser().resolve()
        for n in names:
            cand = _resolve(root / n)
            if n and _inside(cand, root) and (cand / "model_index.json").exists():
                yield cand, root


def _local(path: Path, root: Path, ref: ModelRef | None, entry) -> Resolved:
    if path.is_file():
        if path.suffix != ".safetensors":
            raise UnsafeModelError(f"{path}: only .safetensors checkpoints are loaded (pickle-based {path.suffix} files can run code)")
        fam = (ref.family if ref else None) or (entry.family if entry else None)
        if not fam:
            raise ModelError(f"{path} is a single-file checkpoint: the file must record model.family (sd1, sd2, sdxl)")
        recorded = (ref.sha256 if ref else None) or (entry.single_file_sha256 if entry else None)
        return Resolved(path, family_pipeline(fam), fam, recorded, single_file=True, local=True, root=root)
    fam, pipe = _family_for(ref, entry, path)
    return Resolved(path, pipe, fam, _recorded(ref, entry), variant=ref.variant if ref else None, local=True, root=root)


def _split(path: Path, root: Path, ref: ModelRef, entry, model_dirs, allow_network: bool) -> Resolved:
    """A ComfyUI transformer-only file: configs and tokenizers from the registry model's skeleton, weights from files."""
    if entry is None:
        raise ModelError(f"{path.name} is a transformer-only file ({path.parent.name}/): record model.name, the registry "
                         "model it is (e.g. flux1-dev), whose configs and tokenizers complete it")
    fam = ref.family or entry.family
    pipe = family_pipeline(fam)
    skeleton, skel_root = _skeleton(path, entry, fam, model_dirs, allow_network)
    cls = _read_index(skeleton).get("_class_name")
    if cls != pipe:
        raise UnsafeModelError(f"{skeleton}: pipeline class {cls!r}, expected {pipe} for family {fam}")
    check_pipeline_folder(Resolved(skeleton, pipe, fam, None, local=skel_root is not None, root=skel_root), weights=False)
    split = split_files(path, skeleton, ref.text_encoders, ref.vae, lambda local, what: locate(local, model_dirs, what)[0])
    return Resolved(path, pipe, fam, ref.sha256, single_file=True, local=True, root=root, split=split)


def _skeleton(path: Path, entry, fam: str, model_dirs, allow_network: bool) -> tuple[Path, Path | None]:
    """(folder with the configs and tokenizers of *entry*, the model dir holding it or None): the embedded model,
    a diffusers folder in a model dir (weights not needed), else the Hugging Face cache."""
    if entry.embedded:
        return tiny.ensure_tiny(entry.name, verify=False), None
    for cand, root in _model_dir_candidates(None, entry, model_dirs):
        return cand, root
    return _hub_folder(entry.repo, entry.revision, None, allow_network,
                       f"{path.name} holds only the transformer; the configs and tokenizers of {entry.name} complete it. "
                       + where_to_put(entry.name, entry.repo, entry.revision, get_family(fam), weights=False)), None


def _hub_folder(repo: str, revision: str, variant: str | None, allow_network: bool, help_text: str = "") -> Path:
    """A snapshot folder of *repo* at *revision* from the HF cache (``HF_HOME``), downloading only if allowed;
    *help_text* says where else the model can be put (:mod:`.model_help`)."""
    import diffusers

    offline = not allow_network or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    try:
        return Path(diffusers.DiffusionPipeline.download(
            repo, revision=revision, variant=variant, use_safetensors=True, local_files_only=offline, trust_remote_code=False))
    except Exception as exc:  # hub/cache errors come in many types
        how = (f"run once with network allowed (--allow-network / Engine(allow_network=True)), or "
               f"`huggingface-cli download {repo} --revision {revision}` into the HF cache (HF_HOME), "
               f"or put the diffusers folder into a model dir (--model-dir / AIGIF_MODEL_DIRS)")
        state = "offline: not in the Hugging Face cache" if offline else f"download failed: {type(exc).__name__}: {exc}"
        raise ModelError(f"model {repo}@{revision} is not available ({state}). " + (help_text or f"To get it: {how}")) from None


# --- safety checks ------------------------------------------------------------------
def _read_index(folder: Path) -> dict:
    try:
        data = json.loads((folder / "model_index.json").read_text("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        raise ModelError(f"{folder}/model_index.json cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{folder}/model_index.json must be a JSON object")
    return data


def check_pipeline_folder(res: Resolved, weights: bool = True) -> None:
    """Refuse anything that could execute code: foreign classes, custom modules, pickles, escaping symlinks
    (``weights=False``: a skeleton of configs and tokenizers, whose weights come from elsewhere)."""
    folder = res.path
    index = _read_index(folder)
    cls = index.get("_class_name")
    if not isinstance(cls, str) or cls not in allowed_pipelines():
        raise UnsafeModelError(f"{folder}: pipeline class {cls!r} is not allowed (custom pipelines run code); "
                               f"allowed: {', '.join(sorted(allowed_pipelines()))}")
    allowed = family_for_pipeline(cls).components | ALLOWED_SCHEDULERS
    for comp, spec in index.items():
        if comp.startswith("_") or not isinstance(spec, list):
            continue
        if spec in ([None, None], [None]):
            continue
        if len(spec) != 2 or spec[0] not in _LIBRARIES or spec[1] not in allowed:
            raise UnsafeModelError(f"{folder}: component {comp!r} = {spec!r} is not an allowlisted diffusers/transformers class")
        sub = folder / comp
        if not sub.is_dir():
            continue
        names = [p.name for p in sub.iterdir()]
        if any(n.endswith(".py") for n in names):
            raise UnsafeModelError(f"{folder}/{comp} contains Python code; aigif never runs code shipped with a model")
        if spec[1] in ALLOWED_SCHEDULERS or "Tokenizer" in spec[1] or "Processor" in spec[1] or "Extractor" in spec[1]:
            continue
        if weights and not any(n.endswith(".safetensors") for n in names):
            bad = [n for n in names if n.endswith(UNSAFE_SUFFIXES)]
            raise UnsafeModelError(f"{folder}/{comp} has no .safetensors weights"
                                   + (f" (only {', '.join(sorted(bad))}: pickle-based formats can run code and are refused)" if bad else ""))
    if any(p.suffix == ".py" for p in folder.iterdir()):
        raise UnsafeModelError(f"{folder} contains Python code; aigif never runs code shipped with a model")
    if res.local and res.root is not None:
        for p in folder.rglob("*"):
            if p.is_symlink() and not _inside(_resolve(p), res.root):
                raise UnsafeModelError(f"{p} links outside the model dir {res.root}")


def model_digest(res: Resolved) -> str:
    return file_sha256(res.path) if res.single_file else folder_digest(res.path, res.variant)


# --- loading + cache ---------------------------------------------------------------------
class PipelineCache:
    """LRU of loaded pipelines keyed by (model identity, dtype, device, attention)."""

    def __init__(self, size: int = 2):
        self.size = max(1, size)
        self._items: OrderedDict = OrderedDict()
        self.loads = 0

    def get(self, key, factory):
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = factory()
        self.loads += 1
        self._items[key] = value
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        self._items.clear()


def load_pipeline(res: Resolved, torch_dtype, device: str, progress: bool = False):
    """Instantiate the allowlisted pipeline class from safetensors only, no remote code."""
    import diffusers

    if res.split is not None:
        return load_split(res.pipeline, res.split, torch_dtype, device)
    cls = getattr(diffusers, res.pipeline)
    kw = dict(family_for_pipeline(res.pipeline).load_kwargs)
    try:
        with _quiet(False):
            if res.single_file:
                pipe = cls.from_single_file(str(res.path), torch_dtype=torch_dtype, local_files_only=True, use_safetensors=True)
            else:
                pipe = cls.from_pretrained(str(res.path), torch_dtype=torch_dtype, use_safetensors=True, local_files_only=True,
                                           variant=res.variant, trust_remote_code=False, **kw)
            return pipe.to(device)
    except AigifError:
        raise
    except Exception as exc:  # corrupt configs/weights surface as many exception types
        raise ModelError(f"cannot load {res.pipeline} from {res.path}: {type(exc).__name__}: {exc}") from None
