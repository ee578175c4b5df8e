"""Rotten-Tomatoes sentences with crowd ratings, the offline stand-in for SST-2.

Source: <data_dir>/rt-polarity/movieReviewSnippets_GroundTruth.txt (Hutto & Gilbert, ICWSM 2014,
shipped in vaderSentiment 3.3.2's source archive; scripts/fetch-data.sh extracts it). UTF-8,
CRLF, tab-separated `id, mean rating (-4..+4), text`; 10,605 sentences.

Binarised like SST-2: drop near-neutral ones (abs(rating) <= 0.8), label 1 if rating > 0 else 0,
leaving 9,565 (4,772 positive, 4,793 negative). Split with a fixed seed (0) in SST-2's GLUE
proportions 6,920 / 872 / 1,821 scaled to 9,565: 6,885 train / 868 val / 1,812 test.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from engine.datasets import DatasetSpec, register
from engine.datasets.base import DatasetSplits, carve, make_text_splits, split_sizes
from engine.errors import UserError

NAME = "rt-polarity"
FILE = "movieReviewSnippets_GroundTruth.txt"
CLASS_NAMES = ["negative", "positive"]
NEUTRAL = 0.8
GLUE_PROPORTIONS = (6920, 872, 1821)


@lru_cache(maxsize=2)
def read_sentences(path: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The binarised sentences and labels, in file order."""
    texts, labels = [], []
    with open(path, encoding="utf-8", newline="") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("\t", 2)
            try:
                rating = float(parts[1])
                text = parts[2].strip()
            except (IndexError, ValueError) as e:
                raise UserError(f"{path}:{lineno}: expected 'id<TAB>rating<TAB>text'; delete it and run `make setup`") from e
            if abs(rating) <= NEUTRAL or not text:
                continue
            texts.append(text)
            labels.append(1 if rating > 0 else 0)
    return tuple(texts), tuple(labels)


def load(data_dir: Path, *, limit: int | None = None, seed: int = 0, **_image_options) -> DatasetSplits:
    path = data_dir / "rt-polarity" / FILE
    if not path.is_file():
        raise UserError(f"rt-polarity needs {path}; run `make setup` (scripts/fetch-data.sh) to fetch it")
    texts, labels = read_sentences(str(path.resolve()))
    n = len(texts)
    _, n_val, n_test = split_sizes(n, GLUE_PROPORTIONS)
    rest, test_idx = carve(n, n_test)
    rest_train, rest_val = carve(len(rest), n_val)
    train_idx, val_idx = rest[rest_train], rest[rest_val]

    def pick(idx):
        return [texts[i] for i in idx], [labels[i] for i in idx]

    return make_text_splits(NAME, train=pick(train_idx), val=pick(val_idx), test=pick(test_idx),
                            class_names=CLASS_NAMES, limit=limit, seed=seed, extra={"source": str(path)})


register(DatasetSpec(NAME, "text", load, offline=True, stand_in_for="sst2",
                     split="6,885 / 868 / 1,812 (SST-2's GLUE proportions, fixed seed)"))
