"""The on-disk job queue: one folder per job, explicit state transitions, one worker process.

    jobs dir (default: jobs/ next to the DB, or $SIDENETS_JOBS)
      worker.lock, worker.log                 the single worker (an flock guards it)
      worker.json, worker.pid                 its identity (pid + start time), and its pid alone (for scripts)
      <job_id>/spec.json                      what to train + its state (replaced atomically)
      <job_id>/progress.json                  the latest progress of the running job (atomic)
      <job_id>/log.txt                        stdout + stderr of the job's process
      <job_id>/cancel                         the cancel flag
      <job_id>/.lock                          an flock held while the state changes

The folders are untrusted: a job's id is its folder's name (never a field of spec.json), every
path written or deleted is checked to lie inside the jobs folder, links are never followed, and
a job whose files are unreadable or malformed is listed as "broken" with the reason. Any reader
records a job whose process and worker are both gone as failed (for good), and starts a worker
when queued jobs wait and none is alive. This module does not import torch (the app imports it).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from engine import paths, procs
from engine.errors import UserError
from engine.faults import point
from engine.jobs.files import inside, load_json, open_write, read_json, valid_job_id, write_json, write_text
from engine.jobs.progress import MAX_SEEDS, progress_fraction, progress_problem

STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")
BROKEN = "broken"  # not a state on disk: a job folder that cannot be read
TRANSITIONS = {"queued": ("running", "cancelled"), "running": ("done", "failed", "cancelled"),
               "done": (), "failed": (), "cancelled": ()}
STARTING_S = 60.0  # a worker just spawned counts as alive this long before it holds the lock
STALE_S = 60.0  # a half-submitted folder older than this is debris
_STR = ("label", "error", "device", "submitted_at", "started_at", "finished_at", "db")
_INT = ("pid", "pid_start")
_DERIVED = ("job_id", "progress", "fraction", "live", "cancel_requested")  # never taken from spec.json

__all__ = ["ACTIVE", "BROKEN", "FINISHED", "STATES", "TRANSITIONS", "JobQueue", "child_env", "now", "read_json",
           "write_json"]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def spec_problem(spec) -> str | None:
    """Why a spec.json value is not a usable job, or None."""
    if not isinstance(spec, dict):
        return f"spec.json holds {type(spec).__name__}, not an object"
    if "state" not in spec:
        return "spec.json has no state"
    if spec["state"] not in STATES:
        return f"spec.json has an unknown state {str(spec['state'])[:40]!r}"
    bad = next((k for k in _STR if spec.get(k) is not None and not isinstance(spec[k], str)), None)
    bad = bad or next((k for k in _INT if spec.get(k) is not None and (isinstance(spec[k], bool)
                                                                       or not isinstance(spec[k], int))), None)
    if bad:
        return f"spec.json: {bad} has the wrong type ({type(spec[bad]).__name__})"
    if not isinstance(spec.get("config"), dict):
        return "spec.json: config is not an object"
    seeds = spec.get("seeds")
    if (not isinstance(seeds, list) or not 0 < len(seeds) <= MAX_SEEDS
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        return "spec.json: seeds is not a list of integers"
    if not isinstance(spec.get("run_ids", []), list) or not all(isinstance(r, str) for r in spec.get("run_ids", [])):
        return "spec.json: run_ids is not a list of strings"
    worker = spec.get("worker")
    if worker is not None and (not isinstance(worker, dict) or any(
            v is not None and (isinstance(v, bool) or not isinstance(v, int)) for v in worker.values())):
        return "spec.json: worker is not a {pid, start} object"
    if spec.get("submitted_ts") is not None and not isinstance(spec["submitted_ts"], (int, float)):
        return "spec.json: submitted_ts is not a number"
    return None


class JobQueue:
    """The jobs folder of one DB. Every method is safe to call from the app at any time.

    revive: reading the queue starts a worker when queued jobs wait and none is alive."""

    def __init__(self, jobs_dir: str | os.PathLike | None = None, db: str | os.PathLike | None = None,
                 revive: bool = True):
        self.db = paths.db_path(db)
        self.dir = Path(jobs_dir).expanduser().absolute() if jobs_dir else paths.jobs_dir(self.db)
        self.revive = revive
        self.problem: str | None = None  # why the last attempt to start a worker failed

    # -- paths ----------------------------------------------------------------------------
    def _job_dir(self, job_id) -> Path:
        if not valid_job_id(job_id):
            raise UserError(f"invalid job id {str(job_id)[:60]!r} (letters, digits, '.', '_', '-')")
        return self.dir / job_id

    def _is_dir(self) -> bool:
        """Whether the jobs folder exists; UserError when something else is in its place."""
        if os.path.lexists(self.dir) and not self.dir.is_dir():
            raise UserError(f"the jobs folder {self.dir} is not a folder")
        return self.dir.is_dir()

    def _mkdir(self) -> None:
        if self.dir.exists() and not self.dir.is_dir():
            raise UserError(f"the jobs folder {self.dir} is not a folder")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot create the jobs folder {self.dir}: {err.strerror or err}") from None

    # -- submitting and reading -----------------------------------------------------------
    def submit(self, config: dict, seeds: list[int] | None = None, label: str | None = None) -> str:
        """Queue one job: a TrainConfig dict and the seeds to train (one run each). Returns its id.

        The config is validated in the job's process (a bad one ends 'failed' with the message).
        """
        if not isinstance(config, dict):
            raise UserError(f"a job's config must be a table of TrainConfig fields, got {type(config).__name__}")
        config = dict(config)
        try:
            seeds = [int(s) for s in (seeds if seeds is not None else config.get("seeds") or [0])]
        except (TypeError, ValueError):
            raise UserError(f"seeds must be integers, got {seeds!r}") from None
        if not 0 < len(seeds) <= MAX_SEEDS:
            raise UserError(f"give 1 to {MAX_SEEDS} seeds")
        config["seeds"] = seeds
        label = str(label or f"{config.get('model', '?')} on {config.get('dataset', '?')} "
                             f"({config.get('mode', 'joint')})")[:300]
        self._mkdir()
        job_id = f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        staging = inside(self.dir, self.dir / f".submit-{job_id}")  # appears whole, by one rename
        staging.mkdir()
        write_json(staging / "spec.json", {"job_id": job_id, "label": label, "config": config, "seeds": seeds,
                                           "db": str(self.db), "state": "queued", "submitted_at": now(),
                                           "submitted_ts": time.time(), "error": None, "run_ids": []})
        point("queue:submit-half")
        os.rename(staging, inside(self.dir, self.dir / job_id))
        return job_id

    def _read(self, job_id: str) -> dict:
        """The job as the UI shows it: its spec (or 'broken' and why), progress and fraction done."""
        d = self.dir / job_id
        try:
            ts = d.lstat().st_mtime
        except OSError:
            ts = 0.0
        job = {"job_id": job_id, "label": job_id, "seeds": [], "config": {}, "run_ids": [], "error": None,
               "progress": None, "fraction": 0.0, "submitted_at": "", "submitted_ts": ts, "device": None,
               "cancel_requested": os.path.lexists(d / "cancel"), "live": False}
        if d.is_symlink():
            return {**job, "state": BROKEN, "error": "the job folder is a symbolic link"}
        spec, problem = load_json(d / "spec.json")
        problem = problem or spec_problem(spec)
        if problem:
            label = spec.get("label") if isinstance(spec, dict) and isinstance(spec.get("label"), str) else job_id
            return {**job, "label": label, "state": BROKEN, "error": problem}
        job.update({k: v for k, v in spec.items() if k not in _DERIVED})
        job["submitted_ts"] = ts if spec.get("submitted_ts") is None else spec["submitted_ts"]
        job["live"] = job["state"] == "running" and procs.alive(job.get("pid"), job.get("pid_start"))
        progress, problem = load_json(d / "progress.json")
        if problem == "no progress.json":
            progress, problem = None, None
        problem = problem or (progress_problem(progress) if progress is not None else None)
        if problem:
            return {**job, "state": BROKEN, "error": problem}
        job["progress"] = progress
        job["fraction"] = 1.0 if job["state"] == "done" else progress_fraction(progress)
        return job

    def _reconcile(self, job: dict) -> dict:
        """A running job whose process and worker are both gone becomes failed, for good."""
        if job["state"] != "running" or job["live"]:
            return job
        worker = job.get("worker") or {}
        if worker and procs.alive(worker.get("pid"), worker.get("start")):
            return job  # its worker is alive: it records the outcome itself
        if not worker and not job.get("pid") and self.worker_alive():
            return job  # an older spec without the worker's identity, still starting
        error = ("the job's process and its worker ended without recording a result (killed?)" if job.get("pid")
                 else "the job's worker ended before it recorded the job's process (killed?)")
        with contextlib.suppress(UserError):
            self._transition(job["job_id"], "failed", only_from=("running",), error=error, finished_at=now())
        return self._read(job["job_id"])

    def job(self, job_id: str) -> dict:
        """One job: its spec (with its state, or 'broken' and why), its progress and its fraction done."""
        d = self._job_dir(job_id)
        if not self._is_dir() or not (d.is_dir() or d.is_symlink()):
            raise UserError(f"no job {job_id!r} in {self.dir}")
        job = self._reconcile(self._read(job_id))
        self._revive([job])
        return job

    def jobs(self) -> list[dict]:
        """All jobs, oldest first (the queue order); broken ones included."""
        if not self._is_dir():
            return []
        try:
            names = sorted(e.name for e in os.scandir(self.dir)
                           if valid_job_id(e.name) and (e.is_dir() or e.is_symlink()))
        except OSError as err:
            raise UserError(f"cannot list the jobs folder {self.dir}: {err.strerror or err}") from None
        out = [self._reconcile(self._read(name)) for name in names]
        self._revive(out)
        return sorted(out, key=lambda j: (j["submitted_ts"] if isinstance(j["submitted_ts"], (int, float))
                                          else 0, j["job_id"]))

    def log(self, job_id: str, max_chars: int = 20_000) -> str:
        """The tail of the job's log, with progress-bar carriage returns turned into lines."""
        path = self._job_dir(job_id) / "log.txt"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return ""
        except OSError as err:
            return f"(the log cannot be read: {err.strerror or err})"
        with os.fdopen(fd, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - max_chars * 4))
            text = f.read(max_chars * 4).decode("utf-8", errors="replace")
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
    @contextlib.contextmanager
    def _locked(self, job_id: str):
        fd = open_write(inside(self.dir, self._job_dir(job_id) / ".lock"), append=True)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _transition(self, job_id: str, to: str, only_from: tuple[str, ...] = STATES, **fields) -> bool:
        """Move a job to state `to` if TRANSITIONS allows it from its current state (and that state is
        in `only_from`), under the job's lock; False when refused."""
        path = inside(self.dir, self._job_dir(job_id) / "spec.json")
        with self._locked(job_id):
            spec, problem = load_json(path)
            if problem or spec_problem(spec) or spec["state"] not in only_from or to not in TRANSITIONS[spec["state"]]:
                return False
            write_json(path, {**spec, **fields, "state": to})
        return True

    def _update(self, job_id: str, **fields) -> bool:
        """Change fields other than the state (the state changes only through _transition)."""
        if "state" in fields:
            raise ValueError("change a job's state with _transition")
        path = inside(self.dir, self._job_dir(job_id) / "spec.json")
        with self._locked(job_id):
            spec, problem = load_json(path)
            if problem or spec_problem(spec):
                return False
            write_json(path, {**spec, **fields})
        return True

    def cancel(self, job_id: str) -> str:
        """Cancel a queued or running job; returns the state it is in (or going to)."""
        job = self.job(job_id)
        if job["state"] == BROKEN:
            raise UserError(f"job {job_id} is broken ({job['error']}); Clear removes it")
        if job["state"] not in ACTIVE:
            return job["state"]
        write_text(inside(self.dir, self._job_dir(job_id) / "cancel"), now())
        point("queue:cancel-flagged")
        if self._transition(job_id, "cancelled", only_from=("queued",), error="cancelled before it started",
                            finished_at=now()):
            return "cancelled"  # it was still queued
        for _ in range(50):  # running: the worker may be starting its process right now
            job = self.job(job_id)
            if job.get("pid") or job["state"] != "running":
                break
            time.sleep(0.1)
        if job["state"] == "running" and procs.alive(job.get("pid"), job.get("pid_start")):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(job["pid"]), signal.SIGTERM)  # it records itself as cancelled
            return "cancelled"
        return job["state"] if job["state"] != "running" else "cancelled"

    def clear_finished(self) -> int:
        """Remove the folders of finished and broken jobs (not one whose process runs); returns how many."""
        n = 0
        for job in self.jobs():
            if job["state"] in FINISHED or (job["state"] == BROKEN and not job["live"]):
                self._remove(job["job_id"])
                n += 1
                point("queue:clearing")
        with contextlib.suppress(OSError):
            for e in os.scandir(self.dir):
                if e.name.startswith(".submit-") and time.time() - e.stat(follow_symlinks=False).st_mtime > STALE_S:
                    self._remove(e.name)
        return n

    def _remove(self, name: str) -> None:
        path = inside(self.dir, self.dir / name)  # the folder's own name: never a path read from a file
        if path.is_symlink():
            path.unlink()  # the link only, never what it points to
        elif path.is_dir():
            shutil.rmtree(path, ignore_errors=True)

    # -- the worker -------------------------------------------------------------------------
    @property
    def lock_path(self) -> Path:
        return self.dir / "worker.lock"

    def _lock_held(self) -> bool:
        """Whether a worker holds worker.lock (never creates the file)."""
        try:
            fd = os.open(inside(self.dir, self.lock_path), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return False  # no worker ever ran here
        except OSError as err:
            raise UserError(f"cannot check the worker: {self.lock_path} {err.strerror or err}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing releases a lock taken here
        return False

    def worker_alive(self, strict: bool = False) -> bool:
        """True when a worker holds the lock, or one was just spawned and is alive (pid and start time).
        A worker.lock that cannot be checked: False and `problem` says why (strict: UserError)."""
        if not self.dir.is_dir():
            return False
        try:
            if self._lock_held():
                return True
        except UserError as err:
            if strict:
                raise
            self.problem = str(err)
            return False
        info = read_json(self.dir / "worker.json") or {}
        spawned = info.get("spawned_at")
        return (isinstance(spawned, (int, float)) and time.time() - spawned < STARTING_S
                and procs.alive(info.get("pid"), info.get("start")))

    def ensure_worker(self) -> bool:
        """Start a detached worker unless one is alive; True if one was started."""
        if self.worker_alive(strict=True):
            return False
        self._mkdir()
        log = open_write(inside(self.dir, self.dir / "worker.log"), append=True)
        try:
            proc = subprocess.Popen([sys.executable, "-m", "engine.jobs", "worker", "--jobs-dir", str(self.dir),
                                     "--db", str(self.db)], cwd=str(paths.REPO), stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=child_env())
        finally:
            os.close(log)
        write_identity(self.dir, {**procs.identity(proc.pid), "spawned_at": time.time()})
        return True

    def _revive(self, jobs: list[dict]) -> None:
        """Start a worker if a queued job waits and none is alive (a killed worker leaves none)."""
        if not self.revive or not any(j["state"] == "queued" for j in jobs):
            return
        try:
            self.ensure_worker()
            self.problem = None
        except (OSError, UserError) as err:
            self.problem = f"cannot start a worker: {err}"


def write_identity(jobs_dir: Path, identity: dict) -> None:
    """worker.json (pid, start time: what liveness checks read) and worker.pid (the pid alone)."""
    write_json(inside(jobs_dir, jobs_dir / "worker.json"), identity)
    write_json(inside(jobs_dir, jobs_dir / "worker.pid"), identity["pid"])


def child_env() -> dict:
    """The environment of the worker and job processes (unbuffered output for the logs)."""
    return {**os.environ, "PYTHONUNBUFFERED": "1"}
