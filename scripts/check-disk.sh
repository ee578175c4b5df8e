#!/usr/bin/env bash
# Before a new .venv: is there room for it? torch's CUDA build (it runs on the CPU too) and the rest
# of requirements.txt take about 5.5 GB; a disk that fills half-way leaves a broken venv behind.
set -euo pipefail
need_gb="${SIDENETS_VENV_GB:-6}"
free_kb=$(df -Pk . | awk 'NR == 2 {print $4}')
if [ "$free_kb" -lt $((need_gb * 1024 * 1024)) ]; then
    echo "ERROR: $(awk -v k="$free_kb" 'BEGIN {printf "%.1f", k / 1048576}') GB free on the disk of $(pwd);" \
         "the virtual environment needs about $need_gb GB (torch's CUDA build). Free some space and run make again." >&2
    exit 1
fi
