import os

# Tests pin CPU threads so the pixel outputs they compare are reproducible.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
