"""Calibration: reliability diagrams (Figure 3), ECE (Table 1), and the populations at theta."""
import pandas as pd
import streamlit as st

from engine.analysis import calibration, figures, live
from engine.analysis import configurations as cfgs
from explorer import cache, charts, widgets
from explorer.components import live_theta
from explorer.formatting import pm

runs, configs = widgets.page_start(
    "Calibration",
    "A head is calibrated when its confidence matches its accuracy: of the samples it answers with 85% "
    "confidence, 85% are right. Then θ reads directly as the accuracy the exited samples get. "
    "Confidence = top-label softmax probability (for a binary head, max(p, 1 − p)).")
with_side = widgets.require_sidenet(configs, "Calibration compares a SideNet with its MainNet: no complete run has "
                                           "a SideNet yet. Train one on the Train page.")

c1, c2, c3 = st.columns([1.2, 2.6, 1.4])
dataset = widgets.dataset_select(with_side, c1)
in_dataset = cfgs.select(with_side, dataset=dataset)
labels = [c.label for c in in_dataset]
chosen = c2.selectbox("Configuration", labels, key=f"calib_config:{dataset}")
binning = c3.radio("Bins", ["paper", "equal"], horizontal=True, key="calib_binning",
                   format_func={"paper": "paper's 8 (0.2–1.0)", "equal": "n equal bins"}.get,
                   help="The paper's ECE: 8 bins with edges 0.2, 0.3, ..., 1.0 (confidences below 0.2 fall in the "
                        "first). Or n equal-width bins on [0, 1] (15 is Guo et al.'s choice).")
n_bins = int(st.session_state.get("calib_n_bins", 15))
if binning == "equal":
    n_bins = int(c3.number_input("n bins", 2, 50, value=15, step=1, key="calib_n_bins"))
bin_kw = {"paper": True} if binning == "paper" else {"n_bins": n_bins}
bin_text = "the paper's 8 bins" if binning == "paper" else f"{n_bins} equal bins"

groups = cache.load_groups(in_dataset, runs)
if not groups:
    st.stop()
cfg, rs = next(((c, r) for c, r in groups if c.label == chosen), groups[0])
n = len(rs)

st.subheader(f"Reliability: SideNet vs MainNet ({cfg.label})")
side = cache.derived("head_reliability", rs, runs, head="side", **bin_kw)
main = cache.derived("head_reliability", rs, runs, head="main", **bin_kw)
m = st.columns(4)
for col, head, name in ((m[0], "side", "SideNet"), (m[1], "main", "MainNet")):
    col.metric(f"{name} ECE (paper's 8 bins)", pm(cache.derived("head_reliability", rs, runs, head=head,
                                                                paper=True)["ece"], digits=2))
for col, head, name in ((m[2], "side", "SideNet"), (m[3], "main", "MainNet")):
    col.metric(f"{name} ECE ({n_bins} bins)", pm(cache.derived("head_reliability", rs, runs, head=head,
                                                               n_bins=n_bins)["ece"], digits=2))
charts.show(figures.reliability_figure([("SideNet", side, figures.color(0)), ("MainNet", main, figures.color(1))]),
            key="calib_heads")
st.caption(f"All test samples, {bin_text}; bars: accuracy per bin (mean ± std over {n} seed(s)); dashed: perfect "
           f"calibration; below: samples per bin and run. ECE (in %) = Σ n_i/n · |acc_i − conf_i|; it reads high "
           f"on small test sets (about {int(round(rs[0].n))} samples per run here).")


rule = widgets.exit_rule_select()


payload_key = ("live-populations", rule, tuple(sorted(bin_kw.items())), cache.run_keys(rs, runs))
payload = cache.memo(payload_key, lambda: live.populations_payload(rs, rule, **bin_kw))


@st.fragment
def live_part() -> None:
    theta = widgets.theta()
    pops = calibration.populations_at(rs, theta, rule=rule, **bin_kw)
    names = live_theta.POPULATION_NAMES
    rows = [[names[pop], pm(p["fraction"], digits=1, unit=""), pm(p["accuracy"], digits=2, unit=""),
             pm(p["confidence"], digits=2, unit=""), pm(p["ece"], digits=2, unit="")]
            for pop, p in ((pop, pops[pop]) for pop in calibration.POPULATIONS)]
    text = (f"**At θ = {theta:.3f}**: the samples that exit (answered by the SideNet), those deferred to the MainNet, "
            "and the whole cascade.")
    fig = figures.reliability_figure([(names[p][0].upper() + names[p][1:], pops[p], figures.color(i + 2))
                                      for i, p in enumerate(calibration.POPULATIONS)])
    view = {"names": names, "columns": live_theta.POPULATION_COLUMNS + [f"ECE ({bin_text}, %)"],
            "order": ["text", "table", "chart"],
            "chart": live_theta.chart(fig, revision=live_theta.payload_id(payload_key)),
            "expect": live_theta.expect(rows=rows, text=text)}
    widgets.theta_control("calibration", payload, live_theta.payload_id(payload_key), view)
    st.caption("Exit: the SideNet's answers on the samples it keeps; deferred: the MainNet's answers on the others; "
               "cascade: every sample's final answer. A well-calibrated exit population has accuracy ≥ θ.")


live_part()

st.subheader("ECE per configuration (the paper's Table 1)")
rows = cache.table("table1", groups, runs, n_bins=n_bins)
st.dataframe(pd.DataFrame([{"configuration": r["configuration"], "seeds": r["seeds"],
                            "SideNet ECE (8 bins)": pm(r["side_ece_paper"], unit=""),
                            "MainNet ECE (8 bins)": pm(r["main_ece_paper"], unit=""),
                            f"SideNet ECE ({r['n_bins']} bins)": pm(r["side_ece_bins"], unit=""),
                            f"MainNet ECE ({r['n_bins']} bins)": pm(r["main_ece_bins"], unit="")}
                           for r in rows]), hide_index=True, key="table1")
st.caption("ECE in percentage points on the test set, mean ± sample std over seeds. Lower is better calibrated.")
