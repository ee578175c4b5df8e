"""The worker: runs queued jobs FIFO, each in its own process, and the job process itself.

`python -m engine.jobs worker` loops over the queue (one worker per jobs folder, guarded by an
flock) and starts `python -m engine.jobs run JOB_DIR` per job, whose output goes to log.txt: a
crash, a broken job folder or a cancel (SIGTERM, turned into KeyboardInterrupt so the run is
recorded as failed) never takes the worker down, and a run reaches the DB in one transaction
only when complete. The job writes to the worker's --db, never to a path its spec names.
The worker leaves once the queue has been empty for a few seconds.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from engine import paths, procs
from engine.errors import UserError
from engine.faults import point
from engine.jobs.files import inside, open_write, read_json, valid_job_id, write_json
from engine.jobs.queue import BROKEN, JobQueue, child_env, now, write_identity

IDLE_EXIT_S = 5.0
POLL_S = 0.5


class Worker:
    """The worker loop of one jobs folder."""

    def __init__(self, queue: JobQueue):
        self.queue = queue
        self.queue.revive = False  # the worker never starts another worker
        self.dir = queue.dir

    def _next_queued(self) -> str | None:
        """The oldest queued job, or None (also while a job started elsewhere is still running)."""
        jobs = self.queue.jobs()
        if any(j["live"] for j in jobs):
            return None  # e.g. a job left running by a killed worker: one job at a time
        return next((j["job_id"] for j in jobs if j["state"] == "queued"), None)

    def work(self, idle_exit_s: float = IDLE_EXIT_S) -> int:
        """The worker loop (one per jobs dir): run queued jobs FIFO; leave when idle. Returns #jobs run."""
        self.queue._mkdir()
        lock = open_write(inside(self.dir, self.queue.lock_path), append=True)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)
            return 0  # another worker is alive
        write_identity(self.dir, procs.identity())
        ran, idle_since = 0, time.monotonic()
        try:
            while True:
                try:
                    job_id = self._next_queued()
                    if job_id is not None:
                        ran += self._run_one(job_id)
                except (OSError, UserError) as err:  # a tampered folder: say so, keep serving the others
                    print(f"worker: {err}", flush=True)
                    job_id = None
                    time.sleep(POLL_S)
                if job_id is not None:
                    idle_since = time.monotonic()
                    continue
                if any(j["live"] for j in self._safe_jobs()):
                    idle_since = time.monotonic()  # a job started elsewhere still runs: wait for it
                elif time.monotonic() - idle_since > idle_exit_s:
                    return ran
                time.sleep(POLL_S)
        finally:
            info = read_json(self.dir / "worker.json") or {}
            if info.get("pid") == os.getpid():
                for name in ("worker.json", "worker.pid"):
                    with contextlib.suppress(OSError):
                        (self.dir / name).unlink()
            os.close(lock)

    def _safe_jobs(self) -> list[dict]:
        try:
            return self.queue.jobs()
        except UserError:
            return []

    def _run_one(self, job_id: str) -> int:
        """Run one queued job in its own process; 1 if it ran, 0 if it was cancelled or taken meanwhile."""
        q, job_dir = self.queue, self.dir / job_id
        if os.path.lexists(job_dir / "cancel"):
            q._transition(job_id, "cancelled", only_from=("queued",), error="cancelled before it started",
                          finished_at=now())
            return 0
        if not q._transition(job_id, "running", started_at=now(), worker=procs.identity()):
            return 0
        point("worker:claimed")
        try:
            log = open_write(inside(self.dir, job_dir / "log.txt"), append=True)
            try:
                proc = subprocess.Popen([sys.executable, "-m", "engine.jobs", "run", str(job_dir), "--db", str(q.db)],
                                        cwd=str(paths.REPO), stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, env=child_env())
            finally:
                os.close(log)
        except (OSError, UserError) as err:  # e.g. a log.txt that is a link: the job fails, the worker goes on
            q._transition(job_id, "failed", finished_at=now(), error=f"could not start the job: {err}")
            return 1
        point("worker:started-job")
        q._update(job_id, pid=proc.pid, pid_start=procs.start_ticks(proc.pid))
        point("worker:job-running")
        if os.path.lexists(job_dir / "cancel"):  # cancelled while starting
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        code = proc.wait()
        point("worker:job-exited")
        cancelled = os.path.lexists(job_dir / "cancel")
        # the job's process died without recording an outcome (a refused transition: it did record one)
        q._transition(job_id, "cancelled" if cancelled else "failed", only_from=("running",), finished_at=now(),
                      error="cancelled" if cancelled else f"the job's process exited with code {code} without a "
                                                          "result (see its log)")
        return 1


