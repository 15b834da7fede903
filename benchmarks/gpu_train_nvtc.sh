#!/usr/bin/env bash
# Train the NVTC codec on a lent GPU (the device tool), in the background.
#
#   benchmarks/gpu_train_nvtc.sh data    # here, once: the training photos as lossless WebP in .data/trainw
#   benchmarks/gpu_train_nvtc.sh start   # device, carry [".data/trainw"]: starts training under setsid
#   INIT=aigif/assets/nvtc/nvtc_id5.safetensors BATCH=64 LR=2e-4 BUDGET=22 MINUTES=23 benchmarks/gpu_train_nvtc.sh start
#                                        # goes on training the shipped model (ECVQ fine-tuning; fits a
#                                        # 30-minute device budget with the machine's start and the polls)
#   benchmarks/gpu_train_nvtc.sh poll    # waits, shows the log, compacts the checkpoint into $OUT/ckpt
#   INIT=aigif/assets/nvtc/nvtc_id5.safetensors BATCH=64 LR=1e-4 BUDGET=7.7 MINUTES=8.1 COPY_AWARE=1 benchmarks/gpu_train_nvtc.sh run
#                                        # one call (timeout_s 600) for a 15-minute device budget: trains in
#                                        # the foreground, then compacts the checkpoint into $OUT/ckpt
#                                        # (COPY_AWARE=1: train --copy-aware, MIN_SCALE=0.5: --min-scale 0.5;
#                                        # set them again on a resume)
#
# A device call may run 10 minutes, but a process started with setsid lives until the machine is
# given back, so one training run spans several calls as long as each poll follows the last within
# the machine's warm period (if the machine is lost, the last poll's $OUT/ckpt is a compact checkpoint:
# `export --refine 0` turns it into a weights file that INIT= accepts). Training data travels in .data/
# (ignored by git; carry it). The PNGs of ../shared/data/images/train plus the tracked tree exceed the
# 64 MiB a call may carry, so `benchmarks/gpu_train_nvtc.sh data` writes them as lossless WebP
# (.data/trainw, 35 MB; the default DATA). Afterwards, on the CPU machine:
#   python tools/train_nvtc.py export --data 'TRAINING_PHOTOS/*.png' --ckpt <files_at>/ckpt --refine 77 --refine-rounds 5 --jobs 2
set -u
RUN=${RUN:-runs/gpu}
case ${1:-start} in
data)
  python3 - <<'PY'
import glob, os
from PIL import Image
os.makedirs(".data/trainw", exist_ok=True)
for p in sorted(glob.glob(os.environ.get("SRC", "../shared/data/images/train/*.png"))):
    Image.open(p).convert("RGB").save(".data/trainw/" + os.path.basename(p)[:-4] + ".webp", lossless=True, method=4)
PY
  du -sh .data/trainw
  ;;
start|run)
  mode=$1
  mkdir -p "$RUN"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
  train() {
    PYTHONUNBUFFERED=1 python3 tools/train_nvtc.py train --device cuda --amp \
      --data "${DATA:-.data/trainw/*.webp}" --out "$RUN" --budget-minutes "${BUDGET:-21}" --minutes "${MINUTES:-22}" \
      --batch "${BATCH:-32}" --crop 256 --lr "${LR:-4e-4}" --log-every 200 --ckpt-every 500 --threads 4 \
      ${INIT:+--init "$INIT"} ${COPY_AWARE:+--copy-aware} ${MIN_SCALE:+--min-scale "$MIN_SCALE"} >"$RUN/train.log" 2>&1 </dev/null
  }
  if [ "$mode" = run ]; then
    train
    grep -v reactivated "$RUN/train.log" | tail -"${LINES:-30}"
    cp "$RUN/train.log" "$OUT/train.log"
    python3 tools/train_nvtc.py compact --ckpt "$RUN/last.pt" --out "$OUT/ckpt"
    exit
  fi
  export -f train; export RUN
  setsid nohup bash -c train >/dev/null 2>&1 </dev/null &
  sleep "${WAIT:-100}"
  grep -v reactivated "$RUN/train.log" | tail -20
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
  ;;
poll)
  sleep "${WAIT:-540}"
  grep -v reactivated "$RUN/train.log" | tail -"${LINES:-12}"
  cp "$RUN/train.log" "$OUT/train.log"
  python3 tools/train_nvtc.py compact --ckpt "$RUN/last.pt" --out "$OUT/ckpt"
  ;;
esac
