"""engine.store.store: round trips, atomicity (a killed or failing run never shows half-written),
locks, and every unreadable database as one clear UserError."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.errors import UserError
from engine.procs import alive as pid_alive
from engine.store import SCHEMA_VERSION, Store

from helpers import REPO, STORE_META, cli, run_payload


def _rows(db, table: str, run_id: str) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?", [run_id]).fetchone()[0]
    finally:
        con.close()


def test_round_trip_is_exact_and_only_complete_runs_are_listed(tmp_path):
    store = Store(tmp_path / "c.duckdb")
    samples, costs, epochs = run_payload()
    run_id = store.start_run(STORE_META)
    assert run_id.startswith("resnet18-fashion-mnist-s0-")
    assert store.list_runs() == []  # running: invisible
    (running,) = store.list_runs(include_all=True)
    assert running["status"] == "running" and running["pid"] == os.getpid()
    store.finish_run(run_id, epochs=epochs, costs=costs, samples=samples, wall_time_s=1.5, checkpoint="x.safetensors")
    (run,) = store.list_runs()
    assert run["run_id"] == run_id and run["status"] == "complete" and run["attach"] == ["layer1"]
    # a config stored without a field added since reads back with what such runs did
    assert run["config"] == {"epochs": 1, "augment": "crop-flip", "head_lr": None} and run["versions"] == {"torch": "x"}
    assert run["wall_time_s"] == 1.5
    assert run["checkpoint"] == "x.safetensors" and run["finished_at"] is not None
    assert store.get_run(run_id) == run
    got = store.logits(run_id)
    for head, logits in samples["test"]["heads"].items():
        np.testing.assert_array_equal(got["heads"][head], logits)
    np.testing.assert_array_equal(got["label"], samples["test"]["label"])
    np.testing.assert_array_equal(got["idx"], samples["test"]["idx"])
    assert store.costs(run_id) == costs and store.epochs(run_id) == [{**epochs[0]}]
    out = tmp_path / "x.parquet"
    assert store.export_parquet(run_id, out) == 100 and pq.read_table(out).num_rows == 100
    assert store.delete_run(run_id) and store.list_runs(include_all=True) == []
    assert not store.delete_run(run_id)  # already gone
    with pytest.raises(UserError, match=f"no run '{run_id}'"):
        store.get_run(run_id)


def test_latency_rows_replace_those_of_the_same_device(tmp_path):
    store = Store(tmp_path / "l.duckdb")
    samples, costs, epochs = run_payload()
    run_id = store.start_run(STORE_META)
    store.finish_run(run_id, epochs=epochs, costs=costs, samples=samples, wall_time_s=1, checkpoint=None)
    assert store.latency(run_id) == [] and store.latency_stamps() == {}

    def rows(device, ms):
        return [{"attach": "layer1", "device": device, "part": part, "batch_size": 1, "median_ms": ms, "p95_ms": ms}
                for part in ("trunk+sidenet", "rest", "full")]

    store.put_latency(run_id, rows("cpu", 1.0))
    store.put_latency(run_id, rows("NVIDIA H200", 0.1))
    before = store.version()
    time.sleep(0.01)
    store.put_latency(run_id, rows("cpu", 2.0))  # measured again on the CPU: replaces, not duplicates
    got = store.latency(run_id)
    assert len(got) == 6 and {r["median_ms"] for r in got if r["device"] == "cpu"} == {2.0}
    assert all(r["throughput"] is None for r in got)
    assert set(store.latency_stamps()) == {run_id} and store.version() != before


def test_a_failure_inside_the_final_transaction_leaves_nothing(tmp_path, monkeypatch):
    store = Store(tmp_path / "c.duckdb")
    samples, costs, epochs = run_payload()
    run_id = store.start_run(STORE_META)
    real_execute = duckdb.DuckDBPyConnection.execute

    def execute(con, sql, *a, **k):
        if sql.startswith("UPDATE runs SET status = 'complete'"):  # after the epochs, costs and samples went in
            raise RuntimeError("disk full")
        return real_execute(con, sql, *a, **k)

    monkeypatch.setattr(duckdb.DuckDBPyConnection, "execute", execute)
    with pytest.raises(RuntimeError, match="disk full"):
        store.finish_run(run_id, epochs=epochs, costs=costs, samples=samples, wall_time_s=1, checkpoint=None)
    monkeypatch.undo()
    for table in ("epochs", "costs", "samples"):
        assert _rows(store.path, table, run_id) == 0, table  # rolled back
    store.fail_run(run_id, "boom")
    assert store.list_runs() == []
    assert store.list_runs(include_all=True)[0]["status"] == "failed"
    assert store.list_runs(include_all=True)[0]["error"] == "boom"
    with pytest.raises(UserError, match="no test samples"):
        store.logits(run_id)


def test_inconsistent_samples_are_refused_before_writing(tmp_path):
    store = Store(tmp_path / "c.duckdb")
    samples, costs, epochs = run_payload()
    run_id = store.start_run(STORE_META)
    samples["test"]["heads"]["broken"] = np.zeros((49, 3), np.float32)  # 49 logit rows for 50 samples
    with pytest.raises(pa.ArrowInvalid, match="length"):
        store.finish_run(run_id, epochs=epochs, costs=costs, samples=samples, wall_time_s=1, checkpoint=None)
    assert _rows(store.path, "samples", run_id) == 0 and store.list_runs() == []


@pytest.mark.slow
def test_a_process_killed_in_the_middle_of_the_commit_leaves_no_half_run(tmp_path):
    """SIGKILL-equivalent (os._exit) right after the samples went in, before the COMMIT."""
    db = tmp_path / "c.duckdb"
    code = textwrap.dedent(f"""
        import os, sys, duckdb
        sys.path.insert(0, "tests")
        from engine.store import Store
        from helpers import STORE_META, run_payload
        store = Store({str(db)!r})
        samples, costs, epochs = run_payload()
        run_id = store.start_run(STORE_META)
        real_execute = duckdb.DuckDBPyConnection.execute
        def execute(con, sql, *a, **k):
            if sql.startswith("UPDATE runs SET status = 'complete'"):
                os._exit(9)
            return real_execute(con, sql, *a, **k)
        duckdb.DuckDBPyConnection.execute = execute
        store.finish_run(run_id, epochs=epochs, costs=costs, samples=samples, wall_time_s=1, checkpoint=None)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    store = Store(db)
    assert store.list_runs() == []
    (run,) = store.list_runs(include_all=True)
    assert run["status"] == "failed" and "killed" in run["error"]
    assert _rows(db, "samples", run["run_id"]) == 0
    with pytest.raises(UserError, match="no test samples"):
        store.logits(run["run_id"])


