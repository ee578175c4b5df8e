"""engine.train: the training loop end to end on real small subsets, into temp DuckDB files; the
optimiser and its schedule (the paper's patience) without training."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from engine.analysis.runs import prepare_one
from engine.analysis.summary import sweep
from engine.batches import FeatureBatches
from engine.config import TrainConfig
from engine.errors import UserError
from engine.presets import preset
from engine.runtime.checkpoint import model_for_run, path_of
from engine.store import Store
from engine.train import TrainingDiverged, build_model, load_data, optimizer_for, param_groups, train_run


def _tiny(**kw) -> TrainConfig:
    # on the CPU (same seed -> same logits is a CPU promise); 65 % 64 == 1: the last batch is dropped
    return dataclasses.replace(preset("smoke")[0], limit=65, device="cpu", **kw)


# ------------------------------------------------------------------------------ the schedule
def _plateau(patience: int, factor: float = 1 / 3):
    cfg = TrainConfig(patience=patience, lr_factor=factor).resolved()
    opt, sched, per_step = optimizer_for(cfg, [torch.nn.Parameter(torch.zeros(1))], steps_per_epoch=10)
    assert not per_step and isinstance(opt, torch.optim.Adam)
    return cfg, opt, sched


@pytest.mark.parametrize("patience", [1, 2, 5])
def test_lr_drops_after_exactly_patience_epochs_without_improvement(patience):
    """The paper: "a learning rate decay of 3 after 5 epochs without improvement" of the
    validation loss: epoch p without improvement is the one after which the LR drops."""
    cfg, opt, sched = _plateau(patience)
    sched.step(1.0)  # epoch 1 sets the best loss
    for epoch in range(1, patience):
        sched.step(1.0)  # no improvement, `epoch` epochs in a row
        assert opt.param_groups[0]["lr"] == cfg.lr, f"dropped after {epoch} bad epoch(s), patience {patience}"
    sched.step(1.0)  # the patience-th epoch without improvement
    assert opt.param_groups[0]["lr"] == pytest.approx(cfg.lr / 3)


def test_an_improvement_resets_the_count():
    cfg, opt, sched = _plateau(2)
    for loss in (1.0, 1.0, 0.5, 0.6):  # one bad epoch, an improvement, one bad epoch: no drop yet
        sched.step(loss)
    assert opt.param_groups[0]["lr"] == cfg.lr
    sched.step(0.6)
    assert opt.param_groups[0]["lr"] == pytest.approx(cfg.lr / 3)


def test_sgd_with_one_cycle_steps_per_batch():
    cfg = TrainConfig(optimizer="sgd", schedule="onecycle", lr=0.1, momentum=0.8, weight_decay=5e-4,
                      epochs=2).resolved()
    opt, sched, per_step = optimizer_for(cfg, [torch.nn.Parameter(torch.zeros(1))], steps_per_epoch=10)
    assert per_step and isinstance(opt, torch.optim.SGD)
    group = opt.param_groups[0]
    assert group["nesterov"] and group["weight_decay"] == 5e-4
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert max(lrs) == pytest.approx(0.1) and lrs.index(max(lrs)) == 4  # peak a quarter of the way in (step 5 of 20)
    assert lrs[0] < 0.1 / 10 and lrs[-1] < lrs[0]


def test_sgd_gets_the_configured_momentum():
    cfg = TrainConfig(optimizer="sgd", lr=0.1, momentum=0.8).resolved()
    opt, _, per_step = optimizer_for(cfg, [torch.nn.Parameter(torch.zeros(1))], steps_per_epoch=10)
    assert not per_step and opt.param_groups[0]["momentum"] == 0.8 and opt.param_groups[0]["nesterov"]
    cfg = TrainConfig(optimizer="sgd", lr=0.1, momentum=0.0).resolved()
    assert not optimizer_for(cfg, [torch.nn.Parameter(torch.zeros(1))], 10)[0].param_groups[0]["nesterov"]


def test_one_cycle_cycles_the_momentum_as_documented():
    """Under the one-cycle schedule the momentum cycles 0.95 -> 0.85 -> 0.95 against the learning rate
    (PyTorch's OneCycleLR), whatever TrainConfig.momentum says (documented in engine.config)."""
    cfg = TrainConfig(optimizer="sgd", schedule="onecycle", lr=0.1, momentum=0.8, epochs=2).resolved()
    opt, sched, _ = optimizer_for(cfg, [torch.nn.Parameter(torch.zeros(1))], steps_per_epoch=10)
    seen = []
    for _ in range(20):
        seen.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    assert max(seen) == pytest.approx(0.95) and min(seen) == pytest.approx(0.85) and seen.index(min(seen)) == 4


def test_head_lr_puts_the_new_heads_in_their_own_group():
    """--head-lr: the SideNets and the final head at their own rate, the rest of the MainNet at lr;
    one-cycle peaks each group at its own rate; without it, one group."""
    cfg = _tiny(optimizer="sgd", schedule="onecycle", lr=0.01, head_lr=0.2, epochs=2).resolved()
    model, _ = build_model(cfg, load_data(cfg, 0))
    backbone, heads = param_groups(model, cfg)
    head_ids = {id(p) for p in [*model.sidenets.parameters(), *model.mainnet.classifier.parameters()]}
    assert {id(p) for p in heads["params"]} == head_ids and heads["lr"] == 0.2
    assert not head_ids & {id(p) for p in backbone["params"]} and backbone["lr"] == 0.01
    assert len(backbone["params"]) + len(heads["params"]) == len(list(model.parameters()))
    opt, sched, _ = optimizer_for(cfg, [backbone, heads], steps_per_epoch=10)
    peaks = [0.0, 0.0]
    for _ in range(20):
        peaks = [max(p, g["lr"]) for p, g in zip(peaks, opt.param_groups)]
        opt.step()
        sched.step()
    assert peaks == [pytest.approx(0.01), pytest.approx(0.2)]
    assert len(param_groups(model, dataclasses.replace(cfg, head_lr=None))) == 1


# ------------------------------------------------------------------------------ real runs
def test_smoke_runs_are_complete_with_everything_the_explorer_needs(smoke_runs):
    store, runs = smoke_runs
    image = store.get_run(runs["image"])
    assert image["status"] == "complete" and image["attach"] == ["layer1"] and image["num_classes"] == 10
    assert image["versions"]["torch"] == torch.__version__ and image["device"].startswith("cpu (")
    assert image["config"]["stem"] == "paper" and image["config"]["seeds"] == [image["seed"]]
    assert image["config"]["preset"] == "smoke" and image["git_commit"] and image["wall_time_s"] > 0
    assert path_of(store, image["checkpoint"]).is_file() and not image["checkpoint"].startswith("/")
    data = store.logits(runs["image"], "test")
    assert set(data["heads"]) == {"main", "layer1"} and data["heads"]["main"].shape == (256, 10)
    assert store.logits(runs["image"], "val")["label"].shape == (256,)
    costs = store.costs(runs["image"])["layer1"]
    assert costs["trunk"]["macs"] > 0 and costs["rest"]["params"] > costs["trunk"]["params"]
    (epoch,) = store.epochs(runs["image"])
    assert set(epoch["val_acc"]) == {"main", "layer1"} and epoch["lr"] == pytest.approx(image["config"]["lr"])
    assert epoch["val_acc"]["main"] == pytest.approx(prepare_one(store, runs["image"], split="val").main_accuracy)
    text = store.logits(runs["text"], "test")
    assert text["heads"]["encoder1"].shape == (96, 2)
    assert np.all(text["heads"]["encoder1"][:, 0] == 0)  # binary heads stored as [0, z]
    assert store.get_run(runs["text"])["config"]["pooling"] == "mean"


@pytest.mark.slow
def test_same_seed_same_logits_and_a_last_batch_of_one_does_not_crash(tmp_path):
    store = Store(tmp_path / "d.duckdb")
    seen = []
    a = train_run(_tiny(), 3, store, progress=seen.append)
    b = train_run(_tiny(), 3, store)
    np.testing.assert_array_equal(store.logits(a)["heads"]["main"], store.logits(b)["heads"]["main"])
    np.testing.assert_array_equal(store.logits(a)["heads"]["layer1"], store.logits(b)["heads"]["layer1"])
    (last,) = [p for p in seen if p.get("phase") == "training"]  # one step (65 = 64 + a dropped 1)
    assert (last["run_id"], last["epoch"], last["epochs"], last["step"], last["steps"]) == (a, 1, 1, 1, 1)
    assert math.isfinite(last["loss"])


@pytest.mark.slow
def test_several_sidenets_and_mainnet_only_mode(tmp_path):
    store = Store(tmp_path / "m.duckdb")
    multi = train_run(_tiny(attach=["layer1", "layer3"]), 0, store)
    assert store.get_run(multi)["attach"] == ["layer1", "layer3"]
    assert set(store.logits(multi)["heads"]) == {"main", "layer1", "layer3"}
    assert set(store.costs(multi)) == {"layer1", "layer3"}
    assert sweep(prepare_one(store, multi, "layer3"), 0.5)["attach"] == "layer3"

    only = train_run(_tiny(mode="mainnet-only"), 0, store)
    assert set(store.logits(only)["heads"]) == {"main"} and set(store.costs(only)) == {"none"}
    with pytest.raises(UserError, match="mainnet-only"):
        prepare_one(store, only).curve_for()
    with pytest.raises(UserError, match="--init-from"):
        _tiny(mode="frozen").resolved()


@pytest.mark.slow
def test_frozen_mode_leaves_the_mainnet_untouched(tmp_path):
    store = Store(tmp_path / "f.duckdb")
    only = train_run(_tiny(mode="mainnet-only"), 0, store)
    frozen = train_run(_tiny(mode="frozen", init_from=only), 0, store)
    saved = load_file(str(path_of(store, store.get_run(frozen)["checkpoint"])))
    assert saved and all(k.startswith("sidenets.") for k in saved)  # the backbone is the run it names
    before, _, _ = model_for_run(store.get_run(only), store)
    after, _, _ = model_for_run(store.get_run(frozen), store)
    for key, value in before.mainnet.state_dict().items():  # weights AND BatchNorm running statistics untouched
        assert torch.equal(value, after.mainnet.state_dict()[key]), key
    # the frozen run evaluates its (untouched) MainNet head on the float16 feature cache: the same logits up to that
    only_main, frozen_main = store.logits(only)["heads"]["main"], store.logits(frozen)["heads"]["main"]
    np.testing.assert_allclose(frozen_main, only_main, atol=1e-3, rtol=1e-3)
    assert (frozen_main.argmax(1) == only_main.argmax(1)).mean() >= 0.98
    # its base deleted, the frozen run still loads: its checkpoint is kept while the frozen run reads it
    base_ckpt = path_of(store, store.get_run(only)["checkpoint"])
    assert store.delete_run(only) and base_ckpt.exists()
    kept, _, _ = model_for_run(store.get_run(frozen), store)
    for key, value in after.state_dict().items():
        assert torch.equal(value, kept.state_dict()[key]), key
    base_ckpt.rename(tmp_path / "away.safetensors")
    with pytest.raises(UserError, match=f"run {only}, the backbone this run was initialised from, was deleted"):
        model_for_run(store.get_run(frozen), store)
    (tmp_path / "away.safetensors").rename(base_ckpt)
    assert store.delete_run(frozen) and not base_ckpt.exists()  # its last reader gone


@pytest.mark.slow
def test_head_mode_trains_the_head_on_cached_features(tmp_path):
    store = Store(tmp_path / "h.duckdb")
    cfg = TrainConfig(model="efficientnet-lite0", mode="head", limit=32, epochs=1, batch_size=16, device="cpu")
    run_id = train_run(cfg, 0, store)
    run = store.get_run(run_id)
    assert run["status"] == "complete" and run["attach"] == ["block3"]
    saved = load_file(str(path_of(store, run["checkpoint"])))
    assert {k.split(".")[0] for k in saved} == {"sidenets", "mainnet"}
    assert all(k.startswith(("sidenets.", "mainnet.net._fc.")) for k in saved)  # the head, not the backbone
    model, data, collate = model_for_run(run, store, "cpu")
    x, _ = collate([data.test[i] for i in range(8)])
    with torch.inference_mode():
        main, side = model(x)
    cached = store.logits(run_id)["heads"]  # evaluated on float16 cached features: equal up to that precision
    np.testing.assert_allclose(main.numpy(), cached["main"][:8], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(side[3].numpy(), cached["block3"][:8], rtol=1e-3, atol=1e-3)


@pytest.mark.slow
def test_head_mode_under_bf16_reads_the_cache_as_bf16(tmp_path, monkeypatch):
    seen, real = [], FeatureBatches.iterate
    monkeypatch.setattr(FeatureBatches, "iterate", lambda self, *a, **k: seen.append(self.dtype) or real(self, *a, **k))
    store = Store(tmp_path / "h.duckdb")
    cfg = TrainConfig(model="efficientnet-lite0", mode="head", limit=32, epochs=1, batch_size=16, device="cpu",
                      amp="bf16")
    run = store.get_run(train_run(cfg, 0, store))
    assert run["status"] == "complete" and set(seen) == {torch.bfloat16}
    assert all(np.isfinite(v).all() for v in store.logits(run["run_id"])["heads"].values())


def test_max_train_keeps_a_seeded_subset():
    cfg = TrainConfig(limit=64, max_train=20).resolved()
    a, b, c = load_data(cfg, 1), load_data(cfg, 1), load_data(cfg, 2)
    assert len(a.train) == 20 and len(a.val) == len(a.test) == 64
    assert torch.equal(a.train.labels, b.train.labels) and not torch.equal(a.train.images, c.train.images)
    assert len(load_data(cfg, 1, subset_train=False).train) == 64


@pytest.mark.slow
def test_a_failing_run_is_recorded_as_failed(tmp_path, monkeypatch):
    store = Store(tmp_path / "f.duckdb")

    def explode(*_a, **_k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("engine.costs.run_costs", explode)
    with pytest.raises(RuntimeError, match="disk on fire"):
        train_run(_tiny(), 0, store)
    (run,) = store.list_runs(include_all=True)
    assert run["status"] == "failed" and "disk on fire" in run["error"] and store.list_runs() == []


@pytest.mark.slow
def test_a_diverging_run_stops_with_a_clear_error(tmp_path, monkeypatch):
    store = Store(tmp_path / "nan.duckdb")
    monkeypatch.setattr("engine.train.train_step", lambda *a, **k: torch.tensor(float("nan")))
    with pytest.raises(TrainingDiverged, match="the training loss became nan in epoch 1"):
        train_run(_tiny(), 0, store)
    (run,) = store.list_runs(include_all=True)
    assert run["status"] == "failed" and "TrainingDiverged" in run["error"]


def test_a_bad_config_fails_before_a_run_is_registered(tmp_path):
    store = Store(tmp_path / "bad.duckdb")
    with pytest.raises(UserError, match="unknown model 'resnet99'"):
        train_run(_tiny(model="resnet99"), 0, store)
    assert not store.path.exists()
