"""Runs: every run with its provenance, per-epoch training curves, costs per path; delete a run."""
import pandas as pd
import streamlit as st

from engine.analysis import figures
from engine.analysis.tables import path_table
from engine.errors import UserError
from explorer import cache, charts, widgets
from explorer.formatting import SHORT_COST_NAMES, cost_unit, md_escape

st.title("Runs")
if msg := st.session_state.pop("runs_flash", None):
    st.success(md_escape(msg), icon=":material/check:")

show_all = st.toggle("Show failed and running runs too", value=False, key="runs_all",
                     help="The other pages only ever use complete runs.")
runs = widgets.require_runs(include_all=show_all)
hidden = len(cache.list_runs(include_all=True)) - len(runs) if not show_all else 0

table = pd.DataFrame([{
    "run": r["run_id"], "status": r["status"], "dataset": r["dataset"], "model": r["model"], "mode": r["mode"],
    "seed": r["seed"], "attach": ", ".join(r["attach"] or []) or "–", "hidden": r["sidenet_hidden"],
    "order": r["sidenet_order"], "device": r["device"], "created (UTC)": r["created_at"],
    "wall time (s)": r["wall_time_s"], "commit": (r["git_commit"] or "")[:10], "error": r["error"] or ""}
    for r in runs])
st.dataframe(table, hide_index=True, key="runs_table",
             column_config={"wall time (s)": st.column_config.NumberColumn(format="%.1f")})
if hidden:
    st.caption(f"{hidden} failed or running run(s) hidden; switch on the toggle above to see them.")

ids = [r["run_id"] for r in runs]
if st.session_state.get("runs_selected") not in ids:
    st.session_state["runs_selected"] = ids[0]
run_id = st.selectbox("Run details", ids, key="runs_selected")
run = next(r for r in runs if r["run_id"] == run_id)
stamp = cache.run_stamp(run)


@st.cache_data(show_spinner=False, max_entries=256)
def details(path: str, run_id: str, stamp: str) -> dict:
    s = cache.store()
    costs, latency = s.costs(run_id), s.latency(run_id)
    return {"epochs": s.epochs(run_id), "paths": path_table(costs, latency), "latency": latency}


try:
    info = details(str(cache.db_path()), run_id, stamp)
except UserError as err:
    st.warning(f"Run {md_escape(run_id)} could not be read (deleted meanwhile?): {md_escape(err)}",
               icon=":material/warning:")
    st.stop()

if run["status"] == "failed":
    st.error(f"This run failed: {md_escape(run['error'])}", icon=":material/error:")
elif run["status"] == "running":
    st.info("This run is still training; it will appear on the other pages once complete.",
            icon=":material/hourglass_top:")

left, right = st.columns([3, 2])
with left:
    st.markdown("**Training curves**")
    if info["epochs"]:
        charts.show(figures.epochs_figure(info["epochs"]), key="runs_epochs")
    else:
        st.caption("No epoch recorded (the run did not finish an epoch).")
with right:
    st.markdown("**Provenance**")
    prov = {k: run[k] for k in ("run_id", "status", "dataset", "model", "mode", "seed", "attach", "sidenet_hidden",
                                "sidenet_order", "num_classes", "device", "host", "pid", "git_commit", "checkpoint",
                                "created_at", "finished_at", "wall_time_s", "error")}
    prov = {k: (str(v) if k in ("created_at", "finished_at") and v is not None else v) for k, v in prov.items()}
    st.json(prov | {"config": run["config"], "versions": run["versions"]}, expanded=1)

st.markdown("**Cost per input, per path** (an exited sample pays the exit path, a deferred one the deferred path)")
if info["paths"]:
    rows = []
    for p in info["paths"]:
        row = {"attach": p["attach"], "path": p["path"]}
        for kind in ("params", "macs", "ms"):
            if kind in p:
                div, unit = cost_unit(kind, max(q.get(kind, 0) for q in info["paths"]))
                row[unit] = p[kind] / div
                share = p[f"{kind}_share"]
                row[f"{SHORT_COST_NAMES[kind]} (% of MainNet)"] = None if share is None else 100 * share
        rows.append(row)
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="runs_costs",
                 column_config={k: st.column_config.NumberColumn(format="%.3f") for k in rows[0]
                                if k not in ("attach", "path")})
else:
    st.caption("No costs stored (only complete runs have them).")
if info["latency"]:
    st.markdown("**Measured latency**")
    st.dataframe(pd.DataFrame(info["latency"]), hide_index=True, key="runs_latency")

st.divider()
pending = st.session_state.get("runs_delete_pending")
if run["status"] == "running":
    # the store refuses it too: a run still training is deleted only once its process is stopped
    st.button("Delete this run...", key="runs_delete", icon=":material/delete:", disabled=True,
              help="This run is still training: cancel its job on the Train page first (or `python -m engine "
                   "delete RUN --cancel`).")
elif pending != run_id:
    if st.button("Delete this run...", key="runs_delete", icon=":material/delete:"):
        st.session_state["runs_delete_pending"] = run_id
        st.rerun()
else:
    st.warning(f"Delete run **{md_escape(run_id)}**, all its stored samples, epochs and costs, and its checkpoint "
               "file? This cannot be undone.", icon=":material/warning:")
    a, b, _ = st.columns([1, 1, 4])
    if a.button("Yes, delete it", key="runs_delete_confirm", type="primary"):
        st.session_state.pop("runs_delete_pending", None)
        try:
            found = cache.store().delete_run(run_id)
        except UserError as err:
            st.error(f"Could not delete {md_escape(run_id)}: {md_escape(err)}", icon=":material/error:")
        else:
            st.session_state.pop("runs_selected", None)
            st.session_state["runs_flash"] = f"Deleted {run_id}." if found else f"{run_id} was already gone."
            st.rerun()
    if b.button("Cancel", key="runs_delete_cancel"):
        st.session_state.pop("runs_delete_pending", None)
        st.rerun()
