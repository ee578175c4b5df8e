"""`python -m engine` as a user runs it: real subprocesses, one clear line for every user mistake."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[1]


def cli(*args, db=None, check=False):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if db:
        env["SIDENETS_DB"] = str(db)
    proc = subprocess.run([sys.executable, "-m", "engine", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_runs_sweep_summary_and_export_on_real_runs(smoke_runs, tmp_path):
    store, runs = smoke_runs
    listed = json.loads(cli("runs", "--json", db=store.path, check=True).stdout)
    assert {r["run_id"] for r in listed} == set(runs.values())
    out = json.loads(cli("sweep", runs["image"], "--theta", "0.7", "--json", db=store.path, check=True).stdout)
    from engine.analysis import load_view, sweep

    expected = sweep(load_view(store, runs["image"]), 0.7)
    for key in ("accuracy", "exit_fraction", "avg_params", "avg_macs", "side_accuracy", "main_accuracy"):
        assert out[key] == pytest.approx(expected[key])
    summary = cli("summary", db=store.path, check=True).stdout
    assert runs["text"] in summary and "theta" in summary
    parquet = tmp_path / "rows.parquet"
    cli("export", runs["text"], "--out", parquet, db=store.path, check=True)
    assert pq.read_table(parquet).num_rows == 2 * 2 * 96  # (val + test) x (main + SideNet)


@pytest.mark.parametrize("args, message", [
    (("train", "--model", "resnet99"), "unknown model 'resnet99'"),
    (("train", "--attach", "layer9"), "attach point 'layer9' is not valid for resnet18"),
    (("train", "--dataset", "mnist-ish"), "unknown dataset 'mnist-ish'"),
    (("train", "--preset", "huge"), "unknown preset 'huge'"),
    (("train", "--mode", "frozen"), "--init-from"),
    (("train", "--model", "nobody/no-such-encoder", "--dataset", "rt-polarity"), "could not load 'nobody/no-such-encoder'"),
    (("train", "--dataset", "cifar10", "--limit", "8"), "cifar10 needs internet"),
    (("train", "--model", "mpnet-base", "--dataset", "fashion-mnist"), "takes text inputs"),
    (("sweep", "x", "--theta", "1.5"), "theta must be in [0, 1]"),
    (("sweep", "x", "--theta", "abc"), "theta must be a number"),
])
def test_user_mistakes_print_one_clear_line(args, message, tmp_path):
    proc = cli(*args, db=tmp_path / "db.duckdb")
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_unreadable_db_and_unknown_run(tmp_path, smoke_runs):
    bogus = tmp_path / "bogus.duckdb"
    bogus.write_text("hello")
    for db, message in ((tmp_path / "none.duckdb", "no database at"), (bogus, "not a valid DuckDB")):
        proc = cli("runs", db=db)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("sweep", "no-such-run", "--theta", "0.5", db=smoke_runs[0].path)
    assert proc.returncode == 2 and "no run 'no-such-run'" in proc.stderr
