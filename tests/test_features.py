"""engine.features and the cached training modes (head, frozen) on small real subsets."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from engine.config import TrainConfig
from engine.errors import UserError
from engine.features import FeatureCache, weights_digest
from engine.store import Store
from engine.train import train_run

from helpers import REPO

pytestmark = pytest.mark.slow
HEAD = dict(model="minilm-l6", dataset="rt-polarity", mode="head", limit=64, epochs=2, lr=1e-3, batch_size=16)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SIDENETS_FEATURES", str(tmp_path / "features"))
    return tmp_path / "features"


def _test_logits(store: Store, run_id: str) -> dict:
    return store.logits(run_id, "test")["heads"]


def test_a_miss_and_a_hit_give_the_same_logits(cache_dir, tmp_path):
    store = Store(tmp_path / "a.duckdb")
    first = train_run(TrainConfig(**HEAD), 0, store)  # the entries are built: a miss
    entries = FeatureCache().entries()
    assert {(e["split"], e["tap"]) for e in entries} == {(s, t) for s in ("train", "val", "test")
                                                          for t in ("encoder1", "head")}
    assert all(e["source"]["mode"] == "head" and e["source"]["model"] == "minilm-l6" for e in entries)
    second = train_run(TrainConfig(**HEAD), 0, store)  # read back: a hit
    assert len(FeatureCache().entries()) == len(entries)
    a, b = _test_logits(store, first), _test_logits(store, second)
    assert a.keys() == {"main", "encoder1"} and all(np.array_equal(a[h], b[h]) for h in a)
    run = store.get_run(second)
    assert run["mode"] == "head" and run["config"]["pretrained"] is True


def test_a_damaged_or_foreign_entry_is_rebuilt_not_used(cache_dir, tmp_path, capsys):
    store = Store(tmp_path / "b.duckdb")
    reference = _test_logits(store, train_run(TrainConfig(**HEAD), 1, store))
    entries = {(e["split"], e["tap"]): e for e in FeatureCache().entries()}
    feats = cache_dir / "minilm-l6" / entries["test", "encoder1"]["id"] / "features.npy"
    data = bytearray(feats.read_bytes())
    data[-8:] = b"\x7f" * 8  # corrupt the last values (same size: only the checksum can tell)
    feats.write_bytes(bytes(data))
    manifest = cache_dir / "minilm-l6" / entries["val", "head"]["id"] / "manifest.json"
    m = json.loads(manifest.read_text())
    m["key"]["weights"] = "someone-elses"
    manifest.write_text(json.dumps(m))
    (cache_dir / "minilm-l6" / entries["train", "head"]["id"] / "labels.npy").unlink()  # truncated entry
    again = _test_logits(store, train_run(TrainConfig(**HEAD), 1, store))
    out = capsys.readouterr()
    assert (out.out + out.err).count("is unusable") == 3
    assert all(np.array_equal(reference[h], again[h]) for h in reference)
    assert len(FeatureCache().entries()) == 6


def test_two_processes_building_the_same_entries_take_turns(cache_dir, tmp_path):
    code = ("import sys; from engine.config import TrainConfig; from engine.store import Store; "
            "from engine.train import train_run; "
            f"train_run(TrainConfig(**{HEAD!r}), 0, Store(sys.argv[1]))")
    env = {**__import__("os").environ, "SIDENETS_FEATURES": str(cache_dir), "HF_HUB_OFFLINE": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / f"p{i}.duckdb")], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        assert p.wait(timeout=600) == 0, p.stderr.read()[-2000:]
    assert len(FeatureCache().entries()) == 6  # one entry per split and tap, not two
    a = _test_logits(Store(tmp_path / "p0.duckdb"), Store(tmp_path / "p0.duckdb").list_runs()[0]["run_id"])
    b = _test_logits(Store(tmp_path / "p1.duckdb"), Store(tmp_path / "p1.duckdb").list_runs()[0]["run_id"])
    assert all(np.array_equal(a[h], b[h]) for h in a)
    assert not list(cache_dir.glob("*/.*.tmp-*"))


def test_builders_asking_for_different_taps_of_one_split_take_turns(cache_dir):
    """Two runs attached at {block3} and {block3, block5} share the split's "head" and "block3"
    entries: the second waits for the first's pass and builds only what is still missing."""
    import threading

    base = {"model": "m", "weights": "w", "dataset": "d", "split": "train", "prep": {}}
    keys = {t: {**base, "tap": t} for t in ("head", "block3", "block5")}
    labels, started, release, built = np.arange(4), threading.Event(), threading.Event(), []

    def compute(taps, wait=False):
        built.append(sorted(taps))
        if wait:
            started.set()
            assert release.wait(30)
        return {t: np.full((4, 2), len(t), np.float32) for t in taps}

    first = threading.Thread(target=lambda: FeatureCache().get(
        {t: keys[t] for t in ("head", "block3")}, labels, lambda taps: compute(taps, wait=True)))
    first.start()
    assert started.wait(30)
    second = threading.Thread(target=lambda: FeatureCache().get(keys, labels, compute))
    second.start()
    second.join(0.5)
    assert second.is_alive()  # waiting on the split's lock, not building the same entries
    release.set()
    first.join(30), second.join(30)
    assert built == [["block3", "head"], ["block5"]]
    assert sorted(e["tap"] for e in FeatureCache().entries()) == ["block3", "block5", "head"]


