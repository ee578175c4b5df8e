"""The DuckDB cache: round trips, and atomicity (a killed or failing run never shows half-written)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from engine.errors import UserError
from engine.store import Store

REPO = Path(__file__).resolve().parents[1]
META = {"model": "resnet18", "dataset": "fashion-mnist", "mode": "joint", "seed": 0, "attach": ["layer1"],
        "config": {"epochs": 1}, "versions": {"torch": "x"}, "num_classes": 3, "class_names": ["a", "b", "c"]}


def _payload(n=50, c=3, seed=0):
    rng = np.random.default_rng(seed)
    heads = {"main": rng.normal(size=(n, c)).astype(np.float32), "layer1": rng.normal(size=(n, c)).astype(np.float32)}
    samples = {"test": {"idx": np.arange(n), "label": rng.integers(0, c, n), "heads": heads}}
    costs = {"layer1": {p: {"params": 10, "macs": 20.0} for p in ("trunk", "sidenet", "rest", "full")}}
    epochs = [{"epoch": 1, "lr": 3e-4, "train_loss": 1.0, "val_loss": 0.9, "val_acc": {"main": 0.5}, "seconds": 1.0}]
    return samples, costs, epochs


def test_round_trip_is_exact_and_only_complete_runs_are_listed(tmp_path):
    store = Store(tmp_path / "c.duckdb")
    samples, costs, epochs = _payload()
    run_id = store.start_run(META)
    assert store.list_runs() == []  # running: invisible
    assert [r["status"] for r in store.list_runs(include_all=True)] == ["running"]
    store.finish_run(run_id, epochs=epochs, costs=costs, samples=samples, wall_time_s=1.5, checkpoint=None)
    (run,) = store.list_runs()
    assert run["run_id"] == run_id and run["status"] == "complete" and run["attach"] == ["layer1"]
    assert run["config"] == {"epochs": 1}
    got = store.logits(run_id)
    for head, logits in samples["test"]["heads"].items():
        np.testing.assert_array_equal(got["heads"][head], logits)
    np.testing.assert_array_equal(got["label"], samples["test"]["label"])
    assert store.costs(run_id) == costs and store.epochs(run_id)[0]["val_acc"] == {"main": 0.5}
    out = tmp_path / "x.parquet"
    assert store.export_parquet(run_id, out) == 100 and pq.read_table(out).num_rows == 100
    assert store.delete_run(run_id) and store.list_runs(include_all=True) == []


def test_a_failure_inside_the_final_transaction_leaves_nothing(tmp_path):
    store = Store(tmp_path / "c.duckdb")
    samples, costs, epochs = _payload()
    run_id = store.start_run(META)
    samples["test"]["heads"]["broken"] = np.zeros((49, 3), np.float32)  # wrong length: fails mid-transaction
    with pytest.raises(Exception):
        store.finish_run(run_id, epochs=epochs, costs=costs, samples=samples, wall_time_s=1, checkpoint=None)
    store.fail_run(run_id, "boom")
    assert store.list_runs() == []
    assert store.list_runs(include_all=True)[0]["status"] == "failed"
    with pytest.raises(UserError):
        store.logits(run_id)


def test_a_process_killed_in_the_middle_of_the_commit_leaves_no_half_run(tmp_path):
    """SIGKILL-equivalent (os._exit) right after the samples went in, before the COMMIT."""
    db = tmp_path / "c.duckdb"
    code = textwrap.dedent(f"""
        import os, numpy as np, duckdb
        from engine.store import Store
        import tests.test_store as t
        store = Store({str(db)!r})
        samples, costs, epochs = t._payload()
        run_id = store.start_run(t.META)
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
    with pytest.raises(UserError, match="no test samples"):
        store.logits(run["run_id"])


def test_a_killed_training_process_is_marked_failed_and_stays_invisible(tmp_path):
    db = tmp_path / "k.duckdb"
    env = {**os.environ, "SIDENETS_DB": str(db)}
    proc = subprocess.Popen([sys.executable, "-m", "engine", "train", "--model", "resnet18", "--limit", "512",
                             "--epochs", "50"], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if db.exists() and Store(db).list_runs(include_all=True):
                break
            time.sleep(0.5)
        else:
            pytest.fail("training never registered its run")
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    store = Store(db)
    assert store.list_runs() == []
    (run,) = store.list_runs(include_all=True)
    assert run["status"] == "failed"
    # the next writer records it for good
    store.start_run({**META, "run_id": "next"})
    statuses = {r["run_id"]: r["status"] for r in store.list_runs(include_all=True)}
    assert statuses[run["run_id"]] == "failed"


def test_unreadable_databases_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no database"):
        Store(tmp_path / "missing.duckdb").list_runs()
    bogus = tmp_path / "bogus.duckdb"
    bogus.write_text("not a database")
    with pytest.raises(UserError, match="not a valid DuckDB"):
        Store(bogus).list_runs()
