"""The DB as a fault surface: foreign, corrupt, old and newer files, a second writer, concurrent writers and
readers, a kill inside the final transaction or a migration, delete of a running run, orphan checkpoints."""
from __future__ import annotations

import re
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from faultkit import (
    DB_FILE_MESSAGES,
    META,
    complete_run,
    counts,
    db_with_malformed_runs,
    engine_cli,
    killed,
    make_file,
    no_traceback,
    refused,
    run,
    start,
    statuses,
    v1_db,
)

from engine.errors import UserError
from engine.store import Store

HERE = Path(__file__).parent
SCRIPT_HOLD = """
import duckdb, sys, time, pathlib
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
while not pathlib.Path(sys.argv[2]).exists():
    time.sleep(0.02)
"""
SCRIPT_TRAINER = """
import signal, sys, time
from engine.store import Store
def stop(*_):
    raise KeyboardInterrupt("stopped by signal 15")
signal.signal(signal.SIGTERM, stop)
store = Store(sys.argv[1])
run_id = store.start_run({"model": "resnet18", "dataset": "fashion-mnist", "seed": 0, "attach": ["layer1"]})
print(run_id, flush=True)
try:
    while True:
        time.sleep(0.05)
except KeyboardInterrupt as err:
    store.fail_run(run_id, f"KeyboardInterrupt: {err}", only_running=True)  # what train_run does
    print("recorded failed", flush=True)
    sys.exit(130)
"""


def digest(path) -> bytes:
    return path.read_bytes()


FILES = {**DB_FILE_MESSAGES,  # kind: the exact message (a regex for DuckDB's own checksum text)
    "corrupt": re.compile(r"cannot open .* as a DuckDB database: Corrupt database file: computed checksum \d+ does "
                          r"not match stored checksum \d+ in block at location \d+"),
    "other-runs": "{db} is a DuckDB file but not a SideNets database (a 'runs' table of another schema; its tables: "
                  "costs, epochs, latency, meta, runs, samples); give another --db / SIDENETS_DB",
}


@pytest.mark.parametrize("kind", FILES)
def test_a_db_that_is_not_a_sidenets_db(sandbox, kind):
    """Readers and writers, the CLI and the store: one exact line; the file's bytes unchanged, nothing created."""
    make_file(kind, sandbox.db)
    before, data = digest(sandbox.db), sandbox.data_state()
    expected = FILES[kind]
    for action in (lambda: Store(sandbox.db).list_runs(), lambda: Store(sandbox.db).start_run(META),
                   lambda: Store(sandbox.db).delete_run("r"), lambda: Store(sandbox.db).migrate()):
        with pytest.raises(UserError) as err:
            action()
        if isinstance(expected, str):
            assert str(err.value) == expected.format(db=sandbox.db)
        else:
            assert expected.fullmatch(str(err.value)), str(err.value)
    for argv in (["runs"], ["delete", "r"], ["migrate"], ["summary"]):
        result = engine_cli(*argv)
        refused(result, "error: " + str(err.value))
    assert digest(sandbox.db) == before and sandbox.data_state() == data  # no .wal, no checkpoints/


@pytest.mark.slow
def test_an_old_schema_db_readers_refuse_a_killed_migration_changes_nothing(sandbox):
    v1_db(sandbox.db)
    db, before = sandbox.db, digest(sandbox.db)
    message = (f"{db} needs a migration (schema 1, this version uses 2): run `python -m engine migrate --db {db}` "
               "(any training command does it too)")
    with pytest.raises(UserError, match=re.escape(message)):
        Store(db).list_runs()
    refused(engine_cli("runs"), "error: " + message)
    assert digest(db) == before
    # killed inside the migration's transaction: the file stays a version-1 file
    killed(run(["-c", "import sys; from engine.store import Store; Store(sys.argv[1]).migrate()", db],
               fault="schema:migrated-uncommitted"))
    with pytest.raises(UserError, match=re.escape(message)):
        Store(db).list_runs()
    result = engine_cli("migrate")
    assert (result.rc, result.out, result.err) == (0, f"{db}: schema version 2\n", "")
    (old,) = Store(db).list_runs()
    assert old["run_id"] == "old" and old["config"]["patience"] == 6  # migrated once, not twice


