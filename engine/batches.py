"""Batches on the device, with no per-item Python in the loop.

- images: the split's uint8 tensor lives on the device once (GPU-resident on CUDA); each batch is
  gathered, augmented in one go (TrainConfig.augment: the paper's zero-pad 4 + random crop +
  horizontal flip, a flip only, or none; drawn from the run's seeded generator), normalised, in
  channels_last for the convolutions;
- text: sentences tokenised per batch by the model's collate (padded to the batch's longest);
- features: rows of cached feature arrays (engine.features) on the device, cast per batch to
  float32, or all at once to bfloat16 (as small as the float16 cache) when the run trains under
  bf16 autocast.

Every iterator takes a torch.Generator for its order and augmentation, so a seed gives the same
batches on every run, CPU or CUDA.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader

from engine.datasets.base import CROP_PADDING, ImageArrayDataset, resize_uint8
from engine.runtime.device import to_device


def _order(n: int, shuffle: bool, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randperm(n, generator=generator) if shuffle else torch.arange(n)


def batch_sizes(n: int, batch_size: int, drop_single: bool) -> list[int]:
    """The batch sizes of an epoch; a last batch of ONE row is dropped when asked (BatchNorm cannot
    train on it)."""
    sizes = [min(batch_size, n - start) for start in range(0, n, batch_size)]
    if drop_single and sizes and sizes[-1] == 1 and n > 1:
        sizes.pop()
    return sizes


def augment(x: torch.Tensor, shifts: torch.Tensor | None, flips: torch.Tensor, pad: int = CROP_PADDING) -> torch.Tensor:
    """The paper's augmentation on a batch: uint8 (B, C, S, S), shifts (B, 2) in [0, 2 pad], flips (B,)
    bool -> uint8 (B, C, S, S): zero-pad `pad`, crop S x S at (top, left) = shifts (no crop when
    shifts is None), flip where asked."""
    if shifts is None:
        return torch.where(flips.view(-1, 1, 1, 1), x.flip(-1), x)
    b, c, s, _ = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    ar = torch.arange(s, device=x.device)
    rows = (shifts[:, 0:1] + ar).view(b, 1, s, 1).expand(b, c, s, s + 2 * pad)
    out = padded.gather(2, rows)
    cols = (shifts[:, 1:2] + ar).view(b, 1, 1, s).expand(b, c, s, s)
    out = out.gather(3, cols)
    return torch.where(flips.view(b, 1, 1, 1), out.flip(-1), out)


class ImageBatches:
    """Batches (x float32 (B, 3, S, S) channels_last, y (B,)) of an in-memory image split on a device."""

    def __init__(self, ds: ImageArrayDataset, device: torch.device, augment: str = "crop-flip"):
        self.ds, self.device, self.augment = ds, device, augment
        self.images = ds.images.to(device)  # uint8, resized up front when that is small (ImageArrayDataset)
        self.labels = ds.labels.to(device)
        mean, std = ds.normalizer.mean, ds.normalizer.std
        self.m255 = (torch.tensor(mean) * 255).view(1, 3, 1, 1).to(device)
        self.s255 = (torch.tensor(std) * 255).view(1, 3, 1, 1).to(device)

    def __len__(self) -> int:
        return len(self.labels)

    def _prepare(self, idx: torch.Tensor, shifts: torch.Tensor | None, flips: torch.Tensor | None) -> torch.Tensor:
        x = self.images[idx]
        if x.shape[-1] != self.ds.image_size:
            x = resize_uint8(x, self.ds.image_size)
        if flips is not None:
            x = augment(x, shifts, flips)
        x = x.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return ((x - self.m255) / self.s255).contiguous(memory_format=torch.channels_last)

    def iterate(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
                train: bool = False, drop_single: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The epoch's order and augmentation are drawn at once and moved to the device once: no
        host synchronisation per batch."""
        n = len(self)
        order = _order(n, shuffle, generator).to(self.device)
        shifts = flips = None
        if train and self.augment == "crop-flip":
            shifts = torch.randint(0, 2 * CROP_PADDING + 1, (n, 2), generator=generator).to(self.device)
        if train and self.augment != "none":
            flips = (torch.rand(n, generator=generator) < 0.5).to(self.device)
        start = 0
        for size in batch_sizes(n, batch_size, drop_single):
            idx = order[start:start + size]
            yield self._prepare(idx, None if shifts is None else shifts[start:start + size],
                                None if flips is None else flips[start:start + size]), self.labels[idx]
            start += size


