"""The on-disk job queue: one folder per job, states changed atomically, one worker process.

    jobs dir (default: jobs/ next to the DB, or $SIDENETS_JOBS)
      worker.lock, worker.pid, worker.log     the single worker (an flock guards it)
      <job_id>/spec.json                      what to train + its state (replaced atomically)
      <job_id>/progress.json                  the latest progress of the running job (atomic)
      <job_id>/log.txt                        stdout + stderr of the job's process
      <job_id>/cancel                         the cancel flag
      <job_id>/claim                          created exclusively by whoever takes a queued job

States: queued -> running -> done | failed | cancelled (a queued job can go to cancelled).
`submit` writes a queued job; `ensure_worker` starts the worker (engine.jobs.worker) detached if
none holds the lock. This module does not import torch (the explorer imports it).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from engine import paths
from engine.errors import UserError
from engine.jobs.progress import progress_fraction
from engine.store import pid_alive

STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE = ("queued", "running")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_json(path: Path, data: dict) -> None:
    """Atomic: write a temporary file beside it, then os.replace (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


class JobQueue:
    """The jobs folder of one DB. Every method is safe to call from the app at any time."""

    def __init__(self, jobs_dir: str | os.PathLike | None = None, db: str | os.PathLike | None = None):
        self.db = paths.db_path(db)
        self.dir = Path(jobs_dir).absolute() if jobs_dir else paths.jobs_dir(self.db)

    # -- submitting and reading -----------------------------------------------------------
    def submit(self, config: dict, seeds: list[int] | None = None, label: str | None = None) -> str:
        """Queue one job: a TrainConfig dict and the seeds to train (one run each). Returns its id.

        The config is validated in the job's process (a bad one ends 'failed' with the message).
        """
        config = dict(config)
        seeds = [int(s) for s in (seeds if seeds is not None else config.get("seeds") or [0])]
        if not seeds:
            raise UserError("give at least one seed")
        config["seeds"] = seeds
        self.dir.mkdir(parents=True, exist_ok=True)
        job_id = f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        job_dir = self.dir / job_id
        job_dir.mkdir()
        label = label or f"{config.get('model', '?')} on {config.get('dataset', '?')} ({config.get('mode', 'joint')})"
        write_json(job_dir / "spec.json", {"job_id": job_id, "label": label, "config": config, "seeds": seeds,
                                           "db": str(self.db), "state": "queued", "submitted_at": now(),
                                           "submitted_ts": time.time(), "error": None, "run_ids": []})
        return job_id

    def job(self, job_id: str) -> dict:
        """The job's spec (with its state), its progress dict and its overall fraction done."""
        spec = read_json(self.dir / job_id / "spec.json")
        if spec is None:
            raise UserError(f"no job {job_id!r} in {self.dir}")
        spec["progress"] = read_json(self.dir / job_id / "progress.json")
        spec["fraction"] = 1.0 if spec["state"] == "done" else progress_fraction(spec["progress"])
        spec["cancel_requested"] = (self.dir / job_id / "cancel").exists()
        if spec["state"] == "running" and not pid_alive(spec.get("pid")) and not self.worker_alive():
            spec["state"], spec["error"] = "failed", spec.get("error") or "the job's process ended without a result"
        return spec

    def jobs(self) -> list[dict]:
        """All jobs, oldest first (the queue order)."""
        if not self.dir.exists():
            return []
        out = []
        for d in self.dir.iterdir():
            if d.is_dir() and (d / "spec.json").exists():
                with contextlib.suppress(UserError):
                    out.append(self.job(d.name))
        return sorted(out, key=lambda j: (j.get("submitted_ts", 0), j["job_id"]))

    def log(self, job_id: str, max_chars: int = 20_000) -> str:
        """The tail of the job's log, with progress-bar carriage returns turned into lines."""
        path = self.dir / job_id / "log.txt"
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - max_chars * 4))
                text = f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        lines = [ln for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if ln.strip()]
        # tqdm rewrites one line many times: keep only the last of consecutive bar updates of the same bar
        kept: list[str] = []
        for ln in lines:
            if kept and "|" in ln and "|" in kept[-1] and ln.split(":")[0] == kept[-1].split(":")[0]:
                kept[-1] = ln
            else:
                kept.append(ln)
        return "\n".join(kept)[-max_chars:]

    # -- state changes ----------------------------------------------------------------------
    def _update(self, job_id: str, **changes) -> dict:
        path = self.dir / job_id / "spec.json"
        spec = read_json(path) or {}
        spec.update(changes)
        write_json(path, spec)
        return spec

    def _claim(self, job_id: str) -> bool:
        """Whoever creates <job>/claim first owns the queued job (the worker, or a cancel)."""
        try:
            fd = os.open(self.dir / job_id / "claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return True

    def cancel(self, job_id: str) -> str:
        """Cancel a queued or running job; returns the state it is in (or going to)."""
        spec = self.job(job_id)
        if spec["state"] not in ACTIVE:
            return spec["state"]
        (self.dir / job_id / "cancel").write_text(now())
        if spec["state"] == "queued" and self._claim(job_id):
            self._update(job_id, state="cancelled", error="cancelled before it started", finished_at=now())
            return "cancelled"
        # running (or just claimed by the worker): stop its process; it records itself as cancelled
        for _ in range(50):
            spec = self.job(job_id)
            if spec.get("pid") or spec["state"] not in ACTIVE:
                break
            time.sleep(0.1)  # the worker is starting the process right now
        pid = spec.get("pid")
        if spec["state"] == "running" and pid and pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)
        return "cancelled"

    def clear_finished(self) -> int:
        """Remove the folders of finished jobs (done / failed / cancelled); returns how many."""
        import shutil

        n = 0
        for j in self.jobs():
            if j["state"] not in ACTIVE:
                shutil.rmtree(self.dir / j["job_id"], ignore_errors=True)
                n += 1
        return n

    # -- the worker -------------------------------------------------------------------------
    @property
    def lock_path(self) -> Path:
        return self.dir / "worker.lock"

    def worker_alive(self) -> bool:
        """True when a worker process holds the lock, or one was just started and is still starting."""
        if self.lock_path.exists():
            with open(self.lock_path, "a+") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
                fcntl.flock(f, fcntl.LOCK_UN)
        pid_file = self.dir / "worker.pid"
        try:
            starting = time.time() - pid_file.stat().st_mtime < 60 and pid_alive(int(pid_file.read_text()))
        except (OSError, ValueError):
            starting = False
        return starting

    def ensure_worker(self) -> bool:
        """Start a detached worker unless one is alive; True if one was started."""
        if self.worker_alive():
            return False
        self.dir.mkdir(parents=True, exist_ok=True)
        log = open(self.dir / "worker.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "engine.jobs", "worker", "--jobs-dir", str(self.dir),
                                 "--db", str(self.db)], cwd=str(paths.REPO), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, env=child_env())
        log.close()
        (self.dir / "worker.pid").write_text(str(proc.pid))  # "starting" until it holds the lock
        return True


def child_env() -> dict:
    """The environment of the worker and job processes (unbuffered output for the logs)."""
    return {**os.environ, "PYTHONUNBUFFERED": "1"}
