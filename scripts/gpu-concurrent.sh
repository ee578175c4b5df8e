#!/usr/bin/env bash
# Several seeds on one GPU at once, as separate processes (each its own DB; `python -m engine import`
# merges them): one run alone, then N at once, and the throughput ratio. Eager training steps at
# 32 px leave the GPU idle between kernel launches; N processes launch from N CPU threads.
#   bash scripts/gpu-concurrent.sh N TRAIN-ARGS...   (from gpu-run.sh; the runs' seeds are 0..N)
set -u
n=$1; shift
PY=${PY:-python3}; dir=${CONCURRENT_DIR:-/tmp/gpu/concurrent}
mkdir -p "$dir"
now() { date +%s.%N; }
t0=$(now)
SIDENETS_DB=$dir/alone.duckdb $PY -m engine train "$@" --seeds 0 > "$dir/alone.log" 2>&1 || { tail -5 "$dir/alone.log"; exit 1; }
t1=$(now)
for i in $(seq 1 "$n"); do
  SIDENETS_DB=$dir/c$i.duckdb $PY -m engine train "$@" --seeds "$i" > "$dir/c$i.log" 2>&1 &
done
fails=0
for job in $(jobs -p); do wait "$job" || fails=$((fails + 1)); done
t2=$(now)
$PY - "$n" "$t0" "$t1" "$t2" "$fails" <<'PY'
import sys
n, t0, t1, t2, fails = int(sys.argv[1]), *map(float, sys.argv[2:5]), int(sys.argv[5])
alone, together = t1 - t0, t2 - t1
print(f"one run alone {alone:.1f} s; {n} at once {together:.1f} s ({fails} failed): "
      f"{n * alone / together:.2f}x the throughput of one process")
PY
for f in "$dir"/c*.duckdb; do $PY -m engine import "$f" > /dev/null 2>&1 || echo "could not import $f"; done  # into $SIDENETS_DB
