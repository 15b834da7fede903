"""Save images from your own diffusers pipeline as .aigif.

    python examples/save_from_pipeline.py [OUT_DIR] [--model FOLDER_OR_REPO] [--device cuda]

Default: the embedded tiny model (offline, CPU, seconds). With a real model, e.g.
``--model stable-diffusion-v1-5/stable-diffusion-v1-5 --device cuda``, the same code
records a 512x512 SD 1.5 image in ~200 bytes.
"""
import argparse
from pathlib import Path

import diffusers

from aigif.api import decode, wrap_pipeline

ap = argparse.ArgumentParser()
ap.add_argument("out", nargs="?", default="aigif-examples-out")
ap.add_argument("--model", default=None, help="diffusers folder or Hugging Face repo id (default: embedded tiny model)")
ap.add_argument("--device", default="cpu")
ap.add_argument("--steps", type=int, default=4)
args = ap.parse_args()
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)

if args.model is None:
    from aigif.engine.tiny import ensure_tiny

    args.model = str(ensure_tiny("aigif-tiny-sd"))          # a plain diffusers folder
diffusers.utils.logging.disable_progress_bar()
pipe = diffusers.StableDiffusionPipeline.from_pretrained(args.model).to(args.device)
pipe.set_progress_bar_config(disable=True)
pipe.scheduler = diffusers.EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)   # any registry scheduler

recorder = wrap_pipeline(pipe)          # call it like the pipeline; aigif supplies the seeded noise
for i, prompt in enumerate(["a red fox in the snow", "a red fox in the snow, watercolor"]):
    rec = recorder(prompt=prompt, seed=42, num_inference_steps=args.steps, guidance_scale=7.0)
    rec.save(out / f"fox{i}.aigif")
    rec.image.save(out / f"fox{i}.png")
    print(f"fox{i}.aigif: {len(rec.data)} bytes ({rec.document.generation.scheduler}), "
          f"fox{i}.png: {(out / f'fox{i}.png').stat().st_size} bytes")

# Anyone with the same model regenerates the same pixels from the 200-byte file.
# (a local folder is recorded by name: tell the engine where models live)
from aigif.engine import Engine

engine = Engine(model_dirs=[Path(args.model).parent]) if Path(args.model).is_dir() else None
back = decode(out / "fox0.aigif", engine=engine)
print("regenerated fox0:", back.status)
assert back.status == "exact"