@pytest.mark.slow
def test_a_killed_training_process_is_marked_failed_and_stays_invisible(tmp_path):
    """`python -m engine train` killed (SIGKILL, engine.faults) right after it registered its run."""
    db = tmp_path / "k.duckdb"
    proc = cli("train", "--model", "resnet18", "--limit", "64", "--epochs", "1", "--device", "cpu", db=db,
               env={"SIDENETS_FAULT": "train:after-start"})
    assert proc.returncode == -9, proc.stderr
    store = Store(db)
    assert store.list_runs() == []
    (run,) = store.list_runs(include_all=True)
    assert run["status"] == "failed" and "killed" in run["error"]  # its process is gone: reported as failed
    # the next writer records it for good
    store.start_run({**STORE_META, "run_id": "next"})
    con = duckdb.connect(str(db), read_only=True)
    stored = dict(con.execute("SELECT run_id, status FROM runs").fetchall())
    con.close()
    assert stored == {run["run_id"]: "failed", "next": "running"}


@pytest.mark.slow
def test_a_writer_elsewhere_makes_readers_wait_then_say_who_holds_it(tmp_path):
    db = tmp_path / "busy.duckdb"
    Store(db).migrate()
    code = textwrap.dedent(f"""
        import sys, time
        from engine.store import Store
        with Store({str(db)!r}).connect(write=True):
            print("holding", flush=True)
            time.sleep(30)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        start = time.monotonic()
        with pytest.raises(UserError, match=rf"DB busy \(held by pid {holder.pid}\)"):
            Store(db, lock_timeout_s=0.5).list_runs()
        assert time.monotonic() - start >= 0.5  # it waited for the writer first
    finally:
        holder.kill()
        holder.wait()
    assert Store(db).list_runs() == []  # free again


def test_unreadable_databases_are_one_line_user_errors(tmp_path):
    cases = []
    with pytest.raises(UserError, match="no database at") as err:
        Store(tmp_path / "missing.duckdb").list_runs()
    cases.append(err)
    bogus = tmp_path / "bogus.duckdb"
    bogus.write_text("not a database" * 10)
    with pytest.raises(UserError, match="is not a DuckDB database") as err:
        Store(bogus).list_runs()
    cases.append(err)
    with pytest.raises(UserError, match="is not a DuckDB database") as err:
        Store(bogus).start_run(STORE_META)  # a writer refuses it too (it is never overwritten)
    cases.append(err)
    assert bogus.read_text() == "not a database" * 10
    with pytest.raises(UserError, match="is a folder") as err:
        Store(tmp_path)
    cases.append(err)
    assert all("\n" not in str(e.value) for e in cases)


def test_an_empty_file_and_a_new_file(tmp_path):
    fresh = Store(tmp_path / "sub" / "new.duckdb")
    assert fresh.version() == (0, 0)
    assert fresh.migrate() == SCHEMA_VERSION and fresh.path.exists()  # a writer creates folder and schema
    assert fresh.list_runs() == []
    with pytest.raises(UserError, match="run 'x' has no test samples"):
        fresh.logits("x")
    no_tables = tmp_path / "blank.duckdb"
    duckdb.connect(str(no_tables)).close()  # a DuckDB file without any table yet
    assert Store(no_tables).list_runs() == []
    with pytest.raises(UserError, match="no run 'x'"):
        Store(no_tables).logits("x")


def test_pid_alive_sees_zombies_as_dead():
    assert pid_alive(os.getpid()) and not pid_alive(None) and not pid_alive(0)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while pid_alive(child.pid) and time.monotonic() < deadline:  # exited, not yet reaped: a zombie
        time.sleep(0.05)
    assert not pid_alive(child.pid)
    child.wait()
    assert not pid_alive(child.pid)


@pytest.mark.slow
def test_a_running_run_is_deleted_only_with_cancel_which_stops_it_first(tmp_path):
    db = tmp_path / "r.duckdb"
    code = textwrap.dedent(f"""
        import signal, sys, time
        sys.path.insert(0, "tests")
        from engine.store import Store
        from helpers import STORE_META
        store = Store({str(db)!r})
        run_id = store.start_run({{**STORE_META, "run_id": "busy"}})
        def stop(*_):
            store.fail_run(run_id, "KeyboardInterrupt: stopped")
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        print("training", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "training"
        store = Store(db)
        with pytest.raises(UserError, match=rf"run busy is still training \(pid {proc.pid}\); stop it first"):
            store.delete_run("busy")
        assert [r["status"] for r in store.list_runs(include_all=True)] == ["running"]
        assert store.delete_run("busy", cancel=True)  # SIGTERM, wait until it recorded itself failed, delete
        assert proc.wait(10) == 0 and store.list_runs(include_all=True) == []
    finally:
        proc.kill()
        proc.wait()


def test_a_run_training_on_another_host_is_not_deleted(tmp_path):
    store = Store(tmp_path / "h.duckdb")
    run_id = store.start_run(STORE_META)
    with store.connect(write=True) as con:
        con.execute("UPDATE runs SET host = 'elsewhere' WHERE run_id = ?", [run_id])
    for cancel in (False, True):
        with pytest.raises(UserError, match=f"run {run_id} is training on host elsewhere"):
            store.delete_run(run_id, cancel=cancel)
    assert store.list_runs(include_all=True)[0]["status"] == "running"  # not ours to judge: still listed running
