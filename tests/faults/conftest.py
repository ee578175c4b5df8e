"""The fault-injection suite's fixtures and its tally (printed at the end of any run that includes it):
cases, tracebacks, silent acceptances, files written or deleted outside the data/jobs/checkpoint folders."""
from __future__ import annotations

import pytest
from faultkit import REPO, TALLY, Sandbox, changed, reap, snapshot

WATCHED = ("sidenets.duckdb", "sidenets.duckdb.wal", "jobs", "checkpoints")  # the repo's own data, never touched


def _repo_state() -> dict:
    out = {}
    for folder in (REPO, REPO / "data"):
        for name in WATCHED:
            p = folder / name
            out[str(p)] = p.stat().st_mtime_ns if p.exists() else None
        out[str(folder)] = sorted(n for n in (x.name for x in folder.iterdir()) if n.endswith((".duckdb", ".parquet")))
    return out


@pytest.fixture(scope="session", autouse=True)
def _repo_untouched():
    before = _repo_state()
    yield
    moved = [k for k, v in _repo_state().items() if before.get(k) != v]
    TALLY["outside"] += len(moved)
    assert not moved, f"the fault suite changed the repository's own data: {moved}"


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A Sandbox with SIDENETS_DB set to its data/sidenets.duckdb; afterwards, nothing outside data/
    (and the case's own inputs/) may have changed, and no process of it is left running."""
    box = Sandbox(tmp_path)
    monkeypatch.setenv("SIDENETS_DB", str(box.db))
    monkeypatch.delenv("SIDENETS_JOBS", raising=False)
    monkeypatch.delenv("SIDENETS_FAULT", raising=False)
    before = snapshot(tmp_path, skip=("data", "inputs"))
    yield box
    reap(box.jobs)
    moved = changed(before, snapshot(tmp_path, skip=("data", "inputs")))
    TALLY["outside"] += len(moved)
    assert not moved, f"files outside data/ changed: {moved}"


def pytest_runtest_logreport(report):
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        if report.skipped:
            return
        TALLY["cases"] += 1
    if report.failed:
        TALLY["failed"] += 1
        crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
        if crash is not None and not crash.message.startswith(("AssertionError", "assert ", "Failed:")):
            TALLY["tracebacks"] += 1  # an exception nobody turned into a message


def pytest_terminal_summary(terminalreporter):
    if not TALLY["cases"]:
        return
    t = TALLY
    terminalreporter.write_sep("=", "fault-injection tally")
    terminalreporter.write_line(
        f"{t['cases']} cases ({t['failed']} failed), {len(t['kill_points'])} kill points, "
        f"{t['tracebacks']} tracebacks, "
        f"{t['silent']} silent acceptances, {t['outside']} files written or deleted outside the data/jobs/checkpoint "
        "folders")
    if t["kill_points"]:
        terminalreporter.write_line("kill points: " + ", ".join(sorted(t["kill_points"])))
