"""Use .aigif files from Pillow: Image.open regenerates lazily, img.save writes syntax or pixels.

    python examples/pillow_plugin.py [OUT_DIR]
"""
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import aigif
from aigif.api import generate, register_pillow

register_pillow()                      # also happens on `import aigif` once wired
out = Path(sys.argv[1] if len(sys.argv) > 1 else "aigif-examples-out")
out.mkdir(parents=True, exist_ok=True)

res = generate("a paper boat on a pond", seed=7, steps=4)

# Save: a PIL image plus its syntax -> a syntax file with the image's fingerprint.
res.image.save(out / "boat.aigif", syntax=res.document)

# Open: only the syntax is read; size/mode/metadata are there without rendering.
im = Image.open(out / "boat.aigif")
meta = json.loads(im.info["aigif"])
print(f"opened {im.format} {im.size} {im.mode}; prompt={meta['prompt']!r} seed={meta['seed']}")

# First pixel access regenerates through the engine and checks the fingerprint.
im.thumbnail((32, 32))
im.save(out / "boat_thumb.png")
print("loaded:", im.info["aigif_fidelity"], "-> boat_thumb.png", im.size)

# Pixels without a syntax (e.g. a photo): stored with the learned codec.
photo = Image.fromarray(np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1))).convert("RGB")
photo.save(out / "gradient.aigif", quality=4)
with Image.open(out / "gradient.aigif") as g:
    print(f"gradient.aigif: {g.info['aigif_kind']}, {(out / 'gradient.aigif').stat().st_size} bytes, size {g.size}")
    g.convert("L").save(out / "gradient.png")
assert aigif.load(out / "boat.aigif").fingerprint == res.document.fingerprint
