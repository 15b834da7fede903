#!/usr/bin/env bash
# Train the NVTC codec on a lent GPU (the device tool), in the background.
#
#   benchmarks/gpu_train_nvtc.sh start   # starts training under setsid, shows the first log lines
#   INIT=aigif/assets/nvtc/nvtc_id3.safetensors BUDGET=25 MINUTES=26 benchmarks/gpu_train_nvtc.sh start
#                                        # goes on training the shipped model (ECVQ fine-tuning)
#   benchmarks/gpu_train_nvtc.sh poll    # waits, shows the log, compacts the checkpoint into $OUT/ckpt
#
# A device call may run 10 minutes, but a process started with setsid lives until the machine is
# given back, so one training run spans several calls as long as each poll follows the last within
# the machine's warm period. Training data travels in .data/train (a copy of ../shared/data/images/train,
# ignored by git). Afterwards, on the CPU machine:
#   python -m aigif.codec.train export --ckpt <files_at>/ckpt --refine 12
set -u
RUN=${RUN:-runs/gpu}
case ${1:-start} in
start)
  mkdir -p "$RUN"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
  PYTHONUNBUFFERED=1 setsid nohup python3 -m aigif.codec.train train --device cuda --amp \
    --data "${DATA:-.data/train/*.png}" --out "$RUN" --budget-minutes "${BUDGET:-21}" --minutes "${MINUTES:-22}" \
    --batch "${BATCH:-32}" --crop 256 --lr "${LR:-4e-4}" --log-every 200 --ckpt-every 500 --threads 4 \
    ${INIT:+--init "$INIT"} \
    >"$RUN/train.log" 2>&1 </dev/null &
  sleep "${WAIT:-100}"
  grep -v reactivated "$RUN/train.log" | tail -20
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
  ;;
poll)
  sleep "${WAIT:-540}"
  grep -v reactivated "$RUN/train.log" | tail -"${LINES:-12}"
  cp "$RUN/train.log" "$OUT/train.log"
  python3 -m aigif.codec.train compact --ckpt "$RUN/last.pt" --out "$OUT/ckpt"
  ;;
esac
