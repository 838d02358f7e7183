#!/usr/bin/env bash
# The GPU check of colddiff, in one command meant to take under 8 minutes on a CUDA machine
# (not yet timed: no GPU run has been made):
#
#   bash benchmarks/gpu_check.sh DATA_DIR [OUT]
#
# DATA_DIR holds MNIST in torchvision's layout (DATA_DIR/MNIST/raw/...); nothing is downloaded.
# Needs Python with torch and torchvision (and colddiff's other dependencies) installed; pytest and
# hypothesis for the CUDA tests (pure-Python wheels: bring them when the machine is offline).
# colddiff is imported from this checkout's src/ (no install needed).
#
# It prints, in order: the machine; the tests marked `cuda`; the Trainer against a bare loop
# in every precision (benchmarks/throughput.py); a two-minute training run of the mnist-ddpm
# recipe's U-Net at batch 1,024 under bf16, scored with FMD (full protocol, 1,000 samples); and
# sampling the shipped mnist-ddpm model. Record what it prints in docs/benchmarks.md.
#
# DEVICE=cpu QUICK=1 bash benchmarks/gpu_check.sh DATA_DIR runs a few-second version of every
# part on the CPU (CI does, so that the script keeps working between GPU runs).
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${1:?usage: bash benchmarks/gpu_check.sh DATA_DIR [OUT]   (DATA_DIR/MNIST/raw holds MNIST)}
OUT=${2:-runs/gpu-check}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
PYTHON=${PYTHON:-python}
export COLDDIFF_DATA_DIR=$DATA PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
colddiff() { "$PYTHON" -m colddiff "$@"; }
section() { echo; echo "== $* ($(date -u +%H:%M:%S))"; }
rm -rf "$OUT" && mkdir -p "$OUT"

if [ "$QUICK" = 1 ]; then
    STEPS=4; REPEATS=1; MINUTES=0.1; N=64; LIMIT=(--limit-train 2048)
else
    STEPS=50; REPEATS=3; MINUTES=2; N=1000; LIMIT=()
fi

section "machine"
"$PYTHON" - "$DEVICE" <<'PY'
import sys, torch, colddiff
print(f"colddiff {colddiff.__version__}, torch {torch.__version__}, CUDA {torch.version.cuda}")
if sys.argv[1] == "cuda":
    assert torch.cuda.is_available(), "no CUDA device: run with DEVICE=cpu for a CPU check"
    print(torch.cuda.get_device_name(), f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
PY

section "tests marked cuda"
if "$PYTHON" -c "import pytest, hypothesis" 2>/dev/null; then
    # Only this file: the other test modules import the peers (pytorch-fid, diffusers, scikit-image).
    "$PYTHON" -m pytest -m cuda -q -p no:cacheprovider tests/test_cuda.py || echo "CUDA TESTS FAILED"
else
    echo "pytest or hypothesis is not installed: CUDA tests NOT RUN"
fi

section "throughput: Trainer vs bare loop, every precision (images/s)"
BATCH=$([ "$DEVICE" = cuda ] && echo 1024 || echo 32)
PRECISIONS=$([ "$DEVICE" = cuda ] && echo "fp32 bf16 fp16" || echo "fp32 bf16")
"$PYTHON" -m benchmarks.throughput --device "$DEVICE" --nets cnn unet --precisions $PRECISIONS \
    --batch-size "$BATCH" --steps "$STEPS" --repeats "$REPEATS"
"$PYTHON" -m benchmarks.throughput --device "$DEVICE" --nets unet --precisions fp32 \
    --batch-size 128 --steps "$STEPS" --repeats "$REPEATS"   # the recipe's own batch
if [ "$QUICK" != 1 ]; then  # compiling the U-Net takes minutes on a CPU
    "$PYTHON" -m benchmarks.throughput --device "$DEVICE" --nets unet --precisions bf16 \
        --compile default --batch-size "$BATCH" --steps "$STEPS" --repeats 1
fi

section "the mnist-ddpm recipe at batch $BATCH, bf16, for $MINUTES minutes, then FMD"
colddiff train --config benchmarks/configs/mnist-ddpm-large-batch.toml --device "$DEVICE" \
    --precision bf16 --batch-size "$BATCH" --epochs 1000 --max-minutes "$MINUTES" \
    --quiet --out "$OUT/recipe" "${LIMIT[@]}"
sed -e 's/^/  /' "$OUT/recipe/metrics.jsonl" | tail -n 3
colddiff sample --checkpoint "$OUT/recipe/checkpoints/last.pt" -n "$N" --device "$DEVICE" \
    --out "$OUT/recipe-samples.png" --save-tensor "$OUT/recipe-samples.pt"
colddiff fmd score "$OUT/recipe-samples.pt" --protocol full --device "$DEVICE"

section "sampling the shipped mnist-ddpm: $N samples, 50 steps"
for precision in fp32 bf16; do
    start=$EPOCHREALTIME
    colddiff sample --pretrained mnist-ddpm -n "$N" --device "$DEVICE" --precision "$precision" \
        --out "$OUT/pretrained-$precision.png"
    "$PYTHON" -c "import sys; print(f'  {sys.argv[1]}: {float(sys.argv[3]) - float(sys.argv[2]):.1f} s "\
"(process start and model load included)')" "$precision" "$start" "$EPOCHREALTIME"
done
section "done"
