"""Training end to end on real small subsets, into temp DuckDB files."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from engine.analysis import load_view, sweep
from engine.config import TrainConfig, preset
from engine.errors import UserError
from engine.store import Store
from engine.train import model_for_run, train_run


def test_smoke_runs_are_complete_with_everything_the_explorer_needs(smoke_runs):
    store, runs = smoke_runs
    image = store.get_run(runs["image"])
    assert image["status"] == "complete" and image["attach"] == ["layer1"] and image["num_classes"] == 10
    assert image["versions"]["torch"] == torch.__version__ and image["device"].startswith("cpu")
    data = store.logits(runs["image"], "test")
    assert set(data["heads"]) == {"main", "layer1"} and data["heads"]["main"].shape == (256, 10)
    assert store.logits(runs["image"], "val")["label"].shape == (256,)
    costs = store.costs(runs["image"])["layer1"]
    assert costs["trunk"]["macs"] > 0 and costs["rest"]["params"] > costs["trunk"]["params"]
    (epoch,) = store.epochs(runs["image"])
    assert set(epoch["val_acc"]) == {"main", "layer1"} and epoch["lr"] == pytest.approx(3e-4)
    text = store.logits(runs["text"], "test")
    assert text["heads"]["encoder1"].shape == (96, 2)
    assert np.all(text["heads"]["encoder1"][:, 0] == 0)  # binary heads stored as [0, z]


def test_checkpoint_reloads_to_the_cached_logits(smoke_runs):
    store, runs = smoke_runs
    run = store.get_run(runs["image"])
    model, data, collate = model_for_run(run)
    x, _ = collate([data.test[i] for i in range(32)])
    with torch.inference_mode():
        main, side = model(x)
    cached = store.logits(run["run_id"])["heads"]
    np.testing.assert_allclose(main.numpy(), cached["main"][:32], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(side[1].numpy(), cached["layer1"][:32], rtol=1e-5, atol=1e-5)


def _tiny(**kw) -> TrainConfig:
    # on the CPU (same seed -> same logits is a CPU promise); 65 % 64 == 1: the last batch is dropped
    return dataclasses.replace(preset("smoke")[0], limit=65, device="cpu", **kw)


def test_same_seed_same_logits_and_a_last_batch_of_one_does_not_crash(tmp_path):
    store = Store(tmp_path / "d.duckdb")
    a, b = (train_run(_tiny(), 3, store) for _ in range(2))
    np.testing.assert_array_equal(store.logits(a)["heads"]["main"], store.logits(b)["heads"]["main"])
    np.testing.assert_array_equal(store.logits(a)["heads"]["layer1"], store.logits(b)["heads"]["layer1"])


def test_several_sidenets_mainnet_only_and_frozen_modes(tmp_path):
    store = Store(tmp_path / "m.duckdb")
    multi = train_run(_tiny(attach=["layer1", "layer3"]), 0, store)
    assert store.get_run(multi)["attach"] == ["layer1", "layer3"]
    assert set(store.logits(multi)["heads"]) == {"main", "layer1", "layer3"}
    assert set(store.costs(multi)) == {"layer1", "layer3"}
    assert sweep(load_view(store, multi, "layer3"), 0.5)["attach"] == "layer3"

    only = train_run(_tiny(mode="mainnet-only"), 0, store)
    assert set(store.logits(only)["heads"]) == {"main"}
    with pytest.raises(UserError, match="mainnet-only"):
        load_view(store, only).curve()

    with pytest.raises(UserError, match="--init-from"):
        _tiny(mode="frozen").resolved()
    frozen = train_run(_tiny(mode="frozen", init_from=only), 0, store)
    before = load_file(store.get_run(only)["checkpoint"])
    after = load_file(store.get_run(frozen)["checkpoint"])
    for key, value in before.items():  # weights AND BatchNorm running statistics untouched
        assert torch.equal(value, after[key]), key
    np.testing.assert_array_equal(store.logits(only)["heads"]["main"], store.logits(frozen)["heads"]["main"])


def test_a_failing_run_is_recorded_as_failed(tmp_path, monkeypatch):
    store = Store(tmp_path / "f.duckdb")

    def explode(*_a, **_k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("engine.train.path_costs", explode)
    with pytest.raises(RuntimeError):
        train_run(_tiny(), 0, store)
    (run,) = store.list_runs(include_all=True)
    assert run["status"] == "failed" and "disk on fire" in run["error"] and store.list_runs() == []
