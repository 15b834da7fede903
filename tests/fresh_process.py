"""Decode files with the CLI in a fresh Python process: regeneration must not depend on anything in this one."""
import os
import subprocess
import sys

import numpy as np


def decode_in_fresh_process(files, out, aigif_home, images) -> None:
    """``aigif decode FILES -o OUT/``: every file exact and bit-identical to its image in *images*."""
    from PIL import Image

    env = dict(os.environ, AIGIF_HOME=str(aigif_home), TRANSFORMERS_VERBOSITY="error")
    cmd = [sys.executable, "-c", "import sys; from aigif.cli import main; sys.exit(main(sys.argv[1:]))",
           "decode", *map(str, files), "-o", f"{out}/", "-q"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert proc.stdout.count(": exact") == len(files)
    for f, img in zip(files, images):
        regen = np.asarray(Image.open(out / (f.stem + ".png")).convert("RGB"))
        assert np.array_equal(regen, img), f"{f.name} is not bit-identical"
