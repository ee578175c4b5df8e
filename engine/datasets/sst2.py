"""SST-2 (GLUE), the paper's text dataset (section 4.2).

Sources, first found wins:
  1. a GLUE SST-2 folder holding `train.tsv` and `dev.tsv` (tab-separated, header row with
     `sentence` and `label` columns): env SST2_DIR, else <data_dir>/sst2;
  2. HF `datasets.load_dataset("glue", "sst2")`, only if the `datasets` package is importable
     (needs internet the first time);
  3. else UserError suggesting rt-polarity.

GLUE's test split has no labels, so: train minus a fixed-seed (0) carve of 872 = train, that
carve = val, GLUE dev (872) = test.
"""

from __future__ import annotations

import csv
import importlib.util
import os
from pathlib import Path

from engine.datasets import DatasetSpec, register
from engine.datasets.base import DatasetSplits, carve, make_text_splits
from engine.errors import UserError

NAME = "sst2"
CLASS_NAMES = ["negative", "positive"]
N_VAL = 872
OFFLINE_MESSAGE = "sst2 needs the GLUE SST-2 folder (set SST2_DIR) or internet; offline, use --dataset rt-polarity"


def read_tsv(path: Path) -> tuple[list[str], list[int]]:
    """A GLUE SST-2 TSV with a header naming `sentence` and `label` -> (sentences, labels)."""
    texts, labels = [], []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None or "sentence" not in header or "label" not in header:
            raise UserError(f"{path}: expected a header row with 'sentence' and 'label' columns")
        si, li = header.index("sentence"), header.index("label")
        for lineno, row in enumerate(reader, 2):
            if not row or all(not c.strip() for c in row):
                continue
            try:
                label = int(row[li])
                text = row[si].strip()
            except (IndexError, ValueError) as e:
                raise UserError(f"{path}:{lineno}: expected a sentence and a 0/1 label") from e
            if label not in (0, 1):
                raise UserError(f"{path}:{lineno}: label must be 0 or 1, got {label}")
            texts.append(text)
            labels.append(label)
    return texts, labels


def _find_folder(data_dir: Path) -> Path | None:
    candidates = [Path(os.environ["SST2_DIR"])] if os.environ.get("SST2_DIR") else []
    candidates.append(data_dir / "sst2")
    for d in candidates:
        if (d / "train.tsv").is_file() and (d / "dev.tsv").is_file():
            return d
    return None


def _from_hf() -> tuple[tuple[list[str], list[int]], tuple[list[str], list[int]], str]:
    if importlib.util.find_spec("datasets") is None:
        raise UserError(OFFLINE_MESSAGE)
    try:
        import datasets

        dd = datasets.load_dataset("glue", "sst2")
        train = ([s.strip() for s in dd["train"]["sentence"]], [int(v) for v in dd["train"]["label"]])
        dev = ([s.strip() for s in dd["validation"]["sentence"]], [int(v) for v in dd["validation"]["label"]])
    except Exception as e:  # offline / hub errors
        raise UserError(OFFLINE_MESSAGE) from e
    return train, dev, "datasets.load_dataset('glue', 'sst2')"


def from_glue(train: tuple[list[str], list[int]], dev: tuple[list[str], list[int]], *, limit: int | None = None,
              seed: int = 0, n_val: int = N_VAL, source: str = "") -> DatasetSplits:
    """SST-2 splits from GLUE's train and dev: train minus a fixed-seed carve of n_val, the carve, dev."""
    texts, labels = train
    n_val = min(n_val, len(texts) // 2)  # a tiny folder (tests) still gets a train split
    tr_idx, va_idx = carve(len(texts), n_val)

    def pick(idx):
        return [texts[i] for i in idx], [labels[i] for i in idx]

    return make_text_splits(NAME, train=pick(tr_idx), val=pick(va_idx), test=(list(dev[0]), list(dev[1])),
                            class_names=CLASS_NAMES, limit=limit, seed=seed, extra={"source": source})


def load(data_dir: Path, *, limit: int | None = None, seed: int = 0, **_image_options) -> DatasetSplits:
    folder = _find_folder(data_dir)
    if folder is not None:
        train, dev, source = read_tsv(folder / "train.tsv"), read_tsv(folder / "dev.tsv"), str(folder)
    else:
        train, dev, source = _from_hf()
    return from_glue(train, dev, limit=limit, seed=seed, source=source)


register(DatasetSpec(NAME, "text", load, offline=False, stand_in_for=None,
                     split="GLUE train minus a fixed-seed carve of 872 / that carve / GLUE dev (872)"))