@pytest.mark.slow
def test_a_second_writer_waits_then_names_the_holder_pid(sandbox):
    store = Store(sandbox.db)
    complete_run(store)
    rows = counts(sandbox.db)
    release = sandbox.inputs / "release"
    holder = start(["-c", SCRIPT_HOLD, sandbox.db, release])
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = (f"DB busy (held by pid {holder.pid}): {sandbox.db} is being written by another process; try again "
                "when it is done")
        for action in (lambda s: s.start_run(META), lambda s: s.list_runs(), lambda s: s.delete_run("x")):
            t0 = time.monotonic()
            with pytest.raises(UserError) as err:
                action(Store(sandbox.db, lock_timeout_s=0.5))
            assert str(err.value) == busy and time.monotonic() - t0 >= 0.5  # waited its bounded time first
        # a writer with time to wait gets in once the holder lets go
        waiting = start(["-c", "import sys; from engine.store import Store; print(Store(sys.argv[1], "
                               "lock_timeout_s=60).start_run({'model': 'm', 'dataset': 'd', 'seed': 1}))", sandbox.db])
        release.write_text("go")
        assert holder.wait(timeout=30) == 0
        out, _ = waiting.communicate(timeout=60)
        assert waiting.returncode == 0 and out.startswith("m-d-s1-"), out
    finally:
        release.write_text("go")
        holder.kill()
    assert counts(sandbox.db) == {**rows, "runs": rows["runs"] + 1}


WRITER = """
import sys
import numpy as np
from engine.store import Store
sys.path.insert(0, sys.argv[3])
from faultkit import complete_run
store = Store(sys.argv[1], lock_timeout_s=120)
for i in range(3):
    complete_run(store, run_id=f"w{sys.argv[2]}-{i}")
"""
READER = """
import sys, time
from engine.store import Store
store = Store(sys.argv[1], lock_timeout_s=120)
end, seen = time.monotonic() + 4, 0
while time.monotonic() < end:
    for run in store.list_runs():
        assert store.logits(run["run_id"])["heads"]["main"].shape == (8, 3)  # a listed run is whole
        seen += 1
print(seen)
"""


@pytest.mark.slow
def test_concurrent_writers_and_readers(sandbox):
    here = str(HERE)
    Store(sandbox.db).migrate()
    procs = [start(["-c", WRITER, sandbox.db, i, here]) for i in range(3)]
    procs += [start(["-c", READER, sandbox.db]) for _ in range(2)]
    outs = [p.communicate(timeout=180)[0] for p in procs]
    for p, out in zip(procs, outs):
        no_traceback(out)
        assert p.returncode == 0, out
    assert counts(sandbox.db) == {"runs": 9, "epochs": 9, "costs": 36, "samples": 9 * 16, "latency": 0}
    assert set(statuses(sandbox.db).values()) == {"complete"}


@pytest.mark.slow
def test_a_kill_inside_the_final_transaction_leaves_no_half_run(sandbox):
    script = ("import sys; sys.path.insert(0, sys.argv[2]); from faultkit import complete_run; "
              "from engine.store import Store; complete_run(Store(sys.argv[1]), run_id='half')")
    killed(run(["-c", script, sandbox.db, str(HERE)],
               fault="store:before-commit"))
    assert counts(sandbox.db) == {"runs": 1, "epochs": 0, "costs": 0, "samples": 0, "latency": 0}
    (row,) = Store(sandbox.db).list_runs(include_all=True)
    assert (row["status"], row["error"]) == ("failed", "the training process ended without finishing (killed?)")
    assert Store(sandbox.db).list_runs() == []
    complete_run(Store(sandbox.db))  # the next writer records it failed for good
    assert statuses(sandbox.db)["half"] == "failed"


@pytest.fixture
def trainer(sandbox):
    """A process that registered a running run and trains until SIGTERM (then records it failed, as train_run)."""
    proc = start(["-c", SCRIPT_TRAINER, sandbox.db])
    run_id = proc.stdout.readline().strip()
    yield proc, run_id
    proc.kill()
    proc.wait()


