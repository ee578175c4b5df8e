"""engine.jobs.worker: the job process (run_job, in-process here with the training replaced where
it would take minutes) and the worker loop (which starts real job processes)."""
import signal

import pytest

from engine.jobs import JobQueue
from engine.jobs.worker import Worker, run_job
from engine.runtime.device import device_label

from helpers import stop_queue

CONFIG = {"model": "resnet18", "dataset": "fashion-mnist", "limit": 16, "epochs": 1}


@pytest.fixture
def queue(tmp_path):
    before = signal.getsignal(signal.SIGTERM)  # run_job installs its own SIGTERM handler
    q = JobQueue(tmp_path / "jobs", tmp_path / "runs.duckdb", revive=False)
    yield q
    signal.signal(signal.SIGTERM, before)
    stop_queue(q)


def _running(queue, config=CONFIG, seeds=(0, 1)):
    job_id = queue.submit(config, list(seeds))
    assert queue._transition(job_id, "running")  # what the worker does before it starts the job's process
    return job_id


def test_a_job_trains_each_seed_and_records_its_runs(queue, monkeypatch, capsys):
    seen = []

    def fake_train_run(cfg, seed, store, progress=None):
        progress({"phase": "training", "epoch": 1, "epochs": 1, "step": 1, "steps": 1, "loss": 0.5})
        seen.append((cfg.model, cfg.limit, cfg.seeds, seed, store.path))
        return f"run-{seed}"

    monkeypatch.setattr("engine.train.train_run", fake_train_run)
    job_id = _running(queue)
    assert run_job(queue.dir / job_id, queue.db) == 0
    job = queue.job(job_id)
    assert job["state"] == "done" and job["run_ids"] == ["run-0", "run-1"] and job["fraction"] == 1.0
    assert seen == [("resnet18", 16, [0, 1], 0, queue.db), ("resnet18", 16, [0, 1], 1, queue.db)]
    assert job["progress"]["phase"] == "finished" and job["device"] == device_label()
    assert f"job {job_id}: done, runs run-0, run-1" in capsys.readouterr().out


@pytest.mark.parametrize("config, state, code, message", [
    ({**CONFIG, "no_such_field": 1}, "failed", 2, "unknown key(s) no_such_field"),
    ({**CONFIG, "model": "resnet-nope"}, "failed", 2, "unknown model 'resnet-nope'"),
])
def test_a_bad_config_fails_the_job_with_its_message(queue, config, state, code, message):
    job_id = _running(queue, config)
    assert run_job(queue.dir / job_id, queue.db) == code
    job = queue.job(job_id)
    assert job["state"] == state and message in job["error"] and job["run_ids"] == []


@pytest.mark.parametrize("cancel_flag, state", [(True, "cancelled"), (False, "failed")])
def test_an_interrupted_job(queue, monkeypatch, cancel_flag, state):
    def interrupted(*_a, **_k):
        raise KeyboardInterrupt("stopped by signal 15")

    monkeypatch.setattr("engine.train.train_run", interrupted)
    job_id = _running(queue)
    if cancel_flag:
        (queue.dir / job_id / "cancel").write_text("now")
    assert run_job(queue.dir / job_id, queue.db) == 130
    job = queue.job(job_id)
    assert job["state"] == state and job["error"] == ("cancelled" if cancel_flag else "interrupted: stopped by signal 15")


def test_a_crash_is_recorded_with_its_traceback(queue, monkeypatch, capsys):
    def crash(*_a, **_k):
        raise RuntimeError("out of memory")

    monkeypatch.setattr("engine.train.train_run", crash)
    job_id = _running(queue)
    assert run_job(queue.dir / job_id, queue.db) == 1
    assert queue.job(job_id)["error"] == "RuntimeError: out of memory" and queue.job(job_id)["state"] == "failed"
    assert "Traceback" in capsys.readouterr().err


def test_only_a_running_job_runs(queue, capsys):
    job_id = queue.submit(CONFIG, [0])
    assert run_job(queue.dir / job_id, queue.db) == 2
    assert f"job {job_id} is queued, not running" in capsys.readouterr().err
    assert queue.job(job_id)["state"] == "queued"


@pytest.mark.slow
def test_the_worker_loop_runs_queued_jobs_in_order_then_leaves(queue):
    first = queue.submit({**CONFIG, "no_such_field": 1}, [0], label="first")
    second = queue.submit({**CONFIG, "model": "resnet-nope"}, [0], label="second")
    cancelled = queue.submit(CONFIG, [0], label="cancelled before it starts")
    queue.cancel(cancelled)
    assert Worker(queue).work(idle_exit_s=0) == 2  # each in its own process, one at a time
    jobs = {j["job_id"]: j for j in queue.jobs()}
    assert jobs[first]["state"] == jobs[second]["state"] == "failed"
    assert "no_such_field" in jobs[first]["error"] and "resnet-nope" in jobs[second]["error"]
    assert jobs[first]["finished_at"] <= jobs[second]["started_at"]  # FIFO, never two at once
    assert jobs[cancelled]["state"] == "cancelled" and not (queue.dir / cancelled / "log.txt").exists()
    assert "unknown model 'resnet-nope'" in queue.log(second)
