"""`python -m engine report`: the paper's Tables 1-4 (Markdown + CSV) and Figures 2-4 (PNG + HTML)
from the runs in the DB, side by side with the paper's numbers, and REPRODUCTION.md (claims.py).

Every value is a mean ± SAMPLE standard deviation over the seeds of a configuration, with the
seed count; every table names its runs and the commits they came from. Figures are written with
kaleido through Debian's chromium (one batch for all PNGs); the HTML files share one plotly.js
written beside them (nothing is fetched from the internet when they are opened).
"""
from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine import datasets
from engine.analysis import claims, figures, paper, tables
from engine.analysis.calibration import head_reliability
from engine.analysis.configurations import Configuration, group_runs
from engine.analysis.runs import PreparedRun, prepare_run
from engine.analysis.summary import MeanStd, curve, mainnet_point
from engine.errors import UserError

Groups = list[tuple[Configuration, list[PreparedRun]]]


@dataclass
class ReportData:
    """Everything the report reads: per dataset its groups; every run's row (for commits)."""

    by_dataset: dict[str, Groups]
    runs: dict[str, dict]

    def commits(self, run_ids) -> str:
        found = sorted({(self.runs[r].get("git_commit") or "unknown")[:10] for r in run_ids if r in self.runs})
        return ", ".join(found) or "unknown"

    def devices(self, run_ids) -> str:
        return ", ".join(sorted({self.runs[r].get("device") or "unknown" for r in run_ids if r in self.runs}))


def load(store, datasets: list[str] | None = None) -> ReportData:
    """Every complete run (of the datasets asked), prepared once and grouped by configuration."""
    runs = [r for r in store.list_runs() if not datasets or r["dataset"] in datasets]
    if not runs:
        raise UserError(f"no complete runs{' for ' + ', '.join(datasets) if datasets else ''} in {store.path}: "
                        "train some first (python -m engine presets lists the paper's experiments)")
    prepared = {r["run_id"]: prepare_run(store, r["run_id"]) for r in runs}
    by_dataset: dict[str, Groups] = {}
    for cfg in group_runs(runs):
        by_dataset.setdefault(cfg.dataset, []).append((cfg, [prepared[rid][cfg.attach] for rid in cfg.run_ids]))
    return ReportData(by_dataset, {r["run_id"]: r for r in runs})


def pct(value: MeanStd | None, digits: int = 2) -> str:
    """'92.31 ± 0.12 (n=5)' in percent; no ± for one seed; '–' when undefined."""
    if value is None or value.n == 0 or np.isnan(value.mean):
        return "–"
    std = f" ± {100 * value.std:.{digits}f}" if value.n > 1 else ""
    return f"{100 * value.mean:.{digits}f}{std} (n={value.n})"


def paper_value(pair) -> str:
    return "–" if pair is None else f"{pair[0]} ± {pair[1]}"


