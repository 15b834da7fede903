"""Write the core conformance files: valid/*.aigif + expected JSON, invalid/*.aigif + error kind.

Run from the repository root: ``python spec/conformance/make_core.py``. Invalid
files are built byte by byte so each breaks exactly one rule of aigif-v1.md.
"""
from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path

import aigif
from aigif.container import MAGIC, Segment, encode_uvarint, write_container
from aigif.syntax import document_to_dict, dumps, loads
from aigif.syntax.fields import WIRE_BYTES, WIRE_UINT, encode_key, write_field
from aigif.syntax.schema import encode_element

HERE = Path(__file__).parent

MINIMAL = {"model": "sd15", "prompt": "a photo of an astronaut riding a horse on mars", "seed": 1234567890,
           "num_inference_steps": 50, "guidance_scale": 7.5, "width": 512, "height": 512, "scheduler": "ddim"}
FULL = {
    "model": {"name": "sdxl", "vae": {"repo": "madebyollin/sdxl-vae-fp16-fix", "revision": "207b116dae70ace3637169f1ddd2434b91b3a8cd"},
              "loras": [{"name": "pixel-art-xl", "weight": 0.8, "sha256": "6ce0161689"}, {"name": "detail", "weight": -0.25}]},
    "prompt": "masterpiece, (best quality:1.2), a cozy cabin in the snowy woods at night, warm light, <lora:pixel-art-xl:0.8>",
    "negative_prompt": "lowres, blurry, watermark", "seed": 2**64 - 1, "num_inference_steps": 30, "guidance_scale": 5.5,
    "width": 832, "height": 1216, "scheduler": "dpmpp-2m-sde-karras", "scheduler_config": {"timestep_spacing": "trailing"},
    "eta": 0.0, "clip_skip": 2, "batch_index": 3, "guidance_rescale": 0.7,
    "platform": {"device": "cuda", "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "driver": "570.124.06",
                 "cuda": "12.8", "cudnn": "9.7.1", "torch": "2.13.0+cu128", "diffusers": "0.42.1", "dtype": "float16",
                 "attention": "sdpa", "threads": 16, "deterministic": True, "cpu": "avx512", "transformers": "5.24.0"},
    "fingerprint": {"pixel_sha256": "00112233445566778899aabbccddeeff", "width": 832, "height": 1216, "perceptual": "f0e1d2c3b4a59687"},
    "source": {"tool": "a1111", "version": "1.10.1", "extra": {"Hires upscale": 2, "ADetailer model": "face_yolov8n.pt"}},
}
FLUX = {"model": "flux1-dev", "prompt": "a red fox in the snow, golden hour, 35mm photo", "seed": 2**64 - 1,
        "num_inference_steps": 28, "guidance_scale": 3.5, "width": 1024, "height": 1024, "scheduler": "flow-euler",
        "scheduler_config": {"shift": 3.0, "use_dynamic_shifting": True}, "max_sequence_length": 512,
        "prompt_2": "a red fox in the snow", "true_cfg_scale": 1.5, "negative_prompt": "blurry"}
SD35 = {"model": "sd35-large-turbo", "prompt": "a lighthouse on a cliff at dusk", "seed": 123456789012345,
        "num_inference_steps": 4, "guidance_scale": 0.0, "width": 1024, "height": 1024, "scheduler": "flow-euler-karras",
        "prompt_3": "a lighthouse on a cliff at dusk, long exposure, crashing waves", "max_sequence_length": 256}
FLUX_COMFYUI = {"model": {"name": "flux1-dev", "local": "diffusion_models/flux1-dev.safetensors", "sha256": "12" * 32,
                          "text_encoders": [{"local": "text_encoders/clip_l.safetensors", "subfolder": "text_encoder", "sha256": "34" * 32},
                                            {"local": "text_encoders/t5xxl_fp16.safetensors", "subfolder": "text_encoder_2", "sha256": "56" * 32}],
                          "vae": {"local": "vae/ae.safetensors", "sha256": "78" * 32}},
                "prompt": "a red fox in the snow", "seed": 123456789012345, "num_inference_steps": 20, "guidance_scale": 3.5,
                "width": 1024, "height": 1024, "scheduler": "flow-euler-beta", "min_sequence_length": 256}
FLUX_LORAS = {"model": {"name": "flux1-dev", "local": "diffusion_models/flux1-dev.safetensors",
                        "loras": [{"name": "fox-style", "weight": 0.8, "weight_name": "flux/fox-style.safetensors",
                                   "text_weight": 0.0, "sha256": "9a" * 32},
                                  {"name": "detail", "weight": 0.5, "text_weight": 1.0, "sha256": "7c6bad76eb54"}]},
              "prompt": "a red fox in the snow", "seed": 42, "num_inference_steps": 20, "guidance_scale": 3.5,
              "width": 1024, "height": 1024, "scheduler": "flow-euler"}
