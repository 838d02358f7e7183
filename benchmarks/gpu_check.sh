#!/usr/bin/env bash
# The GPU check of colddiff, in one command: 5 minutes 14 s on one NVIDIA H200 (2026-12-04; the
# output is in docs/guides/speed.md, "On a GPU"):
#
#   bash benchmarks/gpu_check.sh DATA_DIR [OUT]
#
# DATA_DIR holds MNIST in torchvision's layout (DATA_DIR/MNIST/raw/...), and Fashion-MNIST too
# (DATA_DIR/FashionMNIST/raw/...) for the CUDA tests that need real data; nothing is downloaded.
# Needs Python with torch and torchvision (and colddiff's other dependencies) installed; pytest and
# hypothesis for the CUDA tests (pure-Python wheels: bring them when the machine is offline).
# colddiff is imported from this checkout's src/ (no install needed).
#
# It prints, in order: the machine; the tests marked `cuda`; the Trainer against a bare loop
# in every precision (benchmarks/throughput.py); the mnist-ddpm recipe at batch 1,024
# (benchmarks/configs/mnist-ddpm-large-batch.toml) trained for its 15 epochs twice, in fp32 and
# under bf16 autocast (the same seed; each stopped after 3 minutes if slower), each scored with FMD
# (full protocol, 1,000 samples from the same seed): bf16's quality at equal epochs; and sampling
# the shipped mnist-ddpm model. Record what it prints in docs/benchmarks.md.
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
    STEPS=4; REPEATS=1; EPOCHS=1; MINUTES=0.1; N=64; LIMIT=(--limit-train 2048)
else
    STEPS=50; REPEATS=3; EPOCHS=15; MINUTES=3; N=1000; LIMIT=()
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

section "the mnist-ddpm recipe at batch 1,024: $EPOCHS epochs in fp32 and in bf16 (at most $MINUTES minutes each), then FMD"
for precision in fp32 bf16; do
    echo "-- $precision"
    colddiff train --config benchmarks/configs/mnist-ddpm-large-batch.toml --device "$DEVICE" \
        --precision "$precision" --epochs "$EPOCHS" --max-minutes "$MINUTES" \
        --quiet --out "$OUT/recipe-$precision" "${LIMIT[@]}"
    sed -e 's/^/  /' "$OUT/recipe-$precision/metrics.jsonl" | tail -n 2
    colddiff sample --checkpoint "$OUT/recipe-$precision/checkpoints/last.pt" -n "$N" --seed 1 \
        --device "$DEVICE" --out "$OUT/recipe-$precision-samples.png" --save-tensor "$OUT/recipe-$precision-samples.pt"
    colddiff fmd score "$OUT/recipe-$precision-samples.pt" --protocol full --device "$DEVICE"
done

section "sampling the shipped mnist-ddpm: $N samples, 50 steps"
for precision in fp32 bf16; do
    start=$EPOCHREALTIME
    colddiff sample --pretrained mnist-ddpm -n "$N" --device "$DEVICE" --precision "$precision" \
        --out "$OUT/pretrained-$precision.png"
    "$PYTHON" -c "import sys; print(f'  {sys.argv[1]}: {float(sys.argv[3]) - float(sys.argv[2]):.1f} s "\
"(process start and model load included)')" "$precision" "$start" "$EPOCHREALTIME"
done
section "done"
