#!/usr/bin/env bash
# Everything this project measures on a lent GPU, in ONE call, most important first, each step
# skipped when the time left (BUDGET seconds) cannot hold it; the DB is copied to $OUT after every
# run, so what finished comes back even if the call is cut.
#   1. seconds per epoch of ResNet18/34/50/152 (joint, batch 512, 1024, 2048) -> the paper's grid projected
#      (batch 64 gave 12.9 h and 512 1.8 h on an H200, 2026-11-26: eager steps there are bound by
#      kernel launches, 7.77 s against 1.20 s a ResNet18 epoch for 8x the batch)
#   2. the same with the step compiled into CUDA graphs (torch.compile mode reduce-overhead)
#   3. four seeds at once as four processes against one alone (scripts/gpu-concurrent.sh)
#   4. whether batch 2048 keeps the accuracy: ResNet18 for the grid's 50 epochs, ResNet152 for 15
#   then what the 2026-11-26 calls measured already, repeated as time allows:
#   5. the CPU quickstart's vision recipe: fewest epochs / which batch keeps >= 92% (accuracy only)
#   6. a 30-epoch ResNet18 with and without SideNet@layer1 (the SideNet gap's ceiling, Table 2)
#   7. seconds per epoch of the text encoders' shapes (random weights; nothing downloads there)
#   8. the reduced paper grid (repro-vision-gpu's ResNet34/50, then more seeds)
# A second call with SKIP="epochs compiled-ro ..." goes on where the first one stopped.
# Needs data/fashion-mnist, data/rt-polarity and data/gpu (bash scripts/gpu-shapes.sh) carried.
set -u
OUT=${OUT:-/tmp/gpu-out}; BUDGET=${BUDGET:-540}; PY=${PY:-python3}
mkdir -p "$OUT" /tmp/gpu
start=$SECONDS
$PY -m pip install -q --no-deps --target /tmp/site data/gpu/wheels/duckdb-*.whl >/dev/null 2>&1
export PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export SIDENETS_DB=/tmp/gpu/gpu.duckdb SIDENETS_FEATURES=/tmp/gpu/features
left() { echo $((BUDGET - (SECONDS - start))); }
step() {  # seconds-needed label command...
  local need=$1 label=$2; shift 2
  if done_before "$label"; then return 0; fi
  if [ "$(left)" -lt "$need" ]; then echo "SKIP $label ($(left) s left)" | tee -a "$OUT/log.txt"; return 1; fi
  local t0=$SECONDS
  { echo "== $label: $*"; timeout "$(left)" "$@" 2>&1 | tr '\r' '\n' | grep -v -E 'it/s\]$|s/it\]$|^Loading'; } >> "$OUT/log.txt"
  echo "$label: $((SECONDS - t0)) s" | tee -a "$OUT/log.txt"
  cp "$SIDENETS_DB" "$OUT/gpu.duckdb" 2>/dev/null
  return 0
}
FAST="--dataset fashion-mnist --optimizer sgd --schedule onecycle --momentum 0.9 --weight-decay 5e-4 --label-smoothing 0.1
    --amp bf16"
TRAIN="$PY -m engine train $FAST"
SKIP=${SKIP:-}  # labels to skip (done in an earlier call), space-separated
done_before() { case " $SKIP " in *" $1 "*) return 0;; esac; return 1; }
nvidia-smi -L | tee "$OUT/log.txt"
$PY -c "import torch, transformers, duckdb; print('torch', torch.__version__, 'transformers', transformers.__version__, 'duckdb', duckdb.__version__)" | tee -a "$OUT/log.txt"

step 100 epochs sh -c "$PY -m engine bench epochs --models resnet18 resnet34 resnet50 resnet152 --batch-sizes 512 1024 2048 \
    --epochs 1 --limit 20480 --json > $OUT/epochs.json && $PY -c 'import json,sys; from engine.bench.epochs import format_report; print(format_report(json.load(open(\"$OUT/epochs.json\"))))'"
step 90 compiled-ro $PY -m engine bench epochs --models resnet18 --batch-sizes 512 2048 --epochs 1 --limit 20480 \
    --compile reduce-overhead
step 150 concurrent-4 env PY="$PY" bash scripts/gpu-concurrent.sh 4 $FAST --model resnet18 --epochs 15 --batch-size 512 \
    --lr 0.2
for lr in 0.4 0.8; do step 40 "r18-b2048-lr$lr" $TRAIN --model resnet18 --epochs 50 --batch-size 2048 --lr $lr --seeds 0; done
step 60 r152-b2048 $TRAIN --model resnet152 --epochs 15 --batch-size 2048 --lr 0.4 --seeds 0
for e in 4 5; do step 30 "quickstart-e$e" $TRAIN --model resnet18 --epochs $e --batch-size 128 --lr 0.1 --seeds 0; done
step 70 r18-30ep-joint $TRAIN --model resnet18 --epochs 30 --batch-size 512 --lr 0.2 --seeds 0
for m in minilm-l6 bert-base bert-large; do
  step 35 "text-$m" $PY -m engine train --model data/gpu/shapes/$m --dataset rt-polarity --no-pretrained --epochs 1 \
      --batch-size 32 --lr 5e-5 --amp bf16 --seeds 0
done
for mode in joint mainnet-only; do
  step 80 "r18-15ep-$mode" $TRAIN --model resnet18 --mode $mode --epochs 15 --batch-size 512 --lr 0.2 --seeds 0 1
done
for mode in joint mainnet-only; do
  step 70 "r50-15ep-$mode" $TRAIN --model resnet50 --mode $mode --epochs 15 --batch-size 512 --lr 0.2 --seeds 0
done
step 150 compiled-ro-r152 $PY -m engine bench epochs --models resnet152 --batch-sizes 2048 --epochs 1 --limit 20480 \
    --compile reduce-overhead
step 60 text-distilbert $PY -m engine train --model data/gpu/shapes/distilbert --dataset rt-polarity --no-pretrained \
    --epochs 1 --batch-size 32 --lr 5e-5 --amp bf16 --seeds 0
$PY -m engine summary --thetas 0.5 0.9 > "$OUT/summary.txt" 2>&1
echo "total $((SECONDS - start)) s" | tee -a "$OUT/log.txt"
