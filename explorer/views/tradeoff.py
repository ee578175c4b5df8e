"""Trade-off: cascade accuracy against average cost per input, live in theta (Figures 2/4, Table 3)."""
import pandas as pd
import streamlit as st

from engine.analysis import configurations as cfgs
from engine.analysis import figures, live, summary
from explorer import cache, widgets
from explorer.components import live_theta
from explorer.formatting import COST_NAMES, cost_unit, pm

runs, configs = widgets.page_start(
    "Trade-off: accuracy against cost",
    "A sample exits at the SideNet when its confidence reaches θ; the others go on through the MainNet. "
    "Each curve sweeps θ from 0 (every sample exits) to 1 (the MainNet answers everything). "
    "Numbers are means over seeds; bands and ± are sample standard deviations.")

c1, c2, c3, c4 = st.columns([1.2, 2.2, 1.4, 1.2])
dataset = widgets.dataset_select(configs, c1)
in_dataset = cfgs.select(configs, dataset=dataset)
models = cfgs.options(in_dataset, "model")
chosen_models = c2.multiselect("MainNets", models, default=models, key=f"tradeoff_models:{dataset}")
with_side = cfgs.select(in_dataset, models=chosen_models, sidenet=True)
attaches, hiddens = cfgs.options(with_side, "attach"), cfgs.options(with_side, "sidenet_hidden")
chosen_attach = c3.multiselect("SideNet attach point", attaches, default=attaches, key=f"tradeoff_attach:{dataset}")
chosen_hidden = c4.multiselect("SideNet hidden size", hiddens, default=hiddens, key=f"tradeoff_hidden:{dataset}")
selected = cfgs.select(with_side, attach=chosen_attach, hidden=chosen_hidden)
alone = cfgs.select(in_dataset, models=chosen_models, sidenet=False)

groups = cache.load_groups(selected + alone, runs)
side_groups = [(c, rs) for c, rs in groups if c.has_sidenet]
alone_groups = [(c, rs) for c, rs in groups if not c.has_sidenet]
if not side_groups:
    st.info("No SideNet configuration selected" + (" (only MainNet-only runs here)" if alone_groups else "")
            + ": pick MainNets, attach points and hidden sizes above, or train a run with a SideNet on the "
              "Train page.", icon=":material/info:")
    st.stop()

left, right = st.columns([1, 1])
kinds = summary.cost_kinds([r for _, rs in groups for r in rs])
kind = widgets.cost_kind_select(kinds, left)
rule = widgets.exit_rule_select(right)
div, unit = cost_unit(kind, max(rs[0].costs[kind].full for _, rs in groups))
colors = {cfg.id: figures.color(i) for i, (cfg, _) in enumerate(groups)}


def base_figure(curves: list) -> dict:
    """The theta-independent part of the chart (curves with their bands)."""
    data = []
    for label, curve, col in curves:
        data += figures.curve_traces(label, curve, kind, div, unit, col)
    return figures.figure(data, figures.layout(f"average {COST_NAMES[kind]} per input ({unit})", "test accuracy (%)"))


curves = [(cfg.label, cache.config_curve(rs, runs, rule=rule), colors[cfg.id]) for cfg, rs in side_groups]
points = [(cfg, summary.mainnet_point(rs)) for cfg, rs in alone_groups]
base = cache.memo(("tradeoff-figure", kind, div, rule, tuple((label, col, cache.run_keys(rs, runs))
                                                             for (label, _, col), (_, rs) in zip(curves, side_groups))),
                  lambda: base_figure(curves))
alone_markers = [figures.point_trace(cfg.label, p[kind], p["accuracy"], div, unit, colors[cfg.id],
                                    text=f"MainNet only, {p['n_runs']} seed(s)") for cfg, p in points]


payload_key = ("live-cascade", rule, tuple(cache.run_keys(rs, runs) for _, rs in side_groups))
payload = cache.memo(payload_key, lambda: [live.cascade_payload(rs, rule) for _, rs in side_groups])


@st.fragment
def live_part() -> None:
    theta = widgets.theta()
    summaries = [(cfg, summary.summary_at(rs, theta, rule=rule)) for cfg, rs in side_groups]

    labels = [cfg.label for cfg, _ in summaries]
    focus_label = st.selectbox("Configuration", labels, key=f"tradeoff_focus:{dataset}") if len(labels) > 1 else labels[0]
    focus = labels.index(focus_label)
    # the diamonds at θ: the browser moves them (and fills "{text}") while θ moves
    markers = [figures.point_trace(f"{c.label} at θ", x.avg[kind], x.accuracy, div, unit, colors[c.id],
                                  symbol="diamond", size=13, group=c.label, show_legend=False, text="{text}")
               for c, x in summaries]
    fig = figures.with_extra(base, alone_markers + markers, title=f"θ = {theta:.3f} (diamonds)")
    first = len(fig["data"]) - len(markers)
    columns, table_div, rows = live_theta.tradeoff_table([(c.label, x) for c, x in summaries], kinds)
    view = {"focus": focus, "labels": labels, "kinds": kinds, "kind": kind, "cost_names": COST_NAMES,
            "columns": columns, "table_div": table_div, "order": ["cards", "chart", "table"],
            "chart": live_theta.chart(fig, list(enumerate(markers, first)), div,
                                      live_theta.payload_id(payload_key, kind, div, [(c.label, cache.run_keys(rs, runs))
                                                                                     for c, rs in groups])),
            "expect": live_theta.expect(live_theta.tradeoff_cards(summaries[focus][1], kinds), rows=rows)}
    widgets.theta_control("tradeoff", payload, live_theta.payload_id(payload_key), view)


live_part()

st.subheader("Accuracy at fixed thresholds (the paper's Table 3)")
table3 = cache.table("table3", side_groups, runs, rule=rule)
st.dataframe(pd.DataFrame([{"configuration": r["configuration"], "seeds": r["seeds"],
                            **{f"θ = {t:g}": pm(a, digits=1, unit="") for t, a in zip(r["thetas"], r["accuracy"])}}
                           for r in table3]), hide_index=True, key="table3")
st.caption("Cascade test accuracy (%), mean ± sample std over seeds, under the exit rule chosen above.")
if not alone_groups:
    st.caption("Tip: train the same MainNet with mode `mainnet-only` to see it as a point on the chart (the paper's "
               "'without SideNet' baseline).")
