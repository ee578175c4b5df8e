"""A background training queue: jobs are folders, one worker process trains them one at a time.

    jobs dir (default: ``jobs/`` next to the DB, e.g. data/jobs/)
      worker.lock, worker.pid, worker.log     the single worker (an flock guards it)
      <job_id>/spec.json                      what to train + its state (replaced atomically)
      <job_id>/progress.json                  the latest progress of the running job (atomic)
      <job_id>/log.txt                        stdout + stderr of the job's process
      <job_id>/cancel                         the cancel flag
      <job_id>/claim                          created exclusively by whoever takes a queued job

States: queued -> running -> done | failed | cancelled (a queued job can go to cancelled).

``submit`` writes a queued job; ``ensure_worker`` starts ``python -m engine.jobs worker`` detached
if no worker holds the lock. The worker runs queued jobs FIFO, each in its own process
(``python -m engine.jobs run JOB_DIR``) whose output goes to log.txt: a crash or a cancel
(SIGTERM, turned into KeyboardInterrupt so train_run marks its run failed) never takes the
worker down, and the run is written to the DB in one transaction only when it is complete.
The worker leaves once the queue has been empty for a few seconds.

This module does not import torch at import time (the explorer imports it).
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import traceback
import uuid
from datetime import datetime, timezone
from pathlib import Path

from engine.errors import UserError
from engine.store import REPO, pid_alive, resolve_db_path

STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE = ("queued", "running")
IDLE_EXIT_S = 5.0
POLL_S = 0.5
DATASET_KIND = {"fashion-mnist": "image", "cifar10": "image", "rt-polarity": "text", "sst2": "text"}


def default_jobs_dir(db: str | os.PathLike | None = None) -> Path:
    """$SIDENETS_JOBS, else jobs/ next to the DB."""
    env = os.environ.get("SIDENETS_JOBS")
    return Path(env) if env else resolve_db_path(db).parent / "jobs"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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


def device_name() -> str:
    """The device a job trains on: 'cuda (<GPU name>)' when torch sees a GPU, else 'cpu'."""
    import torch

    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return "cpu"


def progress_fraction(progress: dict | None) -> float:
    """Overall fraction done of a job from its progress dict (seeds x epochs x steps)."""
    if not progress:
        return 0.0
    if progress.get("phase") == "finished":
        return 1.0
    n_seeds = max(int(progress.get("n_seeds") or 1), 1)
    seed_i = int(progress.get("seed_index") or 0)
    epochs, steps = progress.get("epochs"), progress.get("steps")
    within = 0.0
    if epochs and steps:
        within = ((int(progress.get("epoch", 1)) - 1) + int(progress.get("step", 0)) / int(steps)) / int(epochs)
    return max(0.0, min(1.0, (seed_i + within) / n_seeds))


def parse_seeds(text: str) -> list[int]:
    """'0 1 2' or '0, 1, 2' or '0-4' -> [0, 1, 2(, 3, 4)]; UserError on anything else."""
    seeds: list[int] = []
    for part in text.replace(",", " ").split():
        try:
            if "-" in part.strip("-"):
                lo, hi = part.split("-", 1)
                seeds += list(range(int(lo), int(hi) + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise UserError(f"seeds must be integers like '0 1 2' or '0-4', got {part!r}") from None
    if not seeds:
        raise UserError("give at least one seed, e.g. 0 or '0 1 2'")
    if len(seeds) > 50:
        raise UserError("at most 50 seeds per job")
    return list(dict.fromkeys(seeds))


def progress_text(progress: dict | None) -> str:
    """One line for a progress bar: 'seed 2/3 (seed 1) - epoch 1/2 - step 25/47 - loss 0.53 - about 40 s left'."""
    if not progress:
        return "waiting to start"
    parts = []
    if progress.get("n_seeds", 1) > 1 and progress.get("seed") is not None:
        parts.append(f"run {min(progress.get('seed_index', 0) + 1, progress['n_seeds'])}/{progress['n_seeds']} "
                     f"(seed {progress['seed']})")
    phase = progress.get("phase")
    if phase == "loading":
        parts.append("loading data and model")
    elif phase == "finished":
        parts.append("finished")
    elif progress.get("epochs"):
        parts.append(f"epoch {progress.get('epoch')}/{progress['epochs']}")
        if progress.get("steps"):
            parts.append(f"step {progress.get('step')}/{progress['steps']}")
        if progress.get("loss") is not None:
            parts.append(f"loss {progress['loss']:.4f}")
        if progress.get("eta_s") is not None:
            parts.append(f"about {progress['eta_s']:.0f} s left in this epoch")
    return " · ".join(parts) or "starting"


class JobQueue:
    """The jobs folder of one DB. Every method is safe to call from the app at any time."""

    def __init__(self, jobs_dir: str | os.PathLike | None = None, db: str | os.PathLike | None = None):
        self.db = resolve_db_path(db)
        self.dir = Path(jobs_dir) if jobs_dir else default_jobs_dir(self.db)

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
                                           "db": str(self.db), "state": "queued", "submitted_at": _now(),
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
        (self.dir / job_id / "cancel").write_text(_now())
        if spec["state"] == "queued" and self._claim(job_id):
            self._update(job_id, state="cancelled", error="cancelled before it started", finished_at=_now())
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
                                 "--db", str(self.db)], cwd=str(REPO), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, env=_child_env())
        log.close()
        (self.dir / "worker.pid").write_text(str(proc.pid))  # "starting" until it holds the lock
        return True

    def _next_queued(self) -> str | None:
        for j in self.jobs():
            if j["state"] == "queued" and not (self.dir / j["job_id"] / "claim").exists():
                return j["job_id"]
        return None

    def work(self, idle_exit_s: float = IDLE_EXIT_S) -> int:
        """The worker loop (one per jobs dir): run queued jobs FIFO; leave when idle. Returns #jobs run."""
        self.dir.mkdir(parents=True, exist_ok=True)
        lock = open(self.lock_path, "a+")
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
                if self._claim(job_id):
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
            self._update(job_id, state="cancelled", error="cancelled before it started", finished_at=_now())
            return
        spec = self._update(job_id, state="running", started_at=_now())
        with open(job_dir / "log.txt", "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "engine.jobs", "run", str(job_dir),
                                     "--db", spec.get("db") or str(self.db)], cwd=str(REPO),
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=_child_env())
            self._update(job_id, pid=proc.pid)
            if (job_dir / "cancel").exists():  # cancelled while starting
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
            code = proc.wait()
        spec = read_json(job_dir / "spec.json") or {}
        if spec.get("state") == "running":  # the job's process died without recording an outcome
            cancelled = (job_dir / "cancel").exists()
            self._update(job_id, state="cancelled" if cancelled else "failed", finished_at=_now(),
                         error="cancelled" if cancelled else f"the job's process exited with code {code} "
                                                             "without a result (see its log)")


