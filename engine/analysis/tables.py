"""The paper's tables over configurations (each a list of row dicts holding MeanStd values), and
one run's cost per path.

    table1_ece      ECE of the SideNet and of the MainNet (Table 1)
    table2_mainnet  MainNet accuracy trained with vs without a SideNet (Table 2)
    table3_accuracy cascade accuracy at theta 0.2 / 0.4 / 0.6 / 0.8 / 0.9 (Table 3)
    table4_ensemble MainNet, SideNet and logit-sum ensemble accuracy (Table 4)
Groups are [(Configuration, [PreparedRun])].
"""
from __future__ import annotations

import numpy as np

from engine import metrics
from engine.analysis.runs import path_costs_of
from engine.analysis.summary import MeanStd

PAPER_THETAS = (0.2, 0.4, 0.6, 0.8, 0.9)  # the paper's Table 3 columns


def _with_sidenet(groups):
    return [(cfg, runs) for cfg, runs in groups if cfg.has_sidenet and runs]


def table1_ece(groups, n_bins: int = metrics.DEFAULT_BINS) -> list[dict]:
    """ECE of the SideNet and the MainNet per configuration: ``{head}_ece_paper`` (the paper's 8
    bins, 0.2 ... 1.0) and ``{head}_ece_bins`` (``n_bins`` equal bins), MeanStd fractions."""
    rows = []
    for cfg, runs in _with_sidenet(groups):
        row = {"configuration": cfg.label, "seeds": len(runs), "n_bins": int(n_bins), "run_ids": [r.run_id for r in runs]}
        for head in ("side", "main"):
            for name, kw in (("paper", {"paper": True}), ("bins", {"n_bins": n_bins})):
                row[f"{head}_ece_{name}"] = MeanStd.of([metrics.reliability(getattr(r, f"{head}_conf"),
                                                                            getattr(r, f"{head}_correct"), **kw).ece
                                                        for r in runs])
        rows.append(row)
    return rows


def table2_mainnet(groups) -> list[dict]:
    """MainNet test accuracy trained jointly WITH a SideNet vs WITHOUT (mainnet-only), per
    (dataset, model, recipe) that has both; ``difference`` = with - without (means)."""
    with_side, without = {}, {}
    for cfg, runs in groups:
        key = (cfg.dataset, cfg.model, cfg.recipe)
        if cfg.has_sidenet and cfg.mode == "joint":
            with_side.setdefault(key, {}).update({r.run_id: r for r in runs})  # one run, several attach points
        elif not cfg.has_sidenet:
            without[key] = {r.run_id: r for r in runs}
    rows = []
    for key in sorted(with_side.keys() & without.keys()):
        a, b = list(with_side[key].values()), list(without[key].values())
        w, wo = MeanStd.of([r.main_accuracy for r in a]), MeanStd.of([r.main_accuracy for r in b])
        variant = next(c.variant for c, _ in groups if (c.dataset, c.model, c.recipe) == key and c.has_sidenet)
        rows.append({"dataset": key[0], "model": key[1], "variant": variant, "with_sidenet": w, "without_sidenet": wo,
                     "difference": w.mean - wo.mean, "run_ids": [r.run_id for r in a + b]})
    return rows


def table3_accuracy(groups, thetas=PAPER_THETAS, ensemble: bool = False, rule: str = "max-prob") -> list[dict]:
    """Cascade accuracy at each theta per configuration: {"thetas", "accuracy": [MeanStd per theta]}."""
    rows = []
    for cfg, runs in _with_sidenet(groups):
        values = np.stack([r.curve_for(ensemble, rule).accuracy(np.asarray(thetas, dtype=np.float64)) for r in runs])
        rows.append({"configuration": cfg.label, "seeds": len(runs), "thetas": tuple(float(t) for t in thetas),
                     "accuracy": [MeanStd.of(values[:, i]) for i in range(len(thetas))], "exit_rule": rule,
                     "run_ids": [r.run_id for r in runs]})
    return rows


def table4_ensemble(groups) -> list[dict]:
    """MainNet, SideNet and logit-sum ensemble accuracy per configuration (all samples, no exits)."""
    return [{"configuration": cfg.label, "seeds": len(runs),
             "main_accuracy": MeanStd.of([r.main_accuracy for r in runs]),
             "side_accuracy": MeanStd.of([r.side_accuracy for r in runs]),
             "ensemble_accuracy": MeanStd.of([r.ensemble_accuracy for r in runs]),
             "run_ids": [r.run_id for r in runs]} for cfg, runs in _with_sidenet(groups)]


def path_table(costs: dict, latency: list[dict]) -> list[dict]:
    """A run's cost per path and attach point: the exit path (trunk + SideNet), the deferred path
    (trunk + SideNet + rest) and the MainNet alone, in each cost kind, with the share of the
    MainNet alone. ``costs``/``latency`` as ``Store.costs`` / ``Store.latency`` return them."""
    rows = []
    paths = [("exit at the SideNet", lambda c: c.trunk + c.sidenet),
             ("deferred to the MainNet", lambda c: c.trunk + c.sidenet + c.rest),
             ("MainNet alone", lambda c: c.full)]
    for attach in costs:
        pcs = path_costs_of(costs, latency, None if attach == "none" else attach)
        for name, fn in paths[2:] if attach == "none" else paths:
            row = {"attach": attach, "path": name}
            for kind, c in pcs.items():
                row[kind] = float(fn(c))
                row[f"{kind}_share"] = float(fn(c) / c.full) if c.full else None
            rows.append(row)
    return rows
