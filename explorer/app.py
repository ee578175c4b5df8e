"""SideNets Explorer: `streamlit run explorer/app.py` (or `make run`).

One entry file with st.navigation; one file per page in explorer/views/ (not `pages/`: Streamlit
would take a `pages/` folder beside the entry for a legacy multipage app). The DB is
$SIDENETS_DB (default data/sidenets.duckdb); the app only ever opens it read-only and briefly.
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # `streamlit run explorer/app.py` puts only explorer/ on the path
    sys.path.insert(0, str(HERE.parent))

import streamlit as st  # noqa: E402

from explorer import state  # noqa: E402

st.set_page_config(page_title="SideNets Explorer", page_icon=":material/call_split:", layout="wide")

PAGES = [
    st.Page("views/tradeoff.py", title="Trade-off", icon=":material/show_chart:", default=True),
    st.Page("views/calibration.py", title="Calibration", icon=":material/tune:"),
    st.Page("views/ensemble.py", title="Ensemble", icon=":material/merge:"),
    st.Page("views/demo.py", title="Live demo", icon=":material/bolt:"),
    st.Page("views/runs.py", title="Runs", icon=":material/table_rows:"),
    st.Page("views/train.py", title="Train", icon=":material/model_training:"),
]

page = st.navigation(PAGES)

with st.sidebar:
    st.markdown("**SideNets Explorer**")
    st.caption(f"Database: `{state.db_path()}` ({state.env_db_note()})")
    problem = state.db_problem()
    if problem:
        st.caption(f":red[{problem}]")
    else:
        n = len(state.list_runs())
        st.caption(f"{n} complete run{'s' if n != 1 else ''}")
    state.sidebar_jobs()

page.run()
