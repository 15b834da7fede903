"""Textual-inversion embeddings: token vectors added to the text encoders for one render, then removed again.

Each embedding is bound to a private token (``<aigif-ti-N>``) with diffusers'
``load_textual_inversion``; the prompts handed to the pipeline have every
occurrence of the embedding's ``token`` (a whole word, case-insensitive, as CLIP
lower-cases text) replaced by it in one pass, so one embedding's token can never
match inside another's, and the tokenizer's own normalisation of added tokens
plays no part. After the render the added tokens and vectors are unloaded, so
the cached pipeline computes exactly as before (spec/engine.md 1.7).

Files are safetensors only; their vectors are one 2-D set per text encoder:
``clip_l`` / ``clip_g`` (SDXL, A1111 and ComfyUI), or a single tensor for the one
CLIP of SD 1.x / 2.x (A1111 ``emb_params``, diffusers ``{token: vectors}``).
"""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import AigifError, ConfigError, ModelError
from .components import locate_embedding
from .digest import check_file_digest, file_sha256
from .quiet import quiet

MAX_VECTORS = 75                  # CLIP's context minus the start and end tokens
SDXL_SETS = {"clip_l": "text_encoder", "clip_g": "text_encoder_2"}
PRIVATE_PREFIX = "<aigif-ti-"
PROMPT_KEYS = ("prompt", "negative_prompt", "prompt_2", "negative_prompt_2")


@dataclass(frozen=True)
class BoundEmbedding:
    """One embedding of a request: located, hash-checked, ready to load."""

    token: str
    path: Path
    label: str


def bind(model, model_dirs, verify: bool, limits) -> tuple:
    """((BoundEmbedding, sha256), ...) of *model*'s embeddings in order, each located and hash-checked."""
    limits.check("the embedding count", len(model.embeddings), "max_loras")
    out = []
    for emb in model.embeddings:
        what, loc = f"embedding {emb.name}", locate_embedding(emb, model_dirs)
        digest = file_sha256(loc.path)
        if verify:
            check_file_digest(f"{what} ({loc.path})", emb.sha256, loc.path, digest)
        out.append((BoundEmbedding(emb.token, loc.path, what), digest))
    return tuple(out)


def recorded(embeddings: tuple, bound: tuple, text_encoders: tuple[str, ...]) -> tuple:
    """What a generated file records: each embedding with its sha256 and the text encoders it was loaded into."""
    import dataclasses

    return tuple(dataclasses.replace(e, sha256=e.sha256 or d, text_encoders=",".join(text_encoders))
                 for e, (_, d) in zip(embeddings, bound))


def check_passes(bound: tuple, refiner, hires) -> None:
    """Embeddings are bound in the main pass's prompts only: a refiner, or a hires pass with its own prompt, is refused."""
    if bound and (refiner is not None or hires is not None and (hires.prompt or hires.negative_prompt)):
        raise ConfigError("not regenerable: embeddings with a refiner or with a hires pass that has its own prompt")


