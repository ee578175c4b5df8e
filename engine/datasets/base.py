"""Shared pieces of the dataset registry: the `DatasetSplits` record, light in-memory torch
Datasets over uint8 arrays (images) or string lists (text), the fixed-seed split carving and
the `limit` subsetting.

Image pipeline (one code path for train/val/test items and for a user's own picture):

    uint8 (C, H, W)  --resize to image_size (torchvision v2, bilinear, antialias)-->  uint8 (C, S, S)
        [train only: zero-pad 4 px, random S x S crop, random horizontal flip]
        --> float, 1 channel expanded to 3, (x / 255 - mean) / std  -->  float32 (3, S, S)

Resizing is per-image deterministic, so a split may be resized once up front (when that costs
little memory) or item by item: both give identical tensors, and `preprocess(raw_test(i))`
equals `test[i][0]` exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

SPLIT_SEED = 0  # the carve of val (and of rt-polarity's test) never depends on the run's seed
CROP_PADDING = 4  # the paper's "random cropping with padding 4", applied at image_size
PRERESIZE_MAX_BYTES = 256 * 2**20  # resize a whole split up front when it stays under this


@dataclass
class DatasetSplits:
    name: str
    kind: str  # "image" or "text"
    num_classes: int
    class_names: list[str]
    train: Dataset  # items: image -> (FloatTensor (3,H,W), int); text -> (str, int)
    val: Dataset
    test: Dataset
    raw_test: Callable[[int], Image.Image | str]  # unaugmented raw test input i (demo gallery)
    preprocess: Callable[[Image.Image | str], torch.Tensor | str]  # eval-time conversion of a user input
    image_size: int | None = None  # images only: side of the square tensors
    normalize: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # images only: (mean, std) used
    extra: dict = field(default_factory=dict)  # provenance notes (source, split sizes before limit, ...)


# ----------------------------------------------------------------------------- splitting


def carve(n: int, n_val: int, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-seed random carve of n indices into (rest, val): rest sorted, val in random order
    (so that the first `limit` items of a carved split are a fair sample of an ordered source)."""
    if not 0 <= n_val <= n:
        raise ValueError(f"cannot carve {n_val} from {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    return np.sort(perm[n_val:]), perm[:n_val]


def split_sizes(n: int, proportions: Sequence[int]) -> list[int]:
    """Scale integer proportions (e.g. GLUE SST-2's 6920/872/1821) to n; the first takes the rest."""
    total = sum(proportions)
    rest = [round(p * n / total) for p in proportions[1:]]
    return [n - sum(rest), *rest]


def limit_train(idx: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """A fixed-seed random subset of at most `limit` of idx (order kept)."""
    if limit is None or limit >= len(idx):
        return idx
    pick = torch.randperm(len(idx), generator=torch.Generator().manual_seed(seed))[:limit].numpy()
    return idx[np.sort(pick)]


def limit_eval(idx: np.ndarray, limit: int | None) -> np.ndarray:
    """The first `limit` of idx (deterministic)."""
    return idx if limit is None else idx[:limit]


def check_limit(limit: int | None) -> None:
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")


# ----------------------------------------------------------------------------- images


def resize_uint8(x: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (..., C, H, W) -> uint8 (..., C, size, size); the one resize of the image pipeline."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return TF.resize(x, [size, size], antialias=True)


def pil_to_uint8(img: Image.Image, gray: bool) -> torch.Tensor:
    """Any PIL image -> uint8 (C, H, W) with C = 1 (gray) or 3 (RGB).

    Transparency is composited onto black (the Fashion-MNIST background)."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(bg, rgba)
    img = img.convert("L" if gray else "RGB")
    arr = np.asarray(img, dtype=np.uint8)
    t = torch.from_numpy(arr.copy())
    return t.unsqueeze(0) if gray else t.permute(2, 0, 1).contiguous()


def uint8_to_pil(x: torch.Tensor) -> Image.Image:
    """uint8 (C, H, W) with C in {1, 3} -> PIL 'L' or 'RGB' image, pixel for pixel."""
    arr = x.numpy()
    return Image.fromarray(arr[0], "L") if arr.shape[0] == 1 else Image.fromarray(arr.transpose(1, 2, 0), "RGB")


class Normalizer:
    """uint8 (C, S, S) -> float32 (3, S, S) = (x / 255 - mean) / std, 1 channel expanded to 3."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        m = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        s = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if len(m) == 1:
            m = m.expand(3)
        if len(s) == 1:
            s = s.expand(3)
        if len(m) != 3 or len(s) != 3 or bool((s <= 0).any()):
            raise ValueError(f"normalize needs 1 or 3 means and positive stds, got {mean}, {std}")
        self.mean = tuple(float(v) for v in m)
        self.std = tuple(float(v) for v in s)
        self._m255 = (m * 255.0).view(3, 1, 1)
        self._s255 = (s * 255.0).view(3, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.to(torch.float32)
        if xf.shape[-3] == 1:
            xf = xf.expand(*xf.shape[:-3], 3, *xf.shape[-2:])
        return (xf - self._m255) / self._s255


class ImageArrayDataset(Dataset):
    """In-memory images: uint8 (N, C, H, W), C = 1 or 3, labels int64 (N,).

    Items are (float32 (3, S, S), int). `train=True` adds the paper's augmentation (zero-pad 4,
    random crop back to S, horizontal flip with p = 0.5), drawn from torch's global RNG (seed it
    with torch.manual_seed; DataLoader workers get their own seeds)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, image_size: int,
                 normalizer: Normalizer, train: bool):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"images must be uint8 (N, C, H, W) with C in (1, 3), got {images.dtype} {tuple(images.shape)}")
        self.raw_size = tuple(images.shape[-2:])
        self.image_size = image_size
        self.normalizer = normalizer
        self.train = train
        self.labels = labels.to(torch.int64).contiguous()  # public: the split's labels in order
        self._raw = images.contiguous()
        self._stored: torch.Tensor | None = None  # resized on first use (a cached-feature run needs only labels)

    @property
    def images(self) -> torch.Tensor:
        """uint8 (N, C, S, S) resized up front when that stays small (PRERESIZE_MAX_BYTES), else
        the raw images (resized item by item / batch by batch)."""
        if self._stored is None:
            raw, s = self._raw, self.image_size
            n, c = raw.shape[:2]
            if n * c * s * s <= PRERESIZE_MAX_BYTES and self.raw_size != (s, s):
                raw = torch.cat([resize_uint8(raw[i:i + 4096], s) for i in range(0, n, 4096)]) if n else \
                    raw.new_zeros((0, c, s, s))
            self._stored = raw.contiguous()
        return self._stored

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx) -> ImageArrayDataset:
        """The rows idx (a seeded pick, e.g. --max-train), sharing this split's settings."""
        out = object.__new__(ImageArrayDataset)
        out.__dict__.update(self.__dict__)
        t = torch.as_tensor(idx, dtype=torch.int64)
        out._raw, out._stored = self._raw[t].contiguous(), None if self._stored is None else self._stored[t].contiguous()
        out.labels = self.labels[t].contiguous()
        return out

    def uint8_item(self, i: int) -> torch.Tensor:
        """The unaugmented image i at image_size, uint8 (C, S, S)."""
        x = (self._stored if self._stored is not None else self._raw)[i]
        return resize_uint8(x, self.image_size)

    def __getitem__(self, i: int):
        x = self.uint8_item(i)
        if self.train:
            s, p = self.image_size, CROP_PADDING
            top, left = torch.randint(0, 2 * p + 1, (2,)).tolist()
            x = torch.nn.functional.pad(x, (p, p, p, p))[:, top:top + s, left:left + s]
            if torch.rand(()) < 0.5:
                x = x.flip(-1)
        return self.normalizer(x), int(self.labels[i])


def make_image_splits(name: str, *, train_images: torch.Tensor, train_labels: torch.Tensor,
                      test_images: torch.Tensor, test_labels: torch.Tensor, class_names: list[str],
                      n_val: int, gray: bool, image_size: int, normalize, default_normalize,
                      limit: int | None, seed: int, extra: dict | None = None,
                      val_from: str = "train") -> DatasetSplits:
    """Carve val (fixed seed) from train (or, val_from="test", from the official test images,
    the rest of which is then the test split), apply `limit`, wrap in ImageArrayDatasets.

    images: uint8 (N, C, H, W) with C = 1 when gray else 3."""
    check_limit(limit)
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8, got {image_size}")
    mean, std = normalize if normalize is not None else default_normalize
    norm = Normalizer(mean, std)
    if val_from == "train":
        tr_idx, va_idx = carve(len(train_labels), n_val)
        te_idx = np.arange(len(test_labels))
        val_images, val_labels = train_images, train_labels
    else:
        tr_idx = np.arange(len(train_labels))
        te_idx, va_idx = carve(len(test_labels), n_val)
        val_images, val_labels = test_images, test_labels
    full = (len(tr_idx), len(va_idx), len(te_idx))
    tr_idx = limit_train(tr_idx, limit, seed)
    va_idx = limit_eval(va_idx, limit)
    te_idx = limit_eval(te_idx, limit)

    def ds(images, labels, idx, train):
        t = torch.as_tensor(idx, dtype=torch.int64)
        return ImageArrayDataset(images[t], labels[t], image_size=image_size, normalizer=norm, train=train)

    train = ds(train_images, train_labels, tr_idx, True)
    val = ds(val_images, val_labels, va_idx, False)
    raw_test_images = test_images[torch.as_tensor(te_idx, dtype=torch.int64)]
    test = ImageArrayDataset(raw_test_images, test_labels[torch.as_tensor(te_idx, dtype=torch.int64)],
                             image_size=image_size, normalizer=norm, train=False)

    def raw_test(i: int) -> Image.Image:
        if not -len(raw_test_images) <= i < len(raw_test_images):
            raise IndexError(f"{name} test has {len(raw_test_images)} items, no index {i}")
        return uint8_to_pil(raw_test_images[i])

    def preprocess(img: Image.Image) -> torch.Tensor:
        if not isinstance(img, Image.Image):
            raise TypeError(f"{name} expects a PIL image, got {type(img).__name__}")
        return norm(resize_uint8(pil_to_uint8(img, gray), image_size))

    return DatasetSplits(
        name=name, kind="image", num_classes=len(class_names), class_names=list(class_names),
        train=train, val=val, test=test, raw_test=raw_test, preprocess=preprocess,
        image_size=image_size, normalize=(norm.mean, norm.std),
        extra={"full_sizes": full, **(extra or {})},
    )


# ----------------------------------------------------------------------------- text


class TextDataset(Dataset):
    """In-memory sentences; items are (str, int)."""

    def __init__(self, texts: Sequence[str], labels: Sequence[int]):
        if len(texts) != len(labels):
            raise ValueError("texts and labels differ in length")
        self.texts = list(texts)
        self.labels = torch.as_tensor(list(labels), dtype=torch.int64)  # public: the labels in order

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int):
        return self.texts[i], int(self.labels[i])

    def subset(self, idx) -> TextDataset:
        return TextDataset([self.texts[int(i)] for i in idx], self.labels[torch.as_tensor(idx, dtype=torch.int64)].tolist())


def preprocess_text(s) -> str:
    if not isinstance(s, str):
        raise TypeError(f"expects a str, got {type(s).__name__}")
    return s.strip()


def make_text_splits(name: str, *, train: tuple[list[str], list[int]], val: tuple[list[str], list[int]],
                     test: tuple[list[str], list[int]], class_names: list[str], limit: int | None,
                     seed: int, extra: dict | None = None) -> DatasetSplits:
    check_limit(limit)
    full = (len(train[0]), len(val[0]), len(test[0]))
    tr = limit_train(np.arange(len(train[0])), limit, seed)
    va = limit_eval(np.arange(len(val[0])), limit)
    te = limit_eval(np.arange(len(test[0])), limit)

    def sub(pair, idx):
        return TextDataset([pair[0][i] for i in idx], [pair[1][i] for i in idx])

    test_ds = sub(test, te)

    def raw_test(i: int) -> str:
        return test_ds.texts[i]

    return DatasetSplits(
        name=name, kind="text", num_classes=len(class_names), class_names=list(class_names),
        train=sub(train, tr), val=sub(val, va), test=test_ds, raw_test=raw_test, preprocess=preprocess_text,
        extra={"full_sizes": full, **(extra or {})},
    )
