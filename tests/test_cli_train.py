"""engine.cli.train: `train` and `quickstart`; every config mistake is one clear line before training."""
import argparse
import signal

import pytest

from engine.cli import main
from engine.cli.train import train_configs
from engine.errors import UserError
from engine.store import Store

from helpers import cli


@pytest.fixture(autouse=True)
def keep_sigterm(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)


@pytest.mark.parametrize("args, message", [
    (("train", "--model", "resnet99"), "unknown model 'resnet99'"),
    (("train", "--attach", "layer9"), "attach point 'layer9' is not valid for resnet18"),
    (("train", "--dataset", "mnist-ish"), "unknown dataset 'mnist-ish'"),
    (("train", "--preset", "huge"), "unknown preset 'huge'"),
    (("train", "--mode", "frozen"), "--init-from"),
    (("train", "--model", "nobody/no-such-encoder", "--dataset", "rt-polarity"),
     "could not load 'nobody/no-such-encoder'"),
    (("train", "--dataset", "cifar10", "--limit", "8"), "cifar10 needs internet"),
    (("train", "--model", "mpnet-base", "--dataset", "fashion-mnist"), "takes text inputs"),
    (("train", "--lr", "nan"), "lr must be a finite number"),
    (("train", "--stem", "tiny"), "unknown stem 'tiny'"),
    (("train", "--preset", "smoke", "--config", "x.toml"), "give either --preset or --config, not both"),
    (("train", "--config", "no-such-file.toml"), "does not exist"),
])
def test_user_mistakes_print_one_clear_line(args, message, tmp_path, capsys):
    assert main(["--db", str(tmp_path / "db.duckdb"), *args]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in err
    assert not Store(tmp_path / "db.duckdb").path.exists() or Store(tmp_path / "db.duckdb").list_runs() == []


@pytest.mark.parametrize("args, message", [
    (("sweep", "x", "--theta", "1.5"), "theta must be in [0, 1]"),
    (("sweep", "x", "--theta", "abc"), "theta must be a number"),
    (("train", "--epochs", "0"), "must be at least 1, got 0"),
    (("train", "--mode", "distill"), "invalid choice: 'distill'"),
])
def test_argument_mistakes_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def _args(**kw):
    ns = argparse.Namespace(preset=None, config=None)
    for key, value in kw.items():
        setattr(ns, key, value)
    return ns


def test_flags_override_the_preset_or_the_file(tmp_path):
    image, text = train_configs(_args(preset="smoke", epochs=3, seeds=[4, 5]))
    assert (image.epochs, image.seeds, image.model) == (3, [4, 5], "resnet18") and text.epochs == 3
    assert image.preset == "smoke" and image.lr == 3e-4  # resolved: the paper's defaults filled in
    toml = tmp_path / "c.toml"
    toml.write_text('model = "resnet34"\nepochs = 2\n[[runs]]\nattach = ["layer2"]\n[[runs]]\nsidenet_hidden = 8\n')
    a, b = train_configs(_args(config=str(toml), sidenet_hidden=16))
    assert (a.model, a.attach, a.sidenet_hidden) == ("resnet34", ["layer2"], 16) and b.sidenet_hidden == 16
    (default,) = train_configs(_args(model="resnet50", stem="torchvision"))
    assert (default.model, default.stem, default.dataset) == ("resnet50", "torchvision", "fashion-mnist")
    with pytest.raises(UserError, match="give either --preset or --config"):
        train_configs(_args(preset="smoke", config=str(toml)))


def test_quickstart_leaves_a_db_that_holds_runs_alone(tmp_path, capsys):
    from helpers import STORE_META

    db = tmp_path / "db.duckdb"
    Store(db).start_run(STORE_META)
    assert main(["--db", str(db), "quickstart"]) == 0
    assert "already holds runs of its own" in capsys.readouterr().err


@pytest.fixture
def fake_quickstart(tmp_path, monkeypatch):
    """The quickstart's real configs, with train_run storing a complete run of the (config, seed) at
    once (or failing with the exception in `fail[model]`) and no worker process: (db, trained, queue, fail)."""
    import engine.train
    from engine.jobs import JobQueue

    from helpers import STORE_META, run_payload

    db, trained, fail = tmp_path / "db.duckdb", [], {}

    def train_run(cfg, seed, store, progress=None):
        run_id = store.start_run({**STORE_META, "seed": seed, "config": {**cfg.to_dict(), "seeds": [seed]}})
        trained.append((cfg.model, seed))
        if cfg.model in fail:
            err = fail[cfg.model]
            store.fail_run(run_id, f"{err.__class__.__name__}: {err}")
            raise err
        samples, costs, epochs = run_payload()
        store.finish_run(run_id, epochs=epochs, costs=costs, samples=samples, wall_time_s=1.0, checkpoint=None)
        return run_id

    monkeypatch.setattr(engine.train, "train_run", train_run)
    monkeypatch.setattr(JobQueue, "ensure_worker", lambda self: True)
    return db, trained, JobQueue(db=db), fail


def test_an_interrupted_quickstart_resumes_without_queueing_twice(fake_quickstart, capsys):
    from engine.presets import QUICKSTART_FOREGROUND, preset

    db, trained, queue, fail = fake_quickstart
    configs = preset("quickstart")
    first, later = configs[0], configs[QUICKSTART_FOREGROUND:]
    fail[first.model] = KeyboardInterrupt()  # Ctrl-C in the first run: a failed quickstart run, nothing queued
    assert main(["--db", str(db), "quickstart"]) != 0
    assert "interrupted" in capsys.readouterr().err
    assert trained == [(first.model, first.seeds[0])] and queue.jobs() == []
    fail.clear()
    assert main(["--db", str(db), "quickstart"]) == 0  # the next `make run` goes on
    assert trained[1:] == [(first.model, s) for s in first.seeds]
    jobs = queue.jobs()
    assert [j["config"]["model"] for j in jobs] == [c.model for c in later]
    assert [j["seeds"] for j in jobs] == [c.seeds for c in later]
    capsys.readouterr()
    assert main(["--db", str(db), "quickstart"]) == 0  # done or queued: nothing trains, nothing queues twice
    assert len(trained) == 1 + len(first.seeds) and len(queue.jobs()) == len(jobs)
    assert "every configuration is trained, training, queued or settled" in capsys.readouterr().err
    killed, cancelled = jobs
    queue._transition(killed["job_id"], "running")  # its process and worker gone: reconciled as failed
    queue.cancel(cancelled["job_id"])  # the user's choice: not queued again
    assert main(["--db", str(db), "quickstart"]) == 0
    assert [j["config"]["model"] for j in queue.jobs()[len(jobs):]] == [killed["config"]["model"]]
    assert queue.jobs()[0]["state"] == "failed" and len(trained) == 1 + len(first.seeds)


def test_a_quickstart_run_that_breaks_is_not_retried_and_the_rest_still_queues(fake_quickstart, capsys):
    from engine.presets import QUICKSTART_FOREGROUND, preset

    db, trained, queue, fail = fake_quickstart
    first = preset("quickstart")[0]
    fail[first.model] = RuntimeError("out of memory")
    assert main(["--db", str(db), "quickstart"]) == 2  # make run serves anyway (the Makefile goes on)
    assert capsys.readouterr().err.splitlines()[-1] == (f"error: the quickstart's run failed: {first.model} seed "
                                                        f"{first.seeds[0]}: RuntimeError: out of memory")
    assert len(queue.jobs()) == len(preset("quickstart")) - QUICKSTART_FOREGROUND
    fail.clear()
    assert main(["--db", str(db), "quickstart"]) == 0 and len(trained) == 1  # the same failure would come back
    (run,) = Store(db).list_runs(include_all=True)
    assert f"{run['run_id']} failed (RuntimeError: out of memory); not trained again: `python -m engine delete " \
           f"{run['run_id']}`" in capsys.readouterr().err
    Store(db).delete_run(run["run_id"])
    assert main(["--db", str(db), "quickstart"]) == 0 and len(trained) == 2  # deleted: retried


@pytest.mark.slow
def test_train_in_a_subprocess_prints_the_summary(tmp_path):
    db = tmp_path / "t.duckdb"
    proc = cli("train", "--limit", "64", "--epochs", "1", "--device", "cpu", "--seeds", "0", "1", db=db, check=True)
    runs = Store(db).list_runs()
    assert len(runs) == 2 and sorted(r["seed"] for r in runs) == [0, 1]
    assert all(r["run_id"] in proc.stdout for r in runs) and "[2/2] training resnet18" in proc.stderr
    again = cli("train", "--limit", "64", "--epochs", "1", "--device", "cpu", "--seeds", "0", "1", "2", "--resume",
                db=db, check=True)  # an interrupted preset goes on: seeds 0 and 1 are skipped, seed 2 trains
    assert again.stderr.count("already trained this configuration") == 2 and "[3/3] training resnet18" in again.stderr
    assert sorted(r["seed"] for r in Store(db).list_runs()) == [0, 1, 2]
