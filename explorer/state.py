"""Explorer plumbing shared by the pages: the DB, cached loads, the theta control, formatting.

Caching (the reason reruns are fast):
- the run list is cached per (DB path, Store.version()): a new, deleted or finished run changes
  the file, so the next rerun sees it without restarting the app;
- each run is loaded ONCE and prepared (confidences + ThetaCurves, engine.explore.prepare_run),
  cached per (DB path, run_id, finished_at, latency stamp): a complete run never changes (but for
  latency measured later, which the stamp covers), so a new run landing
  in the DB does not reload the others;
- each configuration's whole theta curve is computed once per (runs, fallback);
so a theta change only does ``searchsorted`` lookups and masks.

No math here: numbers come from engine.explore; this module only formats them.
"""
from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from pathlib import Path

import streamlit as st

from engine import explore
from engine.errors import UserError
from engine.explore import Configuration, PreparedRun
from engine.store import Store, resolve_db_path

DEFAULT_THETA = 0.8
THETA_STEP = 0.001
LOCK_TIMEOUT_S = 15.0
EMPTY_HINT = ("No runs yet. Train some: `make run` (trains the quickstart preset, then serves this app), "
              "`python -m engine train --preset smoke`, or the **Train** page.")
COST_NAMES = {"params": "parameters", "macs": "MACs", "ms": "latency"}
SHORT_COST_NAMES = {"params": "params", "macs": "MACs", "ms": "latency"}


# -- page setup ------------------------------------------------------------------------------
def page_start(title: str, caption: str) -> tuple[list[dict], list[Configuration]]:
    """The start of every analysis page: title and caption, then (complete runs, configurations);
    stops the page with a friendly message while the DB is missing, unreadable or empty."""
    st.title(title)
    st.caption(caption)
    runs = require_runs()
    return runs, explore.group_runs(runs)


def require_sidenet(configs: list[Configuration], message: str) -> list[Configuration]:
    """The configurations that have a SideNet; stops the page with `message` when there are none."""
    with_side = explore.select(configs, sidenet=True)
    if not with_side:
        st.info(message, icon=":material/info:")
        st.stop()
    return with_side


# -- the database --------------------------------------------------------------------------
def db_path() -> Path:
    """$SIDENETS_DB, else data/sidenets.duckdb."""
    return resolve_db_path(None)


def store() -> Store:
    return Store(db_path(), lock_timeout_s=LOCK_TIMEOUT_S)


@st.cache_data(show_spinner=False, max_entries=32, ttl=60)
def _list_runs(path: str, version: tuple, include_all: bool) -> list[dict]:
    store = Store(path, lock_timeout_s=LOCK_TIMEOUT_S)
    runs = store.list_runs(include_all=include_all)
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


def _empty_state(message: str, error: bool) -> None:
    (st.error if error else st.info)(message, icon=":material/error:" if error else ":material/info:")
    st.markdown(EMPTY_HINT)
    st.caption(f"Database: `{db_path()}` (set `SIDENETS_DB` to use another file).")


def require_runs(include_all: bool = False) -> list[dict]:
    """The runs, or a clear message (bad DB / no runs) and stop the page (the app stays up)."""
    path = db_path()
    if not path.exists():
        _empty_state(f"No database at `{path}`.", error=True)
        st.stop()
    try:
        runs = list_runs(include_all)
    except UserError as err:
        _empty_state(f"Cannot read the database: {md_escape(err)}", error=True)
        st.stop()
    if not runs:
        _empty_state("This database holds no complete run yet.", error=False)
        st.stop()
    return runs


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
            return explore.prepare_run(Store(path, lock_timeout_s=LOCK_TIMEOUT_S), run_id)
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


_PER_RUNS = {"curve": explore.curve, "head_reliability": explore.head_reliability}


def memo(key: tuple, compute):
    """Cache any theta-independent value (e.g. a chart's fixed part) process-wide under ``key``."""
    return _DERIVED.get((str(db_path()),) + key, compute)


def derived(name: str, runs: list[PreparedRun], all_runs: list[dict], **kw):
    """A theta-independent explore function of a configuration's runs, computed once (cached):
    ``curve`` (the whole theta grid) or ``head_reliability``. Treat the result as read-only."""
    key = (str(db_path()), name, run_keys(runs, all_runs), tuple(sorted(kw.items())))
    return _DERIVED.get(key, lambda: _PER_RUNS[name](runs, **kw))


def config_curve(runs: list[PreparedRun], all_runs: list[dict], ensemble: bool = False) -> dict:
    """The configuration's curve over the theta grid, computed once (cached)."""
    return derived("curve", runs, all_runs, ensemble=ensemble)


_TABLES = {"accuracy": explore.accuracy_table, "ece": explore.ece_table, "ensemble": explore.ensemble_table}


