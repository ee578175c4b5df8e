"""The dataset registry on real data: data/ as filled by `bash scripts/fetch-data.sh` (make setup).

Tests needing a file that fetch-data.sh was not run to produce are skipped, naming the file."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from engine.datasets import DatasetSplits, dataset_names, default_data_dir, load_dataset
from engine.datasets import cifar10, common, fashion_mnist, rt_polarity, sst2
from engine.errors import UserError

DATA = default_data_dir()
FIXTURE_LABELS = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]


def need(*rel: str) -> None:
    for r in rel:
        if not (DATA / r).exists():
            pytest.skip(f"{DATA / r} missing: run `bash scripts/fetch-data.sh` (make setup) first")


@pytest.fixture(scope="module")
def fm() -> DatasetSplits:
    need(*(f"fashion-mnist/{f}" for f in fashion_mnist.FILES.values()))
    return load_dataset("fashion-mnist")


def odd_rgba() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (17, 45, 4), dtype=np.uint8), "RGBA")


# ----------------------------------------------------------------------------- registry


def test_names_and_unknown_dataset():
    assert dataset_names() == ["fashion-mnist", "rt-polarity", "cifar10", "sst2"]
    with pytest.raises(UserError, match=r"unknown dataset 'mnist'; choose one of: fashion-mnist, rt-polarity, cifar10, sst2"):
        load_dataset("mnist")


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SIDENETS_DATA", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("SIDENETS_DATA")
    assert default_data_dir() == Path(__file__).resolve().parents[1] / "data"


# ----------------------------------------------------------------------------- fashion-mnist


def test_fashion_mnist_splits_and_items(fm):
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


def test_fashion_mnist_eval_transform_is_resize_then_normalize(fm):
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


def test_fashion_mnist_train_augmentation(fm):
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
    ev = common.Normalizer(fm.normalize[0], fm.normalize[1])(fm.train.uint8_item(0))
    torch.manual_seed(1)
    draws = [fm.train[0][0] for _ in range(400)]
    assert any(torch.equal(d, ev) for d in draws)


def test_fashion_mnist_val_carve_is_fixed_and_limit(fm):
    tr_idx, va_idx = common.carve(60_000, 5_000)
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


def test_fashion_mnist_options_and_preprocess(fm):
    d = load_dataset("fashion-mnist", limit=8, image_size=64, normalize=((0.5,) * 3, (0.5,) * 3))
    x, _ = d.train[0]
    assert x.shape == (3, 64, 64) and x.min() >= -1 and x.max() <= 1
    assert d.test[0][0].shape == (3, 64, 64) and d.normalize == ((0.5,) * 3, (0.5,) * 3)
    assert torch.equal(d.preprocess(d.raw_test(2)), d.test[2][0])
    p = fm.preprocess(odd_rgba())
    assert p.shape == (3, 32, 32) and p.dtype == torch.float32
    assert torch.equal(p[0], p[1])  # converted to grayscale first
    assert d.preprocess(odd_rgba().convert("P")).shape == (3, 64, 64)


def test_preresized_and_per_item_resize_agree(fm, monkeypatch):
    a = load_dataset("fashion-mnist", limit=20, image_size=48)
    monkeypatch.setattr(common, "PRERESIZE_MAX_BYTES", 0)  # large splits resize item by item
    b = load_dataset("fashion-mnist", limit=20, image_size=48)
    assert a.test._resized and not b.test._resized
    for i in range(20):
        assert torch.equal(a.test[i][0], b.test[i][0]) and torch.equal(a.val[i][0], b.val[i][0])
    torch.manual_seed(0)
    assert b.train[0][0].shape == (3, 48, 48)


def test_fashion_mnist_offline_without_files_is_user_error(monkeypatch, tmp_path):
    import torchvision.datasets.mnist as tv_mnist

    def no_network(*a, **k):
        raise URLError("offline")

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", no_network)
    with pytest.raises(UserError, match="make setup"):
        load_dataset("fashion-mnist", data_dir=tmp_path)


# ----------------------------------------------------------------------------- rt-polarity


def test_rt_polarity_counts_and_splits():
    need("rt-polarity/movieReviewSnippets_GroundTruth.txt")
    texts, labels = rt_polarity.read_sentences(str(DATA / "rt-polarity" / rt_polarity.FILE))
    assert len(texts) == 9_565 and sum(labels) == 4_772 and labels.count(0) == 4_793
    assert all(t == t.strip() and t for t in texts)
    d = load_dataset("rt-polarity")
    assert (d.name, d.kind, d.num_classes, d.class_names) == ("rt-polarity", "text", 2, ["negative", "positive"])
    assert (len(d.train), len(d.val), len(d.test)) == (6_885, 868, 1_812)
    assert sum(len(s) for s in (d.train, d.val, d.test)) == 9_565
    assert int(d.train.labels.sum() + d.val.labels.sum() + d.test.labels.sum()) == 4_772
    text, y = d.train[0]
    assert isinstance(text, str) and y in (0, 1)
    assert d.raw_test(0) == d.test[0][0] and d.preprocess("  a fine film \r\n") == "a fine film"
    # the split is fixed (seed only moves the `limit` subset of train)
    e = load_dataset("rt-polarity", seed=5)
    assert e.test.texts == d.test.texts and e.val.texts == d.val.texts and e.train.texts == d.train.texts
    # balanced enough in every split
    for s in (d.train, d.val, d.test):
        assert 0.45 < s.labels.float().mean().item() < 0.55
    lim = load_dataset("rt-polarity", limit=50, seed=3)
    assert (len(lim.train), len(lim.val), len(lim.test)) == (50, 50, 50)
    assert lim.test.texts == d.test.texts[:50] and set(lim.train.texts) <= set(d.train.texts)


def test_rt_polarity_missing_file_is_user_error(tmp_path):
    with pytest.raises(UserError, match="make setup"):
        load_dataset("rt-polarity", data_dir=tmp_path)


# ----------------------------------------------------------------------------- cifar10


def test_cifar10_path_on_real_fixture_images():
    need("fixtures/cifar10/cifar10_19_6.png")
    x, y = cifar10.load_fixture(DATA / "fixtures" / "cifar10")
    assert x.shape == (20, 32, 32, 3) and x.dtype == np.uint8 and y.tolist() == FIXTURE_LABELS
    d = cifar10._cifar_from_arrays(x[:15], y[:15], x, y, n_val=5)
    assert (d.name, d.kind, d.num_classes) == ("cifar10", "image", 10)
    assert d.class_names[3] == "cat" and d.class_names[8] == "ship"
    assert (len(d.train), len(d.val), len(d.test)) == (10, 5, 20)
    assert d.test.labels.tolist() == FIXTURE_LABELS
    assert sorted(d.train.labels.tolist() + d.val.labels.tolist()) == sorted(FIXTURE_LABELS[:15])
    mean = torch.tensor(cifar10.MEAN).view(3, 1, 1)
    std = torch.tensor(cifar10.STD).view(3, 1, 1)
    for i in (0, 11, 19):
        xi, yi = d.test[i]
        assert xi.shape == (3, 32, 32) and xi.dtype == torch.float32 and yi == FIXTURE_LABELS[i]
        raw = torch.from_numpy(x[i]).permute(2, 0, 1).float() / 255
        assert torch.allclose(xi, (raw - mean) / std, atol=1e-5)  # no resize at 32 px
        assert d.raw_test(i).mode == "RGB" and np.array_equal(np.asarray(d.raw_test(i)), x[i])
        assert torch.equal(d.preprocess(d.raw_test(i)), xi)
    allx = torch.stack([d.test[i][0] for i in range(20)])
    assert (allx.mean(dim=(0, 2, 3)).abs() < 0.3).all() and ((allx.std(dim=(0, 2, 3)) - 1).abs() < 0.3).all()
    torch.manual_seed(0)
    xa, ya = d.train[0]
    assert xa.shape == (3, 32, 32) and ya == int(d.train.labels[0])
    p = d.preprocess(odd_rgba())
    assert p.shape == (3, 32, 32) and not torch.equal(p[0], p[1])  # kept in colour
    big = cifar10._cifar_from_arrays(x[:15], y[:15], x, y, n_val=5, image_size=64, normalize=((0.5,) * 3, (0.5,) * 3))
    assert big.train[0][0].shape == (3, 64, 64) and big.preprocess(odd_rgba()).shape == (3, 64, 64)


def test_cifar10_offline_is_user_error(monkeypatch, tmp_path):
    import torchvision.datasets.cifar as tv_cifar

    def no_network(*a, **k):
        raise URLError("offline")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", no_network)
    with pytest.raises(UserError) as e:
        load_dataset("cifar10", data_dir=tmp_path)
    assert str(e.value) == "cifar10 needs internet to download; offline, use --dataset fashion-mnist"


# ----------------------------------------------------------------------------- sst2

# the first lines of GLUE SST-2's train.tsv and dev.tsv (tokenised, lower-cased, trailing space)
SST_TRAIN = """sentence\tlabel
hide new secretions from the parental units \t0
contains no wit , only labored gags \t0
that loves its characters and communicates something rather beautiful about human nature \t1
remains utterly satisfied to remain the same throughout \t0
on the worst revenge-of-the-nerds clich\u00e9s the filmmakers could dredge up \t0
that 's far too tragic to merit such superficial treatment \t0
demonstrates that the director of such hollywood blockbusters as patriot games can still turn out a small , personal film with an emotional wallop . \t1
of saucy \t1
a depressed fifteen-year-old 's suicidal poetry \t0
are more deeply thought through than in most ` right-thinking ' films \t1
"""
SST_DEV = """sentence\tlabel
it 's a charming and often affecting journey . \t1
unflinchingly bleak and desperate \t0
allows us to hope that nolan is poised to embark a major career as a commercial yet inventive filmmaker . \t1
the acting , costumes , music , cinematography and sound are all astounding given the production 's austere locales . \t1
"""


def write_sst(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.tsv").write_text(SST_TRAIN, encoding="utf-8")
    (folder / "dev.tsv").write_text(SST_DEV, encoding="utf-8")
    return folder


def test_sst2_from_glue_tsv_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("SST2_DIR", str(write_sst(tmp_path / "glue" / "SST-2")))
    d = load_dataset("sst2", data_dir=tmp_path / "empty")
    assert (d.name, d.kind, d.num_classes, d.class_names) == ("sst2", "text", 2, ["negative", "positive"])
    # tiny folder: the 872 carve is capped at half of train; dev is the test split
    assert (len(d.train), len(d.val), len(d.test)) == (5, 5, 4)
    assert d.test[0] == ("it 's a charming and often affecting journey .", 1)
    assert d.test.labels.tolist() == [1, 0, 1, 1]
    assert sorted(d.train.texts + d.val.texts) == sorted(
        line.split("\t")[0].strip() for line in SST_TRAIN.splitlines()[1:])
    assert "are more deeply thought through than in most ` right-thinking ' films" in d.train.texts + d.val.texts
    # without SST2_DIR, <data_dir>/sst2 is used
    monkeypatch.delenv("SST2_DIR")
    write_sst(tmp_path / "d" / "sst2")
    e = load_dataset("sst2", data_dir=tmp_path / "d", limit=2)
    assert (len(e.train), len(e.val), len(e.test)) == (2, 2, 2) and e.test.texts == d.test.texts[:2]
    # full size: 872 carved from GLUE train for val
    texts = [f"sentence {i}" for i in range(2000)]
    f = sst2.from_glue((texts, [i % 2 for i in range(2000)]), (["x"], [0]))
    assert (len(f.train), len(f.val), len(f.test)) == (1128, 872, 1)


