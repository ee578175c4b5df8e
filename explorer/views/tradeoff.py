"""Trade-off: cascade accuracy against average cost per input, live in theta (Figures 2/4, Table 3)."""
import pandas as pd
import streamlit as st

from engine import explore
from explorer import charts, state

runs, configs = state.page_start(
    "Trade-off: accuracy against cost",
    "A sample exits at the SideNet when its softmax confidence is at least θ; the others go on through "
    "the MainNet. Each curve sweeps θ from 0 (every sample exits) to 1 (the MainNet answers everything). "
    "Numbers are means over seeds, bands and ± are standard deviations.")

c1, c2, c3, c4 = st.columns([1.2, 2.2, 1.4, 1.2])
dataset = state.dataset_select(configs, c1)
in_dataset = explore.select(configs, dataset=dataset)
models = explore.options(in_dataset, "model")
chosen_models = c2.multiselect("MainNets", models, default=models, key=f"tradeoff_models:{dataset}")
with_side = explore.select(in_dataset, models=chosen_models, sidenet=True)
attaches, hiddens = explore.options(with_side, "attach"), explore.options(with_side, "sidenet_hidden")
chosen_attach = c3.multiselect("SideNet attach point", attaches, default=attaches, key=f"tradeoff_attach:{dataset}")
chosen_hidden = c4.multiselect("SideNet hidden size", hiddens, default=hiddens, key=f"tradeoff_hidden:{dataset}")
selected = explore.select(with_side, attach=chosen_attach, hidden=chosen_hidden)
alone = explore.select(in_dataset, models=chosen_models, sidenet=False)

groups = state.load_groups(selected + alone, runs)
side_groups = [(c, rs) for c, rs in groups if c.has_sidenet]
alone_groups = [(c, rs) for c, rs in groups if not c.has_sidenet]
if not side_groups:
    st.info("No SideNet configuration selected" + (" (only MainNet-only runs here)" if alone_groups else "")
            + ": pick MainNets, attach points and hidden sizes above, or train a run with a SideNet on the "
              "Train page.", icon=":material/info:")
    st.stop()

kinds = explore.cost_kinds([r for _, rs in groups for r in rs])
kind = state.cost_kind_select(kinds, st)
div, unit = state.cost_unit(kind, max(rs[0].costs[kind].full for _, rs in groups))
colors = {cfg.id: charts.color(i) for i, (cfg, _) in enumerate(groups)}


def base_figure(curves: list) -> dict:
    """The theta-independent part of the chart (curves with their bands)."""
    data = []
    for label, curve, col in curves:
        data += charts.curve_traces(label, curve, kind, div, unit, col)
    return charts.figure(data, charts.layout(f"average {state.COST_NAMES[kind]} per input ({unit})",
                                             "test accuracy (%)"))


curves = [(cfg.label, state.config_curve(rs, runs), colors[cfg.id]) for cfg, rs in side_groups]
points = [(cfg, explore.mainnet_point(rs)) for cfg, rs in alone_groups]
base = state.memo(("tradeoff-figure", kind, div, tuple((label, col, state.run_keys(rs, runs))
                                                       for (label, _, col), (_, rs) in zip(curves, side_groups))),
                  lambda: base_figure(curves))
alone_markers = [charts.point_trace(cfg.label, p[kind], p["accuracy"], div, unit, colors[cfg.id],
                                    text=f"MainNet only, {p['n_runs']} seed(s)") for cfg, p in points]


@st.fragment
def live() -> None:
    theta = state.theta_control()
    summaries = [(cfg, explore.summary_at(rs, theta)) for cfg, rs in side_groups]

    labels = [cfg.label for cfg, _ in summaries]
    focus_label = st.selectbox("Configuration", labels, key=f"tradeoff_focus:{dataset}") if len(labels) > 1 else labels[0]
    cfg, s = next((c, s) for c, s in summaries if c.label == focus_label)
    n = s["n_runs"]
    cols = st.columns(2 + len(kinds))
    gain = state.signed(100 * s["accuracy_gain"][0], 2)
    cols[0].metric("Cascade accuracy", state.pm(s["accuracy"], n), delta=f"{gain} pts vs MainNet alone",
                   delta_color="off" if gain == "±0.00" else "normal",
                   help=f"Mean ± std over {n} seed(s). MainNet alone: {state.pm(s['main_accuracy'], n)}; "
                        f"SideNet alone: {state.pm(s['side_accuracy'], n)}.")
    cols[1].metric("Exit fraction", state.pm(s["exit_fraction"], n, digits=1),
                   help=f"Samples answered by the SideNet. Accuracy of those: {state.pm(s['exited_accuracy'], n)}; "
                        f"of the deferred ones: {state.pm(s['deferred_accuracy'], n)}.")
    for col, k in zip(cols[2:], kinds):
        col.metric(f"Average {state.COST_NAMES[k]} / input", state.fmt_cost(s[f"avg_{k}"][0], k),
                   delta=f"{state.signed(-100 * s[f'saving_{k}'][0], 1)}% vs MainNet alone", delta_color="inverse",
                   help=f"MainNet alone: {state.fmt_cost(s[f'full_{k}'][0], k)} per input. "
                        f"Saving: {state.pm(s[f'saving_{k}'], n, digits=1)}.")

    markers = [charts.point_trace(f"{c.label} at θ", x[f"avg_{kind}"], x["accuracy"], div,
                                  unit, colors[c.id], symbol="diamond", size=13, group=c.label, show_legend=False,
                                  text=f"θ = {theta:.3f}, exit {100 * x['exit_fraction'][0]:.1f}%")
               for c, x in summaries]
    charts.show(charts.with_extra(base, alone_markers + markers, title=f"θ = {theta:.3f} (diamonds)"),
                key="tradeoff_chart")

    units = {k: state.cost_unit(k, max(x[f"full_{k}"][0] for _, x in summaries)) for k in kinds}  # one per column
    rows = []
    for c, x in summaries:
        row = {"configuration": c.label, "seeds": x["n_runs"], "accuracy (%)": 100 * x["accuracy"][0],
               "± std": 100 * x["accuracy"][1], "exit (%)": 100 * x["exit_fraction"][0],
               "MainNet (%)": 100 * x["main_accuracy"][0]}
        for k in kinds:
            kd, ku = units[k]
            row[f"avg {ku}"] = x[f"avg_{k}"][0] / kd
            row[f"{state.SHORT_COST_NAMES[k]} saved (%)"] = 100 * x[f"saving_{k}"][0]
        rows.append(row)
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="tradeoff_at_theta",
                 column_config={name: st.column_config.NumberColumn(
                     format="%.2f", width="small" if name in ("± std", "exit (%)") else None)
                     for name in rows[0] if name not in ("configuration", "seeds")}
                 | {"seeds": st.column_config.NumberColumn(width="small")})


live()

st.subheader("Accuracy at fixed thresholds (the paper's Table 3)")
table3 = state.table("accuracy", side_groups, runs)
st.dataframe(pd.DataFrame([{"configuration": r["configuration"], "seeds": r["seeds"],
                            **{f"θ = {t:g}": state.pm((m, s), r["seeds"], digits=1, unit="")
                               for t, m, s in zip(r["thetas"], r["mean"], r["std"])}} for r in table3]),
             hide_index=True, key="table3")
st.caption("Cascade test accuracy (%), mean ± std over seeds.")
if not alone_groups:
    st.caption("Tip: train the same MainNet with mode `mainnet-only` to see it as a point on the chart (the paper's "
               "'without SideNet' baseline).")
