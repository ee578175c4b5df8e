"""engine.datasets.cifar10: the paper's dataset (a download), on real CIFAR-10 images from the fixture
folder and on synthetic arrays of the full size (50,000 train / 5,000 val / 5,000 test)."""
from urllib.error import URLError

import numpy as np
import pytest
import torch

from engine.datasets import cifar10, load_dataset
from engine.errors import UserError
from engine.paths import data_dir

from helpers import odd_rgba

FIXTURE_LABELS = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]


@pytest.fixture
def fixture_images():
    folder = data_dir() / "fixtures" / "cifar10"
    if not (folder / "cifar10_19_6.png").exists():
        pytest.skip(f"{folder} missing: run `bash scripts/fetch-data.sh` (make setup) first")
    return cifar10.load_fixture(folder)


def test_real_images_through_the_pipeline(fixture_images):
    x, y = fixture_images
    assert x.shape == (20, 32, 32, 3) and x.dtype == np.uint8 and y.tolist() == FIXTURE_LABELS
    d = cifar10._cifar_from_arrays(x[:15], y[:15], x, y, n_val=5)
    assert (d.name, d.kind, d.num_classes) == ("cifar10", "image", 10)
    assert d.class_names[3] == "cat" and d.class_names[8] == "ship"
    # val is carved from the official TEST images; the rest of them is the test split
    assert (len(d.train), len(d.val), len(d.test)) == (15, 5, 15)
    assert d.train.labels.tolist() == FIXTURE_LABELS[:15]
    assert sorted(d.val.labels.tolist() + d.test.labels.tolist()) == sorted(FIXTURE_LABELS)
    mean = torch.tensor(cifar10.MEAN).view(3, 1, 1)
    std = torch.tensor(cifar10.STD).view(3, 1, 1)
    index_of = {}
    for i in range(20):
        index_of.setdefault(bytes(x[i]), i)
    for i in range(len(d.test)):
        xi, yi = d.test[i]
        raw = np.asarray(d.raw_test(i))
        assert d.raw_test(i).mode == "RGB" and raw.shape == (32, 32, 3)
        src = index_of[bytes(raw)]  # the raw test image is one of the fixture images, pixel for pixel
        assert yi == FIXTURE_LABELS[src]
        want = (torch.from_numpy(x[src]).permute(2, 0, 1).float() / 255 - mean) / std
        assert xi.shape == (3, 32, 32) and torch.allclose(xi, want, atol=1e-5)  # no resize at 32 px
        assert torch.equal(d.preprocess(d.raw_test(i)), xi)
    torch.manual_seed(0)
    xa, ya = d.train[0]
    assert xa.shape == (3, 32, 32) and ya == int(d.train.labels[0])
    p = d.preprocess(odd_rgba(17, 45, alpha=None))
    assert p.shape == (3, 32, 32) and not torch.equal(p[0], p[1])  # kept in colour
    big = cifar10._cifar_from_arrays(x[:15], y[:15], x, y, n_val=5, image_size=64, normalize=((0.5,) * 3, (0.5,) * 3))
    assert big.train[0][0].shape == (3, 64, 64) and big.preprocess(odd_rgba(17, 45, alpha=None)).shape == (3, 64, 64)


def test_the_official_sizes_split_50000_5000_5000():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (50_000, 8, 8, 3), dtype=np.uint8)
    test = rng.integers(0, 256, (10_000, 8, 8, 3), dtype=np.uint8)
    test_labels = np.arange(10_000) % 10
    d = cifar10._cifar_from_arrays(train, np.arange(50_000) % 10, test, test_labels, image_size=8)
    assert (len(d.train), len(d.val), len(d.test)) == (50_000, 5_000, 5_000) == d.extra["full_sizes"]
    assert torch.bincount(torch.cat([d.val.labels, d.test.labels])).tolist() == [1000] * 10  # the test set, split
    again = cifar10._cifar_from_arrays(train, np.arange(50_000) % 10, test, test_labels, image_size=8, seed=3)
    assert torch.equal(again.val.images, d.val.images)  # the carve never depends on the run's seed
    lim = cifar10._cifar_from_arrays(train, np.arange(50_000) % 10, test, test_labels, image_size=8, limit=10)
    assert torch.equal(lim.val.images, d.val.images[:10]) and torch.equal(lim.test.images, d.test.images[:10])


def test_bad_arrays_and_missing_fixture(tmp_path):
    with pytest.raises(ValueError, match=r"expected uint8 \(N, H, W, 3\) images"):
        cifar10._cifar_from_arrays(np.zeros((4, 32, 32), np.uint8), [0] * 4,
                                   np.zeros((4, 32, 32, 3), np.uint8), [0] * 4)
    with pytest.raises(UserError, match="no cifar10_<i>_<label>.png in"):
        cifar10.load_fixture(tmp_path)


def test_offline_is_a_user_error(monkeypatch, tmp_path):
    import torchvision.datasets.cifar as tv_cifar

    def no_network(*a, **k):
        raise URLError("offline")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", no_network)
    with pytest.raises(UserError) as e:
        load_dataset("cifar10", data_dir=tmp_path)
    assert str(e.value) == "cifar10 needs internet to download; offline, use --dataset fashion-mnist"
