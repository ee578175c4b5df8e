"""The job queue as a fault surface: tampered job folders, hostile ids and paths, explicit state transitions,
and workers, job processes, submitters, cancellers and clearers SIGKILLed at named phases."""
from __future__ import annotations

import json
import os
import time

import pytest
from faultkit import (
    Result,
    engine_cli,
    killed,
    no_traceback,
    processes_using,
    run,
    snapshot,
    spec,
    start,
    wait_for,
    write_job,
)

from engine import procs
from engine.errors import UserError
from engine.jobs import BROKEN, STATES, TRANSITIONS, JobQueue
from engine.jobs.worker import Worker

QUEUE_FILES = ("worker.lock", "worker.json", "worker.pid", "worker.log")
FAIL_FAST = {"model": "resnet18", "dataset": "fashion-mnist", "no_such_field": 1}  # refused in the job process


def queue_of(sandbox, revive: bool = False) -> JobQueue:
    return JobQueue(sandbox.jobs, sandbox.db, revive=revive)


def jobs_state(sandbox) -> dict:
    """The jobs folder, less the worker's own files and the per-job lock files."""
    return {k: v for k, v in snapshot(sandbox.jobs).items()
            if k.split("/")[0] not in QUEUE_FILES and not k.endswith("/.lock")}


# -- explicit transitions ------------------------------------------------------------------------
@pytest.mark.parametrize("source", STATES)
def test_transitions_are_exactly_the_table(sandbox, source):
    q = queue_of(sandbox)
    assert set(TRANSITIONS) == set(STATES)
    for target in STATES:
        write_job(sandbox.jobs, "j", spec(source))
        allowed = q._transition("j", target, error="x")
        assert allowed == (target in TRANSITIONS[source])
        assert json.loads((sandbox.jobs / "j" / "spec.json").read_text())["state"] == (target if allowed else source)
    with pytest.raises(ValueError):
        q._update("j", state="done")  # a state changes only through the table


# -- tampered job folders ------------------------------------------------------------------------
TAMPERED = {  # name: (how the folder is tampered with, the exact reason it is listed as broken)
    "list-spec": (dict(raw="[]"), "spec.json holds list, not an object"),
    "no-state": (dict(raw=json.dumps({k: v for k, v in spec().items() if k != "state"})), "spec.json has no state"),
    "unknown-state": (dict(spec=spec("paused")), "spec.json has an unknown state 'paused'"),
    "garbage-spec": (dict(raw="{not json"), "spec.json is not valid JSON (Expecting property name enclosed in "
                                            "double quotes: line 1 column 2 (char 1))"),
    "binary-spec": (dict(raw=None), "spec.json is not valid JSON ('utf-8' codec can't decode byte 0xff in position "
                                    "0: invalid start byte)"),
    "deep-spec": (dict(raw="[" * 100_000), "spec.json is not valid JSON (maximum recursion depth exceeded while "
                                           "decoding a JSON array from a unicode string)"),
    "huge-spec": (dict(raw=" " * (1 << 20) + "{}"), "spec.json is larger than 1048576 bytes"),
    "seeds-text": (dict(spec=spec(seeds="0 1")), "spec.json: seeds is not a list of integers"),
    "config-list": (dict(spec=spec(config=[])), "spec.json: config is not an object"),
    "label-number": (dict(spec=spec(label=5)), "spec.json: label has the wrong type (int)"),
    "pid-text": (dict(spec=spec("running", pid="1")), "spec.json: pid has the wrong type (str)"),
    "run-ids": (dict(spec=spec(run_ids="r1")), "spec.json: run_ids is not a list of strings"),
    "worker-list": (dict(spec=spec("running", worker=[1])), "spec.json: worker is not a {pid, start} object"),
    "garbage-progress": (dict(spec=spec("running"), progress="%%%"), "progress.json is not valid JSON (Expecting "
                                                                    "value: line 1 column 1 (char 0))"),
    "list-progress": (dict(spec=spec("running"), progress=[1]), "progress.json holds list, not an object"),
    "loss-text": (dict(spec=spec("running"), progress={"loss": "x", "epochs": 2}),
                  "progress.json: loss must be a number, got 'x'"),
    "negative-step": (dict(spec=spec("running"), progress={"step": -1}),
                      "progress.json: step must be a whole number >= 0, got -1"),
    "no-spec": (dict(), "no spec.json"),
    "spec-folder": (dict(), "spec.json is not a regular file"),
    "spec-fifo": (dict(), "spec.json is not a regular file"),
    "spec-link": (dict(), "spec.json is a symbolic link"),
    "folder-link": (dict(), "the job folder is a symbolic link"),
}


