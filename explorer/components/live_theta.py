"""The live θ control: a slider and a number box whose dependent numbers (metric cards, the
tables at θ) and chart marks are recomputed IN THE BROWSER on every animation frame while θ
moves; the server reruns once per release ("commit"), for everything else on the page.

Built with st.components.v2 (inline JS/CSS in the page, no iframe): live_math.js redoes the
engine's arithmetic (engine.metrics, engine.analysis.summary / calibration, explorer.formatting)
bit for bit on the payload of engine.analysis.live; live_theta.js draws. plotly.js comes from the
plotly package (copied to explorer/static/ and served by this app: server.enableStaticServing), so
the page loads nothing from outside the app.

Data sent per run: {page, session, theta, rev, label, help, plotly_url, payload_id, payload, view}. ``view``
holds the labels, the figure and ``expect``: what the engine shows at the server's θ; the browser
checks its own numbers against it (``data-agrees`` on the element, a console error otherwise).
The session's θ is ``st.session_state["theta"]``; ``theta_rev`` counts the browser's commits so
that a rerun answering an older commit never moves the slider back.
"""
from __future__ import annotations

import hashlib
import math
import shutil
import uuid
from pathlib import Path

import streamlit as st
from streamlit import config

from engine.analysis.summary import MeanStd, Summary
from explorer.formatting import COST_NAMES, SHORT_COST_NAMES, cost_unit, fmt_cost, pm, signed

HERE = Path(__file__).resolve().parent
STATIC = HERE.parent / "static"  # Streamlit's app static folder (next to explorer/app.py)
THETA_KEY, REV_KEY, HAVE_KEY, SESSION_KEY = "theta", "theta_rev", "theta_live_have", "theta_live_session"
POPULATION_NAMES = {"exited": "exit at the SideNet", "deferred": "deferred to the MainNet", "cascade": "whole cascade"}
POPULATION_COLUMNS = ["population", "share of samples (%)", "accuracy (%)", "mean confidence (%)"]


def plotly_js() -> str | None:
    """Copy plotly.min.js of the installed plotly package to explorer/static/ (once per version);
    return its URL on this server (None when the server does not serve explorer/static/)."""
    import plotly

    if not config.get_option("server.enableStaticServing"):
        return None
    source = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    target = STATIC / "plotly.min.js"
    if not target.exists() or target.stat().st_size != source.stat().st_size:
        STATIC.mkdir(exist_ok=True)
        tmp = target.with_suffix(".tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(target)
    base = str(config.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base + '/' if base else ''}app/static/plotly.min.js"


_COMPONENT = st.components.v2.component(
    "sidenets.live_theta", html="", css=(HERE / "live_theta.css").read_text(),
    js="\n".join((HERE / name).read_text() for name in ("live_math.js", "live_chart.js", "live_theta.js")),
    isolate_styles=False)


def _on_commit(key: str) -> None:
    """The browser released θ: store it (clamped to [0, 1], on the 0.001 grid) and its commit number."""
    value = (st.session_state.get(key) or {}).get("commit")
    if not isinstance(value, dict):
        return
    try:
        theta, rev = float(value["theta"]), int(value["rev"])
    except (KeyError, TypeError, ValueError):
        return
    if math.isfinite(theta):
        st.session_state[THETA_KEY] = min(1.0, max(0.0, round(theta, 3)))
        st.session_state[REV_KEY] = max(rev, st.session_state.get(REV_KEY, 0))
    have = value.get("have")
    if isinstance(have, list):  # the payloads the browser holds decoded: not sent again
        st.session_state[HAVE_KEY] = {h for h in have[:8] if isinstance(h, str) and len(h) <= 32}


def _on_missing(key: str) -> None:
    """The browser lacks a payload the server thought it had: send it again."""
    missing = (st.session_state.get(key) or {}).get("missing")
    st.session_state[HAVE_KEY] = st.session_state.get(HAVE_KEY, set()) - {missing}


def payload_id(*parts) -> str:
    """A short id of what a payload was built from (the browser decodes a payload once per id)."""
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:16]


