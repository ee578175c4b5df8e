"""The DuckDB cache: runs, their provenance, costs, per-epoch history and per-sample logits.

The project's queries live here, parameterised (schema.py: tables and migrations; transfer.py:
export, import). Connections are short-lived: DuckDB allows one read-write process or many
read-only ones on a file, never both, so a training job opens the file only to register a run
and, at the end, to write it whole in ONE transaction; readers
(the CLI, the explorer) open read-only and retry while a writer holds the lock.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import time
import uuid
from datetime import UTC, datetime

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine import paths, procs
from engine.errors import UserError
from engine.faults import point
from engine.store import schema
from engine.store.schema import RUN_COLUMNS
from engine.store.transfer import Transfers

DUCKDB_MAGIC = b"DUCK"  # bytes 8..12 of a DuckDB file
LOCK_PID = re.compile(r"PID (\d+)")  # DuckDB's lock error: "Conflicting lock is held in ... (PID 1234)"
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
DAMAGE = (duckdb.Error, duckdb.IOException, duckdb.InternalException, duckdb.SerializationException,
          duckdb.FatalException)  # what DuckDB raises for a damaged file (the bare Error: "Corrupt database file")
STOP_TIMEOUT_S = 60.0  # delete --cancel: how long a run's process may take to record itself failed
DEAD_RUN = "the training process ended without finishing (killed?)"


def run_process_alive(row: dict) -> bool:
    """Whether a 'running' run's process still runs: same host, the pid alive, and that process
    started before the run did (a recycled pid started later)."""
    if row.get("host") != socket.gethostname() or not procs.alive(row.get("pid")):
        return False
    started, created = procs.started_at(row["pid"]), row.get("created_at")
    if started is None or not isinstance(created, datetime):
        return True
    return started <= created.replace(tzinfo=UTC).timestamp() + 2.0


class Store(Transfers):
    """One DuckDB file. Every method opens and closes its own connection."""

    def __init__(self, path: str | os.PathLike | None = None, lock_timeout_s: float = 30.0):
        self.path = paths.db_path(path)
        self.lock_timeout_s = lock_timeout_s

    # -- connections ------------------------------------------------------------------
    def _check_file(self) -> None:
        """A file that is not DuckDB's (a SQLite file would make DuckDB fetch an extension)."""
        try:
            with open(self.path, "rb") as f:
                head = f.read(16)
        except IsADirectoryError:
            raise UserError(f"the database path {self.path} is a folder; give a .duckdb file") from None
        except OSError as err:
            raise UserError(f"cannot read {self.path}: {err.strerror or err}") from err
        if head and head[8:12] != DUCKDB_MAGIC:
            kind = "a SQLite database" if head.startswith(b"SQLite format 3") else "not a DuckDB database"
            raise UserError(f"{self.path} is {kind}; give a SideNets .duckdb file (--db / SIDENETS_DB)")

    @contextlib.contextmanager
    def connect(self, write: bool = False):
        """A connection; a writer creates or migrates the schema, a reader needs the current one.
        While another process writes, wait up to lock_timeout_s, then `DB busy (held by pid N)`."""
        if self.path.exists():
            self._check_file()
        elif not write:
            raise UserError(f"no database at {self.path}: train a run first (python -m engine train --preset smoke)")
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise UserError(f"cannot create {self.path.parent}: {err.strerror or err}") from err
        deadline = time.monotonic() + self.lock_timeout_s
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=not write,
                                     config={"autoload_known_extensions": False, "autoinstall_known_extensions": False})
                break
            except duckdb.IOException as err:
                text = str(err)
                if "lock" in text.lower():
                    if time.monotonic() < deadline:
                        time.sleep(0.1)  # another process is writing: wait for it
                        continue
                    holder = LOCK_PID.search(text)
                    raise UserError(f"DB busy (held by pid {holder.group(1) if holder else 'unknown'}): {self.path} "
                                    f"is being written by another process; try again when it is done") from err
                raise UserError(f"cannot open {self.path} as a DuckDB database: {text.splitlines()[0]}") from err
            except duckdb.Error as err:
                raise UserError(f"cannot open {self.path} as a DuckDB database: {str(err).splitlines()[0]}") from err
        try:
            if write:
                schema.ensure(con, self.path)
            yield con
        except duckdb.Error as err:
            if type(err) not in DAMAGE:
                raise  # a bug in a query, not a damaged file
            raise UserError(f"{self.path} cannot be read (a damaged database?): {str(err).splitlines()[0]}") from err
        finally:
            con.close()

    def migrate(self) -> int:
        """Bring the file to the current schema (a writer does it on open); returns the version."""
        with self.connect(write=True):
            pass
        return schema.SCHEMA_VERSION

    def _query(self, sql: str, params=()) -> list[dict]:
        with self.connect() as con:
            if not schema.check_readable(con, self.path):
                return []
            cur = con.execute(sql, params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]

    # -- writing a run ----------------------------------------------------------------
    def start_run(self, meta: dict) -> str:
        """Register a run as 'running' (invisible to the explorer) and return its id."""
        run_id = meta.get("run_id") or re.sub(r"[^A-Za-z0-9._-]", "_", f"{meta['model']}-{meta['dataset']}-"
                                                                         f"s{meta['seed']}-{uuid.uuid4().hex[:6]}")
        if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
            raise UserError(f"invalid run id {str(run_id)[:60]!r} (letters, digits, '.', '_', '-')")
        row = {**{c: None for c in RUN_COLUMNS}, **meta, "run_id": run_id, "status": "running",
               "created_at": datetime.now(UTC).replace(tzinfo=None), "pid": os.getpid(),
               "host": socket.gethostname()}
        for key in ("config", "versions"):
            row[key] = json.dumps(row[key]) if row[key] is not None else None
        with self.connect(write=True) as con:
            self._mark_dead_runs_failed(con)
            con.execute(f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})",
                        [row[c] for c in RUN_COLUMNS])
        return run_id

    def finish_run(self, run_id: str, *, epochs: list[dict], costs: dict, samples: dict, wall_time_s: float,
                   checkpoint: str | None) -> None:
        """Write everything of a finished run and mark it complete, in one transaction. A run that
        is no longer 'running' (deleted or marked failed meanwhile) is refused: nothing is written.

        costs: {attach_name: {part: {"params", "macs"}}}; samples: {split: {"idx" (N,), "label" (N,),
        "heads": {head_name: logits (N, C)}}}.
        """
        epoch_rows = [(run_id, e["epoch"], e["lr"], e["train_loss"], e["val_loss"], json.dumps(e["val_acc"]),
                       e["seconds"]) for e in epochs]
        cost_rows = [(run_id, attach, part, int(v["params"]), float(v["macs"]))
                     for attach, parts in costs.items() for part, v in parts.items()]
        table = pa.concat_tables([_sample_table(run_id, split, s["idx"], s["label"], head, logits)
                                  for split, s in samples.items() for head, logits in s["heads"].items()])
        with self.connect(write=True) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                status = con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchall()
                if [r[0] for r in status] != ["running"]:
                    self._remove_checkpoint(run_id)  # saved just before: an orphan now
                    raise UserError(f"run {run_id} was {'deleted' if not status else 'marked ' + status[0][0]} "
                                    "while it trained; its results are discarded")
                if epoch_rows:
                    con.executemany("INSERT INTO epochs VALUES (?, ?, ?, ?, ?, ?, ?)", epoch_rows)
                con.executemany("INSERT INTO costs VALUES (?, ?, ?, ?, ?)", cost_rows)
                con.register("new_samples", table)
                con.execute("INSERT INTO samples SELECT * FROM new_samples")
                con.unregister("new_samples")
                con.execute("UPDATE runs SET status = 'complete', finished_at = ?, wall_time_s = ?, checkpoint = ? "
                            "WHERE run_id = ?", [datetime.now(UTC).replace(tzinfo=None), wall_time_s,
                                                 checkpoint, run_id])
                point("store:before-commit")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def fail_run(self, run_id: str, error: str, only_running: bool = False) -> None:
        """Mark a run failed (only_running: unless it is already complete) and remove its now orphan checkpoint."""
        with self.connect(write=True) as con:
            con.execute("UPDATE runs SET status = 'failed', error = ?, finished_at = ? WHERE run_id = ?"
                        + (" AND status = 'running'" if only_running else ""),
                        [str(error)[:2000], datetime.now(UTC).replace(tzinfo=None), run_id])
            self._remove_orphan_checkpoints(con)

    def _mark_dead_runs_failed(self, con) -> None:
        """A writer's cleanup: runs whose process is gone become failed; checkpoints of failed runs are removed."""
        cur = con.execute("SELECT run_id, pid, host, created_at FROM runs WHERE status = 'running' AND host = ?",
                          [socket.gethostname()])
        names = [d[0] for d in cur.description]
        for row in [dict(zip(names, r)) for r in cur.fetchall()]:
            if not run_process_alive(row):
                con.execute("UPDATE runs SET status = 'failed', error = ? WHERE run_id = ? AND status = 'running'",
                            [DEAD_RUN, row["run_id"]])
        self._remove_orphan_checkpoints(con)

    def _remove_orphan_checkpoints(self, con) -> int:
        """Delete checkpoints/<run_id>.safetensors of this DB's failed runs (a kill after the save)."""
        n = 0
        for (run_id,) in con.execute("SELECT run_id FROM runs WHERE status = 'failed'").fetchall():
            n += self._remove_checkpoint(run_id)
        return n

    def _remove_checkpoint(self, run_id: str) -> int:
        """Remove checkpoints/<run_id>.safetensors next to this DB (the name, never a stored path)."""
        path = paths.checkpoint_file(self.path, run_id)
        if path is None or path.is_symlink() or not path.is_file():
            return 0
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return 1

    def delete_run(self, run_id: str, cancel: bool = False) -> bool:
        """Delete a run, its rows and its checkpoint (kept while a run initialised from it exists);
        False when there is no such run. A run still training is refused, unless `cancel`: then its
        process is stopped first (SIGTERM) and it is deleted once that process has recorded itself
        failed. A missing DB is never created."""
        if not self.path.exists():
            raise UserError(f"no database at {self.path}")
        with self.connect(write=True) as con:
            row = self._run_row(con, run_id)
        if row is None:
            return False
        if row["status"] == "running":
            if row["host"] != socket.gethostname():
                raise UserError(f"run {run_id} is training on host {row['host']} (pid {row['pid']}); stop it there")
            if not cancel or row["pid"] == os.getpid():
                raise UserError(f"run {run_id} is still training (pid {row['pid']}); stop it first, or delete "
                                "with --cancel to stop it and delete it")
            self._stop(row)
        with self.connect(write=True) as con:
            row = self._run_row(con, run_id)
            if row is None:
                return False
            if row["status"] == "running":
                raise UserError(f"run {run_id} started training again meanwhile (pid {row['pid']}); not deleted")
            used = self._users(con, run_id)
            base = con.execute("SELECT json_extract_string(config, '$.init_from') FROM runs WHERE run_id = ?",
                               [run_id]).fetchall()[0][0]
            con.execute("BEGIN TRANSACTION")
            for table in ("samples", "costs", "epochs", "latency", "runs"):
                con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
            con.execute("COMMIT")
            # a deleted base whose checkpoint was kept for this run, now read by none
            base_gone = bool(base) and not self._users(con, base) and con.execute(
                "SELECT count(*) FROM runs WHERE run_id = ?", [base]).fetchall()[0][0] == 0
        if not used:  # a frozen-mode run built on this one still reads its checkpoint
            self._remove_checkpoint(run_id)
        if base_gone:
            self._remove_checkpoint(base)
        return True

    @staticmethod
    def _users(con, run_id: str) -> int:
        """How many frozen runs were initialised from this one (they read its checkpoint; a joint or
        mainnet-only run started from it saved all its own weights)."""
        return con.execute("SELECT count(*) FROM runs WHERE run_id <> ? AND mode = 'frozen' AND "
                           "json_extract_string(config, '$.init_from') = ?", [run_id, run_id]).fetchall()[0][0]

    def _run_row(self, con, run_id: str) -> dict | None:
        """The run's row after its status is brought up to date (a dead run's 'running' becomes 'failed')."""
        self._mark_dead_runs_failed(con)
        cur = con.execute("SELECT run_id, status, pid, host, created_at FROM runs WHERE run_id = ?", [run_id])
        rows = cur.fetchall()
        return dict(zip([d[0] for d in cur.description], rows[0])) if rows else None

    def _stop(self, row: dict) -> None:
        """SIGTERM a running run's process and wait until it is gone (it records itself failed)."""
        if run_process_alive(row):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(row["pid"]), signal.SIGTERM)
            point("store:delete-after-term")
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while run_process_alive(row):
            if time.monotonic() > deadline:
                raise UserError(f"run {row['run_id']} did not stop within {STOP_TIMEOUT_S:.0f} s "
                                f"(pid {row['pid']}); not deleted")
            time.sleep(0.1)

    def put_latency(self, run_id: str, rows: list[dict]) -> None:
        """Replace the run's latency rows for the device(s) given: dicts of the latency columns."""
        now = datetime.now(UTC).replace(tzinfo=None)
        with self.connect(write=True) as con:
            con.execute("BEGIN TRANSACTION")
            for device in {r["device"] for r in rows}:
                con.execute("DELETE FROM latency WHERE run_id = ? AND device = ?", [run_id, device])
            con.executemany("INSERT INTO latency VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [(run_id, r["attach"], r["device"], r["part"], r["batch_size"], r["median_ms"],
                              r["p95_ms"], r.get("throughput"), now) for r in rows])
            con.execute("COMMIT")

    # -- reading ----------------------------------------------------------------------
    def list_runs(self, include_all: bool = False) -> list[dict]:
        """Complete runs (newest first); include_all adds running and failed ones.

        A 'running' run whose process on this host is gone is reported as failed.
        """
        sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs"
        sql += "" if include_all else " WHERE status = 'complete'"
        rows = self._query(sql + " ORDER BY created_at DESC")
        host = socket.gethostname()
        for row in rows:
            for key in ("config", "versions"):
                value = json.loads(row[key]) if row[key] else {}
                row[key] = value if isinstance(value, dict) else {}
            if row["config"]:  # a run stored before a TrainConfig field existed did what its default does
                row["config"] = {**schema.CONFIG_FIELDS_ADDED, **row["config"]}
            if row["status"] == "running" and row["host"] == host and not run_process_alive(row):
                row["status"], row["error"] = "failed", DEAD_RUN
        return rows

    def get_run(self, run_id: str) -> dict:
        rows = [r for r in self.list_runs(include_all=True) if r["run_id"] == run_id]
        if not rows:
            raise UserError(f"no run {run_id!r} in {self.path} (see: python -m engine runs)")
        return rows[0]

    def epochs(self, run_id: str) -> list[dict]:
        rows = self._query("SELECT epoch, lr, train_loss, val_loss, val_acc, seconds FROM epochs WHERE run_id = ? "
                           "ORDER BY epoch", [run_id])
        for row in rows:
            row["val_acc"] = json.loads(row["val_acc"])
        return rows

    def costs(self, run_id: str) -> dict[str, dict[str, dict]]:
        """{attach: {part: {"params", "macs"}}}."""
        out: dict = {}
        for r in self._query("SELECT attach, part, params, macs FROM costs WHERE run_id = ?", [run_id]):
            out.setdefault(r["attach"], {})[r["part"]] = {"params": r["params"], "macs": r["macs"]}
        return out

    def latency(self, run_id: str) -> list[dict]:
        return self._query("SELECT attach, device, part, batch_size, median_ms, p95_ms, throughput, measured_at "
                           "FROM latency WHERE run_id = ? ORDER BY device, attach, part, batch_size", [run_id])

    def latency_stamps(self) -> dict[str, str]:
        """{run_id: when its latency was last measured}, for the runs that have latency rows (caches
        of a run's costs key on it: latency is stored after the run completes)."""
        return {r["run_id"]: str(r["stamp"]) for r in
                self._query("SELECT run_id, max(measured_at) AS stamp FROM latency GROUP BY run_id")}

    def logits(self, run_id: str, split: str = "test") -> dict:
        """{"idx" (N,), "label" (N,), "heads": {head: logits float32 (N, C)}} in sample order."""
        with self.connect() as con:
            if not schema.check_readable(con, self.path):
                raise UserError(f"no run {run_id!r} in {self.path}")
            table = con.sql("SELECT head, idx, label, logits FROM samples WHERE run_id = $1 AND split = $2 "
                            "ORDER BY head, idx", params=[run_id, split]).to_arrow_table()
        if table.num_rows == 0:
            raise UserError(f"run {run_id!r} has no {split} samples in {self.path}")
        heads_col = table.column("head").to_numpy(zero_copy_only=False)
        flat = table.column("logits").combine_chunks()
        values = flat.values.to_numpy(zero_copy_only=False).astype(np.float32)
        lengths = pc.list_value_length(flat)
        if flat.null_count or values.size == 0 or pc.min(lengths).as_py() != pc.max(lengths).as_py():
            raise UserError(f"run {run_id!r} has malformed logits in {self.path} (rows of different lengths)")
        all_logits = values.reshape(table.num_rows, -1)
        idx, label = table.column("idx").to_numpy(), table.column("label").to_numpy()
        heads, first = {}, None
        for head in dict.fromkeys(heads_col):
            rows = heads_col == head
            heads[head] = all_logits[rows]
            first = rows if first is None else first
        return {"idx": idx[first], "label": label[first], "heads": heads}

    def version(self) -> tuple:
        """Changes whenever the file does (for caches): (mtime_ns, size)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return (0, 0)
        wal = self.path.with_name(self.path.name + ".wal")
        return (st.st_mtime_ns, st.st_size, wal.stat().st_mtime_ns if wal.exists() else 0)


def _sample_table(run_id: str, split: str, idx, label, head: str, logits) -> pa.Table:
    logits = np.ascontiguousarray(logits, dtype=np.float32)
    n, c = logits.shape
    lists = pa.ListArray.from_arrays(pa.array(np.arange(0, n * c + 1, c, dtype=np.int32)), pa.array(logits.ravel()))
    return pa.table({"run_id": pa.array([run_id] * n), "split": pa.array([split] * n),
                     "idx": pa.array(np.asarray(idx, dtype=np.int32)),
                     "label": pa.array(np.asarray(label, dtype=np.int32)),
                     "head": pa.array([head] * n), "logits": lists})
