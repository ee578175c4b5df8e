"""CIFAR-10, the paper's image dataset (section 4.1); needs internet for the first download.

torchvision's CIFAR10(root=<data_dir>/cifar10, download=True). Splits, the paper's 50,000 /
5,000 / 5,000: the 50,000 official train images whole; the official 10,000 test images cut by a
fixed-seed (0) carve into 5,000 val and 5,000 test. Offline -> UserError suggesting fashion-mnist.

`_cifar_from_arrays` is the whole path after the download; tests run it on the 20 real CIFAR-10
test images that scripts/fetch-data.sh puts in <data_dir>/fixtures/cifar10 (`load_fixture`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.datasets import DatasetSpec, register
from engine.datasets.base import DatasetSplits, make_image_splits
from engine.errors import UserError

NAME = "cifar10"
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
N_VAL = 5000
OFFLINE_MESSAGE = "cifar10 needs internet to download; offline, use --dataset fashion-mnist"


def _to_nchw(images) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(images))
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 (N, H, W, 3) images, got {x.dtype} {tuple(x.shape)}")
    return x.permute(0, 3, 1, 2).contiguous()


def _cifar_from_arrays(train_images, train_labels, test_images, test_labels, *, n_val: int = N_VAL,
                       limit: int | None = None, seed: int = 0, image_size: int = 32, normalize=None,
                       extra: dict | None = None) -> DatasetSplits:
    """CIFAR-10 splits from uint8 (N, 32, 32, 3) arrays (torchvision's `.data` layout) and labels."""
    return make_image_splits(
        NAME, train_images=_to_nchw(train_images), train_labels=torch.as_tensor(np.asarray(train_labels), dtype=torch.int64),
        test_images=_to_nchw(test_images), test_labels=torch.as_tensor(np.asarray(test_labels), dtype=torch.int64),
        class_names=CLASS_NAMES, n_val=n_val, gray=False, image_size=image_size, normalize=normalize,
        default_normalize=(MEAN, STD), limit=limit, seed=seed, extra=extra, val_from="test",
    )


def load_fixture(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The foolbox CIFAR-10 PNGs `cifar10_<i>_<label>.png` -> uint8 (N, 32, 32, 3), int64 (N,), by i."""
    found = []
    for p in Path(folder).glob("cifar10_*.png"):
        m = re.fullmatch(r"cifar10_(\d+)_(\d+)\.png", p.name)
        if m:
            found.append((int(m.group(1)), int(m.group(2)), p))
    found.sort()
    if not found:
        raise UserError(f"no cifar10_<i>_<label>.png in {folder}; run `make setup`")
    images = np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.uint8) for _, _, p in found])
    labels = np.array([lab for _, lab, _ in found], dtype=np.int64)
    return images, labels


def load(data_dir: Path, *, limit: int | None = None, seed: int = 0, image_size: int = 32,
         normalize=None) -> DatasetSplits:
    root = data_dir / "cifar10"
    try:
        from torchvision.datasets import CIFAR10

        tr = CIFAR10(root=str(root), train=True, download=True)
        te = CIFAR10(root=str(root), train=False, download=True)
    except Exception as e:  # offline: URLError, socket errors, RuntimeError from a bad archive
        raise UserError(OFFLINE_MESSAGE) from e
    return _cifar_from_arrays(tr.data, tr.targets, te.data, te.targets, limit=limit, seed=seed,
                              image_size=image_size, normalize=normalize, extra={"source": str(root)})


register(DatasetSpec(NAME, "image", load, offline=False, stand_in_for=None,
                     split="50,000 train / 5,000 val / 5,000 test (val and test carved from the official test set)"))
