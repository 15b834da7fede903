"""Other tools' image-to-image and inpainting -> the ``img2img`` element (spec/importers.md).

A1111 (and Forge, SD.Next, Civitai) write ``Denoising strength`` without hires keys,
and for inpainting ``Mask blur``, ``Mask mode: Inpaint not masked``, ``Inpaint area:
Only masked`` with ``Masked area padding`` and ``Masked content`` (``original`` is
not written). ComfyUI graphs start the sampler from ``VAEEncode`` of a ``LoadImage``
(with a ``SetLatentNoiseMask``, or ``VAEEncodeForInpaint`` / ``InpaintModelConditioning``
for inpainting). Neither tool stores the init image: the element records what the
tool wrote (ComfyUI's file names; A1111 writes none), so the import says why it is not
regenerable until the user gives the images (``aigif encode --init-image``).
"""
from __future__ import annotations

from typing import Any

from .comfy_graph import is_link
from .passes import NotMapped
from .result import fmt_num, to_float, to_int

# A1111 keys of an image-to-image pass; the values A1111 writes for the element's fields
A1111_KEYS = ("Denoising strength", "Mask blur", "Mask mode", "Inpaint area", "Masked area padding", "Masked content")
A1111_INVERT = "Inpaint not masked"
A1111_ONLY_MASKED = "Only masked"
# keys that change an image-to-image result in ways the element cannot say
A1111_OTHER = ("Soft inpainting", "Noise multiplier", "VAE Encoder", "Image CFG scale", "Mask alpha", "Mask round")


def a1111_img2img(p: dict[str, Any]) -> dict | None:
    """The img2img element's fields of an A1111 infotext *p* (its keys are popped), None for text-to-image.
    Call after the hires fix took its ``Denoising strength``; a leftover ``Hires`` key leaves the text alone."""
    if "Denoising strength" not in p or any(k.startswith("Hires") for k in p):
        return None
    other = [k for k in p if k.startswith(A1111_OTHER) and str(p[k]).strip() not in ("False", "")]
    if other:
        raise NotMapped(f"{', '.join(other)} (image-to-image settings the syntax does not hold)")
    try:
        el: dict[str, Any] = {"strength": to_float(p["Denoising strength"])}
        inpaint = any(k in p for k in A1111_KEYS[1:])
        if inpaint:
            el["inpaint"] = True
            if "Mask blur" in p:
                el["mask_blur"] = to_int(p["Mask blur"])
            if "Mask mode" in p:
                if str(p["Mask mode"]).strip() != A1111_INVERT:
                    raise NotMapped(f"Mask mode {p['Mask mode']!r}")
                el["mask_invert"] = True
            if "Inpaint area" in p:
                if str(p["Inpaint area"]).strip() != A1111_ONLY_MASKED:
                    raise NotMapped(f"Inpaint area {p['Inpaint area']!r}")
                el["masked_padding"] = to_int(p.get("Masked area padding", 0))
            elif "Masked area padding" in p:
                raise NotMapped("Masked area padding without Inpaint area")
            if "Masked content" in p:
                el["fill"] = str(p["Masked content"]).strip()
    except (TypeError, ValueError) as exc:
        if isinstance(exc, NotMapped):
            raise
        raise NotMapped(f"image-to-image settings are not numbers ({exc})") from None
    for key in A1111_KEYS:
        p.pop(key, None)
    return el


def a1111_img2img_params(el) -> dict[str, str]:
    """The way back: A1111 infotext keys of an :class:`~aigif.syntax.img2img.Img2Img` (read again by
    :func:`a1111_img2img` to the same settings)."""
    p = {"Denoising strength": fmt_num(el.strength)}
    if not el.inpaint:
        return p
    p["Mask blur"] = str(el.mask_blur or 0)         # A1111 writes it for every mask; it says "inpainting"
    if el.mask_invert:
        p["Mask mode"] = A1111_INVERT
    if el.masked_padding is not None:
        p["Inpaint area"], p["Masked area padding"] = A1111_ONLY_MASKED, str(el.masked_padding)
    if el.fill != "original":
        from ..syntax.registry import INPAINT_FILLS, code_of

        code = code_of("inpaint-fill", el.fill)
        p["Masked content"] = INPAINT_FILLS[code].names[0] if code is not None and INPAINT_FILLS[code].names else el.fill
    return p


# --- ComfyUI: LoadImage -> VAEEncode [-> SetLatentNoiseMask] -> KSampler (denoise) ------------------------
ENCODERS = ("VAEEncode", "VAEEncodeForInpaint", "SetLatentNoiseMask", "InpaintModelConditioning")
_IMAGE_NODES = ("LoadImage",)
_MASK_NODES = {"LoadImage": 1, "LoadImageMask": 0}       # node class -> its MASK output slot


def _source(graph: dict, v: Any, want: dict | tuple, what: str) -> dict:
    """The node an input links to, of a class in *want* (with the output slot *want* says, when a dict)."""
    node = graph.get(v[0], {}) if is_link(v) else {}
    cls = node.get("class_type")
    if cls not in want or (isinstance(want, dict) and v[1] != want[cls]):
        raise NotMapped(f"the {what} does not come from {' or '.join(want)}")
    return node


