"""engine.datasets.fashion_mnist on the real IDX files (data/fashion-mnist, `make setup`)."""
from urllib.error import URLError

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from engine.datasets import DatasetSplits, base, fashion_mnist, load_dataset
from engine.errors import UserError
from engine.paths import data_dir

from helpers import odd_rgba


@pytest.fixture(scope="module")
def fm() -> DatasetSplits:
    """The whole dataset (read only by the tests)."""
    folder = data_dir() / "fashion-mnist"
    missing = [f for f in fashion_mnist.FILES.values() if not (folder / f).exists()]
    if missing:
        pytest.skip(f"{folder / missing[0]} missing: run `bash scripts/fetch-data.sh` (make setup) first")
    return load_dataset("fashion-mnist")


def test_splits_and_items(fm):
    assert (fm.name, fm.kind, fm.num_classes) == ("fashion-mnist", "image", 10)
    assert fm.class_names[0] == "T-shirt/top" and fm.class_names[-1] == "Ankle boot"
    assert (len(fm.train), len(fm.val), len(fm.test)) == (55_000, 5_000, 10_000)
    # 10 balanced classes: 6,000 each over train + val, 1,000 each in test
    counts = torch.bincount(torch.cat([fm.train.labels, fm.val.labels]), minlength=10)
    assert counts.tolist() == [6000] * 10
    assert torch.bincount(fm.test.labels).tolist() == [1000] * 10
    for split in (fm.train, fm.val, fm.test):
        x, y = split[3]
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32
        assert isinstance(y, int) and 0 <= y < 10
        assert torch.equal(x[0], x[1]) and torch.equal(x[0], x[2])  # gray -> 3 identical channels


def test_eval_transform_is_resize_then_normalize(fm):
    raw = fm.raw_test(7)
    assert raw.mode == "L" and raw.size == (28, 28)
    expected = TF.resize(torch.from_numpy(np.asarray(raw).copy())[None], [32, 32], antialias=True).float() / 255
    expected = ((expected - 0.2860) / 0.3530).expand(3, 32, 32)
    assert torch.allclose(fm.test[7][0], expected, atol=1e-5)
    assert fm.test[7][1] == int(fm.test.labels[7])
    # the user-input path is the same conversion, exactly
    assert torch.equal(fm.preprocess(raw), fm.test[7][0])
    # dataset statistics: about zero mean, unit std after normalisation
    xs = torch.stack([fm.test[i][0] for i in range(0, 10_000, 5)])
    assert abs(xs.mean().item()) < 0.05 and 0.85 < xs.std().item() < 1.1


def test_train_augmentation(fm):
    torch.manual_seed(0)
    a = torch.stack([fm.train[0][0] for _ in range(16)])
    assert a.shape == (16, 3, 32, 32)
    assert len({t.numpy().tobytes() for t in a}) > 1  # random crops / flips differ
    lo = (0 - 0.2860) / 0.3530
    assert a.min().item() >= lo - 1e-5 and a.max().item() <= (1 - 0.2860) / 0.3530 + 1e-5
    torch.manual_seed(0)
    b = torch.stack([fm.train[0][0] for _ in range(16)])
    assert torch.equal(a, b)  # reproducible under torch.manual_seed
    # an unpadded, unflipped crop reproduces the eval image: some draw must match up to a flip
    ev = base.Normalizer(fm.normalize[0], fm.normalize[1])(fm.train.uint8_item(0))
    torch.manual_seed(1)
    draws = [fm.train[0][0] for _ in range(400)]
    assert any(torch.equal(d, ev) for d in draws)


def test_val_carve_is_fixed_and_limit(fm):
    tr_idx, va_idx = base.carve(60_000, 5_000)
    assert len(np.intersect1d(tr_idx, va_idx)) == 0 and len(tr_idx) + len(va_idx) == 60_000
    a = load_dataset("fashion-mnist", limit=300, seed=1)
    b = load_dataset("fashion-mnist", limit=300, seed=2)
    c = load_dataset("fashion-mnist", limit=300, seed=1)
    for d in (a, b, c):
        assert (len(d.train), len(d.val), len(d.test)) == (300, 300, 300)
    # val / test: the first `limit` of the fixed carve, whatever the seed
    assert torch.equal(a.val.images, b.val.images) and torch.equal(a.val.labels, fm.val.labels[:300])
    assert torch.equal(a.val.images, fm.val.images[:300])
    assert torch.equal(a.test.labels, fm.test.labels[:300])
    # train: a seed-dependent random subset, reproducible
    assert torch.equal(a.train.images, c.train.images) and torch.equal(a.train.labels, c.train.labels)
    assert not torch.equal(a.train.images, b.train.images)


def test_options_and_preprocess(fm):
    d = load_dataset("fashion-mnist", limit=8, image_size=64, normalize=((0.5,) * 3, (0.5,) * 3))
    x, _ = d.train[0]
    assert x.shape == (3, 64, 64) and x.min() >= -1 and x.max() <= 1
    assert d.test[0][0].shape == (3, 64, 64) and d.normalize == ((0.5,) * 3, (0.5,) * 3)
    assert torch.equal(d.preprocess(d.raw_test(2)), d.test[2][0])
    p = fm.preprocess(odd_rgba(17, 45, alpha=None))
    assert p.shape == (3, 32, 32) and p.dtype == torch.float32
    assert torch.equal(p[0], p[1])  # converted to grayscale first
    assert d.preprocess(odd_rgba(17, 45, alpha=None).convert("P")).shape == (3, 64, 64)
    with pytest.raises(TypeError, match="fashion-mnist expects a PIL image, got str"):
        d.preprocess("a sentence")
    with pytest.raises(IndexError, match="fashion-mnist test has 8 items, no index 8"):
        d.raw_test(8)


def test_preresized_and_per_item_resize_agree(fm, monkeypatch):
    a = load_dataset("fashion-mnist", limit=20, image_size=48)
    assert a.test.images.shape[-1] == a.val.images.shape[-1] == 48  # small splits: resized once, up front
    monkeypatch.setattr(base, "PRERESIZE_MAX_BYTES", 0)  # large splits resize item by item
    b = load_dataset("fashion-mnist", limit=20, image_size=48)
    assert b.test.images.shape[-1] == 28  # kept raw
    for i in range(20):
        assert torch.equal(a.test[i][0], b.test[i][0]) and torch.equal(a.val[i][0], b.val[i][0])
    torch.manual_seed(0)
    assert b.train[0][0].shape == (3, 48, 48)


def test_offline_without_files_is_a_user_error(monkeypatch, tmp_path):
    import torchvision.datasets.mnist as tv_mnist

    def no_network(*a, **k):
        raise URLError("offline")

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", no_network)
    with pytest.raises(UserError, match="make setup"):
        load_dataset("fashion-mnist", data_dir=tmp_path)


def test_damaged_files_are_user_errors(tmp_path):
    import gzip

    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for name, file in fashion_mnist.FILES.items():
        with gzip.open(folder / file, "wb") as f:
            magic = 0x0803 if "images" in name else 0x0801
            f.write(magic.to_bytes(4, "big") + (5).to_bytes(4, "big") + b"\x00" * (8 if "images" in name else 0))
    with pytest.raises(UserError, match="is truncated; delete it and run `make setup`"):
        load_dataset("fashion-mnist", data_dir=tmp_path)
    with gzip.open(folder / fashion_mnist.FILES["train_images"], "wb") as f:
        f.write(b"\x00\x00\x00\x01" + b"\x00" * 20)
    with pytest.raises(UserError, match="is not an IDX file"):
        load_dataset("fashion-mnist", data_dir=tmp_path)
