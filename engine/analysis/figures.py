"""Plotly figures as plain figure dicts, shared by the explorer (explorer.charts.show) and the
report's files (engine.analysis.report): layout only, the numbers come from engine.analysis.

Why dicts: building ``plotly.graph_objects`` figures validates every property and expands
templates, ~100 ms per chart on a small CPU -- most of an explorer rerun. The dicts here are
valid plotly.js specs (tests check each one through ``go.Figure``).
"""
from __future__ import annotations

import numpy as np

from engine.analysis.summary import MeanStd

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22"]


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


def _list(a) -> list:
    """Plain floats (NaN -> None, which plotly draws as a gap)."""
    a = np.asarray(a, dtype=np.float64).round(6)
    return [None if v != v else v for v in a.tolist()]


def layout(x_title: str, y_title: str, height: int = 460, title: str | None = None) -> dict:
    return {"height": height, "margin": {"l": 60, "r": 20, "t": 36 if title else 16, "b": 50},
            **({"title": {"text": title, "x": 0.01, "font": {"size": 13}}} if title else {}),
            "xaxis": {"title": {"text": x_title}, "zeroline": False},
            "yaxis": {"title": {"text": y_title}, "zeroline": False},
            "legend": {"orientation": "h", "yanchor": "top", "y": -0.16, "xanchor": "left", "x": 0},
            "hovermode": "closest"}


def figure(data: list[dict], lay: dict) -> dict:
    return {"data": data, "layout": lay}


def with_extra(base: dict, traces: list[dict], title: str | None = None) -> dict:
    """A cached figure dict plus per-rerun traces (the cached dict is not modified)."""
    lay = dict(base["layout"])
    if title:
        lay["title"] = {"text": title, "x": 0.01, "font": {"size": 13}}
        lay["margin"] = {**lay.get("margin", {}), "t": 36}
    return {"data": list(base["data"]) + traces, "layout": lay}


def curve_traces(label: str, curve: dict, kind: str, div: float, unit: str, col: str, dash: str = "solid",
                 band: bool = True, group: str | None = None) -> list[dict]:
    """The mean accuracy-vs-cost line of one configuration over theta, with a ±std band."""
    x = np.asarray(curve[f"avg_{kind}_mean"]) / div
    y, s = np.asarray(curve["accuracy_mean"]) * 100, np.nan_to_num(np.asarray(curve["accuracy_std"])) * 100
    group = group or label
    traces = []
    if band and np.any(s > 0):
        traces.append({"type": "scatter", "x": _list(np.concatenate([x, x[::-1]])),
                       "y": _list(np.concatenate([y + s, (y - s)[::-1]])), "fill": "toself", "mode": "lines",
                       "line": {"width": 0}, "fillcolor": _rgba(col, 0.15), "hoverinfo": "skip",
                       "showlegend": False, "legendgroup": group, "name": f"{label} ± std"})
    custom = np.stack([curve["theta"], np.asarray(curve["exit_fraction_mean"]) * 100, s], axis=1).round(5)
    traces.append({"type": "scatter", "x": _list(x), "y": _list(y), "mode": "lines", "name": label,
                   "legendgroup": group, "line": {"color": col, "width": 2, "dash": dash},
                   "customdata": custom.tolist(),
                   "hovertemplate": f"<b>{label}</b><br>θ = %{{customdata[0]:.3f}}<br>accuracy = %{{y:.2f}}% "
                                    f"± %{{customdata[2]:.2f}}<br>exit = %{{customdata[1]:.1f}}%<br>"
                                    f"cost = %{{x:.4g}} {unit}<extra></extra>"})
    return traces


def point_trace(label: str, x: MeanStd, y: MeanStd, div: float, unit: str, col: str, symbol: str = "square",
                size: int = 11, group: str | None = None, show_legend: bool = True, text: str | None = None) -> dict:
    """One marker with ±std error bars on both axes (y a fraction; no bars for one run)."""
    xs, ys = np.nan_to_num(x.std / div), np.nan_to_num(y.std * 100)
    return {"type": "scatter", "x": _list([x.mean / div]), "y": _list([y.mean * 100]), "mode": "markers",
            "name": label, "legendgroup": group or label, "showlegend": show_legend,
            "marker": {"color": col, "symbol": symbol, "size": size, "line": {"color": "white", "width": 1}},
            "error_y": {"type": "data", "array": _list([ys]), "visible": bool(ys > 0), "color": col},
            "error_x": {"type": "data", "array": _list([xs]), "visible": bool(xs > 0), "color": col},
            "hovertemplate": f"<b>{label}</b><br>{text + '<br>' if text else ''}accuracy = %{{y:.2f}}%<br>"
                             f"cost = %{{x:.4g}} {unit}<extra></extra>"}


