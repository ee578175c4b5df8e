"""Widgets and page scaffolding shared by the pages: the page start, selections, theta, the sidebar.

Session-wide choices use fixed session keys, so they survive page switches: the dataset and exit rule
(widget keys), and θ (``st.session_state["theta"]``, written by the live θ control on release).
"""
from __future__ import annotations

import os

import streamlit as st

from engine.analysis import configurations
from engine.analysis.configurations import Configuration
from engine.errors import UserError
from engine.metrics import EXIT_RULES
from explorer import cache
from explorer.formatting import COST_NAMES, EXIT_RULE_NAMES, md_escape

DEFAULT_THETA = 0.8  # θ moves on a 0.001 grid (explorer/components/live_theta.py)
EMPTY_HINT = ("No runs yet. Train some: `make run` (trains the quickstart preset, then serves this app), "
              "`python -m engine train --preset smoke`, or the **Train** page.")


# -- page setup ------------------------------------------------------------------------------
def page_start(title: str, caption: str) -> tuple[list[dict], list[Configuration]]:
    """The start of every analysis page: title and caption, then (complete runs, configurations);
    stops the page with a friendly message while the DB is missing, unreadable or empty."""
    st.title(title)
    st.caption(caption)
    runs = require_runs()
    return runs, configurations.group_runs(runs)


def require_sidenet(configs: list[Configuration], message: str) -> list[Configuration]:
    """The configurations that have a SideNet; stops the page with `message` when there are none."""
    with_side = configurations.select(configs, sidenet=True)
    if not with_side:
        st.info(message, icon=":material/info:")
        st.stop()
    return with_side


def _empty_state(message: str, error: bool) -> None:
    (st.error if error else st.info)(message, icon=":material/error:" if error else ":material/info:")
    st.markdown(EMPTY_HINT)
    try:
        st.caption(f"Database: {md_escape(cache.db_path())} (set `SIDENETS_DB` to use another file).")
    except UserError as err:
        st.caption(md_escape(err))


def require_runs(include_all: bool = False) -> list[dict]:
    """The runs, or a clear message (bad DB / no runs) and stop the page (the app stays up)."""
    try:
        path = cache.db_path()
        if not path.exists():
            _empty_state(f"No database at {md_escape(path)}.", error=True)
            st.stop()
        runs = cache.list_runs(include_all)
    except UserError as err:
        _empty_state(f"Cannot read the database: {md_escape(err)}", error=True)
        st.stop()
    if not runs:
        _empty_state("This database holds no complete run yet.", error=False)
        st.stop()
    return runs


# -- selections ------------------------------------------------------------------------------
def dataset_select(configs: list[Configuration], container=st) -> str:
    names = configurations.datasets(configs)
    if st.session_state.get("dataset") not in names:
        st.session_state["dataset"] = names[0]
    return container.selectbox("Dataset", names, key="dataset",
                               help="Datasets that have complete runs in the database.")


def exit_rule_select(container=st) -> str:
    """The exit rule, shared across pages (metrics, charts and the live demo follow it)."""
    if st.session_state.get("exit_rule") not in EXIT_RULES:
        st.session_state["exit_rule"] = EXIT_RULES[0]
    return container.radio("Exit rule", EXIT_RULES, key="exit_rule", horizontal=True,
                           format_func=EXIT_RULE_NAMES.get,
                           help="How the SideNet's confidence is read. Max probability: the top class's softmax "
                                "probability (for a binary head max(p, 1 − p)). Margin: top-1 minus top-2 "
                                "probability (|2p − 1| for a binary head), under which the paper's θ = 0.2 and 0.4 "
                                "differ. Calibration always uses the top-class probability.")


def theta() -> float:
    """The session's θ (shared by the pages; the live θ control writes it when the user releases)."""
    value = st.session_state.get("theta")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        st.session_state["theta"] = value = DEFAULT_THETA
    return float(value)


THETA_LABEL = "Threshold θ: a sample exits at the SideNet when its confidence ≥ θ"
THETA_HELP = ("θ = 0 exits every sample; θ = 1 never exits (the MainNet answers everything). Drag, use the arrow "
              "keys or type a value: the numbers below follow at once; the rest of the page on release.")


def theta_control(page: str, payload, payload_id: str, view: dict) -> None:
    """The live θ slider and number box of ``page`` (explorer.components.live_theta), at the session's θ:
    ``payload`` (engine.analysis.live, built once per selection, ``payload_id`` names it) lets the
    browser recompute ``view``'s cards, table rows and chart marks while θ moves."""
    from explorer.components import live_theta

    live_theta.mount(page, theta(), payload, payload_id, view, THETA_LABEL, THETA_HELP)


def cost_kind_select(kinds: list[str], container=st, key: str = "cost_kind") -> str:
    """Radio among the cost kinds that exist (latency only once measured)."""
    if not kinds:
        return "params"
    if st.session_state.get(key) not in kinds:
        st.session_state[key] = kinds[0]
    return container.radio("Cost axis", kinds, format_func=COST_NAMES.get, key=key, horizontal=True,
                           help="Average cost per input: parameters touched, multiply-accumulates, or "
                                "measured latency (stored by `python -m engine latency RUN`).")


# -- sidebar -----------------------------------------------------------------------------------
def env_db_note() -> str:
    return "from $SIDENETS_DB" if os.environ.get("SIDENETS_DB") else "default; set $SIDENETS_DB to change"


def sidebar_jobs() -> None:
    """Background training in one line. While jobs are active the line refreshes every few seconds,
    and the whole page reruns when a run lands, so new runs appear without a click."""
    try:
        active_now = any(j["state"] in ("queued", "running") for j in cache.job_queue().jobs())
    except (OSError, UserError):
        return
    st.fragment(run_every=3.0 if active_now else None)(_jobs_line)()


def _jobs_line() -> None:
    try:
        jobs = cache.job_queue().jobs()  # reading starts a worker if queued jobs wait and none is alive
    except (OSError, UserError):
        return
    active = [j for j in jobs if j["state"] in ("queued", "running")]
    broken = sum(j["state"] == "broken" for j in jobs)
    landed = len(cache.list_runs()) if cache.db_problem() is None else 0
    seen, st.session_state["sidebar_runs_seen"] = st.session_state.get("sidebar_runs_seen"), landed
    was_active, st.session_state["sidebar_jobs_active"] = st.session_state.get("sidebar_jobs_active"), bool(active)
    if (seen is not None and landed != seen) or (was_active and not active):
        st.rerun()  # a run landed (or the queue emptied): every page and count up to date
    if active:
        running = [j for j in active if j["state"] == "running"]
        text = f"Training: {len(running)} running, {len(active) - len(running)} queued"
        if running:
            text += f" ({running[0]['fraction']:.0%})"
        st.caption(f":orange[{text}] (Train page)")
    if broken:
        st.caption(f":red[{broken} job folder{'s' if broken > 1 else ''} cannot be read] (Train page)")
