"""engine.jobs.__main__: `python -m engine.jobs list|cancel|clear|worker|run` (in-process; the
processes the worker starts are covered by tests/test_jobs.py)."""
import signal

import pytest

from engine.jobs import JobQueue
from engine.jobs.__main__ import main, one_line


@pytest.fixture
def queue(tmp_path):
    before = signal.getsignal(signal.SIGTERM)  # `worker` installs its own SIGTERM handler
    yield JobQueue(tmp_path / "jobs", tmp_path / "runs.duckdb", revive=False)
    signal.signal(signal.SIGTERM, before)


def _argv(queue, *args):
    return [*args, "--jobs-dir", str(queue.dir), "--db", str(queue.db)]


def test_list_cancel_and_clear(queue, capsys):
    assert main(_argv(queue, "list")) == 0 and capsys.readouterr().out == ""
    job = queue.submit({"model": "resnet18", "dataset": "fashion-mnist"}, [0], label="a label\nwith a newline")
    assert main(_argv(queue, "cancel", job)) == 0
    assert capsys.readouterr().out == "cancelled\n"  # still queued: cancelled at once, no worker needed
    assert main(_argv(queue, "list")) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{job}  cancelled") and "a label?with a newline" in out  # one line per job
    assert main(_argv(queue, "clear")) == 0
    assert capsys.readouterr().out == "removed 1 finished or broken job(s)\n" and queue.jobs() == []


def test_user_errors_exit_2(queue, capsys):
    assert main(_argv(queue, "cancel", "no-such-job")) == 2
    assert "error: no job 'no-such-job'" in capsys.readouterr().err
    assert main(["run", str(queue.dir / "no-such-job"), "--db", str(queue.db)]) == 2


def test_an_idle_worker_leaves(queue, capsys):
    assert main(_argv(queue, "worker", "--idle-exit-s", "0")) == 0
    assert "ran 0 job(s); queue empty, leaving" in capsys.readouterr().out
    assert not queue.worker_alive() and not (queue.dir / "worker.pid").exists()


def test_one_line():
    assert one_line("a\tb\x1b[31mc") == "a?b?[31mc" and one_line(None) == "" and len(one_line("x" * 500)) == 100


def test_the_top_level_db_reaches_the_queue(tmp_path, capsys):
    """`python -m engine --db F jobs list` reads the jobs next to F, like `jobs list --db F`."""
    from engine.cli import main as engine_main

    db = tmp_path / "elsewhere" / "runs.duckdb"
    db.parent.mkdir()
    queue = JobQueue(None, db, revive=False)
    job = queue.submit({"model": "resnet18", "dataset": "fashion-mnist"}, [0], label="x")
    queue.cancel(job)  # cancelled while queued: no worker ever starts it
    assert engine_main(["--db", str(db), "jobs", "list"]) == 0
    assert capsys.readouterr().out.startswith(f"{job}  cancelled")