SD15_EMBEDDINGS = {"model": {"name": "sd15", "embeddings": [
                       {"name": "EasyNegative", "sha256": "c74b4e810b", "text_encoders": "text_encoder"},
                       {"name": "mystyle", "token": "embedding:mystyle", "local": "embeddings/mystyle.safetensors"}]},
                   "prompt": "a house at night, embedding:mystyle", "negative_prompt": "EasyNegative, blurry", "seed": 7,
                   "num_inference_steps": 20, "guidance_scale": 7.0, "width": 512, "height": 512, "scheduler": "euler-a"}
FAMILY_FROM_A_PACKAGE = {"model": {"repo": "HiDream-ai/HiDream-I1-Full", "family": "aigif_hidream.hidream"}, "prompt": "a cat",
                         "seed": 1, "num_inference_steps": 50, "guidance_scale": 5.0, "width": 1024, "height": 1024}
HIRES = {"model": "sd15", "prompt": "a castle on a hill, oil painting", "negative_prompt": "blurry", "seed": 1234,
         "num_inference_steps": 20, "guidance_scale": 7.0, "width": 512, "height": 768, "scheduler": "dpmpp-2m-karras",
         "hires": {"upscaler": "latent-bicubic-antialiased", "strength": 0.55, "scale": 2.0, "steps": 12,
                   "prompt": "a castle on a hill, oil painting, intricate details"}}
HIRES_FULL = {"model": "sdxl", "prompt": "a fox in the snow", "seed": 99, "num_inference_steps": 30, "guidance_scale": 5.0,
              "width": 832, "height": 1216, "scheduler": "euler-a",
              "hires": {"upscaler": "4x-UltraSharp", "strength": 0.35, "scale": 1.5, "width": 1248, "height": 1824,
                        "steps": 15, "seed": 100, "scheduler": "dpmpp-2m-sde-karras", "scheduler_config": {"timestep_spacing": "trailing"},
                        "guidance_scale": 4.0, "prompt": "a fox in the snow, sharp", "negative_prompt": "lowres"},
              "platform": {"device": "cpu", "dtype": "float32", "attention": "sdpa", "threads": 2, "deterministic": True,
                           "cpu": "x86_64-avx2", "torch": "2.13.0+cpu", "diffusers": "0.42.1"},
              "fingerprint": {"pixel_sha256": "00112233445566778899aabbccddeeff"[:16], "width": 1248, "height": 1824,
                              "perceptual": "f0e1d2c3"}}
HIRES_PIXEL_MODEL = {"model": "sd15", "prompt": "a portrait", "seed": 7, "num_inference_steps": 25, "guidance_scale": 7.0,
                     "width": 512, "height": 512, "hires": {"upscaler": "my-upscaler_x2.pth", "strength": 0.3, "scale": 2.0}}
HIRES_ESRGAN = {"model": "sd15", "prompt": "a portrait", "seed": 7, "num_inference_steps": 25, "guidance_scale": 7.0,
                "width": 512, "height": 512, "hires": {"upscaler": "4x_NMKD-Siax_200k", "strength": 0.3, "scale": 2.0,
                                                       "upscaler_sha256": "cd" * 32}}
HIRES_LANCZOS = {"model": "sd15", "prompt": "a portrait", "seed": 7, "num_inference_steps": 25, "guidance_scale": 7.0,
                 "width": 512, "height": 512, "hires": {"upscaler": "Lanczos", "strength": 0.3, "scale": 1.5}}
REFINER = {"model": "sdxl", "prompt": "a lighthouse on a cliff", "seed": 42, "num_inference_steps": 40, "guidance_scale": 6.0,
           "scheduler": "euler", "refiner": {"model": {"name": "sd_xl_refiner_1.0", "sha256": "7440042bbd"}, "switch_at": 0.8,
                                             "aesthetic_score": 6.0, "prompt": "a lighthouse on a cliff, sharp details"}}
TINY_PNG_64 = "iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAIAAAAlC+aJAAAAUUlEQVR42u3PMQ0AMAgAMJgaJCIRWVPBQdI6aE5XXPbiOAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAYF9HxzAAehaf9vAAAAAAElFTkSuQmCC"   # 64x64, one colour
IMG2IMG = {"model": "sd15", "prompt": "the same street in winter, snow", "seed": 2024, "num_inference_steps": 30,
           "guidance_scale": 7.0, "width": 512, "height": 512,
           "img2img": {"strength": 0.6, "image": {"sha256": "5d" * 32, "name": "street.png"}}}
