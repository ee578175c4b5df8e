#!/usr/bin/env bash
# The reduced reproduction on this CPU (issue 11): the paper's experiments on the offline stand-ins,
# then the report and REPRODUCTION.md. About 2 hours on a quiet 2-core CPU; rerun it to resume (finished runs are skipped).
#   DB=data/repro.duckdb [PRESETS="repro-table3"] bash scripts/repro-cpu.sh   (GPU runs: python -m engine import GPU.duckdb)
set -euo pipefail
PY=${PY:-.venv/bin/python}
DB=${DB:-data/repro.duckdb}
for preset in ${PRESETS:-repro-text-cpu repro-vision-cpu repro-table3}; do
  echo "== $preset ($(date +%H:%M))"
  $PY -m engine --db "$DB" train --preset "$preset" --resume 2>&1 | stdbuf -oL tr '\r' '\n' | grep --line-buffered -v -E 'it/s\]$|s/it\]$|^Loading' \
    | grep --line-buffered -E 'training|epoch [0-9]+:|MainNet|error' || true
done
$PY -m engine --db "$DB" report --out report --reproduction REPRODUCTION.md
