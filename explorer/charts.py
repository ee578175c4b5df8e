"""Plotly figures of the explorer (layout only: every number comes from engine.explore).

Figures are built as plain dicts and wrapped with ``go.Figure(..., skip_invalid=False)`` once;
the trade-off chart's theta-independent part is cached and only the current-theta markers are
added per rerun.
"""
from __future__ import annotations

import copy

import numpy as np
import plotly.graph_objects as go

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22"]


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


def _list(a) -> list:
    return np.asarray(a, dtype=np.float64).round(8).tolist()


def _finite(a) -> list:
    return [None if not np.isfinite(v) else v for v in _list(a)]


def base_layout(title: str | None, x_title: str, y_title: str, height: int = 460) -> dict:
    return {"title": {"text": title} if title else None, "height": height, "margin": {"l": 60, "r": 20, "t": 40 if title else 20, "b": 50},
            "xaxis": {"title": {"text": x_title}, "zeroline": False}, "yaxis": {"title": {"text": y_title}},
            "legend": {"orientation": "h", "yanchor": "top", "y": -0.18, "xanchor": "left", "x": 0},
            "hovermode": "closest", "template": "plotly_white"}


def curve_traces(label: str, curve: dict, kind: str, div: float, unit: str, col: str, dash: str = "solid",
                 band: bool = True, group: str | None = None) -> list[dict]:
    """The mean accuracy-vs-cost line of one configuration over theta, with a ±std band."""
    x = np.asarray(curve[f"avg_{kind}_mean"]) / div
    y, s = np.asarray(curve["accuracy_mean"]) * 100, np.asarray(curve["accuracy_std"]) * 100
    group = group or label
    traces = []
    if band and np.any(s > 0):
        traces.append({"type": "scatter", "x": _list(np.concatenate([x, x[::-1]])),
                       "y": _list(np.concatenate([y + s, (y - s)[::-1]])), "fill": "toself", "mode": "lines",
                       "line": {"width": 0}, "fillcolor": _rgba(col, 0.15), "hoverinfo": "skip",
                       "showlegend": False, "legendgroup": group, "name": f"{label} ± std"})
    custom = np.stack([curve["theta"], np.asarray(curve["exit_fraction_mean"]) * 100, s], axis=1)
    traces.append({"type": "scatter", "x": _list(x), "y": _list(y), "mode": "lines", "name": label,
                   "legendgroup": group, "line": {"color": col, "width": 2, "dash": dash},
                   "customdata": custom.round(6).tolist(),
                   "hovertemplate": f"<b>{label}</b><br>θ = %{{customdata[0]:.3f}}<br>accuracy = %{{y:.2f}}% "
                                    f"± %{{customdata[2]:.2f}}<br>exit = %{{customdata[1]:.1f}}%<br>"
                                    f"cost = %{{x:.4g}} {unit}<extra></extra>"})
    return traces


def point_trace(label: str, x_ms: tuple, y_ms: tuple, div: float, unit: str, col: str, symbol: str = "square",
                size: int = 11, group: str | None = None, show_legend: bool = True, text: str | None = None) -> dict:
    """One marker with ±std error bars on both axes (x, y given as (mean, std); y a fraction)."""
    return {"type": "scatter", "x": [x_ms[0] / div], "y": [y_ms[0] * 100], "mode": "markers",
            "name": label, "legendgroup": group or label, "showlegend": show_legend,
            "marker": {"color": col, "symbol": symbol, "size": size, "line": {"color": "white", "width": 1}},
            "error_y": {"type": "data", "array": [y_ms[1] * 100], "visible": bool(y_ms[1] > 0), "color": col},
            "error_x": {"type": "data", "array": [x_ms[1] / div], "visible": bool(x_ms[1] > 0), "color": col},
            "hovertemplate": f"<b>{label}</b><br>{text + '<br>' if text else ''}accuracy = %{{y:.2f}}%<br>"
                             f"cost = %{{x:.4g}} {unit}<extra></extra>"}


def figure(data: list[dict], layout: dict) -> go.Figure:
    return go.Figure({"data": data, "layout": layout})


def with_markers(base: dict, markers: list[dict]) -> go.Figure:
    """A copy of a cached figure dict plus per-rerun marker traces."""
    return go.Figure({"data": list(base["data"]) + markers, "layout": copy.deepcopy(base["layout"])})


