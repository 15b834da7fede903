import os

# Tests pin CPU threads so the pixel outputs they compare are reproducible.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest


@pytest.fixture(scope="module")
def aigif_home(tmp_path_factory):
    """A fresh $AIGIF_HOME for one test module, so embedded models are built (not reused) there."""
    home = tmp_path_factory.mktemp("aigif_home")
    old = os.environ.get("AIGIF_HOME")
    os.environ["AIGIF_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("AIGIF_HOME", None)
    else:
        os.environ["AIGIF_HOME"] = old

