"""Add a generator family: one registration says how the engine builds, calls and seeds a pipeline.

    python examples/generator_family.py [OUT_DIR]

A package does the same by returning its family from an ``aigif.extensions``
entry point. Here a family outside the registry, ``my-sd1-variant``, reuses the
SD 1.x pipeline with its own defaults (64 px, 4 steps) and draws its noise
through its own hook; the embedded tiny model stands in for its weights.
"""
import dataclasses
import sys
from pathlib import Path

import aigif
from aigif.engine import Engine
from aigif.engine.families import GeneratorFamily, get_family, register_family
from aigif.engine.tiny import ensure_tiny

out = Path(sys.argv[1] if len(sys.argv) > 1 else "aigif-examples-out")
out.mkdir(parents=True, exist_ok=True)


class MyFamily(GeneratorFamily):
    def pack_latents(self, latents):
        """The layout the pipeline's latents= takes (FLUX would pack 2x2 patches here)."""
        print("noise drawn:", tuple(latents.shape))
        return latents


# 1. One object, registered in one place: pipeline class, call arguments, latents, text encoders, defaults.
sd1 = {f.name: getattr(get_family("sd1"), f.name) for f in dataclasses.fields(GeneratorFamily)}
register_family(MyFamily(**{**sd1, "name": "my-sd1-variant", "default_size": 64, "default_steps": 4}))

# 2. A model of that family: files record the family by name.
weights = ensure_tiny("aigif-tiny-sd")
engine = Engine(model_dirs=[weights.parent], threads=1)
model = aigif.ModelRef(local=weights.name, family="my-sd1-variant")
res = aigif.generate("a lantern in the fog", model=model, seed=5, engine=engine, output=out / "lantern.aigif")
g = res.document.generation
print(f"lantern.aigif: family {res.document.model.family}, {g.width}x{g.height}, {g.num_inference_steps} steps")

# 3. Back again through the same registration.
back = aigif.decode(out / "lantern.aigif", engine=engine)
print("decoded:", back.status)
assert back.status == "exact"
