"""The way back: a document's syntax as A1111 ``parameters`` text.

Written into decoded PNGs (``aigif decode --embed-parameters``) so the image
works in the tools and sites that read A1111 infotext. Parsing the text again
with :func:`aigif.importers.a1111.map_a1111` gives the same syntax fields.
A document imported from A1111 whose syntax could not be built gives back its
original text unchanged.
"""
from __future__ import annotations

import json
import re

from ..errors import ImportMetadataError
from ..syntax.document import Document
from ..syntax.registry import code_of, model_entry
from . import samplers
from .detail import a1111_detail_params
from .forge_flow import forge_params
from .img2img import a1111_img2img_params
from .passes import a1111_hires_params, a1111_refiner_params
from .result import A1111_LIKE, fmt_num

_NEEDS_QUOTES = re.compile(r"[,:\"\n]")


def _quote(v: str) -> str:
    return json.dumps(v, ensure_ascii=False) if _NEEDS_QUOTES.search(v) else v


def _prompt_with_loras(prompt: str, loras, offsets) -> str:
    tags = [f"<lora:{lo.name}:{fmt_num(lo.weight)}>" if lo.text_weight is None else      # A1111: te, then unet
            f"<lora:{lo.name}:{fmt_num(lo.text_weight)}:{fmt_num(lo.weight)}>" for lo in loras]
    if not tags:
        return prompt
    if not isinstance(offsets, list) or len(offsets) != len(tags) or any(
            not isinstance(o, int) or not 0 <= o <= len(prompt) for o in offsets) or offsets != sorted(offsets):
        offsets = [len(prompt)] * len(tags)
    out, prev = [], 0
    for off, tag in zip(offsets, tags):
        out.append(prompt[prev:off])
        out.append(tag)
        prev = off
    out.append(prompt[prev:])
    return "".join(out)


