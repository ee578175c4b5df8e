"""The dataset registry: each dataset file declares itself once, beside its loader.

    from engine.datasets import load_dataset, get, names
    ds = load_dataset("fashion-mnist", limit=512)       # DatasetSplits
    x, y = ds.train[0]                                   # FloatTensor (3, 32, 32), int
    ds.preprocess(PIL.Image.open("shoe.png"))            # (3, 32, 32), exactly like ds.test items
    get("rt-polarity").kind                              # "text"

Offline-ready: fashion-mnist (stand-in for CIFAR-10) and rt-polarity (stand-in for SST-2), both
fetched by `make setup` (scripts/fetch-data.sh) into data/. The paper's own cifar10 and sst2 need
internet (or a GLUE folder for sst2) and fail with a UserError naming the offline alternative.
Adding a dataset: one file that calls `register` (and its import below).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine import paths
from engine.datasets.base import DatasetSplits
from engine.errors import UserError


@dataclass(frozen=True)
class DatasetSpec:
    """name, kind ("image" / "text"), its loader(data_dir, *, limit, seed, image_size, normalize),
    whether it installs offline, the paper dataset it stands in for, and its split in words."""

    name: str
    kind: str
    load: Callable[..., DatasetSplits]
    offline: bool
    stand_in_for: str | None = None
    split: str = ""


_REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"dataset {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def names(kind: str | None = None) -> list[str]:
    return [n for n, s in _REGISTRY.items() if kind is None or s.kind == kind]


def get(name: str) -> DatasetSpec:
    if name not in _REGISTRY:
        raise UserError(f"unknown dataset {name!r}; choose one of: {', '.join(names())}")
    return _REGISTRY[name]


def load_dataset(name: str, *, limit: int | None = None, seed: int = 0, data_dir: Path | None = None,
                 image_size: int = 32,
                 normalize: tuple[tuple[float, ...], tuple[float, ...]] | None = None) -> DatasetSplits:
    """Load a dataset's train/val/test splits.

    limit: caps every split (train: a `seed`-dependent random subset; val/test: the first `limit`).
    The val carve itself never depends on `seed`. image_size / normalize (mean, std) apply to
    image datasets (default: the dataset's own mean/std) and are ignored for text."""
    spec = get(name)
    data_dir = Path(data_dir) if data_dir is not None else paths.data_dir()
    return spec.load(data_dir, limit=limit, seed=seed, image_size=image_size, normalize=normalize)


from engine.datasets import cifar10, fashion_mnist, rt_polarity, sst2  # noqa: E402  (each registers itself)

__all__ = ["DatasetSpec", "DatasetSplits", "cifar10", "fashion_mnist", "get", "load_dataset", "names", "register",
           "rt_polarity", "sst2"]
