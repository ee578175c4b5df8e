"""Fashion-MNIST (Zalando), the offline stand-in for CIFAR-10.

Source: the four IDX files in <data_dir>/fashion-mnist/ put there by scripts/fetch-data.sh (from
Debian's `dataset-fashion-mnist`). Missing -> torchvision's FashionMNIST(download=True) into
<data_dir>/ (needs internet) -> UserError pointing at `make setup`.

Splits: 60,000 official train minus a fixed-seed (0) carve of 5,000 val = 55,000 train; the
official 10,000 test. 28 px grayscale, expanded to 3 channels and resized to image_size.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from engine.datasets import DatasetSpec, register
from engine.datasets.base import DatasetSplits, make_image_splits
from engine.errors import UserError

NAME = "fashion-mnist"
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MEAN, STD = (0.2860,) * 3, (0.3530,) * 3
N_VAL = 5000
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


def _read_idx(path: Path, header: int, shape_tail: tuple[int, ...]) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[:4], "big")
    expected = 0x0803 if header == 16 else 0x0801
    if magic != expected:
        raise UserError(f"{path} is not an IDX file (magic {magic:#x}); delete it and run `make setup`")
    n = int.from_bytes(raw[4:8], "big")
    arr = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if arr.size != n * int(np.prod(shape_tail, dtype=np.int64)):
        raise UserError(f"{path} is truncated; delete it and run `make setup`")
    return arr.reshape(n, *shape_tail)


@lru_cache(maxsize=2)
def _load_arrays(folder: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 (N, 1, 28, 28) images and int64 labels, train then test."""
    d = Path(folder)
    xtr = _read_idx(d / FILES["train_images"], 16, (28, 28))
    ytr = _read_idx(d / FILES["train_labels"], 8, ())
    xte = _read_idx(d / FILES["test_images"], 16, (28, 28))
    yte = _read_idx(d / FILES["test_labels"], 8, ())
    return (torch.from_numpy(xtr.copy()).unsqueeze(1), torch.from_numpy(ytr.astype(np.int64)),
            torch.from_numpy(xte.copy()).unsqueeze(1), torch.from_numpy(yte.astype(np.int64)))


def _torchvision_arrays(data_dir: Path):
    try:
        from torchvision.datasets import FashionMNIST

        tr = FashionMNIST(root=str(data_dir), train=True, download=True)
        te = FashionMNIST(root=str(data_dir), train=False, download=True)
    except Exception as e:  # offline: URLError / RuntimeError("Error downloading ...")
        raise UserError(
            f"fashion-mnist files are missing from {data_dir / 'fashion-mnist'} and the download failed "
            f"({type(e).__name__}); run `make setup` (scripts/fetch-data.sh) to fetch them from Debian's "
            f"dataset-fashion-mnist package"
        ) from e
    return tr.data.unsqueeze(1).contiguous(), tr.targets.long(), te.data.unsqueeze(1).contiguous(), te.targets.long()


def load(data_dir: Path, *, limit: int | None = None, seed: int = 0, image_size: int = 32,
         normalize=None) -> DatasetSplits:
    folder = data_dir / "fashion-mnist"
    if all((folder / f).is_file() for f in FILES.values()):
        xtr, ytr, xte, yte = _load_arrays(str(folder.resolve()))
        source = str(folder)
    else:
        xtr, ytr, xte, yte = _torchvision_arrays(data_dir)
        source = "torchvision FashionMNIST download"
    return make_image_splits(
        NAME, train_images=xtr, train_labels=ytr, test_images=xte, test_labels=yte,
        class_names=CLASS_NAMES, n_val=N_VAL, gray=True, image_size=image_size,
        normalize=normalize, default_normalize=(MEAN, STD), limit=limit, seed=seed,
        extra={"source": source},
    )


register(DatasetSpec(NAME, "image", load, offline=True, stand_in_for="cifar10",
                     split="55,000 train / 5,000 val (fixed-seed carve of the official train) / 10,000 official test"))
