"""engine.cli.bench: `bench metrics|cascade|...` and `latency` as a user runs them."""
import signal

import pytest

from engine.cli import main

from helpers import strict_json

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def keep_sigterm():
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)


def test_bench_cascade(smoke_runs, capsys):
    store, runs = smoke_runs
    db = ["--db", str(store.path)]
    assert main(db + ["bench", "cascade", runs["text"], "--theta", "0.7", "--batch", "1", "--rounds", "1",
                      "--limit", "8", "--device", "cpu", "--json"]) == 0
    text = strict_json(capsys.readouterr().out)
    assert (text["theta"], text["batch"], text["n"], text["agreement_with_cached"]) == (0.7, 1, 8, 1.0)
    assert main(db + ["bench", "cascade", runs["image"], "--theta", "auto", "--limit", "16", "--rounds", "1",
                      "--device", "cpu", "--threads", "1", "--pool"]) == 0
    out = capsys.readouterr().out
    assert "ratio realized/ideal" in out and "pooled (Cascade.stream" in out and "auto: val accuracy" in out
    assert main(db + ["bench", "cascade", "no-such-run", "--theta", "0.5"]) == 2
    assert "no run 'no-such-run'" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["bench", "cascade", "r"], "the following arguments are required: --theta"),
    (["bench", "cascade", "r", "--theta", "lots"], "theta must be a number"),
    (["bench", "cascade", "r", "--theta", "0.5", "--batch", "0"], "must be at least 1"),
    (["bench", "cascade", "r", "--theta", "0.5", "--exit-rule", "entropy"], "invalid choice: 'entropy'"),
    (["bench"], "required: what"),
])
def test_bench_argument_mistakes(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_bench_metrics_prints_json(capsys):
    assert main(["bench", "metrics", "--n", "1000"]) == 0
    out = strict_json(capsys.readouterr().out)
    assert out["n"] == 1000 and out["thetas"] == 201


def test_latency(smoke_copy, capsys):
    store, runs = smoke_copy
    assert main(["--db", str(store.path), "latency", runs["image"], "--device", "cpu", "--batch", "4",
                 "--repeats", "3", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "trunk+sidenet" in out and "(stored)" in out and "inputs/s" in out
    assert {r["batch_size"] for r in store.latency(runs["image"])} == {1, 4}
    assert main(["--db", str(store.path), "latency", "no-such-run"]) == 2
    assert "no run 'no-such-run'" in capsys.readouterr().err
