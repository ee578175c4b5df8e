"""The worker: runs queued jobs FIFO, each in its own process, and the job process itself.

`python -m engine.jobs worker` loops over the queue (one worker per jobs folder, guarded by an
flock) and starts `python -m engine.jobs run JOB_DIR` per job, whose output goes to log.txt: a
crash or a cancel (SIGTERM, turned into KeyboardInterrupt so the run is recorded as failed)
never takes the worker down, and a run reaches the DB in one transaction only when complete.
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

from engine import paths
from engine.errors import UserError
from engine.jobs.queue import JobQueue, child_env, now, read_json, write_json

IDLE_EXIT_S = 5.0
POLL_S = 0.5


class Worker:
    """The worker loop of one jobs folder."""

    def __init__(self, queue: JobQueue):
        self.queue = queue
        self.dir = queue.dir

    def _next_queued(self) -> str | None:
        for j in self.queue.jobs():
            if j["state"] == "queued" and not (self.dir / j["job_id"] / "claim").exists():
                return j["job_id"]
        return None

    def work(self, idle_exit_s: float = IDLE_EXIT_S) -> int:
        """The worker loop (one per jobs dir): run queued jobs FIFO; leave when idle. Returns #jobs run."""
        self.dir.mkdir(parents=True, exist_ok=True)
        lock = open(self.queue.lock_path, "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            return 0  # another worker is alive
        (self.dir / "worker.pid").write_text(str(os.getpid()))
        ran, idle_since = 0, time.monotonic()
        try:
            while True:
                job_id = self._next_queued()
                if job_id is None:
                    if time.monotonic() - idle_since > idle_exit_s:
                        return ran
                    time.sleep(POLL_S)
                    continue
                if self.queue._claim(job_id):
                    self._run_one(job_id)
                    ran += 1
                idle_since = time.monotonic()
        finally:
            with contextlib.suppress(FileNotFoundError):
                (self.dir / "worker.pid").unlink()
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()

    def _run_one(self, job_id: str) -> None:
        job_dir = self.dir / job_id
        if (job_dir / "cancel").exists():
            self.queue._update(job_id, state="cancelled", error="cancelled before it started", finished_at=now())
            return
        spec = self.queue._update(job_id, state="running", started_at=now())
        with open(job_dir / "log.txt", "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "engine.jobs", "run", str(job_dir),
                                     "--db", str(self.queue.db)], cwd=str(paths.REPO),
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=child_env())
            self.queue._update(job_id, pid=proc.pid)
            if (job_dir / "cancel").exists():  # cancelled while starting
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
            code = proc.wait()
        spec = read_json(job_dir / "spec.json") or {}
        if spec.get("state") == "running":  # the job's process died without recording an outcome
            cancelled = (job_dir / "cancel").exists()
            self.queue._update(job_id, state="cancelled" if cancelled else "failed", finished_at=now(),
                         error="cancelled" if cancelled else f"the job's process exited with code {code} "
                                                             "without a result (see its log)")


def _terminate(signum, _frame):
    raise KeyboardInterrupt(f"stopped by signal {signum}")


def run_job(job_dir: str | os.PathLike, db: str | os.PathLike | None = None) -> int:
    """Train one job's seeds (in this process) and record its outcome in spec.json."""
    signal.signal(signal.SIGTERM, _terminate)
    job_dir = Path(job_dir)
    queue = JobQueue(job_dir.parent, db)
    job_id = job_dir.name
    spec = read_json(job_dir / "spec.json")
    if spec is None:
        print(f"error: no job at {job_dir}", file=sys.stderr)
        return 2
    run_ids: list[str] = []
    seeds = spec.get("seeds") or [0]

    def progress(info: dict, seed_index: int = 0, seed=None, phase: str = "training") -> None:
        data = {**info, "phase": phase, "seed": seed, "seed_index": seed_index, "n_seeds": len(seeds),
                "updated_at": now(), "run_ids": run_ids}
        write_json(job_dir / "progress.json", data)

    try:
        progress({}, phase="loading")
        from engine.config import TrainConfig
        from engine.runtime.device import device_label
        from engine.store import Store
        from engine.train import train_run

        device = device_label()
        print(f"job {job_id}: {spec.get('label')}, seeds {seeds}, device {device}, db {queue.db}", flush=True)
        queue._update(job_id, device=device)
        config = {k: v for k, v in spec["config"].items() if k != "seeds"}
        cfg = TrainConfig.from_dict({**config, "seeds": list(seeds)}, where=f"job {job_id}").resolved()
        store = Store(queue.db)
        for i, seed in enumerate(seeds):
            progress({}, i, seed, phase="loading")
            print(f"[{i + 1}/{len(seeds)}] training {cfg.model} on {cfg.dataset} ({cfg.mode}, seed {seed})", flush=True)
            run_ids.append(train_run(cfg, seed, store, progress=lambda info, i=i, s=seed: progress(info, i, s)))
            queue._update(job_id, run_ids=list(run_ids))
        progress({}, len(seeds), None, phase="finished")
        queue._update(job_id, state="done", finished_at=now(), run_ids=run_ids)
        print(f"job {job_id}: done, runs {', '.join(run_ids)}", flush=True)
        return 0
    except KeyboardInterrupt as err:
        cancelled = (job_dir / "cancel").exists()
        queue._update(job_id, state="cancelled" if cancelled else "failed", finished_at=now(), run_ids=run_ids,
                      error="cancelled" if cancelled else f"interrupted: {err}")
        print(f"job {job_id}: {'cancelled' if cancelled else 'interrupted'}", flush=True)
        return 130
    except UserError as err:
        queue._update(job_id, state="failed", finished_at=now(), run_ids=run_ids, error=str(err))
        print(f"error: {err}", flush=True)
        return 2
    except BaseException as err:  # noqa: BLE001  a crash: record it, print the traceback to the log
        traceback.print_exc()
        queue._update(job_id, state="failed", finished_at=now(), run_ids=run_ids,
                      error=f"{err.__class__.__name__}: {err}")
        return 1