def _file(node: dict, key: str, what: str) -> str:
    name = node.get("inputs", {}).get(key)
    if not isinstance(name, str) or not name:
        raise NotMapped(f"the {what} is not a file name")
    return name


def comfy_img2img_split(graph: dict[str, dict], image_size=None) -> tuple[dict[str, dict], dict | None]:
    """(the graph with its one KSampler starting from an EmptyLatentImage of the output size, the img2img element) of
    a graph whose sampler starts from an encoded image; else (graph, None). :class:`NotMapped` for such a graph
    the element cannot express."""
    ks = [k for k, n in graph.items() if n.get("class_type") == "KSampler"]
    lat = graph[ks[0]]["inputs"].get("latent_image") if len(ks) == 1 else None
    if not is_link(lat) or graph.get(lat[0], {}).get("class_type") not in ENCODERS:
        return graph, None
    k, inp = ks[0], graph[ks[0]]["inputs"]
    if image_size is None:
        raise NotMapped("the output size is unknown (the init image's size is not in the graph)")
    try:
        steps, denoise = to_int(inp.get("steps")), to_float(inp.get("denoise", 1.0))
    except (TypeError, ValueError) as exc:
        raise NotMapped(f"sampler values are not plain numbers ({exc})") from None
    if not 0 < denoise <= 1:
        raise NotMapped(f"denoise {denoise}")
    # ComfyUI runs `steps` steps at the end of a schedule of int(steps / denoise); diffusers int(n x strength) of n
    el: dict[str, Any] = {"strength": denoise}
    used = {lat[0]}
    node, new_inp = graph[lat[0]], dict(inp)
    cls, enc = node["class_type"], node["inputs"]
    mask_holder = enc                                    # the node whose inputs hold the mask
    if cls == "InpaintModelConditioning":
        if lat[1] != 2 or inp.get("positive") != [lat[0], 0] or inp.get("negative") != [lat[0], 1]:
            raise NotMapped("the sampler does not take InpaintModelConditioning's conditioning and latent together")
        new_inp.update(positive=enc.get("positive"), negative=enc.get("negative"))
        el.update(inpaint=True, inpaint_model=True)
    elif cls == "SetLatentNoiseMask":
        el["inpaint"] = True
        _source(graph, enc.get("samples"), ("VAEEncode",), "masked latent")
        used.add(enc["samples"][0])
        enc = graph[enc["samples"][0]]["inputs"]
    elif cls == "VAEEncodeForInpaint":
        el.update(inpaint=True, fill="gray")
    if el.get("inpaint"):
        m = _source(graph, mask_holder.get("mask"), _MASK_NODES, "mask")
        el["mask"] = {"name": _file(m, "image", "mask")}
    img = _source(graph, enc.get("pixels"), _IMAGE_NODES, "init image")
    el["image"] = {"name": _file(img, "image", "init image")}
    decoders = [n for n in graph.values() if n.get("class_type") == "VAEDecode"]
    if enc.get("vae") is None or any(d["inputs"].get("vae") != enc.get("vae") for d in decoders):
        raise NotMapped("the init image is encoded with another VAE than the one that decodes")
    users = {key for key, n in graph.items() for v in n.get("inputs", {}).values() if is_link(v) and v[0] in used}
    if users - used != {k}:
        raise NotMapped("the encoded init image is used by other nodes")
    empty = f"{k}:init"
    out = {key: n for key, n in graph.items() if key not in used}
    out[empty] = {"class_type": "EmptyLatentImage", "inputs": {"width": image_size[0], "height": image_size[1], "batch_size": 1}}
    out[k] = {**graph[k], "inputs": {**new_inp, "latent_image": [empty, 0], "denoise": 1.0, "steps": int(steps / denoise)}}
    loaders = {key for key, n in out.items() if n.get("class_type") in (*_IMAGE_NODES, *_MASK_NODES)
               and not any(is_link(v) and v[0] == key for n2 in out.values() for v in n2.get("inputs", {}).values())}
    return {key: n for key, n in out.items() if key not in loaders}, el


def with_given_images(imp, init_image, mask=None, limits=None, decode_aigif=None):
    """*imp* with the init image (and mask) the user gave for it: referenced by digest, named as the tool named them
    (else by the given file's name), and kept as the inputs regeneration uses. Unchanged without an img2img pass."""
    import dataclasses

    from ..inputs import InputImages, as_pixels, pixel_sha256, ref_names
    from ..limits import DEFAULT_LIMITS
    from ..syntax.img2img import ImageRef

    el = imp.img2img
    if el is None or init_image is None:
        return imp
    limits = limits or DEFAULT_LIMITS

    def ref(src, what, old):
        pixels = as_pixels(src, what, limits, decode_aigif)
        names = {"name": old.name, "aigif": old.aigif} if old is not None and (old.name or old.aigif) else ref_names(src)
        return pixels, ImageRef(sha256=pixel_sha256(pixels), **names)

    init, image = ref(init_image, "init image", el.image)
    refs, mask_pixels = {"image": image}, None
    if el.inpaint and mask is not None:
        mask_pixels, refs["mask"] = ref(mask, "mask", el.mask)
    return dataclasses.replace(imp, img2img=dataclasses.replace(el, **refs), inputs=InputImages(init, mask_pixels))
