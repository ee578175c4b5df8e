"""The explorer keeps serving every page whatever the DB file or the jobs folder holds, user text never reaches
HTML, a running run cannot be deleted from the Runs page, and the upload cap matches the demo's own."""
from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path

import duckdb
import pytest
from faultkit import (
    DB_FILE_MESSAGES,
    META,
    REPO,
    TALLY,
    complete_run,
    counts,
    db_with_malformed_runs,
    make_file,
    snapshot,
    spec,
    v1_db,
    write_job,
)

from engine import procs
from engine.store import Store

APP = REPO / "explorer" / "app.py"
PAGES = re.findall(r'st\.Page\("(views/\w+\.py)"', APP.read_text())
DB_PAGES = ("views/tradeoff.py", "views/calibration.py", "views/ensemble.py", "views/paper.py", "views/demo.py",
            "views/runs.py")
HOSTILE = '<iframe src="https://evil.example"></iframe><form action="https://evil.example"><input type="password">'
RAW_HTML = re.compile(r"(?<!\\)<(iframe|form|input|script)")
NOT_SIDENETS = {**DB_FILE_MESSAGES,  # what a page says about each file (the store's message)
    "corrupt": "cannot open {db} as a DuckDB database: Corrupt database file: computed checksum",
    "other-runs": "{db} is a DuckDB file but not a SideNets database (a 'runs' table of another schema;",
    "old": "{db} needs a migration (schema 1, this version uses 2): run `python -m engine migrate --db {db}`",
}


def unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def texts(at) -> list[str]:
    out = []
    for kind in ("markdown", "caption", "error", "warning", "info", "success", "title", "subheader", "header"):
        out += [str(e.value) for e in getattr(at, kind)]
    return out


def jobs_folder(jobs: Path) -> None:
    """Malformed folders beside a live job (this process stands in for its training process: nothing here
    cancels it) with a hostile label, and finished jobs with hostile text."""
    write_job(jobs, "list-spec", raw="[]")
    write_job(jobs, "no-state", raw=json.dumps({"config": {}, "seeds": [0], "job_id": ".."}))
    write_job(jobs, "unknown-state", spec("paused"))
    write_job(jobs, "garbage-progress", spec("running"), progress="%%%")
    write_job(jobs, "loss-text", spec("running"), progress={"loss": "x", "epochs": 1, "steps": 1})
    write_job(jobs, "no-spec")
    (jobs / "linked").symlink_to(jobs.parent.parent / "outside" / "victim", target_is_directory=True)
    live = {"pid": os.getpid(), "pid_start": procs.start_ticks(os.getpid())}
    write_job(jobs, "hostile-running", spec("running", label=HOSTILE, device=HOSTILE, **live),
              progress={"phase": HOSTILE, "epochs": 2, "epoch": 1, "steps": 4, "step": 2, "loss": 0.5})
    write_job(jobs, "hostile-done", spec("done", label=HOSTILE, run_ids=[HOSTILE]))
    write_job(jobs, "hostile-failed", spec("failed", label=HOSTILE, error=HOSTILE))


def db_with_runs(db: Path) -> dict:
    store = Store(db)
    done = complete_run(store, run_id="complete")
    failed = store.start_run({**META, "run_id": "failed"})
    store.fail_run(failed, HOSTILE)
    running = store.start_run({**META, "run_id": "running"})  # this process: alive
    hostile = complete_run(store, run_id="hostile", seed=1)
    con = duckdb.connect(str(db))
    con.execute("UPDATE runs SET device = ?, class_names = [?, 'b', 'c'], error = ? WHERE run_id = ?",
                [HOSTILE, HOSTILE, HOSTILE, hostile])
    con.close()
    return {"complete": done, "running": running, "failed": failed}


STATES = ["missing", "schema-only", "runs", "malformed-runs", *NOT_SIDENETS]


@pytest.fixture
def app(sandbox, monkeypatch):
    from streamlit.testing.v1 import AppTest

    def open_(page: str | None = None):
        at = AppTest.from_file(str(APP), default_timeout=120)
        at.run()
        if page:
            at.switch_page(page).run()
        return at

    return open_