def reliability_figure(series: list[tuple[str, dict, str]], title: str | None = None, height: int = 460) -> go.Figure:
    """Reliability diagram (the paper's Figure 3): per-bin accuracy (±std over seeds) of each
    series as bars, the diagonal of perfect calibration, and the per-bin counts below.

    series: (name, explore.reliability_summary dict, colour).
    """
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.74, 0.26], vertical_spacing=0.05)
    if not series:
        return fig
    edges = np.asarray(series[0][1]["edges"])
    centers, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    k = len(series)
    for i, (name, rel, col) in enumerate(series):
        offset = (i - (k - 1) / 2) * widths / k
        acc = np.asarray(rel["accuracy_mean"]) * 100
        conf = np.asarray(rel["confidence_mean"]) * 100
        fig.add_trace(go.Bar(x=_list(centers + offset), y=_finite(acc), width=_list(widths / k * 0.95), name=name,
                             marker_color=col, legendgroup=name,
                             error_y={"type": "data", "array": _finite(np.asarray(rel["accuracy_std"]) * 100),
                                      "visible": rel["n_runs"] > 1},
                             customdata=np.stack([edges[:-1], edges[1:], np.nan_to_num(conf, nan=-1),
                                                  rel["count_mean"]], axis=1).round(5).tolist(),
                             hovertemplate=f"<b>{name}</b><br>bin [%{{customdata[0]:.2f}}, %{{customdata[1]:.2f}}]"
                                           "<br>accuracy = %{y:.1f}%<br>mean confidence = %{customdata[2]:.1f}%"
                                           "<br>samples per run = %{customdata[3]:.1f}<extra></extra>"),
                      row=1, col=1)
        fig.add_trace(go.Bar(x=_list(centers + offset), y=_list(rel["count_mean"]), width=_list(widths / k * 0.95),
                             marker_color=col, name=f"{name} count", legendgroup=name, showlegend=False,
                             hovertemplate=f"<b>{name}</b><br>%{{y:.1f}} samples per run<extra></extra>"),
                      row=2, col=1)
    lo = float(edges[0])
    fig.add_trace(go.Scatter(x=[lo, 1.0], y=[lo * 100, 100.0], mode="lines", name="perfect calibration",
                             line={"color": "#555", "dash": "dash", "width": 1}, hoverinfo="skip"), row=1, col=1)
    fig.update_layout(**{k: v for k, v in base_layout(title, "", "", height).items() if k not in ("xaxis", "yaxis")},
                      barmode="overlay", bargap=0)
    fig.update_yaxes(title_text="accuracy (%)", range=[0, 102], row=1, col=1)
    fig.update_yaxes(title_text="samples / run", row=2, col=1)
    fig.update_xaxes(title_text="confidence (top-label softmax)", range=[lo - 0.01, 1.01], row=2, col=1)
    fig.update_xaxes(range=[lo - 0.01, 1.01], row=1, col=1)
    return fig


def epochs_figure(epochs: list[dict]) -> go.Figure:
    """Per-epoch training curves: train / validation loss (left), validation accuracy per head (right)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "validation accuracy (%)"))
    ep = [e["epoch"] for e in epochs]
    fig.add_trace(go.Scatter(x=ep, y=[e["train_loss"] for e in epochs], name="train loss", mode="lines+markers"),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=ep, y=[e["val_loss"] for e in epochs], name="validation loss", mode="lines+markers"),
                  row=1, col=1)
    heads = list(dict.fromkeys(h for e in epochs for h in (e.get("val_acc") or {})))
    for i, head in enumerate(heads):
        fig.add_trace(go.Scatter(x=ep, y=[100 * (e["val_acc"] or {}).get(head, np.nan) for e in epochs],
                                 name=f"{'MainNet' if head == 'main' else 'SideNet@' + head} accuracy",
                                 mode="lines+markers", line={"color": color(i + 2)}), row=1, col=2)
    fig.update_layout(height=340, template="plotly_white", margin={"l": 50, "r": 20, "t": 40, "b": 40},
                      legend={"orientation": "h", "y": -0.2})
    fig.update_xaxes(title_text="epoch", dtick=1)
    return fig
