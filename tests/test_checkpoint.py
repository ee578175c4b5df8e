"""engine.runtime.checkpoint: a run's weights, stored relative to the DB's folder, rebuild the model
that produced its cached logits."""
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from engine.config import TrainConfig
from engine.errors import UserError
from engine.runtime import checkpoint
from engine.runtime.checkpoint import load_weights, model_for_run, path_of
from engine.store import Store
from engine.train import build_model

from helpers import copy_db


def _check_reload(store, run_id, n=32):
    model, data, collate = model_for_run(store.get_run(run_id), store, "cpu")
    assert not model.training
    x, _ = collate([data.test[i] for i in range(n)])
    with torch.inference_mode():
        main, side = model(x)
    cached = store.logits(run_id)["heads"]
    np.testing.assert_allclose(main.numpy(), cached["main"][:n], rtol=1e-5, atol=1e-5)
    (k,) = side
    name = store.get_run(run_id)["attach"][0]
    np.testing.assert_allclose(side[k].numpy(), cached[name][:n], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["image", "text"])
def test_checkpoint_reloads_to_the_cached_logits(smoke_runs, kind):
    store, runs = smoke_runs
    _check_reload(store, runs[kind])


def test_checkpoints_are_stored_relative_and_survive_a_moved_folder(smoke_runs, tmp_path):
    store, runs = smoke_runs
    run = store.get_run(runs["image"])
    assert run["checkpoint"] == f"checkpoints/{run['run_id']}.safetensors"
    assert path_of(store, run["checkpoint"]) == store.path.parent / run["checkpoint"]
    assert path_of(store, None) is None and path_of(store, "/abs/x.safetensors").as_posix() == "/abs/x.safetensors"
    moved = tmp_path / "moved"
    moved.mkdir()
    copy_db(store.path, moved / "smoke.duckdb")
    shutil.copytree(store.path.parent / "checkpoints", moved / "checkpoints")
    _check_reload(Store(moved / "smoke.duckdb"), runs["image"], n=8)  # the data folder moved: still loads


def test_save_and_load_weights(smoke_runs, tmp_path):
    store, runs = smoke_runs
    run = store.get_run(runs["image"])
    model, data, _ = model_for_run(run, store, "cpu")
    other = Store(tmp_path / "db" / "x.duckdb")
    checkpoint.check_writable(other)  # creates the folder
    rel = checkpoint.save(model, other, "copy-run", "scratch")
    assert rel == "checkpoints/copy-run.safetensors" and (other.path.parent / rel).is_file()
    assert load_file(str(other.path.parent / rel)).keys() == model.state_dict().keys()  # unfrozen: everything
    cfg = TrainConfig.from_dict(run["config"]).resolved()
    fresh, _ = build_model(cfg, data)
    load_weights(fresh, {**run, "checkpoint": str(other.path.parent / rel)}, other)
    for key, value in model.state_dict().items():
        assert torch.equal(value, fresh.state_dict()[key]), key


def test_mismatched_or_missing_checkpoints_are_user_errors(smoke_runs, tmp_path):
    import dataclasses

    store, runs = smoke_runs
    run = store.get_run(runs["image"])
    cfg = TrainConfig.from_dict(run["config"]).resolved()
    _, data, _ = model_for_run(run, store, "cpu")
    two, _ = build_model(dataclasses.replace(cfg, attach=["layer1", "layer2"]), data)
    with pytest.raises(UserError, match="checkpoint does not fit this model \\(missing"):
        load_weights(two, run, store)
    load_weights(two, run, store, sidenets_optional=True)  # --init-from: the new SideNet starts fresh
    alone, _ = build_model(dataclasses.replace(cfg, mode="mainnet-only", attach=[]), data)
    with pytest.raises(UserError, match="checkpoint does not fit this model \\(unexpected"):
        load_weights(alone, run, store)
    for ckpt in (None, str(tmp_path / "gone.safetensors")):
        with pytest.raises(UserError, match=f"run {run['run_id']} has no checkpoint on disk"):
            load_weights(two, {**run, "checkpoint": ckpt}, store)


def test_an_unwritable_checkpoint_folder_fails_before_training(tmp_path):
    store = Store(tmp_path / "runs.duckdb")
    (tmp_path / "checkpoints").write_text("a file where the folder should be")
    with pytest.raises(UserError, match="cannot write checkpoints to"):
        checkpoint.check_writable(store)


def test_provenance_names_device_versions_and_commit():
    prov = checkpoint.provenance(torch.device("cpu"))
    assert prov["device"].startswith("cpu (") and prov["versions"]["torch"] == torch.__version__
    assert set(prov["versions"]) >= {"python", "torch", "numpy", "duckdb"} and len(prov["git_commit"]) == 40


def _base(run_id, **config):
    trained = {"stem": "paper", "pooling": None, "max_length": None, **config}
    return {"run_id": run_id, "model": trained.pop("model", "resnet18"), "dataset": trained.pop("dataset", "fashion-mnist"),
            "checkpoint": f"checkpoints/{run_id}.safetensors", "config": trained}


def test_init_from_refuses_a_run_of_another_network_or_for_frozen_another_dataset():
    frozen = TrainConfig(model="resnet18", mode="frozen", init_from="b").resolved()
    joint = TrainConfig(model="resnet18", init_from="b").resolved()
    assert checkpoint.init_mismatch(frozen, _base("b")) is None
    assert checkpoint.init_mismatch(frozen, _base("b", dataset="cifar10")) == (
        "run b was trained with dataset 'cifar10' (this run: 'fashion-mnist'); initialise from a run that matches")
    assert checkpoint.init_mismatch(frozen, {**_base("f", init_from="b"), "mode": "frozen"}) == (
        "run f is a frozen run itself: initialise from its MainNet's run, b")  # no chains of kept checkpoints
    assert checkpoint.init_mismatch(joint, {**_base("f", init_from="b"), "mode": "frozen"}) is None
    assert checkpoint.init_mismatch(joint, _base("b", dataset="cifar10")) is None  # fine-tuning from another dataset
    for cfg in (frozen, joint):  # the max-pool has no weights: a torchvision-stem run would load without complaint
        assert "stem 'torchvision' (this run: 'paper')" in checkpoint.init_mismatch(cfg, _base("b", stem="torchvision"))
    assert "model 'resnet34'" in checkpoint.init_mismatch(joint, _base("b", model="resnet34"))
    runs = [_base("ok"), _base("other-data", dataset="cifar10"), _base("old-stem", stem="torchvision"),
            {**_base("no-file"), "checkpoint": None}]
    assert checkpoint.frozen_bases("resnet18", "fashion-mnist", runs) == ["ok"]
    assert checkpoint.frozen_bases("resnet18", "no-such-dataset", runs) == []


def test_initialise_names_the_mismatch(tmp_path, monkeypatch):
    store = Store(tmp_path / "db.duckdb")
    monkeypatch.setattr(store, "get_run", lambda run_id: {**_base(run_id, dataset="cifar10"), "status": "complete"})
    cfg = TrainConfig(model="resnet18", mode="frozen", init_from="b", limit=16).resolved()
    with pytest.raises(UserError, match=r"^run b was trained with dataset 'cifar10' \(this run: 'fashion-mnist'\); "
                                        "initialise from a run that matches$"):
        checkpoint.initialise(None, cfg, store)