@pytest.mark.parametrize("state", STATES)
def test_every_page_serves_whatever_the_db_and_the_jobs_folder_hold(sandbox, app, state):
    if state == "schema-only":
        Store(sandbox.db).migrate()
    elif state == "runs":
        db_with_runs(sandbox.db)
    elif state == "malformed-runs":
        db_with_malformed_runs(sandbox.db)
    elif state == "old":
        v1_db(sandbox.db)
    elif state != "missing":
        make_file(state, sandbox.db)
    jobs_folder(sandbox.jobs)
    before = snapshot(sandbox.data)
    message = NOT_SIDENETS.get(state, "").format(db=sandbox.db)
    at = app()
    for page in PAGES:
        at.switch_page(page).run()
        TALLY["tracebacks"] += len(at.exception)
        assert not at.exception, (page, [e.value for e in at.exception])
        shown = texts(at)
        assert not [t for t in shown if RAW_HTML.search(t)], page
        assert not [m for m in at.markdown if m.proto.allow_html], page
        errors = " ".join(unescape(e.value) for e in at.error)
        if page in DB_PAGES and message:
            assert f"Cannot read the database: {message}" in errors, (page, errors)
        if page in DB_PAGES and state == "missing":
            assert f"No database at {sandbox.db}." in errors
        if page == "views/runs.py" and state in ("runs", "malformed-runs"):  # every failed, running, malformed run
            at.toggle(key="runs_all").set_value(True).run()
            for run_id in at.selectbox(key="runs_selected").options:
                at.selectbox(key="runs_selected").set_value(run_id).run()
                TALLY["tracebacks"] += len(at.exception)
                assert not at.exception, (run_id, [e.value for e in at.exception])
            at.toggle(key="runs_all").set_value(False).run()
        if page == "views/train.py":
            assert "This job folder cannot be read: spec.json holds list, not an object. Clear removes it." in errors
            assert "This job folder cannot be read: progress.json: loss must be a number, got 'x'. Clear removes it." \
                   in errors
    assert snapshot(sandbox.data) == before  # serving changed nothing (no DB created, no job touched)


def test_the_train_page_clears_broken_and_finished_jobs_and_only_them(sandbox, app):
    jobs_folder(sandbox.jobs)
    at = app("views/train.py")
    at.button(key="train_clear").click().run()
    assert not at.exception
    assert sorted(p.name for p in sandbox.jobs.iterdir()) == ["hostile-running"]  # broken ones have no live process
    assert (sandbox.outside / "victim" / "important.duckdb").read_bytes() == b"precious"


def test_a_running_run_cannot_be_deleted_from_the_runs_page(sandbox, app):
    ids = db_with_runs(sandbox.db)
    rows = counts(sandbox.db)
    at = app("views/runs.py")
    at.toggle(key="runs_all").set_value(True).run()
    at.selectbox(key="runs_selected").set_value(ids["running"]).run()
    assert not at.exception and at.button(key="runs_delete").disabled
    assert "This run is still training" in " ".join(i.value for i in at.info)
    at.selectbox(key="runs_selected").set_value(ids["complete"]).run()
    at.button(key="runs_delete").click().run()
    at.button(key="runs_delete_confirm").click().run()
    assert not at.exception and counts(sandbox.db)["runs"] == rows["runs"] - 1
    assert "Deleted complete." in " ".join(unescape(s.value) for s in at.success)


def test_no_user_text_can_reach_html():
    """Nothing in the app renders HTML: no unsafe_allow_html=True, no st.html, no components."""
    sources = {p: p.read_text() for p in (REPO / "explorer").rglob("*.py")}
    for path, text in sources.items():
        assert not re.search(r"unsafe_allow_html\s*=\s*True", text), path
        assert not re.search(r"\bst\.html\(|components\.(v1\.)?html|components\.iframe", text), path


def test_the_upload_cap_is_the_demo_s_own():
    from engine.runtime.demo import MAX_UPLOAD_BYTES

    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 2**20 == MAX_UPLOAD_BYTES == 20 * 2**20
