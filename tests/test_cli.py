"""engine.cli (the package): `python -m engine` parses, prints one clear line for every user mistake,
and every `--json` output is strict JSON (null, never NaN). The command groups: tests/test_cli_*.py."""
from __future__ import annotations

import argparse
import math
import signal

import numpy as np
import pytest

from engine.analysis.summary import MeanStd
from engine.cli import main, positive_int, theta_arg, to_json

from helpers import cli, strict_json


@pytest.fixture(autouse=True)
def keep_sigterm():
    """main() installs a SIGTERM handler (a training run records itself failed): put the test's back."""
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)


def test_to_json_is_strict():
    from datetime import datetime
    from pathlib import Path

    out = strict_json(to_json({"nan": math.nan, "inf": float("inf"), "np": np.float32(0.5), "arr": np.array([1, 2]),
                               "tuple": (1, np.int64(2)), "ms": MeanStd(0.5, math.nan, 1), 3: None,
                               "when": datetime(2026, 1, 2), "path": Path("/x"), "nested": [{"a": -math.inf}]}))
    assert out == {"nan": None, "inf": None, "np": 0.5, "arr": [1, 2], "tuple": [1, 2],
                   "ms": {"mean": 0.5, "std": None, "n": 1}, "3": None, "when": "2026-01-02 00:00:00", "path": "/x",
                   "nested": [{"a": None}]}


def test_argument_types():
    assert theta_arg("0.25") == 0.25 and theta_arg("1") == 1.0
    for bad, message in (("abc", "theta must be a number"), ("1.5", r"theta must be in \[0, 1\]"),
                         ("nan", r"theta must be in \[0, 1\]"), ("-0.1", r"theta must be in \[0, 1\]")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            theta_arg(bad)
    assert positive_int("3") == 3
    with pytest.raises(argparse.ArgumentTypeError, match="must be at least 1, got 0"):
        positive_int("0")
    with pytest.raises(argparse.ArgumentTypeError, match="expected a whole number, got 'x'"):
        positive_int("x")


def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["--db", str(tmp_path / "none.duckdb"), "runs"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no database at") and err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", "x", "--theta", "1.5"])
    assert exit_.value.code == 2 and "theta must be in [0, 1]" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == 2 and "required: command" in capsys.readouterr().err


@pytest.mark.slow
def test_python_dash_m_engine_as_a_user_runs_it(tmp_path):
    bogus = tmp_path / "bogus.duckdb"
    bogus.write_text("hello" * 10)
    for db, message in ((tmp_path / "none.duckdb", "no database at"), (bogus, "is not a DuckDB database")):
        proc = cli("runs", db=db)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("--help")
    assert proc.returncode == 0 and all(c in proc.stdout for c in ("train", "sweep", "bench", "migrate", "presets"))
    proc = cli("jobs", "list", "--jobs-dir", tmp_path / "jobs", db=tmp_path / "x.duckdb")  # the queue's alias
    assert proc.returncode == 0 and proc.stdout == ""


# ------------------------------------------------------------------------------ strict JSON, every command
def _json_commands(store, runs, tmp_path):
    """Every command with JSON output: (name, argv). Runs at theta 1 and 0 give NaN accuracies
    (nothing exits / nothing is deferred) that must print as null."""
    db = ["--db", str(store.path)]
    return [
        ("runs", db + ["runs", "--json"]),
        ("runs --all", db + ["runs", "--all", "--json"]),
        ("sweep at 1", db + ["sweep", runs["image"], "--theta", "1", "--json"]),
        ("sweep at 0", db + ["sweep", runs["text"], "--theta", "0", "--json", "--exit-rule", "margin"]),
        ("sweep ensemble", db + ["sweep", runs["image"], "--theta", "0.5", "--ensemble", "--split", "val", "--json"]),
        ("summary", db + ["summary", "--thetas", "0", "0.5", "1", "--json"]),
        ("presets", ["presets", "--json"]),
        ("features list", ["features", "list", "--json"]),
        ("bench metrics", ["bench", "metrics", "--n", "2000"]),
        ("bench cascade", db + ["bench", "cascade", runs["image"], "--theta", "1", "--limit", "16", "--rounds", "1",
                                "--device", "cpu", "--json"]),
        ("latency", db + ["latency", runs["image"], "--device", "cpu", "--batch", "2", "--repeats", "2", "--json"]),
    ]