def test_a_full_disk_leaves_no_half_entry(cache_dir, monkeypatch):
    def full(*_args, **_kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    key = {"model": "m", "weights": "w", "dataset": "d", "split": "test", "prep": {}, "tap": "head"}
    with pytest.raises(UserError, match="No space left on device.*nothing half-written"):
        FeatureCache().get({"head": key}, np.arange(3), lambda taps: {"head": np.ones((3, 2), np.float32)})
    assert FeatureCache().entries() == [] and not list(cache_dir.rglob("*.npy"))


def test_head_mode_needs_pretrained_weights():
    with pytest.raises(UserError, match="head mode freezes a pretrained backbone.*resnet18"):
        TrainConfig(model="resnet18", mode="head").resolved()
    with pytest.raises(UserError, match="--no-pretrained"):
        TrainConfig(model="minilm-l6", dataset="rt-polarity", mode="head", pretrained=False).resolved()


def test_frozen_mode_trains_sidenets_on_an_earlier_runs_mainnet(smoke_image_run, cache_dir, tmp_path):
    import shutil

    source_store, source_id = smoke_image_run
    store = Store(tmp_path / "frozen.duckdb")
    shutil.copy(source_store.path, store.path)
    shutil.copytree(source_store.path.parent / "checkpoints", tmp_path / "checkpoints")
    cfg = TrainConfig(model="resnet18", dataset="fashion-mnist", mode="frozen", init_from=source_id, limit=256,
                      epochs=1, lr=1e-3, batch_size=64, device="cpu")
    run_id = train_run(cfg, 0, store)
    frozen, source = _test_logits(store, run_id), _test_logits(store, source_id)
    # the MainNet is the source run's, fed from float16 features: (almost) the same answers
    assert np.mean(frozen["main"].argmax(1) == source["main"].argmax(1)) >= 0.98
    assert np.abs(frozen["main"] - source["main"]).max() < 0.5
    run = store.get_run(run_id)
    assert run["config"]["init_from"] == source_id and run["mode"] == "frozen"
    from engine.runtime.checkpoint import model_for_run

    model, _, _ = model_for_run(run, store)  # the backbone comes back from the source run
    assert weights_digest(model.mainnet.net.layer1) == weights_digest(
        model_for_run(source_store.get_run(source_id), source_store)[0].mainnet.net.layer1)