# -- the tables ---------------------------------------------------------------------------------
def table_rows(data: ReportData) -> dict[str, tuple[list[str], list[list], str]]:
    """{name: (header, rows, note)} for Tables 1-4 over every dataset."""
    out: dict[str, tuple[list[str], list[list], str]] = {}
    t1, t2, t3, t4 = [], [], [], []
    for dataset, groups in data.by_dataset.items():
        for r in tables.table1_ece(groups):
            model = r["configuration"].split(" ")[0]
            side_p, main_p = paper.TABLE1_ECE.get(model, (None, None))
            t1.append([dataset, r["configuration"], pct(r["side_ece_paper"]), pct(r["main_ece_paper"]),
                       paper_value(side_p), paper_value(main_p), data.commits(r["run_ids"])])
        for r in tables.table2_mainnet(groups):
            with_p, without_p = paper.TABLE2_MAINNET.get(_paper_name(r["model"]), (None, None))
            t2.append([dataset, r["model"] + (f" ({r['variant']})" if r["variant"] else ""), pct(r["with_sidenet"]),
                       pct(r["without_sidenet"]), f"{100 * r['difference']:+.2f}", paper_value(with_p),
                       paper_value(without_p), data.commits(r["run_ids"])])
        for rule in ("max-prob", "margin"):
            for r in tables.table3_accuracy(groups, rule=rule):
                t3.append([dataset, r["configuration"], rule, *[pct(a, 1) for a in r["accuracy"]],
                           _paper_table3(r["configuration"]), data.commits(r["run_ids"])])
        for r in tables.table4_ensemble(groups):
            model = r["configuration"].split(" ")[0]
            ref = paper.TABLE4_ENSEMBLE.get(model)
            t4.append([dataset, r["configuration"], pct(r["main_accuracy"]), pct(r["side_accuracy"]),
                       pct(r["ensemble_accuracy"]), " / ".join(paper_value(v) for v in ref) if ref else "–",
                       data.commits(r["run_ids"])])
    out["table1"] = (["dataset", "configuration", "SideNet ECE (%)", "MainNet ECE (%)", "paper SideNet ECE",
                      "paper MainNet ECE", "commit"], t1,
                     "ECE with the paper's 8 bins (0.2-1.0) on the test split, in percent. Paper: CIFAR-10.")
    out["table2"] = (["dataset", "MainNet", "with SideNet (%)", "without SideNet (%)", "difference (pts)",
                      "paper with", "paper without", "commit"], t2,
                     "MainNet test accuracy trained jointly with a SideNet vs mainnet-only. Paper: CIFAR-10 / SST-2.")
    out["table3"] = (["dataset", "configuration", "exit rule", *[f"θ = {t:g}" for t in paper.TABLE3_THETAS],
                      "paper (DistilBERT, same hidden/depth)", "commit"], t3,
                     "Cascade test accuracy at fixed thresholds, both exit rules. Under max-prob a binary head exits "
                     "everything at θ ≤ 0.5; the paper's 0.2 / 0.4 columns differ only under the margin rule.")
    out["table4"] = (["dataset", "configuration", "MainNet (%)", "SideNet (%)", "Ensemble (%)",
                      "paper Main / Side / Ensemble", "commit"], t4,
                     "Accuracy of each head and of the logit-sum ensemble on all test samples. Paper: CIFAR-10.")
    return out


def _paper_name(model: str) -> str:
    """Our model's name in the paper's tables (the stand-ins play the paper's models)."""
    inverse = {v: k for k, v in paper.STAND_INS.items()}
    return inverse.get(model, model)


def _paper_table3(label: str) -> str:
    """The paper's Table 3 row of the same hidden size and depth, when the label names one."""
    import re

    m = re.search(r"SideNet@encoder(\d+) \(h(\d+)", label)
    ref = paper.TABLE3_DISTILBERT.get((int(m.group(2)), int(m.group(1)))) if m else None
    return " / ".join(f"{a}" for a, _ in ref) if ref else "–"


def markdown_table(header: list[str], rows: list[list]) -> str:
    esc = [[str(c).replace("|", "\\|") for c in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in esc])


# -- the figures --------------------------------------------------------------------------------
def figure_specs(data: ReportData) -> dict[str, dict]:
    """{file stem: figure dict}: Figure 2 (image datasets) / 4 (text) per dataset, accuracy vs average
    parameters per input, and Figure 3 (a reliability diagram of SideNet vs MainNet) per dataset."""
    out = {}
    for dataset, groups in data.by_dataset.items():
        kind = "figure4" if datasets.get(dataset).kind == "text" else "figure2"
        full = max(rs[0].costs["params"].full for _, rs in groups)
        div, unit = (1e6, "M params")
        traces = []
        for i, (cfg, rs) in enumerate(groups):
            col = figures.color(i)
            if cfg.has_sidenet:
                c = curve(rs, thetas=np.linspace(0, 1, 101))
                traces += figures.curve_traces(cfg.label, c, "params", div, unit, col)
            else:
                p = mainnet_point(rs)
                traces.append(figures.point_trace(cfg.label, p["params"], p["accuracy"], div, unit, col))
        lay = figures.layout(f"average parameters per input ({unit}; the MainNet alone: {full / 1e6:.1f}M)",
                             "test accuracy (%)", height=520,
                             title=f"{'Figure 4' if kind == 'figure4' else 'Figure 2'} on {dataset}: accuracy "
                                   "against average parameters per run, ± sample std over seeds")
        out[f"{kind}-{dataset}"] = figures.figure(traces, lay)
        with_side = [(c, rs) for c, rs in groups if c.has_sidenet]
        if with_side:
            cfg, rs = max(with_side, key=lambda g: (len(g[1]), "resnet50" in g[0].model))
            spec = figures.reliability_figure([("SideNet", head_reliability(rs, "side", paper=True), figures.color(0)),
                                               ("MainNet", head_reliability(rs, "main", paper=True), figures.color(1))])
            spec["layout"]["title"] = {"text": f"Figure 3 on {dataset}: calibration of {cfg.label}, "
                                               f"{len(rs)} seed(s), the paper's 8 bins", "x": 0.01}
            out[f"figure3-{dataset}"] = spec
    return out