INPAINT_STORED = {"model": "aigif-tiny-sd", "prompt": "a red door", "seed": 5, "num_inference_steps": 10, "guidance_scale": 7.5,
                  "width": 64, "height": 64,
                  "img2img": {"strength": 0.75, "inpaint": True, "image": {"png": {"base64": TINY_PNG_64}, "aigif": "house.aigif"},
                              "mask": {"sha256": "8e" * 32, "name": "door-mask.png"}, "mask_blur": 4, "masked_padding": 32,
                              "inpaint_model": False}}
INPAINT_IMPORTED = {"model": "sd15", "prompt": "a cat on a sofa", "seed": 77, "num_inference_steps": 25, "guidance_scale": 7.0,
                    "width": 512, "height": 512,
                    "img2img": {"strength": 0.75, "inpaint": True, "mask_blur": 4, "mask_invert": True, "fill": "latent noise"}}
DETAIL = {"model": "sd15", "prompt": "a portrait of a woman, freckles", "seed": 42, "num_inference_steps": 25,
          "guidance_scale": 6.5, "width": 512, "height": 768, "scheduler": "dpmpp-2m-karras",
          "detail": {"version": "24.11.1", "passes": [
              {"detector": "face_yolov8n.pt", "masked_padding": 32, "steps": 30, "scheduler": "euler-a",
               "prompt": "a face, \"smiling\", detailed"},
              {"detector": "hand_yolov8n.pt", "confidence": 0.35, "mask_k_largest": 2, "dilate_erode": -8, "x_offset": 3,
               "mask_merge": "merge-invert", "mask_blur": 8, "strength": 0.5, "width": 768, "height": 768,
               "guidance_scale": 5.0, "scheduler": "dpmpp-2m", "schedule_type": "Karras", "checkpoint": "hands_v2.safetensors",
               "noise_multiplier": 1.05, "clip_skip": 2, "negative_prompt": "extra fingers", "controlnet_model": "control_v11p_sd15_inpaint",
               "controlnet_weight": 0.8}]}}
ESCAPES = {"model": {"name": "my-finetune", "family": "sd1", "repo": "someone/my-finetune", "revision": "v2.0",
                     "sha256": "ab" * 32, "variant": "fp16"},
           "prompt": "日本語のプロンプト 🐱 with\nnewlines", "seed": 0, "num_inference_steps": 1, "guidance_scale": 1e-20,
           "width": 500, "height": 516, "scheduler": "MyCustomScheduler"}


def with_crc(body: bytes) -> bytes:
    return body + zlib.crc32(body).to_bytes(4, "little")


def segs(*items: tuple[int, bytes]) -> bytes:
    return write_container([Segment(t, p) for t, p in items])


