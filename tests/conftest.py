"""Shared fixtures: one real smoke training (tiny real subsets) per test session."""
from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory):
    """(Store, {"image": run_id, "text": run_id}) from the `smoke` preset, trained once into a temp DB.

    ResNet18 on 256 Fashion-MNIST images per split and MiniLM-L6 on 96 Rotten-Tomatoes sentences
    per split, one epoch each, with checkpoints beside the DB.
    """
    from engine.config import preset
    from engine.store import Store
    from engine.train import train_run

    store = Store(tmp_path_factory.mktemp("smoke") / "smoke.duckdb")
    runs = {}
    for cfg in preset("smoke"):
        kind = "image" if cfg.dataset == "fashion-mnist" else "text"
        runs[kind] = train_run(cfg, cfg.seeds[0], store)
    return store, runs
