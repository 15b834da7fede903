#!/usr/bin/env bash
# Fetch (here, with network) the wheels that aigif needs beyond the device machine's image, so a
# machine with a lent GPU can run aigif there at once (the device machine reaches no package index).
#
#   benchmarks/device_wheels.sh            # writes .whl/ (ignored by git), about 5 MB
#   device run, carry [".whl"]:
#     python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
#     python3 benchmarks/cuda_determinism.py --device cuda
#
# The image holds torch, transformers, accelerate, safetensors, msgpack, peft, typer, tqdm, numpy
# and pillow (see the device tool's KINDS.md); these are the rest of pyproject's dependencies (and diffusers'
# importlib-metadata).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl diffusers zstandard constriction sd-parsers importlib-metadata
ls -la .whl