class TextBatches:
    """Batches (tokens {"input_ids", "attention_mask"} (B, L), y (B,)) of a sentence split, each
    padded to its longest sentence. Shuffled (training) batches group sentences of similar length
    (the shuffled order is cut into pools of POOL batches, each pool sorted by length, the batches
    shuffled again), so little compute goes to padding; evaluation keeps the split's order."""

    POOL = 50

    def __init__(self, ds, collate: Callable, device: torch.device, num_workers: int = 0):
        self.ds, self.collate, self.device, self.num_workers = ds, collate, device, num_workers
        self._lengths: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.ds)

    def lengths(self) -> torch.Tensor:
        """Tokens per sentence (N,), counted once."""
        if self._lengths is None:
            parts = [self.collate([self.ds[i] for i in range(s, min(s + 512, len(self.ds)))])[0]["attention_mask"].sum(1)
                     for s in range(0, len(self.ds), 512)]
            self._lengths = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)
        return self._lengths

    def _order(self, batch_size: int, shuffle: bool, generator, drop_single: bool) -> list[torch.Tensor]:
        n = len(self.ds)
        if not shuffle:
            return list(torch.arange(n).split(batch_size))
        order, lengths = torch.randperm(n, generator=generator), self.lengths()
        pools = [p[torch.argsort(lengths[p], stable=True)] for p in order.split(batch_size * self.POOL)]
        batches = [b for p in pools for b in p.split(batch_size)]
        if drop_single and len(batches) > 1 and len(batches[-1]) == 1:
            batches.pop()
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]

    def iterate(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
                train: bool = False, drop_single: bool = False):
        batches = [b.tolist() for b in self._order(batch_size, shuffle, generator, drop_single)]
        loader = DataLoader(self.ds, batch_sampler=batches, collate_fn=self.collate, num_workers=self.num_workers,
                            pin_memory=self.device.type == "cuda")
        for x, y in loader:
            yield to_device(x, self.device), y.to(self.device, non_blocking=True)


class FeatureBatches:
    """Batches ({tap: (B, F) of `dtype`}, y (B,)) of cached features (engine.features), on a device."""

    def __init__(self, features: dict[str, torch.Tensor], labels: torch.Tensor, device: torch.device,
                 dtype: torch.dtype = torch.float32):
        once = dtype == torch.bfloat16  # no larger than the float16 cache: cast once, not per batch
        self.features = {k: v.to(device).to(dtype) if once else v.to(device) for k, v in features.items()}
        self.labels = labels.to(device)
        self.device, self.dtype = device, dtype

    def __len__(self) -> int:
        return len(self.labels)

    def iterate(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
                train: bool = False, drop_single: bool = False):
        order, start = _order(len(self), shuffle, generator).to(self.device), 0
        for size in batch_sizes(len(self), batch_size, drop_single):
            idx = order[start:start + size]
            yield {k: v.index_select(0, idx).to(self.dtype) for k, v in self.features.items()}, self.labels[idx]
            start += size


def batches_for(ds, device: torch.device, collate: Callable | None = None, num_workers: int = 0,
                augment: str = "crop-flip"):
    """The batch iterator of a split: ImageBatches for in-memory images, else TextBatches."""
    if isinstance(ds, ImageArrayDataset):
        return ImageBatches(ds, device, augment)
    return TextBatches(ds, collate, device, num_workers)
