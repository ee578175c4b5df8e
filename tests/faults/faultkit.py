"""Helpers of the fault-injection suite: the tally it prints, the sandbox a case runs in, the CLI
in-process and as a process (optionally SIGKILLed at a named fault point), tiny DBs and job folders."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DB_FILE_MESSAGES = {  # what the store says about a file that is not a current SideNets DB ({db}: its path)
    "text": "{db} is not a DuckDB database; give a SideNets .duckdb file (--db / SIDENETS_DB)",
    "sqlite": "{db} is a SQLite database; give a SideNets .duckdb file (--db / SIDENETS_DB)",
    "empty": 'cannot open {db} as a DuckDB database: IO Error: The file "{db}" exists, but it is not a valid DuckDB '
             "database file!",
    "truncated": 'cannot open {db} as a DuckDB database: IO Error: Could not read enough bytes from file "{db}": '
                 "attempted to read 3192 bytes from location 5000",
    "foreign": "{db} is a DuckDB file but not a SideNets database (no SideNets tables; its tables: people); give "
               "another --db / SIDENETS_DB",
    "newer": "{db} was written by a newer SideNets Explorer (schema 99; this one reads up to 2); upgrade this checkout",
    "bad-version": "{db} has an unreadable schema version 'abc'; it is not a SideNets database",
}
TRACEBACK = "Traceback (most recent call last)"
TALLY = {"cases": 0, "failed": 0, "tracebacks": 0, "silent": 0, "outside": 0, "kill_points": set()}
META = {"model": "resnet18", "dataset": "fashion-mnist", "mode": "joint", "seed": 0, "attach": ["layer1"],
        "config": {"epochs": 1}, "versions": {"torch": "x"}, "num_classes": 3, "class_names": ["a", "b", "c"]}
TINY = ["--model", "resnet18", "--dataset", "fashion-mnist", "--epochs", "1", "--limit", "16", "--batch-size", "8",
        "--device", "cpu"]  # a real training of a few seconds (if a bad value were accepted, this is what runs)


# -- what a case may change ------------------------------------------------------------------------
def snapshot(root: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple]:
    """{relative path: (kind, size, content hash)} of everything under root but the `skip` subtrees."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = [d for d in dirnames if str(rel_dir / d) not in skip]
        for name in filenames + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]:
            p = Path(dirpath) / name
            rel = str(rel_dir / name)
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_file():
                out[rel] = ("file", p.stat().st_size, hashlib.sha1(p.read_bytes()).hexdigest())
            else:
                out[rel] = ("other",)
        for d in dirnames:
            out.setdefault(str(rel_dir / d) + "/", ("dir",))
    return out


def changed(before: dict, after: dict) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


@dataclass
class Sandbox:
    """A case's world: data/ (the DB, its jobs/ and checkpoints/), inputs/ (files the case writes
    itself), outside/ (files nothing may touch)."""
    root: Path
    data: Path = field(init=False)
    inputs: Path = field(init=False)
    outside: Path = field(init=False)

    def __post_init__(self):
        self.data, self.inputs, self.outside = self.root / "data", self.root / "inputs", self.root / "outside"
        for d in (self.data, self.inputs, self.outside / "victim"):
            d.mkdir(parents=True)
        (self.outside / "canary.txt").write_text("nothing may write or delete me\n")
        (self.outside / "victim" / "important.duckdb").write_bytes(b"precious")

    @property
    def db(self) -> Path:
        return self.data / "sidenets.duckdb"

    @property
    def jobs(self) -> Path:
        return self.data / "jobs"

    def data_state(self) -> dict:
        return snapshot(self.data)


# -- running the CLI -------------------------------------------------------------------------------
@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def last_err(self) -> str:
        lines = self.err.strip().splitlines()
        return lines[-1] if lines else ""