def mount(page: str, theta: float, payload, pid: str, view: dict, label: str, help: str | None = None) -> None:
    """Show the control for ``page`` ("tradeoff", "ensemble" or "calibration") at ``theta``."""
    key = f"live_theta:{page}"
    sent = None if pid in st.session_state.get(HAVE_KEY, ()) else payload  # (~1-2 MB at 10 runs x 10,000 samples)
    session = st.session_state.setdefault(SESSION_KEY, uuid.uuid4().hex[:12])  # a new session: commits count from 0
    data = {"page": page, "session": session, "theta": theta, "rev": st.session_state.get(REV_KEY, 0),
            "label": label, "help": help,
            "plotly_url": plotly_js(), "payload_id": pid, "payload": sent, "view": view}
    _COMPONENT(key=key, data=data, on_commit_change=lambda: _on_commit(key), on_missing_change=lambda: _on_missing(key))


# -- what the engine shows at the server's θ (the browser's numbers must equal these) ---------------
def _json(value):
    """NaN -> None, recursively (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    return value


def fixed(x, digits: int = 2) -> str:
    """A table cell: f"{x:.2f}", or "–" for NaN (e.g. the std of one run)."""
    return "–" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def tradeoff_table(summaries: list[tuple[str, Summary]], kinds: list[str]) -> tuple[list[str], dict, list[list[str]]]:
    """The Trade-off page's table at θ: (columns, {kind: divisor of its average column}, rows)."""
    units = {k: cost_unit(k, max(x.full[k].mean for _, x in summaries)) for k in kinds}  # one unit per column
    columns = ["configuration", "seeds", "accuracy (%)", "± std", "exit (%)", "MainNet (%)"]
    for k in kinds:
        columns += [f"avg {units[k][1]}", f"{SHORT_COST_NAMES[k]} saved (%)"]
    rows = [[label, str(x.n_runs), fixed(100 * x.accuracy.mean), fixed(100 * x.accuracy.std),
             fixed(100 * x.exit_fraction.mean), fixed(100 * x.main_accuracy.mean)]
            + [cell for k in kinds for cell in (fixed(x.avg[k].mean / units[k][0]), fixed(100 * x.saving[k].mean))]
            for label, x in summaries]
    return columns, {k: units[k][0] for k in kinds}, rows


ENSEMBLE_COLUMNS = ["configuration", "exit (%)", "cascade, MainNet fallback (%)", "cascade, ensemble fallback (%)",
                    "deferred right, MainNet (%)", "deferred right, ensemble (%)"]


def ensemble_rows(summaries: list[tuple[str, Summary, Summary, Summary]]) -> list[list[str]]:
    """The Ensemble page's table at θ from (label, the cascade shown, plain, ensemble) summaries."""
    return [[label, fixed(100 * s.exit_fraction.mean), fixed(100 * plain.accuracy.mean), fixed(100 * ens.accuracy.mean),
             fixed(100 * plain.deferred_accuracy.mean), fixed(100 * ens.deferred_accuracy.mean)]
            for label, s, plain, ens in summaries]


def tradeoff_cards(s: Summary, kinds: list[str]) -> list[dict]:
    """The Trade-off page's metric cards of one configuration's summary at θ."""
    gain = signed(100 * s.accuracy_gain.mean, 2)
    cards = [{"label": "Cascade accuracy", "value": pm(s.accuracy), "delta": f"{gain} pts vs MainNet alone"},
             {"label": "Exit fraction", "value": pm(s.exit_fraction, digits=1), "delta": None}]
    for k in kinds:
        cards.append({"label": f"Average {COST_NAMES[k]} / input", "value": fmt_cost(s.avg[k].mean, k),
                      "delta": f"{signed(-100 * s.saving[k].mean, 1)}% vs MainNet alone"})
    return cards


def ensemble_cards(summaries: list[tuple[str, Summary, MeanStd]], on: bool) -> list[dict]:
    """The Ensemble page's cards: (label, the cascade shown, the ensemble's gain) of up to 3 configurations."""
    return [{"label": f"Cascade accuracy: {label}", "value": pm(s.accuracy),
             "delta": f"{signed(100 * gain.mean, 2)} pts from the ensemble" if on else None}
            for label, s, gain in summaries[:3]]


def expect(cards: list[dict] | None = None, rows: list[list[str]] | None = None, text: str | None = None) -> dict:
    return _json({"cards": [[c["label"], c["value"], c["delta"]] for c in cards or []], "rows": rows, "text": text})


def chart(figure: dict, markers: list[tuple[int, dict]] | None = None, div: float = 1.0, revision: str = "") -> dict:
    """A figure for the browser; ``markers``: (trace index, its hover template with "{text}" where
    the θ text goes) of the traces that follow θ."""
    return {"figure": _json(figure), "markers": [{"index": i, "template": t["hovertemplate"]} for i, t in markers or []],
            "div": div, "revision": revision}
