"""The explorer's data: the DB, cached loads, theta-independent results computed once.

Caching (the reason reruns are fast):
- the run list is cached per (DB path, Store.version()): a new, deleted or finished run changes
  the file, so the next rerun sees it without restarting the app;
- each run is loaded ONCE and prepared (confidences, exit scores, ThetaCurves;
  engine.analysis.runs.prepare_run), cached per (DB path, run_id, finished_at, latency stamp): a
  complete run never changes (but for latency measured later, which the stamp covers);
- each configuration's whole theta curve and the tables are computed once per (runs, options);
so a theta change only does ``searchsorted`` lookups and masks. No math here: numbers come from
engine.analysis.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import streamlit as st

from engine import paths
from engine.analysis import calibration, summary, tables
from engine.analysis.configurations import Configuration
from engine.analysis.runs import PreparedRun, prepare_run
from engine.errors import UserError
from engine.store import Store

LOCK_TIMEOUT_S = 15.0


# -- the database --------------------------------------------------------------------------
def db_path() -> Path:
    """$SIDENETS_DB, else data/sidenets.duckdb (a bad $SIDENETS_DB: UserError)."""
    return paths.db_path(None)


def store() -> Store:
    return Store(db_path(), lock_timeout_s=LOCK_TIMEOUT_S)


_TEXT = ("run_id", "model", "dataset", "mode")  # what the pages group and label runs by: non-empty text
_OPTIONAL = {"seed": int, "sidenet_hidden": int, "num_classes": int, "sidenet_order": str, "attach": list,
             "class_names": list}


def record_problem(run: dict) -> str | None:
    """Why a run's stored record cannot be shown by the analysis pages (a DB written by something else), or None."""
    for key in _TEXT:
        if not isinstance(run.get(key), str) or not run[key]:
            return f"its {key} is {run.get(key)!r}"
    for key, kind in _OPTIONAL.items():
        value = run.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            return f"its {key} is {value!r}"
    if not all(isinstance(a, str) for a in (run.get("attach") or []) + (run.get("class_names") or [])):
        return "its attach points or class names are not all text"
    return None


@st.cache_data(show_spinner=False, max_entries=32, ttl=60)
def _list_runs(path: str, version: tuple, include_all: bool) -> list[dict]:
    """The store's runs; a complete run whose record is malformed is left out (include_all: shown as failed)."""
    store = Store(path, lock_timeout_s=LOCK_TIMEOUT_S)
    runs = []
    for run in store.list_runs(include_all=include_all):
        problem = record_problem(run)
        if problem and run["status"] == "complete":
            if not include_all:
                continue
            run["status"], run["error"] = "failed", f"not shown: its stored record is malformed ({problem})"
        runs.append(run)
    latency = store.latency_stamps() if runs else {}
    for run in runs:  # what the run's prepared data depends on: its end, and latency measured later
        run["_stamp"] = f"{run.get('finished_at') or run.get('created_at')}|{latency.get(run['run_id'], '')}"
    return runs


def list_runs(include_all: bool = False) -> list[dict]:
    """Complete runs (or all runs), newest first. Raises UserError for a missing / bad DB."""
    s = store()
    if not s.path.exists():
        raise UserError(f"no database at {s.path}")
    return _list_runs(str(s.path), s.version(), include_all)


def db_problem() -> str | None:
    """A one-line description of what is wrong with the DB, or None when it opens."""
    try:
        list_runs()
    except UserError as err:
        return str(err)
    return None


# -- runs, prepared once ---------------------------------------------------------------------
class _Memo:
    """A small process-wide LRU (like st.cache_resource, shared by all sessions) with cheap keys:
    a hit is one dict lookup, not Streamlit's argument hashing (~1 ms per call on a busy CPU,
    paid dozens of times per rerun). Values are treated as read-only."""

    def __init__(self, maxsize: int):
        self.maxsize, self.data, self.lock = maxsize, OrderedDict(), threading.Lock()

    def get(self, key, compute):
        with self.lock:
            if key in self.data:
                self.data.move_to_end(key)
                return self.data[key]
        value = compute()  # outside the lock: two sessions may compute the same thing once each
        with self.lock:
            self.data[key] = value
            while len(self.data) > self.maxsize:
                self.data.popitem(last=False)
        return value

    def clear(self) -> None:
        with self.lock:
            self.data.clear()