def file_vectors(path: Path, what: str) -> dict:
    """The file's tensors, each a (vectors, width) float matrix of at most MAX_VECTORS rows."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{what}: {path.name} is not a readable safetensors file ({exc})") from None
    out = {}
    for key, t in tensors.items():
        if not t.is_floating_point() or t.ndim not in (1, 2) or (t.ndim == 2 and not 0 < t.shape[0] <= MAX_VECTORS):
            raise ModelError(f"{what}: tensor {key!r} of shape {tuple(t.shape)} is not a set of at most {MAX_VECTORS} "
                             "token vectors (is it an embedding?)")
        out[key] = t.reshape(-1, t.shape[-1])
    if not out:
        raise ModelError(f"{what}: {path.name} holds no tensors")
    return out


def vectors_for(tensors: dict, components: tuple[str, ...], what: str) -> dict:
    """component -> vectors: ``clip_l`` / ``clip_g`` by name, a single tensor for a single text encoder."""
    if any(k in tensors for k in SDXL_SETS):
        by_comp = {SDXL_SETS[k]: v for k, v in tensors.items() if k in SDXL_SETS}
    elif len(tensors) == 1:
        by_comp = {components[0]: next(iter(tensors.values()))}
    else:
        raise ModelError(f"{what}: cannot tell which text encoder its tensors ({', '.join(sorted(tensors)[:4])}) are for")
    missing = [c for c in components if c not in by_comp]
    if missing:
        raise ModelError(f"{what}: no vectors for {', '.join(missing)} (this model needs one set per text encoder: "
                         f"{', '.join(components)}); an embedding for another model family?")
    return {c: by_comp[c] for c in components}


def private_token(i: int) -> str:
    return f"{PRIVATE_PREFIX}{i}>"


def _load(pipe, components: tuple[str, ...], embeddings: list[BoundEmbedding]) -> None:
    from diffusers.loaders import TextualInversionLoaderMixin

    if not isinstance(pipe, TextualInversionLoaderMixin):
        raise ModelError(f"{type(pipe).__name__} takes no textual-inversion embeddings")
    for i, emb in enumerate(embeddings):
        for comp, vec in vectors_for(file_vectors(emb.path, emb.label), components, emb.label).items():
            te, tok = getattr(pipe, comp), getattr(pipe, comp.replace("text_encoder", "tokenizer"))
            width = te.get_input_embeddings().weight.shape[1]
            if vec.shape[1] != width:
                raise ModelError(f"{emb.label}: vectors of width {vec.shape[1]} for {comp}, which takes {width}; "
                                 "an embedding for another model family?")
            with quiet(False):
                pipe.load_textual_inversion({private_token(i): vec}, token=private_token(i), text_encoder=te, tokenizer=tok)


def _unload(pipe, components: tuple[str, ...]) -> None:
    """Remove the private tokens (and their vectors) from each tokenizer / text encoder that has any."""
    for comp in components:
        te, tok = getattr(pipe, comp, None), getattr(pipe, comp.replace("text_encoder", "tokenizer"), None)
        if te is None or tok is None:
            continue
        ours = [t.content for t in tok.added_tokens_decoder.values() if t.content.startswith(PRIVATE_PREFIX)]
        if ours:
            pipe.unload_textual_inversion(tokens=ours, tokenizer=tok, text_encoder=te)


def bind_prompts(kw: dict, embeddings: list[BoundEmbedding]) -> dict:
    """*kw* with each embedding's token (a whole word, any case) replaced by its private token, in one pass."""
    by_token = {}
    for i, emb in enumerate(embeddings):
        key = emb.token.lower()
        if key in by_token:
            raise ConfigError(f"two embeddings use the token {emb.token!r}")
        by_token[key] = private_token(i)
    alternatives = "|".join(re.escape(t) for t in sorted(by_token, key=len, reverse=True))
    pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
    out = dict(kw)
    for key in PROMPT_KEYS:
        if isinstance(out.get(key), str):
            out[key] = pattern.sub(lambda m: by_token[m.group(0).lower()], out[key])
    return out


@contextlib.contextmanager
def applied(pipe, components: tuple[str, ...], embeddings: list[BoundEmbedding], kw: dict):
    """Load *embeddings* into the text encoders *components* and yield *kw* with bound prompts; unload afterwards."""
    if not embeddings:
        yield kw
        return
    try:
        _load(pipe, components, embeddings)
    except AigifError:
        _unload(pipe, components)
        raise
    except Exception as exc:  # a file diffusers cannot map onto this tokenizer / text encoder
        _unload(pipe, components)
        raise ModelError(f"embeddings cannot be applied to this model: {type(exc).__name__}: {exc}") from None
    try:
        yield bind_prompts(kw, embeddings)
    finally:
        _unload(pipe, components)
