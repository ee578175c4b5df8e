"""The numbers of one configuration at a theta, and its whole trade-off curve, over its seeds.

After ``prepare_run`` everything here is a few ``searchsorted`` calls per run: a theta change
never touches logits. Pure numpy on top of engine.metrics; never imports Streamlit.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from engine import metrics
from engine.analysis.runs import ALL_COST_KINDS, PreparedRun


@dataclass(frozen=True)
class MeanStd:
    """A mean and the SAMPLE standard deviation over n values (std NaN when n < 2)."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values) -> MeanStd:
        v = np.asarray(values, dtype=np.float64)
        m, s = metrics.mean_std(v) if len(v) else (np.nan, np.nan)
        return cls(float(m), float(s), int(np.sum(~np.isnan(v))))

    def to_json(self) -> dict:
        """Strict JSON: NaN becomes null."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Summary:
    """A configuration's cascade at theta over its runs. Cost dicts are keyed by kind
    ("params", "macs", "ms"): average per input, saving against the MainNet alone, the MainNet alone."""

    theta: float
    n_runs: int
    n: float  # samples per run (mean)
    main_accuracy: MeanStd
    full: dict[str, MeanStd]
    accuracy: MeanStd | None = None
    exit_fraction: MeanStd | None = None
    exited_accuracy: MeanStd | None = None
    deferred_accuracy: MeanStd | None = None
    side_accuracy: MeanStd | None = None
    ensemble_accuracy: MeanStd | None = None
    accuracy_gain: MeanStd | None = None  # cascade minus MainNet alone, per run
    avg: dict[str, MeanStd] = field(default_factory=dict)
    saving: dict[str, MeanStd] = field(default_factory=dict)
    per_run: list[dict] = field(default_factory=list)  # each run's ThetaCurve.at dict

    def to_json(self) -> dict:
        out = {"theta": self.theta, "n_runs": self.n_runs, "n": self.n}
        for name in ("main_accuracy", "accuracy", "exit_fraction", "exited_accuracy", "deferred_accuracy",
                     "side_accuracy", "ensemble_accuracy", "accuracy_gain"):
            value = getattr(self, name)
            out[name] = value.to_json() if value is not None else None
        for name in ("full", "avg", "saving"):
            out[name] = {k: v.to_json() for k, v in getattr(self, name).items()}
        return out


def cost_kinds(runs: list[PreparedRun]) -> list[str]:
    """The cost kinds every run has, in the order params, macs, ms."""
    return [k for k in ALL_COST_KINDS if runs and all(k in r.costs for r in runs)]


def summary_at(runs: list[PreparedRun], theta: float, ensemble: bool = False, rule: str = "max-prob") -> Summary:
    """The cascade of one configuration at theta, over its runs (mainnet-only: the main/full fields only)."""
    if not runs:
        raise ValueError("summary_at needs at least one run")
    kinds = cost_kinds(runs)
    base = dict(theta=float(theta), n_runs=len(runs), n=float(np.mean([r.n for r in runs])),
                main_accuracy=MeanStd.of([r.main_accuracy for r in runs]),
                full={k: MeanStd.of([r.costs[k].full for r in runs]) for k in kinds})
    if not all(r.has_sidenet for r in runs):
        return Summary(**base)
    per = [r.curve_for(ensemble, rule).at(theta, {k: r.costs[k] for k in kinds}) for r in runs]
    return Summary(
        **base, **{key: MeanStd.of([p[key] for p in per]) for key in
                   ("accuracy", "exit_fraction", "exited_accuracy", "deferred_accuracy", "side_accuracy")},
        ensemble_accuracy=MeanStd.of([r.ensemble_accuracy for r in runs]),
        accuracy_gain=MeanStd.of([p["accuracy"] - p["main_accuracy"] for p in per]),
        avg={k: MeanStd.of([p[f"avg_{k}"] for p in per]) for k in kinds},
        saving={k: MeanStd.of([p[f"saving_{k}"] for p in per]) for k in kinds}, per_run=per)


def compare_fallbacks(runs: list[PreparedRun], theta: float, rule: str = "max-prob") -> dict:
    """The cascade at theta with the MainNet fallback ("plain") and the ensemble fallback
    ("ensemble"), and the ensemble's accuracy gain per run ("gain", a MeanStd)."""
    plain, ens = summary_at(runs, theta, False, rule), summary_at(runs, theta, True, rule)
    gain = MeanStd.of([e["accuracy"] - p["accuracy"] for p, e in zip(plain.per_run, ens.per_run)])
    return {"plain": plain, "ensemble": ens, "gain": gain}


def curve(runs: list[PreparedRun], thetas=None, ensemble: bool = False, rule: str = "max-prob") -> dict:
    """A configuration's trade-off curve over a theta grid (default 0, 0.005, ..., 1).

    ``metrics.aggregate_curves``: theta, accuracy_mean/std, exit_fraction_mean/std and
    avg_<k>_mean/std per cost kind, each ``(T,)`` (std: sample std, NaN for one run).
    """
    thetas = metrics.theta_grid() if thetas is None else np.asarray(thetas, dtype=np.float64)
    kinds = cost_kinds(runs)
    return metrics.aggregate_curves([r.curve_for(ensemble, rule) for r in runs],
                                    [{k: r.costs[k] for k in kinds} for r in runs], thetas)


def mainnet_point(runs: list[PreparedRun]) -> dict:
    """A MainNet-alone point (mainnet-only runs): {"accuracy": MeanStd, "<kind>": MeanStd, "n_runs"}."""
    out = {"accuracy": MeanStd.of([r.main_accuracy for r in runs]), "n_runs": len(runs)}
    for k in cost_kinds(runs):
        out[k] = MeanStd.of([r.costs[k].full for r in runs])
    return out


def sweep(run: PreparedRun, theta: float, ensemble: bool = False, rule: str = "max-prob") -> dict:
    """One run's cascade at theta (the CLI's `sweep`): accuracy, exit fraction, average and saved
    params / MACs, each head's accuracy. Strict-JSON-ready (None for undefined ratios)."""
    out = run.curve_for(ensemble, rule).at(theta, run.costs)
    out.update(run_id=run.run_id, attach=run.attach, ensemble=ensemble, exit_rule=rule,
               ensemble_accuracy=run.ensemble_accuracy)
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in out.items()}


def within_drop(runs: list[PreparedRun], max_drop: float = 0.005, rule: str = "max-prob") -> dict:
    """A configuration's cascade on its MEAN curve (its seeds, the theta grid) at the smallest theta
    whose mean accuracy is within max_drop of the seeds' mean MainNet accuracy: {"theta", "accuracy",
    "main_accuracy", "exit_fraction", "saving_macs", "n_runs"}; theta None and no saving when no grid
    theta qualifies (confidences saturated at 1.0 that lose accuracy)."""
    c = curve(runs, rule=rule)
    main = float(np.mean([r.main_accuracy for r in runs]))
    ok = np.flatnonzero(c["accuracy_mean"] >= main - max_drop - 1e-12)
    out = {"theta": None, "accuracy": main, "main_accuracy": main, "exit_fraction": 0.0, "saving_macs": 0.0,
           "n_runs": len(runs)}
    if ok.size:
        i = int(ok[0])
        full = float(np.mean([r.costs["macs"].full for r in runs]))
        out.update(theta=float(c["theta"][i]), accuracy=float(c["accuracy_mean"][i]),
                   exit_fraction=float(c["exit_fraction_mean"][i]),
                   saving_macs=1.0 - float(c["avg_macs_mean"][i]) / full)
    return out
