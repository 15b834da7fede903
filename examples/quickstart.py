"""Quick start: make an .aigif, look inside, get the image back.

    python examples/quickstart.py [OUT_DIR]

Runs offline in a few seconds on the embedded default model (aigif-tiny-sd, 64x64).
"""
import sys
from pathlib import Path

import aigif
from aigif.api import decode, generate

out = Path(sys.argv[1] if len(sys.argv) > 1 else "aigif-examples-out")
out.mkdir(parents=True, exist_ok=True)

# 1. Generate: the engine renders the image and returns the document to save.
res = generate("a lighthouse on a cliff at dusk, oil painting", seed=1234, steps=4, output=out / "lighthouse.aigif")
size = (out / "lighthouse.aigif").stat().st_size
print(f"lighthouse.aigif: {size} bytes for a {res.image.width}x{res.image.height} image")

# 2. Look inside: the syntax (platform, model, data configuration) as JSON.
doc = aigif.load(out / "lighthouse.aigif")
info = aigif.document_to_dict(doc)
print("model:", info["model"], "| prompt:", info["prompt"], "| seed:", info["seed"], "| steps:", info["num_inference_steps"])

# 3. Regenerate: same pixels, checked against the fingerprint stored in the file.
back = decode(out / "lighthouse.aigif")
back.image.save(out / "lighthouse.png")
print(f"decoded: {back.status} ({back.source}); lighthouse.png is {(out / 'lighthouse.png').stat().st_size} bytes")
assert back.status == "exact"
