"""SideNets Explorer: `python -m explorer.serve` (or `make run`; `streamlit run explorer/app.py` works too).

One entry file with st.navigation; one file per page in explorer/views/ (not `pages/`: Streamlit
would take a `pages/` folder beside the entry for a legacy multipage app). The DB is
$SIDENETS_DB (default data/sidenets.duckdb); the app only ever opens it read-only and briefly.
The `explorer` and `engine` packages are importable because `make setup` installs the project
in editable mode.
"""
from __future__ import annotations

import streamlit as st

from engine.errors import UserError
from explorer import cache, widgets
from explorer.formatting import md_escape

st.set_page_config(page_title="SideNets Explorer", page_icon="🔀", layout="wide")

PAGES = [
    st.Page("views/tradeoff.py", title="Trade-off", icon=":material/show_chart:", default=True),
    st.Page("views/calibration.py", title="Calibration", icon=":material/tune:"),
    st.Page("views/ensemble.py", title="Ensemble", icon=":material/merge:"),
    st.Page("views/paper.py", title="Paper tables", icon=":material/table_chart:"),
    st.Page("views/demo.py", title="Live demo", icon=":material/bolt:"),
    st.Page("views/runs.py", title="Runs", icon=":material/table_rows:"),
    st.Page("views/design.py", title="Design a SideNet", icon=":material/design_services:"),
    st.Page("views/train.py", title="Train", icon=":material/model_training:"),
]

page = st.navigation(PAGES)

with st.sidebar:
    st.markdown("**SideNets Explorer**")
    try:
        st.caption(f"Database: {md_escape(cache.db_path())} ({widgets.env_db_note()})")
    except UserError as err:
        st.caption(f":red[{md_escape(err)}]")
    problem = cache.db_problem()
    if problem:
        st.caption(f":red[{md_escape(problem)}]")
    else:
        n = len(cache.list_runs())
        st.caption(f"{n} complete run{'s' if n != 1 else ''}")
    widgets.sidebar_jobs()

page.run()
