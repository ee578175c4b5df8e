"""engine.jobs (queue.py, worker.py): the background training queue, for real (a detached worker, job
processes, the smoke preset). Progress and seeds in words: tests/test_jobs_progress.py."""
import fcntl
import json

import pytest

from engine.analysis.runs import prepare_run
from engine.errors import UserError
from engine.jobs import JobQueue
from engine.jobs.queue import read_json, write_json
from engine.jobs.worker import Worker
from engine.presets import preset
from engine.store import Store

from helpers import stop_queue, wait_job


@pytest.fixture
def queue(tmp_path):
    """A queue whose readers never start a worker by themselves (the tests start one when they mean to)."""
    q = JobQueue(tmp_path / "jobs", tmp_path / "runs.duckdb", revive=False)
    yield q
    stop_queue(q)


# ------------------------------------------------------------------------------ no processes
def test_write_json_is_atomic_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "x.json"
    write_json(path, {"a": 1})
    write_json(path, {"a": 2})
    assert read_json(path) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    assert read_json(tmp_path / "missing.json") is None


def test_submit_queue_order_and_cancel_of_a_queued_job(queue):
    a = queue.submit({"model": "resnet18", "dataset": "fashion-mnist"}, [0, 1], label="first")
    b = queue.submit({"model": "resnet18", "dataset": "fashion-mnist"}, None)
    spec = json.loads((queue.dir / a / "spec.json").read_text())
    assert spec["state"] == "queued" and spec["seeds"] == [0, 1] and spec["config"]["seeds"] == [0, 1]
    assert spec["db"] == str(queue.db)
    assert [j["job_id"] for j in queue.jobs()] == [a, b]  # FIFO
    assert queue.job(b)["seeds"] == [0] and queue.job(b)["fraction"] == 0.0
    assert queue.cancel(b) == "cancelled"
    assert queue.job(b)["state"] == "cancelled" and queue.cancel(b) == "cancelled"
    assert Worker(queue)._next_queued() == a
    with pytest.raises(UserError, match="no job 'nope'"):
        queue.job("nope")
    with pytest.raises(UserError, match="seeds"):
        queue.submit({"model": "resnet18"}, [])


def test_only_one_worker(queue):
    queue.dir.mkdir(parents=True)
    assert not queue.worker_alive()
    with open(queue.lock_path, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert queue.worker_alive()
        assert Worker(queue).work(idle_exit_s=0) == 0  # a second worker leaves at once
        assert not queue.ensure_worker()
    assert not queue.worker_alive()


def test_log_collapses_progress_bars(queue):
    job = queue.submit({"model": "resnet18"}, [0])
    (queue.dir / job / "log.txt").write_text("start\nrun epoch 1/1:  10%|#  | 1/10\rrun epoch 1/1:  20%|## | 2/10\r"
                                              "run epoch 1/1: 100%|###| 10/10\nend\n")
    assert queue.log(job) == "start\nrun epoch 1/1: 100%|###| 10/10\nend"


# ------------------------------------------------------------------------------ real processes
@pytest.mark.slow
def test_crashing_jobs_fail_with_their_message_and_a_smoke_job_completes(queue):
    bad_key = queue.submit({"model": "resnet18", "dataset": "fashion-mnist", "no_such_field": 1}, [0])
    bad_model = queue.submit({"model": "resnet-nope", "dataset": "fashion-mnist"}, [0])
    cfg = preset("smoke")[0].to_dict()
    good = queue.submit(cfg, [0], label="smoke: resnet18")
    assert queue.ensure_worker()
    assert not queue.ensure_worker()  # one worker at a time
    job = wait_job(queue, bad_key)
    assert job["state"] == "failed" and "no_such_field" in job["error"]
    job = wait_job(queue, bad_model)
    assert job["state"] == "failed" and "unknown model 'resnet-nope'" in job["error"]

    phases, fractions, seen_complete = [], [], []
    reader = Store(queue.db, lock_timeout_s=60)

    def watch(j):
        p = j["progress"] or {}
        if p and (not phases or phases[-1] != (p.get("phase"), p.get("step"))):
            phases.append((p.get("phase"), p.get("step")))
            fractions.append(j["fraction"])
        # a reader in another process (the app) meanwhile: never an error, never half a run
        if queue.db.exists():
            for run in reader.list_runs():
                seen_complete.append(run["run_id"])
                assert prepare_run(reader, run["run_id"])  # a complete run is whole

    job = wait_job(queue, good, watch=watch)
    assert job["state"] == "done", queue.log(good)
    assert job["fraction"] == 1.0 and len(job["run_ids"]) == 1
    assert phases[0][0] == "loading" and phases[-1][0] == "finished"  # the progress file was updated as it ran
    assert fractions == sorted(fractions)
    assert set(seen_complete) <= set(job["run_ids"])
    run = Store(queue.db).get_run(job["run_ids"][0])
    assert run["status"] == "complete" and run["model"] == "resnet18" and run["config"]["limit"] == cfg["limit"]
    assert job["device"] == run["device"]  # the job names the device its run trained on
    log = queue.log(good)
    assert "training resnet18 on fashion-mnist" in log and "done, runs" in log
    assert "epoch 1" in log


@pytest.mark.slow
def test_cancel_a_running_job_leaves_no_complete_run(queue):
    cfg = {**preset("smoke")[0].to_dict(), "epochs": 50, "batch_size": 8}  # long: 50 epochs of 32 steps
    running = queue.submit(cfg, [0], label="long")
    waiting = queue.submit(cfg, [1], label="queued behind it")
    queue.ensure_worker()
    # wait until it is really training (a progress report with a step)
    job = wait_job(queue, running, timeout=240,
               until=lambda j: (j["progress"] or {}).get("step") or j["state"] not in ("queued", "running"))
    assert job["state"] == "running" and job["progress"]["phase"] == "training", queue.log(running)
    assert job["progress"]["epochs"] == 50 and job["progress"]["steps"] == 32 and 0 < job["fraction"] < 0.05
    assert queue.cancel(waiting) == "cancelled"  # still queued: never starts
    assert queue.job(waiting)["state"] == "cancelled"
    queue.cancel(running)
    job = wait_job(queue, running, timeout=120)
    assert job["state"] == "cancelled" and job["run_ids"] == []
    runs = Store(queue.db).list_runs(include_all=True)
    assert [r["status"] for r in runs] == ["failed"]  # the run it had started is recorded as failed
    assert "KeyboardInterrupt" in runs[0]["error"]
    assert Store(queue.db).list_runs() == []  # nothing complete
    assert not (queue.dir / waiting / "log.txt").exists()
