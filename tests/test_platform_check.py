"""Decoding on another platform says what to expect: exact, close (measured PSNR range) or unknown."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest

import aigif
from aigif.cli import main
from aigif.engine.expect import CLOSE, EXACT, EXPECTED_PSNR, UNKNOWN, expect
from aigif.engine.platform import capture_platform, differing_fields, platform_diffs
from aigif.syntax import Document, Generation, ModelRef, Platform

CPU = Platform(device="cpu", torch="2.13.0+cpu", diffusers="0.42.1", transformers="5.24.0", dtype="float32",
               attention="sdpa", threads=1, deterministic=True, cpu="x86_64-avx2", onednn="avx2")
CUDA = Platform(device="cuda", gpu="NVIDIA H200", compute_capability="9.0", cuda="13.0", cudnn="9.19.0",
                torch="2.13.0+cu130", diffusers="0.42.1", transformers="5.24.0", dtype="float32", attention="sdpa",
                deterministic=True, cpu="x86_64-avx2")


def _expect(recorded: Platform, current: Platform):
    return expect(recorded, current, platform_diffs(recorded, current), differing_fields(recorded, current))


def test_same_platform_is_exact():
    e = _expect(CPU, CPU)
    assert e.outcome == EXACT and not e.diffs and "matches" in e.summary()


@pytest.mark.parametrize("change,kind", [({"cpu": "x86_64-default"}, "cpu-isa"), ({"onednn": "sse41"}, "cpu-isa"),
                                         ({"dtype": "float16"}, "dtype-float16"), ({"dtype": "bfloat16"}, "dtype-bfloat16")])
def test_a_measured_difference_is_close_with_its_range(change, kind):
    e = _expect(dataclasses.replace(CPU, **change), CPU)
    assert e.outcome == CLOSE and e.kinds == (kind,) and e.psnr_range == EXPECTED_PSNR[kind]
    field = next(iter(change))
    assert e.diffs == (f"{field} {change[field]} -> {getattr(CPU, field)}",)
    assert "close expected" in e.summary() and field in e.summary()


def test_cpu_vs_cuda_is_one_kind_of_difference():
    e = _expect(CUDA, CPU)
    assert e.outcome == CLOSE and e.kinds == ("device",) and e.psnr_range == EXPECTED_PSNR["device"]
    assert {"device", "gpu", "cudnn"} <= {d.split()[0] for d in e.diffs}


def test_combined_differences_take_the_lowest_range():
    e = _expect(dataclasses.replace(CPU, cpu="x86_64-default", dtype="bfloat16"), CPU)
    assert e.outcome == CLOSE and e.psnr_range[0] == min(EXPECTED_PSNR["cpu-isa"][0], EXPECTED_PSNR["dtype-bfloat16"][0])


@pytest.mark.parametrize("change", [{"torch": "2.5.1+cpu"}, {"diffusers": "0.31.0"}, {"attention": "classic"},
                                    {"deterministic": False}])
def test_an_unmeasured_difference_is_unknown(change):
    e = _expect(dataclasses.replace(CPU, **change), CPU)
    assert e.outcome == UNKNOWN and "no measurement" in e.summary() and next(iter(change)) in e.summary()


def test_another_gpu_model_is_unknown():
    other = dataclasses.replace(CUDA, gpu="NVIDIA A100-SXM4-80GB", compute_capability="8.0")
    assert _expect(other, CUDA).outcome == UNKNOWN


def test_no_recorded_platform_is_unknown():
    e = expect(None, CPU, (), ())
    assert e.outcome == UNKNOWN and "no platform" in e.summary()


def test_older_cpu_text_compares_by_its_capability():
    old = dataclasses.replace(CPU, cpu="x86_64 AVX2 AMD EPYC 7B13 64-Core Processor")
    assert differing_fields(old, CPU) == ()
    assert differing_fields(dataclasses.replace(CPU, cpu="x86_64 AVX512 Intel(R) Xeon(R)"), CPU) == ("cpu",)


def test_threads_range_means_identical():
    lo, hi = EXPECTED_PSNR["threads"]
    e = _expect(dataclasses.replace(CPU, threads=4), CPU)
    if math.isinf(lo):
        assert e.outcome == EXACT and e.diffs and "does not change" in e.summary()
    else:
        assert e.outcome == CLOSE


def _file(tmp_path, platform: Platform):
    gen = Generation(prompt="a lighthouse", seed=5, num_inference_steps=2, guidance_scale=7.5, width=64, height=64)
    path = tmp_path / "x.aigif"
    path.write_bytes(aigif.dumps(Document(generation=gen, model=ModelRef(name="aigif-tiny-sd"), platform=platform)))
    return path


def test_info_platform_check(tmp_path, capsys):
    here = capture_platform("cpu", "float32", "sdpa", 1)
    path = _file(tmp_path, dataclasses.replace(here, cpu="x86_64-default" if here.cpu != "x86_64-default" else "x86_64-avx2"))
    assert main(["info", str(path), "--platform-check"]) == 0
    out = capsys.readouterr().out
    assert "platform check: close expected" in out and "cpu x86_64-" in out
    assert main(["info", str(path), "--platform-check", "--json"]) == 0
    check = json.loads(capsys.readouterr().out)["platform_check"]
    assert check["outcome"] == "close" and check["kinds"] == ["cpu-isa"]
    newer = _file(tmp_path, dataclasses.replace(here, diffusers="9.0.0"))
    assert main(["info", str(newer), "--platform-check"]) == 0
    assert "platform check: unknown" in capsys.readouterr().out
    same = _file(tmp_path, here)
    assert main(["info", str(same), "--platform-check"]) == 0
    assert "platform check: exact" in capsys.readouterr().out