def run_job(job_dir: str | os.PathLike, db: str | os.PathLike | None = None) -> int:
    """Train one running job's seeds (in this process) and record its outcome in spec.json.

    Writes to `db` (the worker's --db); the spec's own `db` field is never used."""
    procs.interrupt_on_sigterm()
    job_dir = Path(job_dir).absolute()
    queue = JobQueue(job_dir.parent, db, revive=False)
    job_id = job_dir.name
    if not valid_job_id(job_id):
        print(f"error: invalid job folder {job_dir}", file=sys.stderr)
        return 2
    spec = queue._read(job_id)
    if spec["state"] != "running":
        why = f"broken ({spec['error']})" if spec["state"] == BROKEN else spec["state"]
        print(f"error: job {job_id} is {why}, not running", file=sys.stderr)
        return 2
    point("job:loaded")
    run_ids: list[str] = []
    seeds = spec["seeds"]

    def progress(info: dict, seed_index: int = 0, seed=None, phase: str = "training") -> None:
        data = {**info, "phase": info.get("phase", phase), "seed": seed, "seed_index": seed_index,
                "n_seeds": len(seeds), "updated_at": now(), "run_ids": run_ids}
        write_json(inside(queue.dir, job_dir / "progress.json"), data)

    def finish(state: str, error: str | None = None) -> None:
        if not queue._transition(job_id, state, finished_at=now(), run_ids=list(run_ids), error=error):
            print(f"job {job_id}: could not record '{state}' (its state changed meanwhile)", flush=True)

    try:
        progress({}, phase="loading")
        from engine.config import TrainConfig
        from engine.runtime.device import device_label
        from engine.store import Store
        from engine.train import train_run

        device = device_label()
        print(f"job {job_id}: {spec['label']}, seeds {seeds}, device {device}, db {queue.db}", flush=True)
        queue._update(job_id, device=device)
        config = {k: v for k, v in spec["config"].items() if k != "seeds"}
        cfg = TrainConfig.from_dict({**config, "seeds": list(seeds)}, where=f"job {job_id}").resolved()
        store = Store(queue.db)
        for i, seed in enumerate(seeds):
            progress({}, i, seed, phase="loading")
            print(f"[{i + 1}/{len(seeds)}] training {cfg.model} on {cfg.dataset} ({cfg.mode}, seed {seed})", flush=True)
            run_ids.append(train_run(cfg, seed, store, progress=lambda info, i=i, s=seed: progress(info, i, s)))
            queue._update(job_id, run_ids=list(run_ids))
            point("job:after-seed")
        progress({}, len(seeds), None, phase="finished")
        point("job:before-done")
        finish("done")
        print(f"job {job_id}: done, runs {', '.join(run_ids)}", flush=True)
        return 0
    except KeyboardInterrupt as err:
        cancelled = os.path.lexists(job_dir / "cancel")
        finish("cancelled" if cancelled else "failed", "cancelled" if cancelled else f"interrupted: {err}")
        print(f"job {job_id}: {'cancelled' if cancelled else 'interrupted'}", flush=True)
        return 130
    except UserError as err:
        finish("failed", str(err))
        print(f"error: {err}", flush=True)
        return 2
    except BaseException as err:  # noqa: BLE001  a crash: record it, print the traceback to the log
        traceback.print_exc()
        finish("failed", f"{err.__class__.__name__}: {err}")
        return 1