def reliability_figure(series: list[tuple[str, dict, str]], height: int = 440) -> dict:
    """Reliability diagram (the paper's Figure 3): per-bin accuracy (±std over seeds) of each
    series as bars, the diagonal of perfect calibration, and the samples per bin below.

    series: (name, engine.analysis.calibration.reliability_summary dict, colour).
    """
    lay = layout("", "", height)
    lay.update(barmode="overlay", bargap=0,
               xaxis={"anchor": "y2", "title": {"text": "confidence (top-label softmax)"}},
               yaxis={"domain": [0.3, 1.0], "title": {"text": "accuracy (%)"}, "range": [0, 102]},
               yaxis2={"domain": [0.0, 0.24], "anchor": "x", "title": {"text": "samples / run"}})
    if not series:
        return figure([], lay)
    edges = np.asarray(series[0][1]["edges"])
    lo = float(edges[0])
    lay["xaxis"]["range"] = [lo - 0.01, 1.01]
    centers, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    k, data = len(series), []
    for i, (name, rel, col) in enumerate(series):
        xs = _list(centers + (i - (k - 1) / 2) * widths / k)
        w = _list(widths / k * 0.95)
        conf = np.asarray(rel["confidence_mean"]) * 100
        custom = np.stack([edges[:-1], edges[1:], np.nan_to_num(conf, nan=-1), rel["count_mean"]], axis=1).round(5)
        data.append({"type": "bar", "x": xs, "y": _list(np.asarray(rel["accuracy_mean"]) * 100), "width": w,
                     "name": name, "legendgroup": name, "marker": {"color": col},
                     "error_y": {"type": "data", "array": _list(np.nan_to_num(np.asarray(rel["accuracy_std"])) * 100),
                                 "visible": bool(rel["n_runs"] > 1)},
                     "customdata": custom.tolist(),
                     "hovertemplate": f"<b>{name}</b><br>bin [%{{customdata[0]:.2f}}, %{{customdata[1]:.2f}}]"
                                      "<br>accuracy = %{y:.1f}%<br>mean confidence = %{customdata[2]:.1f}%"
                                      "<br>samples per run = %{customdata[3]:.1f}<extra></extra>"})
        data.append({"type": "bar", "x": xs, "y": _list(rel["count_mean"]), "width": w, "xaxis": "x", "yaxis": "y2",
                     "marker": {"color": col}, "name": f"{name}: samples", "legendgroup": name, "showlegend": False,
                     "hovertemplate": f"<b>{name}</b><br>%{{y:.1f}} samples per run<extra></extra>"})
    data.append({"type": "scatter", "x": [lo, 1.0], "y": [lo * 100, 100.0], "mode": "lines",
                 "name": "perfect calibration", "line": {"color": "#555", "dash": "dash", "width": 1},
                 "hoverinfo": "skip"})
    return figure(data, lay)


def epochs_figure(epochs: list[dict]) -> dict:
    """Per-epoch training curves: train / validation loss (left), validation accuracy per head (right)."""
    ep = [e["epoch"] for e in epochs]
    data = [{"type": "scatter", "x": ep, "y": _list([e["train_loss"] for e in epochs]), "name": "train loss",
             "mode": "lines+markers", "line": {"color": color(0)}},
            {"type": "scatter", "x": ep, "y": _list([e["val_loss"] for e in epochs]), "name": "validation loss",
             "mode": "lines+markers", "line": {"color": color(1)}}]
    heads = list(dict.fromkeys(h for e in epochs for h in (e.get("val_acc") or {})))
    for i, head in enumerate(heads):
        data.append({"type": "scatter", "x": ep, "y": _list([100 * (e["val_acc"] or {}).get(head, np.nan)
                                                             for e in epochs]),
                     "name": f"{'MainNet' if head == 'main' else 'SideNet@' + head} val. accuracy (%)",
                     "mode": "lines+markers", "xaxis": "x2", "yaxis": "y2", "line": {"color": color(i + 2)}})
    lay = layout("epoch", "loss", height=340)
    lay["xaxis"].update(domain=[0.0, 0.40], dtick=1)
    lay["legend"]["y"] = -0.25
    lay.update(xaxis2={"domain": [0.58, 1.0], "anchor": "y2", "title": {"text": "epoch"}, "dtick": 1},
               yaxis2={"anchor": "x2", "title": {"text": "validation accuracy (%)"}})
    return figure(data, lay)