@pytest.mark.slow
def test_delete_of_a_running_run_is_refused_then_cancel_stops_it_first(sandbox, trainer):
    proc, run_id = trainer
    rows = counts(sandbox.db)
    refused(engine_cli("delete", run_id), f"error: run {run_id} is still training (pid {proc.pid}); stop it first, "
                                          "or delete with --cancel to stop it and delete it")
    assert counts(sandbox.db) == rows and proc.poll() is None  # untouched, still training
    result = engine_cli("delete", run_id, "--cancel")
    assert (result.rc, result.out, result.err) == (0, f"deleted {run_id}\n", "")
    assert proc.wait(timeout=10) == 130 and proc.stdout.read().strip() == "recorded failed"
    assert counts(sandbox.db)["runs"] == 0


@pytest.mark.slow
def test_a_deleter_killed_after_stopping_the_run_deletes_nothing(sandbox, trainer):
    proc, run_id = trainer
    killed(run(["-c", "import sys; from engine.store import Store; Store(sys.argv[1]).delete_run(sys.argv[2], "
                      "cancel=True)", sandbox.db, run_id], fault="store:delete-after-term"))
    assert proc.wait(timeout=10) == 130
    assert statuses(sandbox.db) == {run_id: "failed"}  # recorded failed by itself, not deleted
    result = engine_cli("delete", run_id)  # no longer running: no --cancel needed
    assert result.rc == 0 and counts(sandbox.db)["runs"] == 0


def test_a_run_deleted_while_it_trained_is_not_resurrected_by_its_finish(sandbox):
    store = Store(sandbox.db)
    run_id = store.start_run(META)
    (sandbox.data / "checkpoints").mkdir()
    ckpt = sandbox.data / "checkpoints" / f"{run_id}.safetensors"
    ckpt.write_bytes(b"weights")
    con = duckdb.connect(str(sandbox.db))
    con.execute("DELETE FROM runs WHERE run_id = ?", [run_id])  # e.g. deleted by an older version
    con.close()
    from faultkit import payload

    with pytest.raises(UserError) as err:
        store.finish_run(run_id, wall_time_s=1, checkpoint=f"checkpoints/{run_id}.safetensors", **payload())
    assert str(err.value) == f"run {run_id} was deleted while it trained; its results are discarded"
    assert counts(sandbox.db) == {"runs": 0, "epochs": 0, "costs": 0, "samples": 0, "latency": 0}
    assert not ckpt.exists()


def test_a_late_failure_never_demotes_a_complete_run(sandbox):
    """A cancel landing just after the final commit: fail_run(only_running=True) leaves the run complete."""
    store = Store(sandbox.db)
    (sandbox.data / "checkpoints").mkdir()
    run_id = complete_run(store, checkpoint="checkpoints/late.safetensors", run_id="late")
    (sandbox.data / "checkpoints" / "late.safetensors").write_bytes(b"w")
    store.fail_run(run_id, "KeyboardInterrupt: too late", only_running=True)
    assert statuses(sandbox.db) == {"late": "complete"} and (sandbox.data / "checkpoints" / "late.safetensors").exists()


@pytest.mark.slow
def test_a_recycled_pid_is_not_a_running_run_and_is_never_signalled(sandbox):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        store = Store(sandbox.db)
        run_id = store.start_run(META)
        past = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)
        con = duckdb.connect(str(sandbox.db))  # the run's process died; its pid now names another process
        con.execute("UPDATE runs SET pid = ?, created_at = ? WHERE run_id = ?", [sleeper.pid, past, run_id])
        con.close()
        (row,) = store.list_runs(include_all=True)
        assert row["status"] == "failed"
        assert store.delete_run(run_id) and counts(sandbox.db)["runs"] == 0
        assert sleeper.poll() is None  # never sent a signal
    finally:
        sleeper.kill()
        sleeper.wait()


