"""Hypothesis strategies producing every syntax element with every field."""
from hypothesis import strategies as st

from aigif.syntax import ComponentRef, Document, Fingerprint, Generation, Lora, ModelRef, Platform, Source
from aigif.syntax import registry
from aigif.container import Segment

text = st.text(max_size=80)
short = st.text(min_size=1, max_size=24)
hexes = st.sampled_from([None, "ab" * 32, "0123456789", "deadbeef00ff" ])
sha = st.one_of(st.none(), st.binary(min_size=32, max_size=32).map(bytes.hex), st.just("6ce0161689"))
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
version = st.one_of(st.none(), st.sampled_from(["2.13.0", "2.13.0+cpu", "0.42.1", "12.8", "9.1.0.70", "weird version"]))


def enum(table):
    free = short.map(lambda s: "X" + "".join(c for c in s if c.isascii() and c.isalnum()) + "Scheduler") if table == "scheduler" else short
    return st.one_of(st.none(), st.sampled_from(sorted(registry.ENUMS[table].values())), free)


platforms = st.builds(
    Platform, device=enum("device"), gpu=st.one_of(st.none(), short), compute_capability=version, driver=version,
    cuda=version, cudnn=version, torch=version, diffusers=version, dtype=enum("dtype"), attention=enum("attention"),
    threads=st.one_of(st.none(), st.integers(1, 65535)), deterministic=st.one_of(st.none(), st.booleans()),
    cpu=st.one_of(st.none(), short), transformers=version,
)
components = st.builds(ComponentRef, name=short, repo=st.one_of(st.none(), short), revision=hexes, sha256=sha,
                       local=st.one_of(st.none(), short), subfolder=st.one_of(st.none(), short))
loras = st.builds(Lora, name=short, weight=finite, repo=st.one_of(st.none(), short), revision=hexes, sha256=sha,
                  local=st.one_of(st.none(), short), weight_name=st.one_of(st.none(), short))
models = st.builds(ModelRef, name=enum("model").filter(bool), family=enum("family"), repo=st.one_of(st.none(), short),
                   revision=hexes, sha256=sha, local=st.one_of(st.none(), short), variant=st.one_of(st.none(), short),
                   weights_file=st.one_of(st.none(), short), vae=st.one_of(st.none(), components),
                   loras=st.lists(loras, max_size=3).map(tuple), text_encoders=st.lists(components, max_size=2).map(tuple))
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), finite, text)
json_maps = st.dictionaries(short, st.one_of(json_scalars, st.lists(json_scalars, max_size=3)), max_size=4)
generations = st.builds(
    Generation, prompt=text, seed=st.integers(0, 2**64 - 1), num_inference_steps=st.integers(1, 10000),
    guidance_scale=finite, width=st.integers(1, 16384), height=st.integers(1, 16384), negative_prompt=text,
    scheduler=enum("scheduler"), scheduler_config=st.one_of(st.none(), json_maps), eta=st.one_of(st.none(), finite),
    clip_skip=st.one_of(st.none(), st.integers(0, 64)), batch_index=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    guidance_rescale=st.one_of(st.none(), finite), true_cfg_scale=st.one_of(st.none(), finite),
    max_sequence_length=st.one_of(st.none(), st.integers(1, 4096)), prompt_2=st.one_of(st.none(), text),
    prompt_3=st.one_of(st.none(), text),
)
fingerprints = st.builds(Fingerprint, pixel_sha256=st.binary(min_size=8, max_size=32).map(bytes.hex),
                         width=st.integers(1, 16384), height=st.integers(1, 16384),
                         perceptual=st.one_of(st.none(), st.binary(min_size=1, max_size=32).map(bytes.hex)))
sources = st.builds(Source, tool=short, version=version, extra=st.one_of(st.none(), json_maps))
ext_segments = st.builds(Segment, type=st.integers(0x40, 0x4100).filter(lambda t: not t & 1), payload=st.binary(max_size=40))


def _writable_schedule(doc: Document) -> Document:
    """What a writer accepts: no schedule the model's family cannot reproduce (spec/aigif-v1.md 4.3)."""
    import dataclasses

    from aigif.errors import ConfigError
    from aigif.syntax.defaults import model_family
    from aigif.syntax.flow import check_schedule

    try:
        check_schedule(model_family(doc.model), doc.generation.scheduler, doc.generation.scheduler_config)
    except ConfigError:
        return doc.replace(generation=dataclasses.replace(doc.generation, scheduler=None, scheduler_config=None))
    return doc


documents = st.builds(
    Document, generation=generations, model=models, platform=st.one_of(st.none(), platforms),
    fingerprint=st.one_of(st.none(), fingerprints), source=st.one_of(st.none(), sources),
    residual=st.one_of(st.none(), st.binary(max_size=40)), pixels=st.one_of(st.none(), st.binary(max_size=40)),
    extensions=st.lists(ext_segments, max_size=2).map(tuple),
).map(_writable_schedule)
