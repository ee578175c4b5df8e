"""AppTest: the Train page -- the form, the queue, a crashing job, a cancelled job (real worker)."""
import pytest

from engine.jobs import JobQueue
from engine.runtime.device import device_label
from engine.store import Store
from explorer.formatting import md_escape

from helpers import copy_db, stop_queue, wait_job

PAGE = "views/train.py"


def test_page_says_the_device_and_shows_presets(open_app, tmp_path):
    at = open_app(tmp_path / "new.duckdb", PAGE)  # no DB yet: training creates it
    assert not at.exception
    text = " ".join(c.value for c in at.caption)
    assert f"one at a time, on **{md_escape(device_label())}**" in text
    assert "smoke" in at.selectbox(key="train_preset").options
    assert any("No jobs yet" in c.value for c in at.caption)


def test_form_rejects_a_bad_config_before_queueing(open_app, tmp_path):
    at = open_app(tmp_path / "db.duckdb", PAGE)
    at.radio(key="train_source").set_value("custom").run()
    at.text_input(key="train_seeds").set_value("0, x").run()
    at.button(key="train_submit").click().run()
    assert not at.exception
    assert any("seeds must be integers" in e.value for e in at.error)
    at.text_input(key="train_seeds").set_value("0").run()
    at.selectbox(key="train_model:image").set_value("resnet18").run()
    at.selectbox(key="train_mode").set_value("head").run()  # resnet18 from scratch cannot be a frozen backbone
    at.button(key="train_submit").click().run()
    assert not at.exception and any("head mode freezes a pretrained backbone" in e.value for e in at.error)
    assert JobQueue(tmp_path / "jobs", tmp_path / "db.duckdb", revive=False).jobs() == []


def test_frozen_mode_offers_only_runs_that_fit(smoke_copy, open_app):
    store, runs = smoke_copy
    at = open_app(store.path, PAGE)
    at.radio(key="train_source").set_value("custom").run()
    at.selectbox(key="train_dataset").set_value("fashion-mnist").run()
    at.selectbox(key="train_model:image").set_value("resnet18").run()
    at.selectbox(key="train_mode").set_value("frozen").run()
    assert not at.exception
    assert at.selectbox(key="train_init_from").options == [runs["image"]]  # not the text run
    at.selectbox(key="train_dataset").set_value("cifar10").run()  # a Fashion-MNIST MainNet cannot be frozen for it
    assert not at.exception and at.selectbox(key="train_init_from").options == []


@pytest.mark.slow
def test_crashing_job_is_reported_and_the_app_stays_up(explorer_dbs, open_app, tmp_path):
    db = copy_db(explorer_dbs["one"], tmp_path / "db.duckdb")
    queue = JobQueue(tmp_path / "jobs", db, revive=False)
    job_id = queue.submit({"model": "resnet18", "dataset": "fashion-mnist", "limit": 64, "epochs": 1,
                           "init_from": "no-such-run"}, [0], label="crashes inside train_run")
    at = open_app(db, PAGE)  # the page starts a worker for the queued job
    try:
        job = wait_job(queue, job_id)
        assert job["state"] == "failed" and "no-such-run" in job["error"]
        at.run()
        assert not at.exception
        assert any("Failed:" in e.value and "no run 'no-such-run'" in e.value for e in at.error)
    finally:
        stop_queue(queue)


@pytest.mark.slow
def test_queue_from_the_form_then_cancel(open_app, tmp_path):
    db = tmp_path / "db.duckdb"
    queue = JobQueue(tmp_path / "jobs", db, revive=False)
    at = open_app(db, PAGE)
    try:
        at.radio(key="train_source").set_value("custom").run()
        at.number_input(key="train_limit").set_value(64).run()
        at.number_input(key="train_epochs").set_value(50).run()
        at.button(key="train_submit").click().run()
        assert not at.exception
        (job,) = queue.jobs()
        assert job["config"]["limit"] == 64 and job["config"]["epochs"] == 50 and job["seeds"] == [0]
        assert any("Queued 1 job" in s.value for s in at.success)
        at.button(key=f"cancel:{job['job_id']}").click().run()
        assert not at.exception
        job = wait_job(queue, job["job_id"])
        assert job["state"] == "cancelled"
        at.run()
        assert any("Cancelled" in w.value for w in at.warning)
    finally:
        stop_queue(queue)
    if db.exists():  # it may have been cancelled before it registered a run
        assert Store(db).list_runs() == []
