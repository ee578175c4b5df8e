"""Ensemble: the paper's logit-sum ensemble (appendix F) for the deferred samples, live (Table 4)."""
import pandas as pd
import streamlit as st

from engine.analysis import configurations as cfgs
from engine.analysis import figures, live, summary
from explorer import cache, widgets
from explorer.components import live_theta
from explorer.formatting import COST_NAMES, cost_unit, pm

runs, configs = widgets.page_start(
    "Ensemble the deferred samples",
    "The paper's appendix F: a deferred sample has gone through the SideNet already, so its answer can be "
    "argmax(SideNet logits + MainNet logits) instead of the MainNet's alone, at no extra cost. "
    "Exited samples keep the SideNet's answer.")
with_side = widgets.require_sidenet(configs, "The ensemble needs a SideNet: no complete run has one yet. "
                                           "Train one on the Train page.")

c1, c2, c3 = st.columns([1.2, 3, 1.4], vertical_alignment="bottom")
dataset = widgets.dataset_select(with_side, c1)
in_dataset = cfgs.select(with_side, dataset=dataset)
labels = [c.label for c in in_dataset]
chosen = c2.multiselect("Configurations", labels, default=labels, key=f"ens_configs:{dataset}")
on = c3.toggle("Ensemble deferred samples", value=True, key="ensemble_on",
               help="On: deferred samples answered by SideNet + MainNet logits. Off: by the MainNet alone.")
groups = cache.load_groups([c for c in in_dataset if c.label in chosen], runs)
if not groups:
    st.info("Pick at least one configuration.", icon=":material/info:")
    st.stop()

st.subheader("Accuracy of each head and of the ensemble (the paper's Table 4)")
rows = cache.table("table4", groups, runs)
st.dataframe(pd.DataFrame([{"configuration": r["configuration"], "seeds": r["seeds"],
                            "MainNet acc (%)": pm(r["main_accuracy"], unit=""),
                            "SideNet acc (%)": pm(r["side_accuracy"], unit=""),
                            "Ensemble acc (%)": pm(r["ensemble_accuracy"], unit="")}
                           for r in rows]), hide_index=True, key="table4")
st.caption("All test samples through each head (no exits), mean ± sample std over seeds.")

left, right = st.columns(2)
kinds = summary.cost_kinds([r for _, rs in groups for r in rs])
kind = widgets.cost_kind_select(kinds, left, key="ens_cost_kind")
rule = widgets.exit_rule_select(right)
div, unit = cost_unit(kind, max(rs[0].costs[kind].full for _, rs in groups))


def base_figure() -> dict:
    """The theta-independent part of the chart: each configuration's plain (and ensemble) curve."""
    data = []
    for i, (cfg, rs) in enumerate(groups):
        col = figures.color(i)
        data += figures.curve_traces(f"{cfg.label}, MainNet fallback", cache.config_curve(rs, runs, False, rule),
                                    kind, div, unit, col, dash="dot" if on else "solid", band=not on, group=cfg.label)
        if on:
            data += figures.curve_traces(f"{cfg.label}, ensemble fallback", cache.config_curve(rs, runs, True, rule),
                                        kind, div, unit, col, group=cfg.label)
    return figures.figure(data, figures.layout(f"average {COST_NAMES[kind]} per input ({unit})",
                                             "test accuracy (%)"))


base = cache.memo(("ensemble-figure", kind, div, on, rule,
                   tuple((cfg.label, cache.run_keys(rs, runs)) for cfg, rs in groups)),
                  base_figure)


payload_key = ("live-cascade", rule, ("main", "ensemble"), tuple(cache.run_keys(rs, runs) for _, rs in groups))
payload = cache.memo(payload_key, lambda: [live.cascade_payload(rs, rule, ("main", "ensemble")) for _, rs in groups])


@st.fragment
def live_part() -> None:
    theta = widgets.theta()
    compared = [(cfg, summary.compare_fallbacks(rs, theta, rule)) for cfg, rs in groups]
    summaries = [(cfg, c["ensemble" if on else "plain"], c["plain"], c["ensemble"]) for cfg, c in compared]
    text = (f"**At θ = {theta:.3f}**, deferred samples answered by "
            + ("**SideNet + MainNet logits**" if on else "**the MainNet alone**") + ".")
    cards = live_theta.ensemble_cards([(cfg.label, s, c["gain"]) for (cfg, s, _, _), (_, c) in zip(summaries, compared)], on)
    # the diamonds at θ: the browser moves them (and fills "{text}") while θ moves
    markers = [figures.point_trace(f"{cfg.label} at θ", s.avg[kind], s.accuracy, div, unit, figures.color(i),
                                  symbol="diamond", size=13, group=cfg.label, show_legend=False, text="{text}")
               for i, (cfg, s, _, _) in enumerate(summaries)]
    fig = figures.with_extra(base, markers)
    first = len(fig["data"]) - len(markers)
    rows = live_theta.ensemble_rows([(cfg.label, s, plain, ens) for cfg, s, plain, ens in summaries])
    view = {"on": on, "labels": [cfg.label for cfg, _ in groups], "kind": kind, "columns": live_theta.ENSEMBLE_COLUMNS,
            "order": ["text", "cards", "table", "chart"],
            "chart": live_theta.chart(fig, list(enumerate(markers, first)), div,
                                      live_theta.payload_id(payload_key, kind, div, on)),
            "expect": live_theta.expect(cards, rows=rows, text=text)}
    widgets.theta_control("ensemble", payload, live_theta.payload_id(payload_key), view)
    st.caption("Dotted: the plain cascade; solid: with the ensemble fallback. The cost is the same (the SideNet "
               "logits are already computed); only the deferred samples' answers change.")


live_part()
