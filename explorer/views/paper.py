"""Paper tables: Tables 1-4 of the paper side by side with the runs in the DB (Table 2 only here)."""
import pandas as pd
import streamlit as st

from engine.analysis import configurations as cfgs
from engine.analysis import paper
from explorer import cache, widgets
from explorer.formatting import pm

runs, configs = widgets.page_start(
    "The paper's tables",
    "Each table from the runs in the database, mean ± sample std over seeds, beside the paper's numbers. "
    "`python -m engine report` writes the same tables (and Figures 2-4) to files.")

c1, c2 = st.columns([1, 2])
dataset = widgets.dataset_select(configs, c1)
rule = widgets.exit_rule_select(c2)
groups = cache.load_groups(cfgs.select(configs, dataset=dataset), runs)

st.subheader("Table 2: does training with a SideNet change the MainNet's accuracy?")
rows = cache.table("table2", groups, runs)
if rows:
    st.dataframe(pd.DataFrame([{"MainNet": r["model"] + (f" ({r['variant']})" if r["variant"] else ""),
                                "with SideNet (%)": pm(r["with_sidenet"], unit=""),
                                "without SideNet (%)": pm(r["without_sidenet"], unit=""),
                                "difference (pts)": round(100 * r["difference"], 2),
                                "seeds (with / without)": f"{r['with_sidenet'].n} / {r['without_sidenet'].n}"}
                               for r in rows]), hide_index=True, key="table2")
else:
    st.info("Table 2 needs, for one MainNet, runs trained jointly with a SideNet AND mainnet-only runs (the "
            "'No SideNet' row). The presets `repro-vision-cpu` / `repro-text-cpu` train both.", icon=":material/info:")
st.caption("The paper (test accuracy, %, CIFAR-10 / SST-2): " + "; ".join(
    f"{m}: {w[0]} ± {w[1]} with vs {wo[0]} ± {wo[1]} without" for m, (w, wo) in paper.TABLE2_MAINNET.items()))

st.subheader("Table 4: MainNet, SideNet and ensemble accuracy")
rows = cache.table("table4", groups, runs)
st.dataframe(pd.DataFrame([{"configuration": r["configuration"], "seeds": r["seeds"],
                            "MainNet (%)": pm(r["main_accuracy"], unit=""), "SideNet (%)": pm(r["side_accuracy"], unit=""),
                            "Ensemble (%)": pm(r["ensemble_accuracy"], unit="")} for r in rows]),
             hide_index=True, key="paper_table4")

st.subheader("Table 1: ECE of SideNet and MainNet (the paper's 8 bins)")
rows = cache.table("table1", groups, runs, n_bins=15)
st.dataframe(pd.DataFrame([{"configuration": r["configuration"], "seeds": r["seeds"],
                            "SideNet ECE (%)": pm(r["side_ece_paper"], unit=""),
                            "MainNet ECE (%)": pm(r["main_ece_paper"], unit="")} for r in rows]),
             hide_index=True, key="paper_table1")

st.subheader("Table 3: cascade accuracy at fixed thresholds")
rows = cache.table("table3", groups, runs, rule=rule)
st.dataframe(pd.DataFrame([{"configuration": r["configuration"], "seeds": r["seeds"],
                            **{f"θ = {t:g}": pm(a, digits=1, unit="") for t, a in zip(r["thetas"], r["accuracy"])}}
                           for r in rows]), hide_index=True, key="paper_table3")
st.caption("Under the exit rule chosen above. For a binary (sigmoid) head, θ ≤ 0.5 exits every sample under the "
           "max-probability rule; the margin rule is the reading under which the paper's θ = 0.2 and 0.4 differ.")