def test_every_json_output_is_strict_json(smoke_copy, tmp_path, capsys, monkeypatch):
    store, runs = smoke_copy  # `latency` stores its rows
    monkeypatch.setenv("SIDENETS_FEATURES", str(tmp_path / "features"))
    outputs = {}
    for name, argv in _json_commands(store, runs, tmp_path):
        assert main(argv) == 0, name
        outputs[name] = strict_json(capsys.readouterr().out)
    assert {r["run_id"] for r in outputs["runs"]} == set(runs.values())
    assert outputs["sweep at 1"]["exited_accuracy"] is None and outputs["sweep at 1"]["exit_fraction"] == 0.0
    assert outputs["sweep at 0"]["deferred_accuracy"] is None and outputs["sweep at 0"]["exit_rule"] == "margin"
    assert outputs["sweep ensemble"]["ensemble"] is True
    assert [c["theta"] for c in outputs["summary"][0]["cascade"]] == [0.0, 0.5, 1.0]
    assert {p["name"] for p in outputs["presets"]} >= {"smoke", "quickstart"}
    assert outputs["features list"] == []
    assert outputs["bench metrics"]["n"] == 2000
    assert outputs["bench cascade"]["exit_fraction"] == 0.0 and outputs["bench cascade"]["theta"] == 1.0
    assert {r["part"] for r in outputs["latency"]} == {"trunk+sidenet", "rest", "full"}


@pytest.mark.parametrize("command, module, function", [
    (["bench", "features", "--seeds", "1", "--json"], "engine.bench.features", "bench_features"),
    (["bench", "epochs", "--json"], "engine.bench.epochs", "bench_epochs"),
    (["bench", "train"], "engine.bench.train", "bench_train_step"),
])
def test_benchmarks_print_strict_json_of_what_they_measured(command, module, function, capsys, monkeypatch):
    """The long benchmarks (minutes on a CPU: `make bench`) print their result through the same
    JSON path; here their measurement is replaced by a result holding NaN and numpy values."""
    import importlib

    result = {"ratio_median": math.nan, "rows": [{"speedup": np.float64(math.inf), "n": np.int64(3)}],
              "device": "cpu (test)"}
    monkeypatch.setattr(importlib.import_module(module), function, lambda **kw: result)
    assert main(command) == 0
    assert strict_json(capsys.readouterr().out) == {"ratio_median": None, "rows": [{"speedup": None, "n": 3}],
                                                    "device": "cpu (test)"}


@pytest.mark.parametrize("flags, mode", [([], None), (["--compile"], "default"),
                                         (["--compile", "reduce-overhead"], "reduce-overhead")])
def test_bench_epochs_compile_takes_an_optional_mode(flags, mode, capsys, monkeypatch):
    import engine.bench.epochs as epochs

    seen = {}
    monkeypatch.setattr(epochs, "bench_epochs", lambda **kw: seen.update(kw) or {"rows": []})
    assert main(["bench", "epochs", *flags, "--json"]) == 0
    assert seen["compile_step"] == mode
    with pytest.raises(SystemExit):
        main(["bench", "epochs", "--compile", "max-speed"])
    assert "invalid choice: 'max-speed'" in capsys.readouterr().err


def test_bench_epochs_refuses_a_limit_smaller_than_a_batch(capsys):
    assert main(["bench", "epochs", "--batch-sizes", "64", "512", "--limit", "100"]) == 2
    assert capsys.readouterr().err.strip() == ("error: --limit 100 holds no batch of 512 images: give --limit >= the "
                                               "largest --batch-sizes")
