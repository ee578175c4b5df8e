#!/usr/bin/env bash
# Several seeds on one GPU at once, as separate processes (each its own DB, imported into
# $SIDENETS_DB: the solo run's at once, the others' once all have ended): one run alone, then N at
# once, and the throughput ratio. Eager
# training steps at 32 px leave the GPU idle between kernel launches; N processes launch from N
# CPU threads.
#   bash scripts/gpu-concurrent.sh N TRAIN-ARGS...   (from gpu-run.sh; the runs' seeds are 0..N)
set -u
n=$1; shift
PY=${PY:-python3}; dir=${CONCURRENT_DIR:-/tmp/gpu/concurrent}
mkdir -p "$dir"
now() { date +%s.%N; }
calc() { $PY -c "print(round($1, 2))"; }
land() { $PY -m engine import "$1" > /dev/null 2>&1 || echo "could not import $1"; }  # into $SIDENETS_DB
t0=$(now)
SIDENETS_DB=$dir/alone.duckdb $PY -m engine train "$@" --seeds 0 > "$dir/alone.log" 2>&1 || { tail -5 "$dir/alone.log"; exit 1; }
alone=$(calc "$(now) - $t0")
land "$dir/alone.duckdb"
t1=$(now); pids=()
for i in $(seq 1 "$n"); do
  SIDENETS_DB=$dir/c$i.duckdb $PY -m engine train "$@" --seeds "$i" > "$dir/c$i.log" 2>&1 &
  pids+=($!)
done
fails=0
for pid in "${pids[@]}"; do wait "$pid" || fails=$((fails + 1)); done
together=$(calc "$(now) - $t1")
echo "one run alone ${alone} s; $n at once ${together} s ($fails failed): $(calc "$n * $alone / $together")x" \
     "the throughput of one process"
for i in $(seq 1 "$n"); do land "$dir/c$i.duckdb"; done
