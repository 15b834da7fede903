"""Registries of the v1 syntax: plain tables, code -> entry, mirrored in ``spec/registry.md``.

A code, once published, is never reused or changed. Names are the public
(JSON / CLI) spelling; codes are what the file stores. Nothing here imports
torch or diffusers: scheduler classes are named as strings and resolved by the
engine, which also says which pipeline class each family builds
(:mod:`aigif.engine.families`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import RegistryError

# --- segment types (lowest bit = critical) -----------------------------------
SEG_PLATFORM = 0x02
SEG_MODEL = 0x03
SEG_FINGERPRINT = 0x04
SEG_GENERATION = 0x05
SEG_SOURCE = 0x06
SEG_RESIDUAL = 0x07
SEG_PIXELS = 0x09
SEG_SIGNATURE = 0x0A
SEG_C2PA = 0x0C
SEG_STAMP_V1 = 0x08
SEG_STAMP = 0x0E
SEG_HIRES = 0x0B
SEG_REFINER = 0x0D
SEG_IMG2IMG = 0x0F
SEG_DETAIL = 0x11
CORE_SEGMENTS = {
    SEG_PLATFORM: "platform",
    SEG_MODEL: "model",
    SEG_FINGERPRINT: "fingerprint",
    SEG_GENERATION: "generation",
    SEG_SOURCE: "source",
    SEG_RESIDUAL: "residual",
    SEG_PIXELS: "pixels",
    SEG_SIGNATURE: "signature",
    SEG_C2PA: "c2pa",
    SEG_STAMP_V1: "stamp-v1",
    SEG_STAMP: "stamp",
    SEG_HIRES: "hires",
    SEG_REFINER: "refiner",
    SEG_IMG2IMG: "img2img",
    SEG_DETAIL: "detail",
}
CORE_RANGE = range(0x02, 0x40)          # assigned by this spec
PUBLIC_EXTENSION_RANGE = range(0x40, 0x4000)   # assigned in spec/registry.md
PRIVATE_EXTENSION_START = 0x4000        # experiments; never assigned

# --- platform ----------------------------------------------------------------
DEVICES = {0: "cpu", 1: "cuda", 2: "mps", 3: "xpu", 4: "npu"}
DTYPES = {0: "float32", 1: "float16", 2: "bfloat16"}
ATTENTION = {0: "default", 1: "sdpa", 2: "sdpa-math", 3: "sdpa-flash", 4: "sdpa-efficient", 5: "classic", 6: "xformers"}


@dataclass(frozen=True)
class Hardware:
    """A device kind and, for a GPU, its model (the name torch reports) and compute capability."""

    device: str
    gpu: str | None = None
    compute_capability: str | None = None


# compact platform (stamp segment): one code names the device kind and the GPU model
HARDWARE = {
    1: Hardware("cpu"),
    2: Hardware("mps"),
    16: Hardware("cuda", "Tesla T4", "7.5"),
    17: Hardware("cuda", "Tesla V100-SXM2-16GB", "7.0"),
    18: Hardware("cuda", "NVIDIA A100-SXM4-40GB", "8.0"),
    19: Hardware("cuda", "NVIDIA A100-SXM4-80GB", "8.0"),
    20: Hardware("cuda", "NVIDIA A100-PCIE-40GB", "8.0"),
    21: Hardware("cuda", "NVIDIA A100 80GB PCIe", "8.0"),
    22: Hardware("cuda", "NVIDIA A10G", "8.6"),
    23: Hardware("cuda", "NVIDIA A10", "8.6"),
    24: Hardware("cuda", "NVIDIA L4", "8.9"),
    25: Hardware("cuda", "NVIDIA L40S", "8.9"),
    26: Hardware("cuda", "NVIDIA H100 80GB HBM3", "9.0"),
    27: Hardware("cuda", "NVIDIA H100 PCIe", "9.0"),
    28: Hardware("cuda", "NVIDIA H200", "9.0"),
    29: Hardware("cuda", "NVIDIA B200", "10.0"),
    30: Hardware("cuda", "NVIDIA RTX A6000", "8.6"),
    31: Hardware("cuda", "NVIDIA RTX 6000 Ada Generation", "8.9"),
    32: Hardware("cuda", "NVIDIA GeForce RTX 2080 Ti", "7.5"),
    33: Hardware("cuda", "NVIDIA GeForce RTX 3060", "8.6"),
    34: Hardware("cuda", "NVIDIA GeForce RTX 3080", "8.6"),
    35: Hardware("cuda", "NVIDIA GeForce RTX 3090", "8.6"),
    36: Hardware("cuda", "NVIDIA GeForce RTX 4060 Ti", "8.9"),
    37: Hardware("cuda", "NVIDIA GeForce RTX 4070", "8.9"),
    38: Hardware("cuda", "NVIDIA GeForce RTX 4080", "8.9"),
    39: Hardware("cuda", "NVIDIA GeForce RTX 4090", "8.9"),
    40: Hardware("cuda", "NVIDIA GeForce RTX 5090", "12.0"),
}
# platform field `cpu`: <machine>-<torch CPU capability> (ATEN_CPU_CAPABILITY picks the kernels)
CPU_ISAS = {1: "x86_64-default", 2: "x86_64-avx2", 3: "x86_64-avx512", 4: "aarch64-default", 5: "aarch64-sve256",
            6: "arm64-default", 7: "ppc64le-vsx", 8: "s390x-zvector"}
# platform field `onednn`: the instruction set oneDNN's convolutions use (ONEDNN_MAX_CPU_ISA caps it), ascending
ONEDNN_ISAS = {1: "sse41", 2: "avx", 3: "avx2", 4: "avx2_vnni", 5: "avx2_vnni_2", 6: "avx512_core", 7: "avx512_core_vnni",
               8: "avx512_core_bf16", 9: "avx512_core_fp16", 10: "avx512_core_amx", 11: "avx512_core_amx_fp16"}

# library releases the stamp segment names by code (spec/aigif-v1.md §4.6): a code is the position;
# new releases are appended, so codes never change. A version outside these tables makes the writer
# use the older stamp (0x08), which packs version numbers arithmetically.
TORCH_RELEASES = ("2.0.0", "2.0.1", "2.1.0", "2.1.1", "2.1.2", "2.2.0", "2.2.1", "2.2.2", "2.3.0", "2.3.1", "2.4.0",
    "2.4.1", "2.5.0", "2.5.1", "2.6.0", "2.7.0", "2.7.1", "2.8.0", "2.9.0", "2.9.1", "2.10.0", "2.11.0", "2.12.0",
    "2.12.1", "2.13.0", "2.14.0", "2.14.1", "2.15.0")
CUDA_VERSIONS = ("11.7", "11.8", "12.0", "12.1", "12.2", "12.3", "12.4", "12.5", "12.6", "12.8", "12.9", "13.0",
    "13.1", "13.2")
CUDNN_RELEASES = ("8.5.0", "8.6.0", "8.7.0", "8.8.0", "8.8.1", "8.9.0", "8.9.1", "8.9.2", "8.9.4", "8.9.5", "8.9.6",
    "8.9.7", "9.0.0", "9.1.0", "9.1.1", "9.2.0", "9.2.1", "9.3.0", "9.4.0", "9.5.0", "9.5.1", "9.6.0", "9.7.0",
    "9.7.1", "9.8.0", "9.9.0", "9.10.0", "9.10.1", "9.10.2", "9.11.0", "9.11.1", "9.12.0", "9.13.0", "9.13.1",
    "9.14.0", "9.15.0", "9.15.1", "9.16.0", "9.17.0", "9.17.1", "9.18.0", "9.18.1", "9.19.0", "9.19.1", "9.20.0",
    "9.21.0", "9.21.1", "9.22.0", "9.23.0", "9.23.1", "9.23.2", "9.24.0", "9.24.1", "9.25.0", "9.25.1", "9.26.0",
    "9.26.1", "9.27.0", "9.28.0", "9.28.1")
DIFFUSERS_RELEASES = ("0.20.0", "0.20.1", "0.20.2", "0.21.0", "0.21.1", "0.21.2", "0.21.3", "0.21.4", "0.22.0",
    "0.22.1", "0.22.2", "0.22.3", "0.23.0", "0.23.1", "0.24.0", "0.25.0", "0.25.1", "0.26.0", "0.26.1", "0.26.2",
    "0.26.3", "0.27.0", "0.27.1", "0.27.2", "0.28.0", "0.28.1", "0.28.2", "0.29.0", "0.29.1", "0.29.2", "0.30.0",
    "0.30.1", "0.30.2", "0.30.3", "0.31.0", "0.32.0", "0.32.1", "0.32.2", "0.33.0", "0.33.1", "0.34.0", "0.35.0",
    "0.35.1", "0.35.2", "0.36.0", "0.37.0", "0.37.1", "0.38.0", "0.39.0", "0.40.0", "0.41.0", "0.42.0", "0.42.1")
TRANSFORMERS_RELEASES = ("4.40.0", "4.40.1", "4.40.2", "4.41.0", "4.41.1", "4.41.2", "4.42.0", "4.42.1", "4.42.2",
    "4.42.3", "4.42.4", "4.43.0", "4.43.1", "4.43.2", "4.43.3", "4.43.4", "4.44.0", "4.44.1", "4.44.2", "4.45.0",
    "4.45.1", "4.45.2", "4.46.0", "4.46.1", "4.46.2", "4.46.3", "4.47.0", "4.47.1", "4.48.0", "4.48.1", "4.48.2",
    "4.48.3", "4.49.0", "4.50.0", "4.50.1", "4.50.2", "4.50.3", "4.51.0", "4.51.1", "4.51.2", "4.51.3", "4.52.0",
    "4.52.1", "4.52.2", "4.52.3", "4.52.4", "4.53.0", "4.53.1", "4.53.2", "4.53.3", "4.54.0", "4.54.1", "4.55.0",
    "4.55.1", "4.55.2", "4.55.3", "4.55.4", "4.56.0", "4.56.1", "4.56.2", "4.57.0", "4.57.1", "4.57.2", "4.57.3",
    "4.57.4", "4.57.5", "4.57.6", "5.0.0", "5.1.0", "5.2.0", "5.3.0", "5.4.0", "5.5.0", "5.5.1", "5.5.2", "5.5.3",
    "5.5.4", "5.6.0", "5.6.1", "5.6.2", "5.7.0", "5.8.0", "5.8.1", "5.9.0", "5.10.0", "5.10.1", "5.10.2", "5.10.4",
    "5.11.0", "5.12.0", "5.12.1", "5.13.0", "5.13.1", "5.14.0", "5.14.1", "5.15.0", "5.15.1", "5.16.0", "5.16.1",
    "5.17.0", "5.18.0", "5.19.0", "5.20.0", "5.20.1", "5.20.2", "5.21.0", "5.21.1", "5.22.0", "5.22.1", "5.22.2",
    "5.23.0", "5.24.0", "5.25.0")
RELEASES = {"torch": TORCH_RELEASES, "cuda": CUDA_VERSIONS, "cudnn": CUDNN_RELEASES, "diffusers": DIFFUSERS_RELEASES,
            "transformers": TRANSFORMERS_RELEASES}

# --- pipeline families -------------------------------------------------------
@dataclass(frozen=True)
class Family:
    name: str
    default_size: int        # image side in pixels when a request leaves it out
    default_scheduler: str
    default_steps: int = 50           # diffusers' default of the pipeline's num_inference_steps
    default_guidance: float = 7.5     # and of its guidance_scale (FLUX: the distilled guidance)
    flow: bool = False                # a flow-matching model: only flow schedulers apply
    own_sigmas: bool = False          # the pipeline passes its own sigma list: only flow-euler schedules apply


FAMILIES = {
    1: Family("sd1", 512, "pndm"),
    2: Family("sd2", 768, "ddim"),
    3: Family("sdxl", 1024, "euler"),
    4: Family("flux1", 1024, "flow-euler", 28, 3.5, flow=True, own_sigmas=True),
    5: Family("sd3", 1024, "flow-euler", 28, 7.0, flow=True),
    6: Family("flux2", 1024, "flow-euler", 50, 4.0, flow=True, own_sigmas=True),
    7: Family("flux2-klein", 1024, "flow-euler", 50, 4.0, flow=True, own_sigmas=True),
    8: Family("qwen-image", 1024, "flow-euler", 50, 1.0, flow=True, own_sigmas=True),
    9: Family("z-image", 1024, "flow-euler", 50, 5.0, flow=True, own_sigmas=True),
    10: Family("chroma", 1024, "flow-euler", 35, 5.0, flow=True, own_sigmas=True),
}


# --- well-known models -------------------------------------------------------
@dataclass(frozen=True)
class ModelEntry:
    """A pinned checkpoint. ``sha256`` is the model digest (see spec: 'Model digest')."""

    name: str
    family: str
    repo: str
    revision: str
    sha256: str | None = None
    single_file_sha256: str | None = None   # A1111 single-file checkpoint (AutoV2 = first 10 hex)
    embedded: bool = False


MODELS = {
    1: ModelEntry("aigif-tiny-sd", "sd1", "aigif/tiny-sd", "v1",
                  sha256="d9ef2ba2059841ba9f57a62946110573045d6f315d457d9d3413168588c1764e", embedded=True),
    2: ModelEntry("aigif-tiny-sdxl", "sdxl", "aigif/tiny-sdxl", "v1",
                  sha256="dd571ac33e66854c6a8c0417a8a5ed467ce467ea4c00fb3f81aa811c1ec50556", embedded=True),
    3: ModelEntry("aigif-tiny-flux", "flux1", "aigif/tiny-flux", "v1",
                  sha256="6c71a91432f17c27785b8151aa169a4944b6dd8aae679bb8f07e7721826166f2", embedded=True),
    4: ModelEntry("aigif-tiny-sd3", "sd3", "aigif/tiny-sd3", "v1",
                  sha256="0fbbfb5deffc5c564e60da7cfdd080aeaf77218c0dbbe6be947965a5172568ec", embedded=True),
    5: ModelEntry("aigif-tiny-chroma", "chroma", "aigif/tiny-chroma", "v1",
                  sha256="b4910d74e80b9f9891ab4788d66f74ea7fc0d7cbf46d4e88fc66ebfa5d21cb4e", embedded=True),
    6: ModelEntry("aigif-tiny-qwen-image", "qwen-image", "aigif/tiny-qwen-image", "v1",
                  sha256="9dd78499c1b2edfcf89db94f52897e50e337b2f1a6a4e836ba9c02f1343e5ede", embedded=True),
    7: ModelEntry("aigif-tiny-z-image", "z-image", "aigif/tiny-z-image", "v1",
                  sha256="5326fa0abffebb561c38425da7ba164ba01885e77e5eb2142edaa5d2113b3a58", embedded=True),
    8: ModelEntry("aigif-tiny-flux2-klein", "flux2-klein", "aigif/tiny-flux2-klein", "v1",
                  sha256="74ed98616005ce2cf35f5f49a7867345885b1b85c773141211769aa363b0d9ae", embedded=True),
    9: ModelEntry("aigif-tiny-flux2", "flux2", "aigif/tiny-flux2", "v1",
                  sha256="009c76d742a4bbc1a796bcd415d2d3e73427f09c1e83499fc6ac1feb853cd828", embedded=True),
    16: ModelEntry("sd14", "sd1", "CompVis/stable-diffusion-v1-4",
                   "133a221b8aa7292a167afc5127cb63fb5005638b",
                   single_file_sha256="fe4efff1e174c627256e44ec2991ba279b3816e364b49f9be2abc0b3ff3f8556"),
    17: ModelEntry("sd15", "sd1", "stable-diffusion-v1-5/stable-diffusion-v1-5",
                   "451f4fe16113bff5a5d2269ed5ad43b0592e9a14",
                   single_file_sha256="6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa"),
    18: ModelEntry("sd2-base", "sd2", "stabilityai/stable-diffusion-2-base", "main"),
    19: ModelEntry("sd21", "sd2", "stabilityai/stable-diffusion-2-1",
                   "5cae40e6a2745ae2b01ad92ae5043f95f23644d6"),
    20: ModelEntry("sd21-base", "sd2", "stabilityai/stable-diffusion-2-1-base",
                   "5ede9e4bf3e3fd1cb0ef2f7a3fff13ee514fdf06"),
    21: ModelEntry("sdxl", "sdxl", "stabilityai/stable-diffusion-xl-base-1.0",
                   "462165984030d82259a11f4367a4eed129e94a7b",
                   single_file_sha256="31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b"),
    22: ModelEntry("sdxl-turbo", "sdxl", "stabilityai/sdxl-turbo",
                   "71153311d3dbb46851df1931d3ca6e939de83304"),
    23: ModelEntry("sd-turbo", "sd2", "stabilityai/sd-turbo",
                   "b261bac6fd2cf515557d5d0707481eafa0485ec2"),
    24: ModelEntry("flux1-dev", "flux1", "black-forest-labs/FLUX.1-dev", "3de623fc3c33e44ffbe2bad470d0f45bccf2eb21"),
    25: ModelEntry("flux1-schnell", "flux1", "black-forest-labs/FLUX.1-schnell", "741f7c3ce8b383c54771c7003378a50191e9efe9"),
    26: ModelEntry("flux1-krea-dev", "flux1", "black-forest-labs/FLUX.1-Krea-dev", "main"),
    27: ModelEntry("flux2-dev", "flux2", "black-forest-labs/FLUX.2-dev", "26afe3a78bb242c0a8bb181dcc8937bb16e5c66c"),
    28: ModelEntry("flux2-klein", "flux2-klein", "black-forest-labs/FLUX.2-klein-4B", "e7b7dc27f91deacad38e78976d1f2b499d76a294"),
    29: ModelEntry("sd35-large", "sd3", "stabilityai/stable-diffusion-3.5-large", "ceddf0a7fdf2064ea28e2213e3b84e4afa170a0f"),
    30: ModelEntry("sd35-large-turbo", "sd3", "stabilityai/stable-diffusion-3.5-large-turbo", "ec07796fc06b096cc56de9762974a28f4c632eda"),
    31: ModelEntry("sd35-medium", "sd3", "stabilityai/stable-diffusion-3.5-medium", "b940f670f0eda2d07fbb75229e779da1ad11eb80"),
    32: ModelEntry("qwen-image", "qwen-image", "Qwen/Qwen-Image", "75e0b4be04f60ec59a75f475837eced720f823b6"),
    33: ModelEntry("z-image-turbo", "z-image", "Tongyi-MAI/Z-Image-Turbo", "f332072aa78be7aecdf3ee76d5c247082da564a6"),
    34: ModelEntry("chroma", "chroma", "lodestones/Chroma1-HD", "0e0c60ece1e82b17cb7f77342d765ba5024c40c0"),
}


# --- schedulers ----------------------------------------------------------------
@dataclass(frozen=True)
class SchedulerEntry:
    name: str
    cls: str                              # diffusers scheduler class name
    config: dict[str, Any] = field(default_factory=dict)
    a1111: tuple[str, ...] = ()           # sampler names other tools write


SCHEDULERS = {
    1: SchedulerEntry("ddim", "DDIMScheduler", {}, ("DDIM",)),
    2: SchedulerEntry("pndm", "PNDMScheduler", {}, ("PLMS", "PNDM")),
    3: SchedulerEntry("lms", "LMSDiscreteScheduler", {}, ("LMS",)),
    4: SchedulerEntry("lms-karras", "LMSDiscreteScheduler", {"use_karras_sigmas": True}, ("LMS Karras",)),
    5: SchedulerEntry("euler", "EulerDiscreteScheduler", {}, ("Euler",)),
    6: SchedulerEntry("euler-karras", "EulerDiscreteScheduler", {"use_karras_sigmas": True}, ("Euler Karras",)),
    7: SchedulerEntry("euler-a", "EulerAncestralDiscreteScheduler", {}, ("Euler a", "Euler Ancestral")),
    8: SchedulerEntry("heun", "HeunDiscreteScheduler", {}, ("Heun",)),
    9: SchedulerEntry("dpm2", "KDPM2DiscreteScheduler", {}, ("DPM2",)),
    10: SchedulerEntry("dpm2-karras", "KDPM2DiscreteScheduler", {"use_karras_sigmas": True}, ("DPM2 Karras",)),
    11: SchedulerEntry("dpm2-a", "KDPM2AncestralDiscreteScheduler", {}, ("DPM2 a",)),
    12: SchedulerEntry("dpm2-a-karras", "KDPM2AncestralDiscreteScheduler", {"use_karras_sigmas": True}, ("DPM2 a Karras",)),
    13: SchedulerEntry("dpmpp-2m", "DPMSolverMultistepScheduler", {}, ("DPM++ 2M",)),
    14: SchedulerEntry("dpmpp-2m-karras", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True}, ("DPM++ 2M Karras",)),
    15: SchedulerEntry("dpmpp-2m-sde", "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}, ("DPM++ 2M SDE",)),
    16: SchedulerEntry("dpmpp-2m-sde-karras", "DPMSolverMultistepScheduler",
                       {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True}, ("DPM++ 2M SDE Karras",)),
    17: SchedulerEntry("dpmpp-2s-a", "DPMSolverSinglestepScheduler", {}, ("DPM++ 2S a",)),
    18: SchedulerEntry("dpmpp-2s-a-karras", "DPMSolverSinglestepScheduler", {"use_karras_sigmas": True}, ("DPM++ 2S a Karras",)),
    19: SchedulerEntry("dpmpp-sde", "DPMSolverSDEScheduler", {}, ("DPM++ SDE",)),
    20: SchedulerEntry("dpmpp-sde-karras", "DPMSolverSDEScheduler", {"use_karras_sigmas": True}, ("DPM++ SDE Karras",)),
    21: SchedulerEntry("unipc", "UniPCMultistepScheduler", {}, ("UniPC",)),
    22: SchedulerEntry("deis", "DEISMultistepScheduler", {}, ("DEIS",)),
    23: SchedulerEntry("lcm", "LCMScheduler", {}, ("LCM",)),
    24: SchedulerEntry("ddpm", "DDPMScheduler", {}, ("DDPM",)),
    25: SchedulerEntry("dpmpp-3m-sde", "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 3}, ("DPM++ 3M SDE",)),
    26: SchedulerEntry("dpmpp-3m-sde-karras", "DPMSolverMultistepScheduler",
                       {"algorithm_type": "sde-dpmsolver++", "solver_order": 3, "use_karras_sigmas": True}, ("DPM++ 3M SDE Karras",)),
    # flow-matching models (FLUX, SD 3.5, ...): the shift / dynamic shifting come from the model's scheduler config
    27: SchedulerEntry("flow-euler", "FlowMatchEulerDiscreteScheduler", {}),
    28: SchedulerEntry("flow-euler-karras", "FlowMatchEulerDiscreteScheduler", {"use_karras_sigmas": True}),
    29: SchedulerEntry("flow-euler-beta", "FlowMatchEulerDiscreteScheduler", {"use_beta_sigmas": True}),
    30: SchedulerEntry("flow-euler-exponential", "FlowMatchEulerDiscreteScheduler", {"use_exponential_sigmas": True}),
    31: SchedulerEntry("flow-heun", "FlowMatchHeunDiscreteScheduler", {}),
    32: SchedulerEntry("flow-dpmpp-2m", "DPMSolverMultistepScheduler", {"use_flow_sigmas": True, "prediction_type": "flow_prediction"}),
}
FLOW_SCHEDULER_CLASSES = ("FlowMatchEulerDiscreteScheduler", "FlowMatchHeunDiscreteScheduler")


def is_flow_scheduler(entry: SchedulerEntry) -> bool:
    return entry.cls in FLOW_SCHEDULER_CLASSES or bool(entry.config.get("use_flow_sigmas"))



# --- upscalers of a second pass (hires fix) ------------------------------------------
@dataclass(frozen=True)
class Upscaler:
    """How the first pass is enlarged: its latents by ``torch.nn.functional.interpolate`` (``mode``,
    ``antialias``), or its decoded image (``space`` "pixel") by a PIL resampling filter (``mode``) or
    by an upscaler model (``arch``: "esrgan" models are run; the other architectures are only named)."""

    name: str
    space: str                            # latent | pixel
    mode: str | None = None               # latent: torch interpolate mode; pixel: PIL filter; None: not computed so
    antialias: bool = False
    names: tuple[str, ...] = ()           # what other tools write (A1111 "Hires upscaler", ComfyUI upscale_method)
    arch: str | None = None               # an upscaler model's architecture (esrgan, swinir, dat, ...)
    files: tuple[str, ...] = ()           # the model's weights file stems in A1111 / ComfyUI model folders
    scale: int | None = None              # a model's enlargement factor (importers size a pass by it)


UPSCALERS = {
    1: Upscaler("latent-bilinear", "latent", "bilinear", False, ("Latent", "bilinear")),
    2: Upscaler("latent-bilinear-antialiased", "latent", "bilinear", True, ("Latent (antialiased)",)),
    3: Upscaler("latent-bicubic", "latent", "bicubic", False, ("Latent (bicubic)", "bicubic")),
    4: Upscaler("latent-bicubic-antialiased", "latent", "bicubic", True, ("Latent (bicubic antialiased)",)),
    5: Upscaler("latent-nearest", "latent", "nearest", False, ("Latent (nearest)",)),
    6: Upscaler("latent-nearest-exact", "latent", "nearest-exact", False, ("Latent (nearest-exact)", "nearest-exact")),
    7: Upscaler("latent-area", "latent", "area", False, ("area",)),
    8: Upscaler("latent-bislerp", "latent", None, False, ("bislerp",)),
    9: Upscaler("lanczos", "pixel", "lanczos", False, ("Lanczos", "None")),  # A1111 "None": a Lanczos resize
    10: Upscaler("nearest", "pixel", "nearest", False, ("Nearest",)),
    11: Upscaler("R-ESRGAN 4x+", "pixel", arch="esrgan", files=("RealESRGAN_x4plus",), scale=4),
    12: Upscaler("R-ESRGAN 4x+ Anime6B", "pixel", arch="esrgan", files=("RealESRGAN_x4plus_anime_6B",), scale=4),
    13: Upscaler("4x-UltraSharp", "pixel", arch="esrgan", files=("4x-UltraSharp",), scale=4),
    14: Upscaler("ESRGAN_4x", "pixel", arch="esrgan", files=("ESRGAN_4x", "RRDB_ESRGAN_x4"), scale=4),
    15: Upscaler("SwinIR_4x", "pixel", names=("SwinIR 4x",), arch="swinir", scale=4),
    16: Upscaler("4x_foolhardy_Remacri", "pixel", arch="esrgan", files=("4x_foolhardy_Remacri",), scale=4),
    17: Upscaler("LDSR", "pixel", arch="ldsr", scale=4),
    18: Upscaler("ScuNET", "pixel", names=("ScuNET GAN", "ScuNET PSNR"), arch="scunet", scale=1),
    19: Upscaler("pixel-bicubic", "pixel", "bicubic"),
    20: Upscaler("pixel-bilinear", "pixel", "bilinear"),
    21: Upscaler("R-ESRGAN 2x+", "pixel", arch="esrgan", files=("RealESRGAN_x2plus",), scale=2),
    22: Upscaler("R-ESRGAN General 4xV3", "pixel", arch="srvgg", scale=4),
    23: Upscaler("R-ESRGAN General WDN 4xV3", "pixel", arch="srvgg", scale=4),
    24: Upscaler("R-ESRGAN AnimeVideo", "pixel", arch="srvgg", scale=4),
    25: Upscaler("DAT x2", "pixel", arch="dat", scale=2),
    26: Upscaler("DAT x3", "pixel", arch="dat", scale=3),
    27: Upscaler("DAT x4", "pixel", arch="dat", scale=4),
}
# architectures of upscaler models the engine runs; a model outside the table is read as one of these
RUN_ARCHS = ("esrgan",)
# PIL filters of the pixel resamplers (Image.Resampling member names, lower case)
PIXEL_FILTERS = ("lanczos", "nearest", "bicubic", "bilinear")


def upscaler_from_tool(name: str) -> str:
    """Our upscaler name for what a tool wrote (A1111 "Latent (bicubic)", ComfyUI "nearest-exact"); else the name itself
    (a pixel upscaler model, stored as a string)."""
    key = name.strip()
    for entry in UPSCALERS.values():
        if key == entry.name or key in entry.names:
            return entry.name
    return key


# --- inpainting: what the masked region starts from ----------------------------------------
@dataclass(frozen=True)
class InpaintFill:
    """A masked-content mode: ``original`` is the init image itself (what diffusers' inpainting pipelines do);
    the others replace the masked region first, as the tool named in ``names`` does."""

    name: str
    names: tuple[str, ...] = ()           # what other tools write (A1111 "Masked content")


INPAINT_FILLS = {
    0: InpaintFill("original", ("original",)),
    1: InpaintFill("fill", ("fill",)),                          # A1111: the region filled with the image's colours
    2: InpaintFill("latent-noise", ("latent noise",)),          # A1111: latents replaced by noise
    3: InpaintFill("latent-nothing", ("latent nothing",)),      # A1111: latents set to zero
    4: InpaintFill("gray", ()),                                 # ComfyUI VAEEncodeForInpaint: pixels set to 0.5
}


def inpaint_fill_from_tool(name: str) -> str:
    """Our fill mode for what a tool wrote (A1111 "latent noise"); else the name itself (stored as a string)."""
    key = name.strip()
    for entry in INPAINT_FILLS.values():
        if key == entry.name or key in entry.names:
            return entry.name
    return key


# name-keyed views: registry name -> code
ENUMS: dict[str, dict[int, str]] = {
    "device": DEVICES,
    "dtype": DTYPES,
    "attention": ATTENTION,
    "cpu": CPU_ISAS,
    "onednn": ONEDNN_ISAS,
    "family": {c: f.name for c, f in FAMILIES.items()},
    "model": {c: m.name for c, m in MODELS.items()},
    "scheduler": {c: s.name for c, s in SCHEDULERS.items()},
    "upscaler": {c: u.name for c, u in UPSCALERS.items()},
    "inpaint-fill": {c: f.name for c, f in INPAINT_FILLS.items()},
}
_CODES = {table: {name: code for code, name in names.items()} for table, names in ENUMS.items()}


def code_of(table: str, name: str) -> int | None:
    """Registry code of *name*, or None (the field then escapes to a string)."""
    return _CODES[table].get(name)


def name_of(table: str, code: int) -> str | None:
    return ENUMS[table].get(code)


# tables whose entries are records: table -> (what an entry is called, code -> entry)
_ENTRIES: dict[str, tuple[str, dict]] = {"model": ("model", MODELS), "family": ("pipeline family", FAMILIES),
                                         "scheduler": ("scheduler", SCHEDULERS), "upscaler": ("upscaler", UPSCALERS)}


def lookup(table: str, name: str):
    """The entry registered as *name* in *table*; an unknown name fails listing the known ones."""
    label, entries = _ENTRIES[table]
    code = code_of(table, name)
    if code is None:
        raise RegistryError(f"unknown {label} {name!r}; known: {', '.join(sorted(_CODES[table]))}")
    return entries[code]


def model_entry(name: str) -> ModelEntry:
    return lookup("model", name)


def family_entry(name: str) -> Family:
    return lookup("family", name)


def scheduler_entry(name: str) -> SchedulerEntry:
    return lookup("scheduler", name)


def hardware_code(device: str | None, gpu: str | None, compute_capability: str | None) -> int | None:
    """The HARDWARE code of exactly this (device, gpu, compute capability), or None."""
    return _HARDWARE_CODES.get(Hardware(device, gpu, compute_capability)) if device else None


_HARDWARE_CODES = {h: code for code, h in HARDWARE.items()}


def scheduler_from_sampler(sampler: str) -> str | None:
    """Map another tool's sampler name (A1111 'DPM++ 2M Karras') to our scheduler name."""
    key = sampler.strip().lower()
    for entry in SCHEDULERS.values():
        if key == entry.name or key in (a.lower() for a in entry.a1111):
            return entry.name
    return None
