"""benchmarks/cuda_determinism.py covers every embedded model and runs (on the CPU here) for FLUX.1 and SD 3.5."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from aigif.syntax import registry

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "cuda_determinism.py"


def _module():
    spec = importlib.util.spec_from_file_location("cuda_determinism", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_embedded_model_has_cases_with_each_dtype():
    cases = _module().CASES
    for entry in registry.MODELS.values():
        if entry.embedded:
            dtypes = {dtype for model, dtype, _, _ in cases if model == entry.name}
            assert {"float32", "float16", "bfloat16"} <= dtypes, entry.name
    flow = {s for m, _, _, s in cases if m in ("aigif-tiny-flux", "aigif-tiny-sd3") and s}
    assert flow and all(registry.is_flow_scheduler(registry.scheduler_entry(s)) for s in flow)


def test_the_script_runs_the_flow_models_on_the_cpu(aigif_home):
    env = dict(os.environ, AIGIF_HOME=str(aigif_home), TRANSFORMERS_VERBOSITY="error")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--cpu", "--engine-only", "--only", "aigif-tiny-flux float32",
                           "--only", "aigif-tiny-sd3 float32", "--steps", "1", "--size", "32"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    assert "aigif-tiny-flux float32 sdpa default" in proc.stdout and "aigif-tiny-sd3 float32 sdpa default" in proc.stdout
    assert "ALL EXACT" in proc.stdout