def test_orphan_checkpoints_are_removed_and_nothing_else(sandbox):
    store = Store(sandbox.db)
    ckpts = sandbox.data / "checkpoints"
    ckpts.mkdir()
    keep = complete_run(store, run_id="complete", checkpoint="checkpoints/complete.safetensors")
    complete_run(store, run_id="tuned", config={"init_from": "complete"})  # joint: it saved all its own weights
    frozen_base = complete_run(store, run_id="base", checkpoint="checkpoints/base.safetensors")
    complete_run(store, run_id="frozen", mode="frozen", config={"init_from": "base"})
    running = store.start_run({**META, "run_id": "running"})  # this process: alive
    failed = store.start_run({**META, "run_id": "failed"})
    store.fail_run(failed, "boom")
    con = duckdb.connect(str(sandbox.db))
    con.execute("INSERT INTO runs (run_id, status) VALUES ('../../outside/canary', 'failed'), ('linked', 'failed')")
    con.close()
    for name in (keep, frozen_base, running, failed, "absent"):
        (ckpts / f"{name}.safetensors").write_bytes(b"w")
    (ckpts / "notes.txt").write_text("mine")
    (ckpts / "linked.safetensors").symlink_to(sandbox.outside / "canary.txt")
    store.start_run({**META, "run_id": "next"})  # any writer cleans up
    assert sorted(p.name for p in ckpts.iterdir()) == ["absent.safetensors", "base.safetensors",
                                                       "complete.safetensors", "linked.safetensors", "notes.txt",
                                                       "running.safetensors"]
    assert store.delete_run(keep) and not (ckpts / "complete.safetensors").exists()
    assert store.delete_run(frozen_base) and (ckpts / "base.safetensors").exists()  # the frozen run still reads it
    assert store.delete_run("frozen") and not (ckpts / "base.safetensors").exists()  # now none does
    assert (sandbox.outside / "canary.txt").read_text() == "nothing may write or delete me\n"


@pytest.mark.slow
def test_an_unwritable_checkpoint_folder_fails_before_any_training(sandbox):
    (sandbox.data / "checkpoints").write_text("a file where the folder goes")
    before = sandbox.data_state()
    from faultkit import TINY

    refused(engine_cli("train", *TINY), f"error: cannot write checkpoints to {sandbox.data / 'checkpoints'} "
                                        "(File exists); fix its permissions or use another --db")
    assert sandbox.data_state() == before and not sandbox.db.exists()


def test_a_signal_is_sent_only_to_the_run_s_own_process(sandbox):
    """delete --cancel of a run whose process is gone: nothing to stop, deleted (no stray kill)."""
    store = Store(sandbox.db)
    run_id = store.start_run(META)
    con = duckdb.connect(str(sandbox.db))
    con.execute("UPDATE runs SET pid = ? WHERE run_id = ?", [2**22 + 12345, run_id])
    con.close()
    assert store.delete_run(run_id, cancel=True) and counts(sandbox.db)["runs"] == 0


def test_a_db_with_malformed_records_never_breaks_the_cli(sandbox):
    """Complete runs another program wrote badly: listed, summarised (a bad one skipped with a warning), refused."""
    db_with_malformed_runs(sandbox.db)
    rows = counts(sandbox.db)
    for argv in (["runs"], ["runs", "--all"], ["runs", "--json"], ["summary"], ["summary", "--json"]):
        result = engine_cli(*argv)
        no_traceback(result.err)
        assert result.rc == 0 and result.out, argv
    assert engine_cli("summary").err == ("warning: skipping run r8: run r8 has no stored test logits for its SideNet "
                                         "at nope\n")
    refused(engine_cli("sweep", "r8", "--theta", "0.5"), "error: run r8 has no stored test logits for its SideNet "
                                                         "at nope")
    assert counts(sandbox.db) == rows


def test_ragged_logits_are_one_error_line(sandbox):
    run_id = complete_run(Store(sandbox.db), run_id="ragged")
    con = duckdb.connect(str(sandbox.db))
    con.execute("UPDATE samples SET logits = [1.0, 2.0] WHERE idx = 0 AND head = 'main'")
    con.execute("UPDATE samples SET logits = [1.0, 2.0, 3.0, 4.0] WHERE idx = 1 AND head = 'main'")
    con.close()
    rows = counts(sandbox.db)
    refused(engine_cli("sweep", run_id, "--theta", "0.5"),
            f"error: run 'ragged' has malformed logits in {sandbox.db} (rows of different lengths)")
    assert counts(sandbox.db) == rows
