#!/usr/bin/env bash
# The cold-generation study (issue 24) on one GPU, every recipe at once:
#
#   bash benchmarks/gpu_generation.sh DATA_DIR [OUT]
#
# `colddiff reproduce --study cold-generation` trains its recipes one after another; a recipe's
# batch of 128 leaves most of a large GPU idle, so this runs one study process per recipe side by
# side (each in OUT/parts/RECIPE), then gathers the finished recipes into OUT/study and writes its
# table, figure and report there with `colddiff reproduce ... --resume` (finished recipes are not
# retrained). DATA_DIR holds MNIST and Fashion-MNIST in torchvision's layout; colddiff is imported
# from this checkout's src/. Training is bf16 (measured equal to fp32 for the mnist-ddpm recipe:
# docs/guides/speed.md); sampling and scoring are fp32, as the study does.
#
# MINUTES (default 7) stops every recipe's training after that long (SIGINT: a checkpoint is kept,
# and rerunning the script resumes each unfinished recipe where it stopped). MODELS picks recipes.
# DEVICE=cpu QUICK=1 bash benchmarks/gpu_generation.sh DATA_DIR runs a few-second version on the
# CPU (CI does).
set -uo pipefail
cd "$(dirname "$0")/.."

DATA=${1:?usage: bash benchmarks/gpu_generation.sh DATA_DIR [OUT]}
OUT=${2:-runs/gpu-generation}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
MINUTES=${MINUTES:-7}
PYTHON=${PYTHON:-python}
export COLDDIFF_DATA_DIR=$DATA PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
MODELS=${MODELS:-$("$PYTHON" -c "from colddiff import presets; print(' '.join(presets.GENERATION))")}
if [ "$QUICK" = 1 ]; then OPTIONS=(--quick); else OPTIONS=(--epochs 15 --precision bf16); fi
mkdir -p "$OUT/parts" "$OUT/study/models"

echo "== training $MODELS on $DEVICE, at most $MINUTES minutes ($(date -u +%H:%M:%S))"
for recipe in $MODELS; do
    part=$OUT/parts/$recipe
    resume=(); [ -d "$part/models" ] && resume=(--resume)
    timeout -s INT "$(awk "BEGIN {print int($MINUTES * 60)}")" "$PYTHON" -m colddiff reproduce \
        --study cold-generation --models "$recipe" --out "$part" --device "$DEVICE" --quiet \
        "${OPTIONS[@]}" "${resume[@]}" > "$OUT/parts/$recipe.log" 2>&1 &
done
wait

echo "== gathering ($(date -u +%H:%M:%S))"
unfinished=()
for recipe in $MODELS; do
    if [ -f "$OUT/parts/$recipe/models/$recipe/final.pt" ]; then
        rm -rf "$OUT/study/models/$recipe" && cp -r "$OUT/parts/$recipe/models/$recipe" "$OUT/study/models/"
    else
        unfinished+=("$recipe"); tail -n 3 "$OUT/parts/$recipe.log"
    fi
done
[ ${#unfinished[@]} -gt 0 ] && echo "NOT FINISHED (rerun to resume): ${unfinished[*]}"
finished=()  # in the study's order, with those of an earlier run
for recipe in $MODELS; do [ -d "$OUT/study/models/$recipe" ] && finished+=("$recipe"); done
[ ${#finished[@]} -eq 0 ] && { echo "no recipe finished"; exit 1; }
"$PYTHON" -m colddiff reproduce --study cold-generation --models "${finished[@]}" --out "$OUT/study" \
    --device "$DEVICE" --quiet --resume "${OPTIONS[@]}"
sed -n '/^| recipe/,/^$/p' "$OUT/study/report.md"
echo "== done ($(date -u +%H:%M:%S)): $OUT/study/report.md"