def tamper(sandbox, name: str):
    how, _ = TAMPERED[name]
    d = sandbox.jobs / name
    if name == "folder-link":
        sandbox.jobs.mkdir(parents=True, exist_ok=True)
        d.symlink_to(sandbox.outside / "victim", target_is_directory=True)
        return
    write_job(sandbox.jobs, name, **{k: v for k, v in how.items() if v is not None})
    if name == "binary-spec":
        (d / "spec.json").write_bytes(b"\xff\xfe")
    elif name == "spec-folder":
        (d / "spec.json").mkdir()
    elif name == "spec-fifo":
        os.mkfifo(d / "spec.json")  # reading it must not hang
    elif name == "spec-link":
        (d / "spec.json").symlink_to(sandbox.outside / "canary.txt")


@pytest.mark.parametrize("name", TAMPERED)
def test_a_tampered_job_is_listed_as_broken_and_breaks_nothing(sandbox, name):
    tamper(sandbox, name)
    good = write_job(sandbox.jobs, "good", spec("done", label="fine", submitted_ts=0)).name
    q, before = queue_of(sandbox), jobs_state(sandbox)
    listed = {j["job_id"]: j for j in q.jobs()}
    assert (listed[name]["state"], listed[name]["error"]) == (BROKEN, TAMPERED[name][1])
    assert listed[good]["state"] == "done" and listed[good]["label"] == "fine"
    with pytest.raises(UserError) as err:
        q.cancel(name)
    assert str(err.value) == f"job {name} is broken ({TAMPERED[name][1]}); Clear removes it"
    result = engine_cli("jobs", "list")
    no_traceback(result.err)
    assert result.rc == 0 and f"{name}  {'broken':<9} {0:>5.0%}  " in result.out and TAMPERED[name][1] in result.out
    assert Worker(q).work(idle_exit_s=0) == 0  # the worker lists it, skips it, and leaves
    assert jobs_state(sandbox) == before  # reading changed nothing
    assert q.clear_finished() == 2 and jobs_state(sandbox) == {}


def test_hostile_ids_and_paths_never_leave_the_jobs_folder(sandbox):
    """Ids come from folder names: a spec claiming '..' or an absolute path clears only its own folder."""
    sandbox.db.write_bytes(b"the DB")  # what a '..' job id used to delete
    for i, claimed in enumerate(["..", "../..", str(sandbox.outside), "../outside/canary.txt", "/"]):
        write_job(sandbox.jobs, f"job{i}", spec("done", job_id=claimed))
    link = sandbox.jobs / "linked"
    link.symlink_to(sandbox.outside / "victim", target_is_directory=True)
    q = queue_of(sandbox)
    for bad in ("..", "../outside", "/etc", "", ".hidden", "a/b"):
        with pytest.raises(UserError, match=r"^invalid job id .* \(letters, digits, '\.', '_', '-'\)$"):
            q.job(bad)
        with pytest.raises(UserError, match="^invalid job id"):
            q.log(bad)
    assert q.clear_finished() == 6
    assert sorted(os.listdir(sandbox.jobs)) == [] and sandbox.db.read_bytes() == b"the DB"
    assert (sandbox.outside / "victim" / "important.duckdb").exists()


