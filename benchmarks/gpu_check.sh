#!/usr/bin/env bash
# The GPU check of the paper-scale path, for someone with a GPU: under 10 minutes on one H100.
# NOT RUN YET: written without a GPU; `latentbench plan paper-imagenet` is its CPU half.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]      (default gpu_check/; PEAK_TFLOPS=... overrides
#                                                the bf16 peak guessed from the device name)
#
# 1. one GPU, bf16 autocast + torch.compile: a training step of the xl DiT, of the paper's Qwen2
#    generator (both on PS-VAE's 96x16x16 latents) and of the PS-VAE tokenizer (stage 2, at
#    256 px), 10 timed steps each -> seconds/step, images/s, FLOPs/step, MFU, peak memory
#    (OUT_DIR/gpu_check.json);
# 2. with two or more GPUs: a 2-process `accelerate launch` of train-gen on Shapes (DDP, offline)
#    -> OUT_DIR/ddp/ (its metrics.json and the wall time in OUT_DIR/ddp_seconds.txt).
set -euo pipefail
OUT=${1:-gpu_check}
mkdir -p "$OUT"
command -v nvidia-smi >/dev/null || { echo "no nvidia-smi: this check needs a GPU" >&2; exit 2; }
GPUS=$(nvidia-smi --list-gpus | wc -l)
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/gpus.csv"

timeout 420 python benchmarks/gpu_check.py "$OUT/gpu_check.json" --batch-gen 32 --batch-tok 16 --steps 10

if [ "$GPUS" -ge 2 ]; then
  start=$(date +%s)
  timeout 150 accelerate launch --num_processes 2 -m latentbench train-gen --mixed-precision bf16 \
    --space pixel --task t2i --data shapes:256 --preset tiny --steps 40 --batch-size 32 \
    --eval-every 40 --eval-samples 12 --fd-extractor none --out "$OUT/ddp" --quiet
  echo $(( $(date +%s) - start )) > "$OUT/ddp_seconds.txt"
fi
echo "wrote $OUT/gpu_check.json"
