"""engine.cli.runs: `runs`, `sweep`, `summary`, `export`, `delete`, `migrate`, `presets`."""
import signal

import pyarrow.parquet as pq
import pytest

from engine.analysis.runs import prepare_one
from engine.analysis.summary import sweep
from engine.cli import main
from engine.store import Store

from helpers import cli, copy_db, make_v1, strict_json


@pytest.fixture(autouse=True)
def keep_sigterm():
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_runs_sweep_and_summary(smoke_runs, capsys):
    store, runs = smoke_runs
    code, out, _ = run_cli(capsys, "--db", store.path, "runs")
    assert code == 0 and all(r in out for r in runs.values()) and "complete" in out
    code, out, _ = run_cli(capsys, "--db", store.path, "sweep", runs["image"], "--theta", "0.7", "--json")
    got = strict_json(out)
    want = sweep(prepare_one(store, runs["image"]), 0.7)
    assert code == 0 and got == pytest.approx(want)
    code, out, _ = run_cli(capsys, "--db", store.path, "sweep", runs["text"], "--theta", "0.7", "--exit-rule", "margin")
    assert code == 0 and "exit_rule: margin" in out and "accuracy:" in out
    code, out, _ = run_cli(capsys, "--db", store.path, "summary", "--thetas", "0.5", "0.9")
    assert code == 0 and runs["text"] in out and "theta" in out and "MACs saved" in out
    rows = strict_json(run_cli(capsys, "--db", store.path, "summary", "--json")[1])
    for row in rows:  # the largest saving within half a point: no smaller theta keeps that accuracy
        best, view = row["within_half_point"], prepare_one(store, row["run_id"])
        assert best["accuracy"] >= row["main_accuracy"] - 0.005 - 1e-12
        below = [t for t in view.curve_for().conf if t < best["theta"]]
        assert all(sweep(view, t)["accuracy"] < row["main_accuracy"] - 0.005 for t in below[-20:])
        assert f"theta {best['theta']:.4f} saves {best['saving_macs']:.1%}" in out
    code, _, err = run_cli(capsys, "--db", store.path, "sweep", runs["image"], "--theta", "0.5", "--attach", "layer3")
    assert code == 2 and "has no SideNet at 'layer3'" in err
    code, _, err = run_cli(capsys, "--db", store.path, "sweep", "no-such-run", "--theta", "0.5")
    assert code == 2 and "no run 'no-such-run'" in err


def test_summary_adds_each_configuration_of_several_seeds(explorer_dbs, capsys):
    from engine.analysis.configurations import group_runs
    from engine.analysis.summary import within_drop

    db = explorer_dbs["many"]
    rows = strict_json(run_cli(capsys, "--db", db, "summary", "--json")[1])
    store = Store(db)
    several = [c for c in group_runs(store.list_runs()) if c.has_sidenet and len(c.run_ids) > 1]
    assert several
    for config in several:
        want = within_drop([prepare_one(store, r, config.attach) for r in config.run_ids], 0.005)
        got = [r["configuration"] for r in rows if r["run_id"] in config.run_ids]
        assert len(got) == len(config.run_ids) and all(g == pytest.approx({**want, "label": g["label"]}) for g in got)
    assert all("configuration" not in r for r in rows if not r["cascade"])
    out = run_cli(capsys, "--db", db, "summary")[1]
    assert "configurations with several seeds, on their mean curve" in out and "(3 seeds)" in out


def test_an_empty_database(tmp_path, capsys):
    db = tmp_path / "empty.duckdb"
    Store(db).migrate()
    assert run_cli(capsys, "--db", db, "runs")[1] == "no runs yet: python -m engine train --preset smoke\n"
    assert "no complete runs yet" in run_cli(capsys, "--db", db, "summary")[1]
    assert strict_json(run_cli(capsys, "--db", db, "summary", "--json")[1]) == []


def test_export(smoke_runs, tmp_path, capsys):
    store, runs = smoke_runs
    parquet = tmp_path / "rows.parquet"
    code, out, _ = run_cli(capsys, "--db", store.path, "export", runs["text"], "--out", parquet)
    assert code == 0 and out == f"wrote {2 * 2 * 96} rows to {parquet}\n"
    assert pq.read_table(parquet).num_rows == 2 * 2 * 96  # (val + test) x (main + SideNet)
    for out_path, message in ((tmp_path, "is a folder"), (tmp_path / "no" / "x.parquet", "does not exist")):
        code, _, err = run_cli(capsys, "--db", store.path, "export", runs["text"], "--out", out_path)
        assert code == 2 and message in err
    code, _, err = run_cli(capsys, "--db", tmp_path / "none.duckdb", "export", "r", "--out", tmp_path / "r.parquet")
    assert code == 2 and "no database at" in err


def test_delete(explorer_dbs, tmp_path, capsys):
    db = copy_db(explorer_dbs["many"], tmp_path / "copy.duckdb")
    victim = explorer_dbs["failed_run"]
    code, out, _ = run_cli(capsys, "--db", db, "delete", victim)
    assert code == 0 and out.startswith(f"deleted {victim}")
    assert victim not in {r["run_id"] for r in Store(db).list_runs(include_all=True)}
    code, _, err = run_cli(capsys, "--db", db, "delete", victim)
    assert code == 2 and f"no run '{victim}'" in err
    code, _, err = run_cli(capsys, "--db", tmp_path / "none.duckdb", "delete", victim)
    assert code == 2 and "no database at" in err and not (tmp_path / "none.duckdb").exists()


def test_migrate(tmp_path, capsys):
    old = make_v1(tmp_path / "data" / "old.duckdb", tmp_path / "elsewhere")
    code, _, err = run_cli(capsys, "--db", old, "runs")
    assert code == 2 and f"python -m engine migrate --db {old}" in err
    code, out, _ = run_cli(capsys, "--db", old, "migrate")
    assert code == 0 and out == f"{old}: schema version 2\n"
    assert run_cli(capsys, "--db", old, "runs")[0] == 0
    code, _, err = run_cli(capsys, "--db", tmp_path / "none.duckdb", "migrate")
    assert code == 2 and "no database at" in err and not (tmp_path / "none.duckdb").exists()


def test_presets(capsys):
    code, out, _ = run_cli(capsys, "presets")
    assert code == 0 and "smoke" in out and "protocol:" in out
    listed = strict_json(run_cli(capsys, "presets", "--json")[1])
    smoke = next(p for p in listed if p["name"] == "smoke")
    assert smoke["configs"][0]["model"] == "resnet18" and smoke["where"] == "cpu"


@pytest.mark.slow
def test_the_commands_in_a_subprocess(smoke_runs):
    store, runs = smoke_runs
    listed = strict_json(cli("runs", "--json", db=store.path, check=True).stdout)
    assert {r["run_id"] for r in listed} == set(runs.values())
    proc = cli("sweep", "no-such-run", "--theta", "0.5", db=store.path)
    assert proc.returncode == 2 and "no run 'no-such-run'" in proc.stderr and "Traceback" not in proc.stderr