def _child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


# -- the job's own process ---------------------------------------------------------------------
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
                "updated_at": _now(), "run_ids": run_ids}
        write_json(job_dir / "progress.json", data)

    try:
        progress({}, phase="loading")
        from engine.config import TrainConfig
        from engine.store import Store
        from engine.train import train_run

        device = device_name()
        print(f"job {job_id}: {spec.get('label')}, seeds {seeds}, device {device}, db {queue.db}", flush=True)
        queue._update(job_id, device=device)
        config = {k: v for k, v in spec["config"].items() if k != "seeds"}
        try:
            cfg = TrainConfig(**config, seeds=list(seeds))
        except TypeError as err:
            raise UserError(f"bad training config: {err}") from err
        cfg = cfg.resolved()
        store = Store(queue.db)
        for i, seed in enumerate(seeds):
            progress({}, i, seed, phase="loading")
            print(f"[{i + 1}/{len(seeds)}] training {cfg.model} on {cfg.dataset} ({cfg.mode}, seed {seed})", flush=True)
            run_ids.append(train_run(cfg, seed, store, progress=lambda info, i=i, s=seed: progress(info, i, s)))
            queue._update(job_id, run_ids=list(run_ids))
        progress({}, len(seeds), None, phase="finished")
        queue._update(job_id, state="done", finished_at=_now(), run_ids=run_ids)
        print(f"job {job_id}: done, runs {', '.join(run_ids)}", flush=True)
        return 0
    except KeyboardInterrupt as err:
        cancelled = (job_dir / "cancel").exists()
        queue._update(job_id, state="cancelled" if cancelled else "failed", finished_at=_now(), run_ids=run_ids,
                      error="cancelled" if cancelled else f"interrupted: {err}")
        print(f"job {job_id}: {'cancelled' if cancelled else 'interrupted'}", flush=True)
        return 130
    except UserError as err:
        queue._update(job_id, state="failed", finished_at=_now(), run_ids=run_ids, error=str(err))
        print(f"error: {err}", flush=True)
        return 2
    except BaseException as err:  # noqa: BLE001  a crash: record it, print the traceback to the log
        traceback.print_exc()
        queue._update(job_id, state="failed", finished_at=_now(), run_ids=run_ids,
                      error=f"{err.__class__.__name__}: {err}")
        return 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.jobs", description="The background training queue.")
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker", help="run queued jobs one at a time; exit when the queue stays empty")
    w.add_argument("--jobs-dir"), w.add_argument("--db"), w.add_argument("--idle-exit-s", type=float, default=IDLE_EXIT_S)
    r = sub.add_parser("run", help="run one job (the worker calls this)")
    r.add_argument("job_dir"), r.add_argument("--db")
    s = sub.add_parser("submit", help="queue a preset (one job per configuration) and start a worker")
    s.add_argument("--preset", required=True), s.add_argument("--jobs-dir"), s.add_argument("--db")
    s.add_argument("--seeds", nargs="+", type=int)
    ls = sub.add_parser("list", help="list jobs")
    ls.add_argument("--jobs-dir"), ls.add_argument("--db")
    c = sub.add_parser("cancel", help="cancel a job")
    c.add_argument("job_id"), c.add_argument("--jobs-dir"), c.add_argument("--db")
    args = p.parse_args(argv)
    try:
        if args.command == "run":
            return run_job(args.job_dir, args.db)
        queue = JobQueue(args.jobs_dir, args.db)
        if args.command == "worker":
            signal.signal(signal.SIGTERM, _terminate)
            n = queue.work(args.idle_exit_s)
            print(f"worker {os.getpid()}: ran {n} job(s); queue empty, leaving", flush=True)
        elif args.command == "submit":
            from engine.config import preset

            for cfg in preset(args.preset):
                print(queue.submit(cfg.to_dict(), args.seeds or cfg.seeds, label=f"{args.preset}: {cfg.model} on {cfg.dataset}"))
            queue.ensure_worker()
        elif args.command == "list":
            for j in queue.jobs():
                print(f"{j['job_id']}  {j['state']:<9} {j['fraction']:>5.0%}  {j['label']}  {j.get('error') or ''}")
        elif args.command == "cancel":
            print(queue.cancel(args.job_id))
        return 0
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
