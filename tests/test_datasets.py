"""The dataset registry (engine.datasets), for every registered dataset: offline ones load from data/
(as `make setup` fills it); the ones that need internet are skipped, saying so."""
import pytest
import torch

from engine import datasets
from engine.datasets import DatasetSpec, load_dataset
from engine.errors import UserError
from engine.paths import data_dir


def _marks(name):
    spec = datasets.get(name)
    if not spec.offline:
        return [pytest.mark.skip(reason=f"{name} needs internet (a download) or files `make setup` does not fetch")]
    return []


ALL = [pytest.param(name, marks=_marks(name)) for name in datasets.names()]


def test_names_kinds_and_unknown_dataset():
    names = datasets.names()
    assert {"fashion-mnist", "rt-polarity", "cifar10", "sst2"} <= set(names)
    assert set(datasets.names("image")) | set(datasets.names("text")) == set(names)
    assert datasets.get("rt-polarity").kind == "text" and datasets.get("fashion-mnist").kind == "image"
    assert all(datasets.get(n).name == n and datasets.get(n).split for n in names)
    with pytest.raises(UserError, match="unknown dataset 'mnist'; choose one of: " + ", ".join(names)):
        load_dataset("mnist")
    with pytest.raises(UserError, match="unknown dataset 'mnist'"):
        datasets.get("mnist")
    with pytest.raises(ValueError, match="registered twice"):
        datasets.register(datasets.get("sst2"))


def test_every_stand_in_names_an_online_dataset_of_its_kind():
    for name in datasets.names():
        spec = datasets.get(name)
        if spec.stand_in_for:
            original = datasets.get(spec.stand_in_for)
            assert spec.offline and not original.offline and original.kind == spec.kind


@pytest.mark.parametrize("name", ALL)
def test_offline_dataset_loads_with_a_limit(name):
    spec = datasets.get(name)
    d = load_dataset(name, limit=40, seed=1)
    assert (d.name, d.kind) == (name, spec.kind)
    assert (len(d.train), len(d.val), len(d.test)) == (40, 40, 40)
    assert d.num_classes == len(d.class_names) >= 2
    for split in (d.train, d.val, d.test):
        labels = split.labels
        assert labels.dtype == torch.int64 and 0 <= int(labels.min()) and int(labels.max()) < d.num_classes
        x, y = split[0]
        assert y == int(labels[0])
    # the eval-time conversion of a raw test input is the test item, exactly
    for i in (0, 7, 39):
        got, want = d.preprocess(d.raw_test(i)), d.test[i][0]
        assert torch.equal(got, want) if spec.kind == "image" else got == want
    if spec.kind == "image":
        assert d.test[0][0].shape == (3, 32, 32) and d.image_size == 32 and len(d.normalize) == 2
    # val / test never depend on the seed; train is a seeded subset
    other = load_dataset(name, limit=40, seed=2)
    assert torch.equal(other.val.labels, d.val.labels) and torch.equal(other.test.labels, d.test.labels)
    assert d.extra["full_sizes"][0] > 40 and other.extra["full_sizes"] == d.extra["full_sizes"]


def test_load_dataset_reads_the_data_folder(monkeypatch, tmp_path):
    seen = {}

    def fake_load(folder, **kw):
        seen.update(folder=folder, **kw)
        return "splits"

    monkeypatch.setitem(datasets._REGISTRY, "fake", DatasetSpec("fake", "image", fake_load, offline=True))
    assert load_dataset("fake", limit=3, seed=4, image_size=64) == "splits"
    assert seen == {"folder": data_dir(), "limit": 3, "seed": 4, "image_size": 64, "normalize": None}
    monkeypatch.setenv("SIDENETS_DATA", str(tmp_path))
    load_dataset("fake")
    assert seen["folder"] == tmp_path
    load_dataset("fake", data_dir=tmp_path / "explicit")
    assert seen["folder"] == tmp_path / "explicit"
