#!/bin/bash
# The cascade's GPU measurement (issue 4): train ResNet18 on Fashion-MNIST on the GPU, then time the
# real cascade against the full MainNet at a few batch sizes, with and without CUDA graphs.
#   PY=python3 EPOCHS=1 SIDENETS_DB=/tmp/gpu.duckdb bash scripts/gpu-bench.sh
# Needs CUDA, the engine's requirements (DuckDB included) and data/fashion-mnist (make data).
set -eu -o pipefail
PY=${PY:-.venv/bin/python}
export PYTHONUNBUFFERED=1 SIDENETS_DB=${SIDENETS_DB:-data/gpu-bench.duckdb}
$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this script measures the GPU')" || exit 2
$PY -m engine train --model resnet18 --dataset fashion-mnist --epochs "${EPOCHS:-1}" --device cuda 2>&1 \
    | tr '\r' '\n' | grep "MainNet" | tail -n 1
RUN=$($PY -m engine runs --json | $PY -c "import json, sys; runs = [r for r in json.load(sys.stdin) if
    r['model'] == 'resnet18' and r['status'] == 'complete']; print(max(runs, key=lambda r: r['created_at'])['run_id'])")
bench() { echo "== $*"; $PY -m engine bench cascade "$RUN" --rounds 3 --pool "$@" | sed 1d; }
for theta in auto 0.9; do
    bench --theta $theta --batch 64
    bench --theta $theta --batch 256
done
bench --theta auto --batch 64 --no-cuda-graphs
$PY -m engine latency "$RUN" --device cuda | tail -n 6
