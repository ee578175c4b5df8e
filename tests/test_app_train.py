"""AppTest: the Train page -- the form, the queue, a crashing job, a cancelled job (real worker)."""
import shutil

from conftest import stop_queue, wait_job
from engine.jobs import JobQueue

PAGE = "views/train.py"


def test_page_says_the_device_and_shows_presets(open_app, tmp_path):
    at = open_app(tmp_path / "new.duckdb", PAGE)  # no DB yet: training creates it
    assert not at.exception
    text = " ".join(c.value for c in at.caption)
    assert "one at a time, on **cpu**" in text or "on **cuda" in text
    assert "smoke" in at.selectbox(key="train_preset").options
    assert any("No jobs yet" in c.value for c in at.caption)


def test_form_rejects_a_bad_config_before_queueing(open_app, tmp_path):
    at = open_app(tmp_path / "db.duckdb", PAGE)
    at.radio(key="train_source").set_value("custom").run()
    at.text_input(key="train_seeds").set_value("0, x").run()
    at.button(key="train_submit").click().run()
    assert not at.exception
    assert any("seeds must be integers" in e.value for e in at.error)
    assert JobQueue(tmp_path / "jobs", tmp_path / "db.duckdb").jobs() == []


def test_crashing_job_is_reported_and_the_app_stays_up(explorer_dbs, open_app, tmp_path):
    db = tmp_path / "db.duckdb"
    shutil.copy(explorer_dbs["one"], db)
    queue = JobQueue(tmp_path / "jobs", db)
    job_id = queue.submit({"model": "resnet18", "dataset": "fashion-mnist", "limit": 64, "epochs": 1,
                           "init_from": "no-such-run"}, [0], label="crashes inside train_run")
    at = open_app(db, PAGE)  # the page starts a worker for the queued job
    job = wait_job(queue, job_id)
    assert job["state"] == "failed" and "no-such-run" in job["error"]
    at.run()
    assert not at.exception
    assert any("Failed:" in e.value and "no run 'no-such-run'" in e.value for e in at.error)
    stop_queue(queue)


def test_queue_from_the_form_then_cancel(open_app, tmp_path):
    db = tmp_path / "db.duckdb"
    queue = JobQueue(tmp_path / "jobs", db)
    at = open_app(db, PAGE)
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
    stop_queue(queue)
    from engine.store import Store

    if db.exists():  # it may have been cancelled before it registered a run
        assert Store(db).list_runs() == []