_RUNS = _Memo(256)  # (path, run_id, stamp) -> {attach: PreparedRun}
_DERIVED = _Memo(1024)  # (path, name, run keys, kwargs) -> curve / reliability / table


def _prepared(path: str, run_id: str, stamp: str) -> dict[str | None, PreparedRun]:
    def load():
        with st.spinner(f"Loading run {run_id} (once)..."):
            return prepare_run(Store(path, lock_timeout_s=LOCK_TIMEOUT_S), run_id)
    return _RUNS.get((path, run_id, stamp), load)


def run_stamp(run: dict) -> str:
    """What a run's cached data depends on: its end, and latency measured later."""
    return run.get("_stamp") or str(run.get("finished_at") or run.get("created_at"))


def load_groups(configs: list[Configuration], runs: list[dict]) -> list[tuple[Configuration, list[PreparedRun]]]:
    """Each configuration with its prepared runs. A run that vanished (deleted meanwhile) is
    skipped with a warning; a configuration left with no run is dropped."""
    by_id = {r["run_id"]: r for r in runs}
    path = str(db_path())
    out, gone = [], []
    for cfg in configs:
        prepared = []
        for rid in cfg.run_ids:
            try:
                prepared.append(_prepared(path, rid, run_stamp(by_id[rid]))[cfg.attach])
            except (UserError, KeyError) as err:
                gone.append(f"{rid} ({err})")
        if prepared:
            out.append((cfg, prepared))
    if gone:
        st.warning("Some runs could not be loaded (deleted while shown?) and are left out: "
                   + "; ".join(gone[:5]) + (" ..." if len(gone) > 5 else ""), icon=":material/warning:")
    return out


def run_keys(runs: list[PreparedRun], all_runs: list[dict]) -> tuple:
    by_id = {r["run_id"]: r for r in all_runs}
    return tuple((r.run_id, run_stamp(by_id.get(r.run_id, {})), r.attach) for r in runs)


_PER_RUNS = {"curve": summary.curve, "head_reliability": calibration.head_reliability}


def memo(key: tuple, compute):
    """Cache any theta-independent value (e.g. a chart's fixed part) process-wide under ``key``."""
    return _DERIVED.get((str(db_path()),) + key, compute)


def derived(name: str, runs: list[PreparedRun], all_runs: list[dict], **kw):
    """A theta-independent explore function of a configuration's runs, computed once (cached):
    ``curve`` (the whole theta grid) or ``head_reliability``. Treat the result as read-only."""
    key = (str(db_path()), name, run_keys(runs, all_runs), tuple(sorted(kw.items())))
    return _DERIVED.get(key, lambda: _PER_RUNS[name](runs, **kw))


def config_curve(runs: list[PreparedRun], all_runs: list[dict], ensemble: bool = False, rule: str = "max-prob") -> dict:
    """The configuration's curve over the theta grid, computed once (cached)."""
    return derived("curve", runs, all_runs, ensemble=ensemble, rule=rule)


_TABLES = {"table1": tables.table1_ece, "table2": tables.table2_mainnet, "table3": tables.table3_accuracy,
           "table4": tables.table4_ensemble}


def table(name: str, groups, all_runs: list[dict], **kw) -> list[dict]:
    """One of the paper's tables (engine.analysis.tables), cached (theta-independent)."""
    keys = tuple((cfg, run_keys(runs, all_runs)) for cfg, runs in groups)
    return _DERIVED.get((str(db_path()), "table:" + name, keys, tuple(sorted(kw.items()))),
                        lambda: _TABLES[name](groups, **kw))


def job_queue():
    from engine.jobs import JobQueue

    return JobQueue(paths.jobs_dir(db_path()), db_path())
