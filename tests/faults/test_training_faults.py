"""Real tiny trainings SIGKILLed at every named phase (the CLI's and a queued job's), and a job submitted with a
relative SIDENETS_DB whose spec names another DB: no half run is ever visible, orphans are cleaned, nothing is
written elsewhere. The trainings start together (one module fixture) so the module costs one training's time."""
from __future__ import annotations

import json

import faultkit as kit
import pytest
from faultkit import META, TALLY, TINY, Result, Sandbox, changed, counts, killed, snapshot, start

from engine.jobs import JobQueue
from engine.store import Store

pytestmark = pytest.mark.slow
TRAIN_POINTS = ("train:after-start", "train:first-step", "train:after-fit", "train:after-checkpoint",
                "train:after-finish")
JOB_POINTS = ("job:after-seed", "job:before-done")
DEAD = "the training process ended without finishing (killed?)"
JOB_CONFIG = {"model": "resnet18", "dataset": "fashion-mnist", "epochs": 1, "limit": 16, "batch_size": 8,
              "device": "cpu"}
SUBMIT = """
import json, sys
from engine.jobs import JobQueue
q = JobQueue()  # SIDENETS_DB is relative to this process's folder
job = q.submit(json.loads(sys.argv[1]), [0], label="relative DB")
spec = q.dir / job / "spec.json"
spec.write_text(json.dumps({**json.loads(spec.read_text()), "db": sys.argv[2]}))  # tampered: must not redirect
q.ensure_worker()
print(job)
"""


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """{scenario: (Sandbox, process, outside snapshot)}, all started at once."""
    out = {}
    for point in TRAIN_POINTS:
        box = Sandbox(tmp_path_factory.mktemp("train"))
        out[point] = (box, start(["-m", "engine", "--db", box.db, "train", *TINY], fault=point))
    for point in JOB_POINTS:
        box = Sandbox(tmp_path_factory.mktemp("job"))
        JobQueue(box.jobs, box.db, revive=False).submit(JOB_CONFIG, [0], label=point)
        out[point] = (box, start(["-m", "engine.jobs", "worker", "--jobs-dir", box.jobs, "--db", box.db,
                                  "--idle-exit-s", "0.5"], fault=point))
    box = Sandbox(tmp_path_factory.mktemp("relative"))
    out["relative"] = (box, start(["-c", SUBMIT, json.dumps(JOB_CONFIG), box.outside / "victim" / "evil.duckdb"],
                                  cwd=box.root, SIDENETS_DB="data/sidenets.duckdb"))
    befores = {k: snapshot(box.root, skip=("data", "inputs")) for k, (box, _) in out.items()}
    yield {k: (box, proc, befores[k]) for k, (box, proc) in out.items()}
    for box, proc in out.values():
        proc.kill()
        proc.wait()
        kit.reap(box.jobs)


def finished(proc, timeout: float = 400) -> Result:
    out, _ = proc.communicate(timeout=timeout)
    return Result(proc.returncode, "", out or "")


def data_files(box: Sandbox) -> list[str]:
    return sorted(k for k, v in snapshot(box.data).items() if v[0] != "dir" and not k.endswith(".wal"))


def nothing_outside(box: Sandbox, before: dict) -> None:
    moved = changed(before, snapshot(box.root, skip=("data", "inputs")))
    TALLY["outside"] += len(moved)
    assert not moved


@pytest.mark.parametrize("point", TRAIN_POINTS)
def test_a_training_killed_at_each_phase(launched, point):
    box, proc, before = launched[point]
    result = finished(proc)
    killed(result)
    kit.no_traceback(result.err)
    store = Store(box.db)
    (run,) = store.list_runs(include_all=True)
    ckpt = f"checkpoints/{run['run_id']}.safetensors"
    if point == "train:after-finish":  # it was complete before the kill
        assert run["status"] == "complete" and store.list_runs()[0]["run_id"] == run["run_id"]
        assert counts(box.db)["samples"] > 0 and data_files(box) == [ckpt, "sidenets.duckdb"]
    else:
        assert (run["status"], run["error"]) == ("failed", DEAD) and store.list_runs() == []
        assert counts(box.db) == {"runs": 1, "epochs": 0, "costs": 0, "samples": 0, "latency": 0}
        orphan = [ckpt] if point == "train:after-checkpoint" else []
        assert data_files(box) == sorted([*orphan, "sidenets.duckdb"])
        store.start_run({**META, "run_id": "next"})  # the next writer: marks it failed for good, removes orphans
        assert data_files(box) == ["sidenets.duckdb"]
        assert {r["run_id"]: r["status"] for r in store.list_runs(include_all=True)}[run["run_id"]] == "failed"
    nothing_outside(box, before)


@pytest.mark.parametrize("point", JOB_POINTS)
def test_a_job_killed_after_its_training(launched, point):
    box, proc, before = launched[point]
    assert finished(proc).rc == 0  # the worker outlives its job's process
    q = JobQueue(box.jobs, box.db, revive=False)
    (job,) = q.jobs()
    assert (job["state"], job["error"]) == ("failed", "the job's process exited with code -9 without a result "
                                                      "(see its log)")
    (run,) = Store(box.db).list_runs()  # the run itself was complete before the kill
    assert job["run_ids"] == [run["run_id"]]
    assert data_files(box)[0] == f"checkpoints/{run['run_id']}.safetensors"
    nothing_outside(box, before)


def test_a_relative_sidenets_db_and_a_tampered_spec_db(launched):
    """The submitter ran in the sandbox with SIDENETS_DB=data/sidenets.duckdb (relative); the worker runs from
    the repository: the job is found, trained, and written to that DB, never to the spec's `db`."""
    box, proc, before = launched["relative"]
    result = finished(proc)
    assert result.rc == 0, result.err
    job_id = result.err.strip().splitlines()[-1]
    q = JobQueue(box.jobs, box.db, revive=False)
    job = kit.wait_for(lambda: q.job(job_id)["state"] not in ("queued", "running") and q.job(job_id), 400, "the job")
    assert job["state"] == "done", q.log(job_id)
    (run,) = Store(box.db).list_runs()
    assert job["run_ids"] == [run["run_id"]] and run["checkpoint"] == f"checkpoints/{run['run_id']}.safetensors"
    assert (box.data / run["checkpoint"]).exists()
    assert not (box.outside / "victim" / "evil.duckdb").exists()
    assert f"db {box.db}" in q.log(job_id)
    nothing_outside(box, before)