def test_links_planted_in_a_job_folder_are_never_followed(sandbox):
    """A log.txt / cancel flag that links outside: the job fails with the reason, the target is untouched."""
    q = queue_of(sandbox)
    job = q.submit(FAIL_FAST, [0], label="log is a link")
    (sandbox.jobs / job / "log.txt").symlink_to(sandbox.outside / "canary.txt")
    assert Worker(q).work(idle_exit_s=0) == 1
    j = q.job(job)
    assert j["state"] == "failed" and j["error"] == (f"could not start the job: cannot write {sandbox.jobs / job}"
                                                     "/log.txt: Too many levels of symbolic links")
    other = q.submit(FAIL_FAST, [0])
    (sandbox.jobs / other / "cancel").symlink_to(sandbox.outside / "canary.txt")
    with pytest.raises(UserError, match="cancel: Too many levels of symbolic links$"):
        q.cancel(other)
    assert q.log(job) == "(the log cannot be read: Too many levels of symbolic links)"


def test_recycled_pids_do_not_keep_a_job_or_a_worker_alive(sandbox):
    """This process's pid with another start time: not the job's process, not the worker."""
    q, me = queue_of(sandbox), os.getpid()
    wrong = (procs.start_ticks(me) or 0) + 1
    write_job(sandbox.jobs, "j", spec("running", pid=me, pid_start=wrong, worker={"pid": me, "start": wrong}))
    (sandbox.jobs / "worker.json").write_text(json.dumps({"pid": me, "start": wrong, "spawned_at": time.time()}))
    assert not q.worker_alive()
    j = q.job("j")
    assert (j["state"], j["error"]) == ("failed", "the job's process and its worker ended without recording a "
                                                  "result (killed?)")
    assert q.cancel("j") == "failed" and q.clear_finished() == 1


# -- kills at named phases -----------------------------------------------------------------------
def worker(sandbox, fault: str):
    """A worker process that dies at `fault` (its job process inherits the fault too)."""
    return start(["-m", "engine.jobs", "worker", "--jobs-dir", sandbox.jobs, "--db", sandbox.db,
                  "--idle-exit-s", "0.5"], fault=fault)


def gone(sandbox, job_id: str):
    return lambda: not processes_using(sandbox.jobs / job_id)


BOTH_GONE = "the job's process and its worker ended without recording a result (killed?)"
KILLS = {  # fault points of the worker and of the job's process: what the job becomes, for good
    "worker:claimed": "the job's worker ended before it recorded the job's process (killed?)",
    "worker:started-job,job:loaded": "the job's worker ended before it recorded the job's process (killed?)",
    "worker:job-running,job:loaded": BOTH_GONE,
    "worker:job-exited,job:loaded": BOTH_GONE,
}


@pytest.mark.slow
@pytest.mark.parametrize("fault", KILLS)
def test_worker_and_job_killed_the_job_fails_for_good_and_the_next_one_runs(sandbox, fault):
    q = queue_of(sandbox)
    first = q.submit(FAIL_FAST, [0], label="first")
    second = q.submit({**FAIL_FAST, "epochs": 1}, [0], label="second")
    killed(_finish(worker(sandbox, fault)))
    wait_for(gone(sandbox, first), 30, "the job's process to die at its fault point")
    j = q.job(first)
    assert (j["state"], j["error"]) == ("failed", KILLS[fault])
    assert q.job(second)["state"] == "queued"
    reader = queue_of(sandbox, revive=True)  # any reader starts a new worker for the job left queued
    reader.jobs()
    started = wait_for(lambda: reader.job(second)["state"] != "queued" and reader.job(second), 60, "a new worker")
    assert started["worker"]["pid"] != j["worker"]["pid"] and reader.worker_alive()
    assert reader.job(first)["state"] == "failed"  # never "running" again while another worker is alive
    assert reader.cancel(first) == "failed"
    done = wait_for(lambda: reader.job(second)["state"] in ("failed", "cancelled") and reader.job(second), 120,
                    "the second job")
    assert done["error"] == f"job {second}: unknown key(s) no_such_field"
    assert reader.clear_finished() == 2 and jobs_state(sandbox) == {}


@pytest.mark.slow
def test_a_job_process_killed_while_its_worker_lives_is_recorded_by_the_worker(sandbox):
    q = queue_of(sandbox)
    job = q.submit(FAIL_FAST, [0])
    w = worker(sandbox, "job:loaded")
    assert _finish(w).rc == 0
    j = q.job(job)
    assert (j["state"], j["error"]) == ("failed", "the job's process exited with code -9 without a result "
                                                  "(see its log)")