def a1111_parameters(doc: Document) -> str:
    """A1111 infotext for *doc*; raises ImportMetadataError when it has no generation syntax."""
    extra = (doc.source.extra or {}) if doc.source else {}
    gen, model = doc.generation, doc.model
    if gen is None:
        raw = extra.get("raw", {}) if isinstance(extra, dict) else {}
        if doc.source and doc.source.tool in (*A1111_LIKE, "Fooocus") and isinstance(raw.get("parameters"), str):
            return raw["parameters"]
        raise ImportMetadataError("the document has no generation syntax to write as A1111 parameters")
    loras = model.loras if model else ()
    prompt = _prompt_with_loras(gen.prompt, loras, extra.get("lora_at"))
    text = prompt
    negative = gen.negative_prompt or extra.get("unused_negative_prompt")     # Forge FLUX at CFG 1 keeps it unused
    if isinstance(negative, str) and negative:
        text += "\nNegative prompt: " + negative
    p: dict[str, str] = {"Steps": str(gen.num_inference_steps)}
    kept = extra.get("params") if isinstance(extra.get("params"), dict) else {}
    family = (model.family or (model_entry(model.name).family if model.name and code_of("model", model.name) is not None
                               else None)) if model is not None else None
    # Forge's FLUX keys: sampler + schedule, true CFG and the distilled guidance apart, the VAE and text encoders as Modules
    forge = forge_params(gen, model) if family == "flux1" and doc.source is not None and doc.source.tool in A1111_LIKE else {}
    sampler = (forge["Sampler"], forge["Schedule type"]) if "Sampler" in forge else \
        samplers.to_a1111(gen.scheduler, gen.scheduler_config)
    if sampler is not None:
        p["Sampler"] = sampler[0]
        if sampler[1]:
            p["Schedule type"] = sampler[1]
    else:
        # no A1111 name: the registry name (or "Default" = the pipeline's own scheduler), read back by aigif
        p["Sampler"] = gen.scheduler or "Default"
        if gen.scheduler_config:
            p["Scheduler config"] = json.dumps(gen.scheduler_config, sort_keys=True)
    p["CFG scale"] = fmt_num(gen.guidance_scale)
    p.update({k: v for k, v in forge.items() if k in ("CFG scale", "Distilled CFG Scale")})
    p["Seed"] = str(gen.seed)
    p["Size"] = f"{gen.width}x{gen.height}"
    if doc.hires is not None:
        p.update(a1111_hires_params(doc.hires, gen))
    if doc.refiner is not None:
        p.update(a1111_refiner_params(doc.refiner))
    if doc.img2img is not None:
        p.update(a1111_img2img_params(doc.img2img))
    if doc.detail is not None:
        p.update(a1111_detail_params(doc.detail))
    if model is not None:
        name = model.name or model.local or model.repo
        mhash = model.sha256
        if model.name and code_of("model", model.name) is not None:
            entry = model_entry(model.name)
            mhash = mhash or (entry.single_file_sha256 or entry.sha256 or "")[:10] or None
            name = extra.get("model_name", name) if mhash else name
            if not mhash:
                p["AIGIF model"] = model.name
        if mhash:
            p["Model hash"] = mhash[:10]
        elif isinstance(extra.get("model_hash"), str) and doc.source is not None and doc.source.tool in (*A1111_LIKE, "Fooocus"):
            p["Model hash"] = extra["model_hash"]          # an old AutoV1 (8 hex) hash, kept as written
        if name:
            p["Model"] = name
        if model.vae is not None and not forge:      # Forge names its VAE file as a Module
            if model.vae.sha256:
                p["VAE hash"] = model.vae.sha256
            p["VAE"] = model.vae.name or model.vae.local or model.vae.repo
    if gen.clip_skip:
        # A1111 counts layers from the end (1 = last); diffusers' SDXL pipeline starts at the penultimate
        p["Clip skip"] = str(gen.clip_skip + (2 if family == "sdxl" else 1))
    elif isinstance(extra.get("clip_layer"), int):
        p["Clip skip"] = str(extra["clip_layer"])
    if gen.eta is not None:
        p["Eta DDIM" if gen.scheduler == "ddim" else "Eta"] = fmt_num(gen.eta)
    if gen.guidance_rescale is not None:
        p["CFG Rescale"] = fmt_num(gen.guidance_rescale)
    hashes = {lo.name: lo.sha256 for lo in loras if lo.sha256}
    kept_lora = kept.get("Lora hashes") if isinstance(kept.get("Lora hashes"), dict) else {}
    hashes.update({k: str(v) for k, v in kept_lora.items() if k not in hashes})
    if hashes:
        p["Lora hashes"] = ", ".join(f"{k}: {v}" for k, v in hashes.items())
    ti = {e.name: e.sha256[:12] for e in (model.embeddings if model else ()) if e.sha256}
    if ti:
        p["TI hashes"] = ", ".join(f"{k}: {v}" for k, v in ti.items())
    for k, v in kept.items():
        if k not in p and k != "Lora hashes":
            p[k] = v if isinstance(v, str) else json.dumps(v)
    if doc.source and doc.source.version and doc.source.tool in A1111_LIKE:
        p.setdefault("Version", doc.source.version)
    p.update({k: v for k, v in forge.items() if k.startswith("Module ")})
    return text + "\n" + ", ".join(f"{k}: {_quote(v) if k != 'Hashes' else v}" for k, v in p.items())


def png_info_for(doc: Document):
    """A ``PngInfo`` for ``Image.save(..., pnginfo=...)``: the ``parameters`` text chunk, and for a file
    imported from ComfyUI its ``prompt`` / ``workflow`` chunks too, so the PNG opens in ComfyUI again."""
    from PIL.PngImagePlugin import PngInfo

    from ..syntax.builtin import comfyui_graph

    info = PngInfo()
    info.add_text("parameters", a1111_parameters(doc))
    graph = comfyui_graph(doc)
    for key in ("prompt", "workflow"):
        if graph is not None and key in graph:
            info.add_text(key, json.dumps(graph[key], ensure_ascii=False))
    return info
