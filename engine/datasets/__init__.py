"""The dataset registry.

    from engine.datasets import load_dataset, dataset_names
    ds = load_dataset("fashion-mnist", limit=512)       # DatasetSplits
    x, y = ds.train[0]                                   # FloatTensor (3, 32, 32), int
    ds.preprocess(PIL.Image.open("shoe.png"))            # (3, 32, 32), exactly like ds.test items

Offline-ready: fashion-mnist (stand-in for CIFAR-10) and rt-polarity (stand-in for SST-2), both
fetched by `make setup` (scripts/fetch-data.sh) into data/. The paper's own cifar10 and sst2 need
internet (or a GLUE folder for sst2) and fail with a UserError naming the offline alternative.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import UserError
from . import cifar10, fashion_mnist, rt_polarity, sst2
from .common import DatasetSplits, default_data_dir

__all__ = ["DATASETS", "DatasetSplits", "dataset_names", "load_dataset", "default_data_dir"]

# name -> loader(data_dir, *, limit, seed, image_size, normalize) -> DatasetSplits
DATASETS: dict[str, Callable[..., DatasetSplits]] = {
    "fashion-mnist": fashion_mnist.load,
    "rt-polarity": rt_polarity.load,
    "cifar10": cifar10.load,
    "sst2": sst2.load,
}


def dataset_names() -> list[str]:
    return list(DATASETS)


def load_dataset(name: str, *, limit: int | None = None, seed: int = 0, data_dir: Path | None = None,
                 image_size: int = 32,
                 normalize: tuple[tuple[float, ...], tuple[float, ...]] | None = None) -> DatasetSplits:
    """Load a dataset's train/val/test splits.

    limit: caps every split (train: a `seed`-dependent random subset; val/test: the first `limit`).
    The val carve itself never depends on `seed`. image_size / normalize (mean, std) apply to
    image datasets (default: the dataset's own mean/std) and are ignored for text."""
    loader = DATASETS.get(name)
    if loader is None:
        raise UserError(f"unknown dataset {name!r}; choose one of: {', '.join(dataset_names())}")
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    return loader(data_dir, limit=limit, seed=seed, image_size=image_size, normalize=normalize)