def table(name: str, groups, all_runs: list[dict], arg=None) -> list[dict]:
    """explore.accuracy_table / ece_table / ensemble_table, cached (theta-independent)."""
    keys = tuple((cfg, run_keys(runs, all_runs)) for cfg, runs in groups)
    fn = _TABLES[name]
    return _DERIVED.get((str(db_path()), "table:" + name, keys, arg),
                        lambda: fn(groups, arg) if arg is not None else fn(groups))


# -- selection widgets ------------------------------------------------------------------------
def dataset_select(configs: list[Configuration], container=st) -> str:
    names = explore.datasets(configs)
    if st.session_state.get("dataset") not in names:
        st.session_state["dataset"] = names[0]
    return container.selectbox("Dataset", names, key="dataset",
                               help="Datasets that have complete runs in the database.")


def theta_control(container=None) -> float:
    """The theta slider (fine steps) and a number box, kept in sync and shared across pages.

    Both widgets keep their value for the whole session (``persist_state="session"``), so θ
    survives page switches; each one's callback copies its value into the other.
    """
    c = container or st
    left, right = c.columns([5, 1], vertical_alignment="bottom")
    theta = left.slider("Threshold θ: a sample exits at the SideNet when its confidence ≥ θ", 0.0, 1.0,
                        value=DEFAULT_THETA, step=THETA_STEP, format="%.3f", key="theta_slider",
                        on_change=_sync_theta, args=("theta_slider", "theta_box"), persist_state="session",
                        help="θ = 0 exits every sample; θ = 1 never exits (the MainNet answers everything).")
    right.number_input("θ", 0.0, 1.0, value=DEFAULT_THETA, step=THETA_STEP, format="%.3f", key="theta_box",
                       on_change=_sync_theta, args=("theta_box", "theta_slider"), persist_state="session")
    return float(theta)


def _sync_theta(source: str, other: str) -> None:
    ss = st.session_state
    ss[other] = min(1.0, max(0.0, round(float(ss[source]), 6)))


# -- formatting -------------------------------------------------------------------------------
def md_escape(text) -> str:
    """Text shown as-is inside Streamlit markdown (e.g. an error naming TrainConfig.__init__)."""
    out = str(text)
    for ch in "\\`*_[]<>#|~$":
        out = out.replace(ch, "\\" + ch)
    return out


def signed(x: float, digits: int) -> str:
    """'+1.23', '-0.50', or '±0.00' when it rounds to zero (never '-0.00')."""
    text = f"{x:+.{digits}f}"
    return "±" + text[1:] if float(text) == 0 else text


def is_nan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def pm(ms: tuple[float, float], n_runs: int, scale: float = 100.0, digits: int = 2, unit: str = "%") -> str:
    """'87.34% ± 0.41' (mean ± std over seeds); no ± with a single run."""
    mean, std = ms
    if is_nan(mean):
        return "–"
    text = f"{mean * scale:.{digits}f}{unit}"
    return text + (f" ± {std * scale:.{digits}f}" if n_runs > 1 and not is_nan(std) else "")


def cost_unit(kind: str, max_value: float) -> tuple[float, str]:
    """(divisor, unit) for a cost kind: parameters in M, MACs in M or G, latency in ms."""
    if kind == "params":
        return 1e6, "M params"
    if kind == "macs":
        return (1e9, "G MACs") if max_value >= 1e9 else (1e6, "M MACs")
    return 1.0, "ms"


def fmt_cost(value: float, kind: str, scale: tuple[float, str] | None = None) -> str:
    div, unit = scale or cost_unit(kind, value)
    if is_nan(value):
        return "–"
    v = value / div
    digits = 3 if abs(v) < 1 else 2 if abs(v) < 10 else 1 if abs(v) < 100 else 0
    return f"{v:,.{digits}f} {unit}"


def cost_kind_select(kinds: list[str], container=st, key: str = "cost_kind") -> str:
    """Radio among the cost kinds that exist (latency only once measured)."""
    labels = {k: COST_NAMES[k] for k in kinds}
    if not kinds:
        return "params"
    if st.session_state.get(key) not in kinds:
        st.session_state[key] = kinds[0]
    return container.radio("Cost axis", kinds, format_func=labels.get, key=key, horizontal=True,
                           help="Average cost per input: parameters touched, multiply-accumulates, or "
                                "measured latency (stored by the cascade benchmark).")


def jobs_dir() -> Path:
    from engine.jobs import default_jobs_dir

    return default_jobs_dir(db_path())


def env_db_note() -> str:
    return "from $SIDENETS_DB" if os.environ.get("SIDENETS_DB") else "default; set $SIDENETS_DB to change"


def job_queue():
    from engine.jobs import JobQueue

    return JobQueue(jobs_dir(), db_path())


def sidebar_jobs() -> None:
    """One line about background training, if any is active."""
    try:
        active = [j for j in job_queue().jobs() if j["state"] in ("queued", "running")]
    except OSError:
        return
    if active:
        running = [j for j in active if j["state"] == "running"]
        text = f"Training: {len(running)} running, {len(active) - len(running)} queued"
        if running:
            text += f" ({running[0]['fraction']:.0%})"
        st.caption(f":orange[{text}] (Train page)")