def engine_cli(*argv: str) -> Result:
    """`python -m engine ARGV` in this process (argparse exits included)."""
    from engine.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exit_:
            rc = exit_.code if isinstance(exit_.code, int) else 1
    return Result(rc, out.getvalue(), err.getvalue())


def child_env(fault: str | None = None, **extra) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("SIDENETS_FAULT", None)
    if fault:
        env["SIDENETS_FAULT"] = fault
        TALLY["kill_points"].update(fault.split(","))
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(args: list, fault: str | None = None, timeout: float = 180, cwd=None, **env) -> Result:
    """A process `python ARGS` (e.g. ["-m", "engine", ...]) run to its end; SIGKILLed at `fault`."""
    proc = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd or REPO, env=child_env(fault, **env))
    return Result(proc.returncode, proc.stdout, proc.stderr)


def start(args: list, fault: str | None = None, cwd=None, **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=cwd or REPO, env=child_env(fault, **env))


def refused(result: Result, message: str, rc: int = 2) -> None:
    """The exact one-line refusal, no traceback, nothing printed on stdout (counted in the tally)."""
    if TRACEBACK in result.err + result.out:
        TALLY["tracebacks"] += 1
    elif result.rc == 0:
        TALLY["silent"] += 1
    assert TRACEBACK not in result.err + result.out, result.err
    assert (result.rc, result.last_err) == (rc, message), result.err
    assert result.out == "", result.out


def killed(result: Result) -> None:
    """A process that reached its fault point (SIGKILL), not one that failed before it."""
    assert result.rc == -9, f"rc {result.rc} (fault point not reached?)\n{result.err[-3000:]}"


def no_traceback(text: str) -> None:
    if TRACEBACK in text:
        TALLY["tracebacks"] += 1
    assert TRACEBACK not in text, text[-3000:]