@pytest.mark.slow
def test_a_submit_killed_half_way_leaves_no_visible_job(sandbox):
    script = ("import sys; from engine.jobs import JobQueue; "
              "JobQueue(sys.argv[1], sys.argv[2], revive=False).submit({'model': 'resnet18'}, [0])")
    killed(run(["-c", script, sandbox.jobs, sandbox.db], fault="queue:submit-half"))
    q = queue_of(sandbox)
    (staging,) = os.listdir(sandbox.jobs)
    assert staging.startswith(".submit-") and q.jobs() == []
    assert q.clear_finished() == 0 and os.listdir(sandbox.jobs) == [staging]  # fresh: maybe still being written
    old = time.time() - 3600
    os.utime(sandbox.jobs / staging, (old, old))
    assert q.clear_finished() == 0 and os.listdir(sandbox.jobs) == []


@pytest.mark.slow
def test_a_cancel_killed_after_flagging_still_cancels(sandbox):
    q = queue_of(sandbox)
    job = q.submit(FAIL_FAST, [0])
    script = ("import sys; from engine.jobs import JobQueue; "
              "JobQueue(sys.argv[1], sys.argv[2], revive=False).cancel(sys.argv[3])")
    killed(run(["-c", script, sandbox.jobs, sandbox.db, job], fault="queue:cancel-flagged"))
    assert q.job(job)["state"] == "queued" and q.job(job)["cancel_requested"]
    reader = queue_of(sandbox, revive=True)
    reader.jobs()  # starts a worker: it sees the flag and never starts the job
    j = wait_for(lambda: reader.job(job)["state"] != "queued" and reader.job(job), 60, "the worker")
    assert (j["state"], j["error"]) == ("cancelled", "cancelled before it started")
    assert not (sandbox.jobs / job / "log.txt").exists()


@pytest.mark.slow
def test_a_clear_killed_half_way_removes_only_finished_jobs(sandbox):
    for i, state in enumerate(["done", "failed", "cancelled"]):
        write_job(sandbox.jobs, f"finished{i}", spec(state, submitted_ts=i))
    queued = queue_of(sandbox).submit(FAIL_FAST, [0])
    script = ("import sys; from engine.jobs import JobQueue; "
              "JobQueue(sys.argv[1], sys.argv[2], revive=False).clear_finished()")
    killed(run(["-c", script, sandbox.jobs, sandbox.db], fault="queue:clearing"))
    q = queue_of(sandbox)
    assert [j["job_id"] for j in q.jobs()] == ["finished1", "finished2", queued]
    assert q.clear_finished() == 2 and [j["job_id"] for j in q.jobs()] == [queued]


def _finish(proc, timeout: float = 120) -> Result:
    out, _ = proc.communicate(timeout=timeout)
    return Result(proc.returncode, out, "")


@pytest.mark.slow
def test_cancel_of_a_running_job_stops_its_process_and_leaves_no_complete_run(sandbox):
    """Cancel never records a running job as cancelled itself: it stops the job's process, which (or whose
    worker) records the outcome."""
    q = queue_of(sandbox)
    job = q.submit({"model": "resnet18", "dataset": "fashion-mnist", "epochs": 50, "limit": 256, "device": "cpu"}, [0])
    w = worker(sandbox, None)
    running = wait_for(lambda: q.job(job).get("pid") and q.job(job), 60, "the job's process")
    assert running["state"] == "running"
    assert q.cancel(job) == "cancelled"
    j = wait_for(lambda: q.job(job)["state"] != "running" and q.job(job), 60, "the job to stop")
    assert j["state"] == "cancelled" and j["error"] == "cancelled" and not procs.alive(j["pid"], j["pid_start"])
    assert _finish(w).rc == 0
    if sandbox.db.exists():  # it may have been stopped before it registered its run
        from engine.store import Store

        assert {r["status"] for r in Store(sandbox.db).list_runs(include_all=True)} <= {"failed"}