def main() -> int:
    minimal = aigif.document_from_dict(MINIMAL)
    model = encode_element(minimal.model)
    gen = encode_element(minimal.generation)
    good = dumps(minimal)
    gen_unknown_field = bytearray(gen)
    write_field(gen_unknown_field, 99, WIRE_BYTES, b"a field from the future")
    prompt_field = gen[: 2 + gen[1]]                       # key, length (< 128), coded prompt
    g = minimal.generation
    older = bytearray(prompt_field)                        # what writers before fixed32 and the height rule wrote
    for no, value in ((3, g.seed), (4, g.num_inference_steps)):
        write_field(older, no, WIRE_UINT, value)
    older += gen[gen.index(encode_key(5, 3)):]             # guidance 7.5 (decimal) and what follows
    older = older[: older.index(encode_key(6, WIRE_UINT)) + 2] + encode_key(7, WIRE_UINT) + b"\x20" + \
        older[older.index(encode_key(6, WIRE_UINT)) + 2:]  # height 512 written out

    valid = {
        "minimal": good,
        "full": dumps(aigif.document_from_dict(FULL)),
        "escapes": dumps(aigif.document_from_dict(ESCAPES)),
        "flux": dumps(aigif.document_from_dict(FLUX)),
        "sd35": dumps(aigif.document_from_dict(SD35)),
        "flux-comfyui": dumps(aigif.document_from_dict(FLUX_COMFYUI)),
        "flux-loras": dumps(aigif.document_from_dict(FLUX_LORAS)),
        "sd15-embeddings": dumps(aigif.document_from_dict(SD15_EMBEDDINGS)),
        "family-from-a-package": dumps(aigif.document_from_dict(FAMILY_FROM_A_PACKAGE)),
        "unknown-ancillary": dumps(minimal.replace(extensions=(Segment(0x4000, b"private ancillary data"),))),
        "unknown-field": segs((3, model), (5, bytes(gen_unknown_field))),
        "any-order": segs((5, gen), (0x4002, b""), (3, model)),
        "older-writer": segs((3, model), (5, bytes(older))),
        "hires": dumps(aigif.document_from_dict(HIRES)),
        "hires-full": dumps(aigif.document_from_dict(HIRES_FULL)),     # the stamp's fingerprint takes the hires size
        "hires-pixel-model": dumps(aigif.document_from_dict(HIRES_PIXEL_MODEL)),
        "hires-esrgan": dumps(aigif.document_from_dict(HIRES_ESRGAN)),     # a model outside the registry + its file's sha256
        "hires-lanczos": dumps(aigif.document_from_dict(HIRES_LANCZOS)),
        "refiner": dumps(aigif.document_from_dict(REFINER)),
        "img2img": dumps(aigif.document_from_dict(IMG2IMG)),
        "inpaint-stored": dumps(aigif.document_from_dict(INPAINT_STORED)),
        "inpaint-imported": dumps(aigif.document_from_dict(INPAINT_IMPORTED)),
    }
    i2i = encode_element(aigif.document_from_dict(IMG2IMG).img2img)      # 09 strength 0.6, 12 .. image
    refiner = encode_element(aigif.document_from_dict(REFINER).refiner)
    hires = encode_element(aigif.document_from_dict(HIRES).hires)
    sha_hires = encode_element(aigif.HiresFix(upscaler="4x-UltraSharp", strength=0.3, scale=2.0,
                                              upscaler_sha256="cd" * 32))   # upscaler code 13 first
    assert sha_hires[:2] == b"\x08\x0d"
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0x10
    invalid = {
        "bad-magic": ("format", b"\x89PNG" + good[4:]),
        "empty": ("truncated", b""),
        "truncated-header": ("truncated", good[:6]),
        "truncated-half": ("truncated", good[: len(good) // 2]),
        "bad-crc": ("corrupt", bytes(flipped)),
        "version-2": ("version", with_crc(MAGIC + b"\x02" + good[5:-4])),
        "unknown-critical": ("unknown-critical", segs((3, model), (5, gen), (0x4001, b"needed to regenerate"))),
        "unknown-critical-core": ("unknown-critical", segs((3, model), (5, gen), (0x3F, b""))),
        "reserved-type": ("corrupt", with_crc(MAGIC + b"\x01" + b"\x01\x00" + good[5:-4])),
        "duplicate-segment": ("corrupt", segs((3, model), (5, gen), (5, gen))),
        "missing-required": ("corrupt", segs((3, model), (5, b"\x18\x01"))),
        "no-syntax": ("corrupt", segs((3, model))),
        "bad-wire-type": ("corrupt", segs((3, model), (5, gen + b"\x0f"))),
        "noncanonical-varint": ("corrupt", with_crc(MAGIC + b"\x01" + b"\x83\x00" + encode_uvarint(len(model)) + model + good[5 + 2 + len(model):-4])),
        "unknown-model-code": ("corrupt", segs((3, b"\x08\x7f"), (5, gen))),
        "bad-utf8": ("corrupt", segs((3, b"\x1a\x02\xc3\x28"), (5, gen))),
        "bad-bool": ("corrupt", segs((2, b"\x60\x02"), (3, model), (5, gen))),
        "field-overrun": ("truncated", segs((3, b"\x1a\x7f" + b"x" * 4), (5, gen))),
        "unknown-text-codec": ("unknown-codec", segs((3, model), (5, b"\x0a\x02\xfe\x00" + gen[len(prompt_field):]))),
        "fixed32-truncated": ("truncated", segs((3, model), (5, prompt_field + b"\x1d\xd2\x02\x96"))),
        "fixed32-on-number": ("corrupt", segs((3, model), (5, gen + b"\x2d\x00\x00\x00\x00"))),
        "fixed32-on-bool": ("corrupt", segs((2, b"\x65\x01\x00\x00\x00"), (3, model), (5, gen))),
        "hires-without-generation": ("corrupt", segs((0x0B, hires), (9, b"pixels"))),
        "hires-twice": ("corrupt", segs((3, model), (5, gen), (0x0B, hires), (0x0B, hires))),
        "hires-no-strength": ("corrupt", segs((3, model), (5, gen), (0x0B, b"\x08\x03\x18\x02"))),
        # a resampler (lanczos, code 9) with an upscaler model's sha256 (field 13)
        "hires-sha256-on-a-filter": ("corrupt", segs((3, model), (5, gen), (0x0B, b"\x08\x09" + sha_hires[2:]))),
        "hires-strength-zero": ("corrupt", segs((3, model), (5, gen), (0x0B, b"\x08\x03\x10\x00\x18\x02"))),
        "hires-unknown-upscaler-code": ("corrupt", segs((3, model), (5, gen), (0x0B, b"\x08\x7f" + hires[2:]))),
        "refiner-without-generation": ("corrupt", segs((0x0D, refiner), (9, b"pixels"))),
        "refiner-switch-at-one": ("corrupt", segs((3, model), (5, gen), (0x0D, refiner.replace(b"\x13\x82\x02", b"\x10\x01")))),
        "img2img-without-generation": ("corrupt", segs((0x0F, i2i), (9, b"pixels"))),
        "img2img-twice": ("corrupt", segs((3, model), (5, gen), (0x0F, i2i), (0x0F, i2i))),
        "img2img-no-strength": ("corrupt", segs((3, model), (5, gen), (0x0F, i2i[i2i.index(b"\x12"):]))),
        "img2img-strength-zero": ("corrupt", segs((3, model), (5, gen), (0x0F, b"\x08\x00" + i2i[i2i.index(b"\x12"):]))),
        "img2img-empty-image": ("corrupt", segs((3, model), (5, gen), (0x0F, i2i[:i2i.index(b"\x12")] + b"\x12\x00"))),
        "img2img-short-digest": ("corrupt", segs((3, model), (5, gen), (0x0F, i2i[:i2i.index(b"\x12")] + b"\x12\x22\x0a\x20\x00" + b"\x5d" * 31))),
        "img2img-mask-without-inpaint": ("corrupt", segs((3, model), (5, gen), (0x0F, i2i + b"\x22\x04\x1a\x02m.png"[:6]))),
        "img2img-unknown-fill-code": ("corrupt", segs((3, model), (5, gen), (0x0F, i2i + b"\x18\x01\x40\x7f"))),
        "img2img-not-a-png": ("corrupt", segs((3, model), (5, gen), (0x0F, i2i[:i2i.index(b"\x12")] + b"\x12\x06\x12\x04GIF8"))),
        "both-sequence-lengths": ("corrupt", segs((3, model), (5, gen + encode_key(15, WIRE_UINT) + b"\x4d"
                                                       + encode_key(18, WIRE_UINT) + b"\x4d"))),
        "too-many-segments": ("limit", segs((3, model), (5, gen), *[(0x40, b"")] * 1023)),
    }
    detail = encode_element(aigif.document_from_dict(DETAIL).detail)
    one_pass = detail[2:2 + detail[1]]                       # the first pass's fields (length < 128)
    valid["detail"] = dumps(aigif.document_from_dict(DETAIL))
    invalid.update({
        "detail-without-generation": ("corrupt", segs((0x11, detail), (9, b"pixels"))),
        "detail-no-passes": ("corrupt", segs((3, model), (5, gen), (0x11, b"\x12\x04\x00\x18\x0b\x01"))),
        "detail-strength-zero": ("corrupt", segs((3, model), (5, gen), (0x11, b"\x0a\x05\x0a\x01f\x60\x00"))),
        "detail-bad-mask-merge": ("corrupt", segs((3, model), (5, gen), (0x11, b"\x0a\x08\x0a\x01f\x52\x03add"))),
        "detail-too-many-passes": ("limit", segs((3, model), (5, gen), (0x11, (b"\x0a" + bytes([len(one_pass)]) + one_pass) * 17))),
    })
    write_files(valid, invalid)
    return 0


def write_files(valid: dict[str, bytes], invalid: dict[str, tuple[str, bytes]]) -> None:
    """valid/NAME.aigif + the JSON it decodes to; invalid/NAME.aigif + its error kind."""
    for name, data in valid.items():
        (HERE / "valid" / f"{name}.aigif").write_bytes(data)
        expected = document_to_dict(loads(data))
        (HERE / "valid" / f"{name}.json").write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for name, (kind, data) in invalid.items():
        (HERE / "invalid" / f"{name}.aigif").write_bytes(data)
        (HERE / "invalid" / f"{name}.json").write_text(json.dumps({"error": kind}) + "\n")
    print(f"wrote {len(valid)} valid and {len(invalid)} invalid files")


if __name__ == "__main__":
    sys.exit(main())