def write_figures(specs: dict[str, dict], out: Path, png: bool = True) -> list[Path]:
    """HTML for every figure (plotly.js written once beside them) and, with png, PNGs in one batch."""
    import plotly.graph_objects as go
    import plotly.io as pio

    figs = {stem: go.Figure(spec) for stem, spec in specs.items()}
    written = []
    for stem, fig in figs.items():
        path = out / f"{stem}.html"
        fig.write_html(path, include_plotlyjs="directory", full_html=True)
        written.append(path)
    if png and figs:
        paths = [out / f"{stem}.png" for stem in figs]
        try:
            pio.write_images(list(figs.values()), paths, width=1000, height=620)
        except Exception as err:  # noqa: BLE001  kaleido needs a chromium: say so, keep the HTML
            raise UserError(f"could not write PNG figures ({err.__class__.__name__}: {str(err).splitlines()[0][:200]}); "
                            "kaleido needs chromium (apt-get install chromium), or pass --no-figures") from err
        written += paths
    return written


# -- all of it ----------------------------------------------------------------------------------
def write_report(store, out: str | Path = "report", dataset: list[str] | None = None, with_figures: bool = True,
                 reproduction: str | Path | None = None) -> list[Path]:
    """Write the tables (and figures, and REPRODUCTION.md when asked); returns the paths written."""
    started = time.perf_counter()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    if reproduction and (Path(reproduction).is_dir() or not Path(reproduction).parent.is_dir()):
        raise UserError(f"--reproduction {reproduction}: give a file in an existing folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create {out}: {err.strerror or err}") from err
    data = load(store, dataset)
    written = []
    sections = []
    for name, (header, rows, note) in table_rows(data).items():
        md = f"## {name.replace('table', 'Table ')}\n\n{note}\n\n" + (markdown_table(header, rows) if rows else
                                                                      "_No runs for this table in the DB._") + "\n"
        (out / f"{name}.md").write_text(md)
        with open(out / f"{name}.csv", "w", newline="") as f:
            csv.writer(f).writerows([header, *rows])
        written += [out / f"{name}.md", out / f"{name}.csv"]
        sections.append(md)
    if with_figures:
        written += write_figures(figure_specs(data), out)
    runs_md = markdown_table(["run", "dataset", "model", "mode", "seed", "attach", "device", "commit"],
                             [[r["run_id"], r["dataset"], r["model"], r["mode"], r["seed"], ",".join(r["attach"] or []),
                               r["device"], (r.get("git_commit") or "")[:10]] for r in data.runs.values()])
    (out / "README.md").write_text(f"# Report from {store.path}\n\n" + "\n".join(sections)
                                   + f"\n## Runs\n\n{runs_md}\n\nWritten in {time.perf_counter() - started:.1f} s.\n")
    written.append(out / "README.md")
    if reproduction:
        path = Path(reproduction)
        try:
            path.write_text(claims.reproduction_markdown(data, store))
        except OSError as err:
            raise UserError(f"cannot write {path}: {err.strerror or err}; the report itself is in {out}") from err
        written.append(path)
    return written