def wait_for(predicate, timeout: float = 60, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# -- tiny DBs and job folders ----------------------------------------------------------------------
def payload(n: int = 8, c: int = 3):
    rng = np.random.default_rng(0)
    heads = {"main": rng.normal(size=(n, c)).astype(np.float32), "layer1": rng.normal(size=(n, c)).astype(np.float32)}
    samples = {"test": {"idx": np.arange(n), "label": rng.integers(0, c, n), "heads": heads}}
    costs = {"layer1": {p: {"params": 10, "macs": 20.0} for p in ("trunk", "sidenet", "rest", "full")}}
    epochs = [{"epoch": 1, "lr": 3e-4, "train_loss": 1.0, "val_loss": 0.9, "val_acc": {"main": 0.5}, "seconds": 1.0}]
    return {"samples": samples, "costs": costs, "epochs": epochs}


def complete_run(store, run_id: str | None = None, checkpoint: str | None = None, **meta) -> str:
    rid = store.start_run({**META, **meta, **({"run_id": run_id} if run_id else {})})
    store.finish_run(rid, wall_time_s=1.0, checkpoint=checkpoint, **payload())
    return rid


def counts(db: Path) -> dict[str, int]:
    """Rows per table of a SideNets DB (read-only, no Store)."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("runs", "epochs", "costs", "samples", "latency")}
    finally:
        con.close()


def statuses(db: Path) -> dict[str, str]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return dict(con.execute("SELECT run_id, status FROM runs").fetchall())
    finally:
        con.close()


def make_file(kind: str, path):
    """A file given as the DB that is not a (current) SideNets DB."""
    import duckdb

    from engine.store import Store, schema

    if kind == "text":
        path.write_text("this is not a database\n" * 20)
    elif kind == "sqlite":
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE runs (run_id TEXT)")
        con.commit()
        con.close()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind in ("truncated", "corrupt"):
        Store(path).migrate()
        data = bytearray(path.read_bytes())
        if kind == "truncated":
            data = data[:5000]
        else:
            data[4096:20000] = bytes(range(256)) * 62 + bytes(range(256))[:32]
        path.write_bytes(bytes(data))
    else:
        con = duckdb.connect(str(path))
        if kind == "foreign":
            con.execute("CREATE TABLE people (name VARCHAR)")
        else:
            for name, columns in schema.TABLES.items():
                if kind == "other-runs" and name == "runs":
                    columns = "run_id VARCHAR, owner VARCHAR"
                con.execute(f"CREATE TABLE {name} ({columns})")
            if kind in ("newer", "bad-version"):
                con.execute("INSERT INTO meta VALUES ('schema_version', ?)", ["99" if kind == "newer" else "abc"])
        con.close()


def v1_db(path):
    """A file as written before schema versions: the tables without `meta`, one complete run."""
    import duckdb

    from engine.store import schema

    con = duckdb.connect(str(path))
    for name, columns in schema.TABLES.items():
        if name != "meta":
            con.execute(f"CREATE TABLE {name} ({columns})")
    con.execute("INSERT INTO runs (run_id, status, model, config) VALUES ('old', 'complete', 'resnet18', ?)",
                [json.dumps({"model": "resnet18", "patience": 5})])
    con.close()


def db_with_malformed_runs(db: Path) -> None:
    """Complete runs whose records another program wrote badly (NULL names, wrong types, odd values)."""
    import duckdb

    from engine.store import Store

    store = Store(db)
    changes = ["model = NULL", "dataset = NULL", "mode = ''", "attach = NULL", "config = '[]'", "seed = NULL",
               "num_classes = NULL, class_names = NULL", "mode = 'weird'", "attach = ['nope']", "device = NULL"]
    for i, change in enumerate(changes):
        run_id = complete_run(store, run_id=f"r{i}", seed=i)
        con = duckdb.connect(str(db))
        con.execute(f"UPDATE runs SET {change} WHERE run_id = ?", [run_id])
        con.close()


def write_job(jobs: Path, name: str, spec=None, progress=None, raw: str | None = None) -> Path:
    """A job folder written by hand (tampered at will): spec (a value dumped as JSON) or raw text."""
    d = jobs / name
    d.mkdir(parents=True, exist_ok=True)
    if raw is not None:
        (d / "spec.json").write_text(raw)
    elif spec is not None:
        (d / "spec.json").write_text(json.dumps(spec))
    if progress is not None:
        (d / "progress.json").write_text(progress if isinstance(progress, str) else json.dumps(progress))
    return d


def spec(state: str = "done", **extra) -> dict:
    return {"job_id": extra.pop("job_id", "x"), "label": "a job", "config": {"model": "resnet18"}, "seeds": [0],
            "state": state, "submitted_ts": extra.pop("submitted_ts", time.time()), "error": None, "run_ids": [],
            **extra}


def reap(jobs: Path) -> None:
    """SIGKILL the worker and job processes a case left behind (their recorded pid and start time)."""
    import signal

    from engine import procs

    found = []
    info = _json(jobs / "worker.json")
    found.append((info.get("pid"), info.get("start")))
    if jobs.is_dir():
        for d in jobs.iterdir():
            s = _json(d / "spec.json")
            found.append((s.get("pid"), s.get("pid_start")))
            w = s.get("worker") if isinstance(s.get("worker"), dict) else {}
            found.append((w.get("pid"), w.get("start")))
    for pid, start in found:
        if isinstance(pid, int) and pid != os.getpid() and isinstance(start, int) and procs.alive(pid, start):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for pid in processes_using(jobs):  # e.g. a job process whose pid was never recorded
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def processes_using(folder: Path) -> list[int]:
    """Processes (not this one) whose command line names `folder` (a worker or job process of it)."""
    out, needle = [], str(folder).encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                cmd = (entry / "cmdline").read_bytes()
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if needle in cmd and stat != "Z":
                    out.append(int(entry.name))
    return out


def _json(path: Path) -> dict:
    if not path.is_file() or path.is_symlink():
        return {}
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}
