"""The Design a SideNet page: a cached backbone -> a form -> a background job training from the
feature cache -> the new run in the DB, beside the run that built the cache."""
from __future__ import annotations

import pytest

from engine.config import TrainConfig
from engine.features import FeatureCache
from engine.jobs import JobQueue
from engine.store import Store
from engine.train import train_run

from helpers import stop_queue, wait_job

PAGE = "views/design.py"
pytestmark = pytest.mark.slow


def test_an_empty_cache_says_how_to_fill_it(open_app, tmp_path, monkeypatch):
    monkeypatch.setenv("SIDENETS_FEATURES", str(tmp_path / "features"))
    at = open_app(tmp_path / "none.duckdb", PAGE)
    assert not at.exception
    assert "feature cache is empty" in at.info[0].value


def test_design_a_sidenet_on_a_cached_backbone(open_app, tmp_path, monkeypatch):
    monkeypatch.setenv("SIDENETS_FEATURES", str(tmp_path / "features"))
    store = Store(tmp_path / "design.duckdb")
    base = train_run(TrainConfig(model="minilm-l6", dataset="rt-polarity", mode="head", limit=64, epochs=1,
                                 lr=1e-3, batch_size=16), 0, store)
    backbones = FeatureCache().backbones()
    assert len(backbones) == 1 and backbones[0]["taps"] == ["encoder1", "head"]
    at = open_app(store.path, PAGE)
    assert not at.exception
    assert backbones[0]["label"] in at.selectbox[0].options
    at.multiselect[0].set_value(["encoder1"])
    at.number_input[0].set_value(8)  # hidden units
    at.number_input[1].set_value(2)  # epochs
    at.text_input[0].set_value("3 4")
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    queue = JobQueue(db=store.path)
    try:
        (job,) = queue.jobs()
        job = wait_job(queue, job["job_id"], timeout=400)
        assert job["state"] == "done", queue.log(job["job_id"])
    finally:
        stop_queue(queue)
    runs = {r["run_id"]: r for r in store.list_runs()}
    new = [r for rid, r in runs.items() if rid != base]
    assert sorted(r["seed"] for r in new) == [3, 4]
    assert all(r["mode"] == "head" and r["sidenet_hidden"] == 8 and r["attach"] == ["encoder1"] for r in new)
    assert all(r["config"]["epochs"] == 2 and r["config"]["limit"] == 64 for r in new)
    # val and test come from the same entries (nothing rebuilt); --limit picks each seed's own training subset
    entries = FeatureCache().entries()
    assert sum(e["split"] != "train" for e in entries) == 4 and sum(e["split"] == "train" for e in entries) == 2 * 3
    at.run()
    assert not at.exception
    assert any("Done" in s.value for s in at.success)