def test_sst2_offline_is_user_error(monkeypatch, tmp_path):
    monkeypatch.delenv("SST2_DIR", raising=False)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "datasets" else real_find_spec(name, *a))
    msg = "sst2 needs the GLUE SST-2 folder (set SST2_DIR) or internet; offline, use --dataset rt-polarity"
    with pytest.raises(UserError) as e:
        load_dataset("sst2", data_dir=tmp_path)
    assert str(e.value) == msg
    # `datasets` importable but the hub unreachable
    monkeypatch.setattr(importlib.util, "find_spec", real_find_spec)
    fake = types.ModuleType("datasets")
    fake.__spec__ = importlib.machinery.ModuleSpec("datasets", None)

    def offline(*a, **k):
        raise ConnectionError("offline")

    fake.load_dataset = offline
    monkeypatch.setitem(sys.modules, "datasets", fake)
    with pytest.raises(UserError) as e:
        load_dataset("sst2", data_dir=tmp_path)
    assert str(e.value) == msg


def test_text_preprocess_and_bad_tsv(tmp_path):
    assert common.preprocess_text("\tgood\n") == "good"
    bad = tmp_path / "sst2"
    bad.mkdir()
    (bad / "train.tsv").write_text("text\tlabel\nfoo\t1\n")
    (bad / "dev.tsv").write_text(SST_DEV)
    with pytest.raises(UserError, match="header"):
        load_dataset("sst2", data_dir=tmp_path)
