"""What the explorer shows, computed here (the pages only lay it out).

Runs are grouped into *configurations* -- (dataset, model, mode, attach point, SideNet hidden
size, SideNet layer order) -- and the seeds of a configuration are replicates: every number is
a mean and a std (ddof=0) over them. A run with SideNets at several attach points belongs to
one configuration per attach point; a mainnet-only run belongs to a configuration whose attach
point is None.

Speed: a run is loaded and *prepared* once (``prepare_run``: confidences, correctness and its
``ThetaCurve`` for both fallbacks); after that everything at a theta is a few ``searchsorted``
calls (``summary_at``) or a boolean mask (``populations_at``), never a pass over logits.

Pure numpy on top of engine.metrics / engine.analysis; never imports Streamlit.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from engine import metrics
from engine.analysis import COST_KINDS, path_costs
from engine.errors import UserError
from engine.metrics import PathCosts, ThetaCurve
from engine.store import Store

PAPER_THETAS = (0.2, 0.4, 0.6, 0.8, 0.9)  # the paper's Table 3 columns
ALL_COST_KINDS = COST_KINDS + ("ms",)
POPULATIONS = ("exited", "deferred", "cascade")


# -- configurations ------------------------------------------------------------------------
def _natural(text) -> tuple:
    """Sort key: resnet18 < resnet34 < resnet152 (numbers compared as numbers)."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(text or "")))


@dataclass(frozen=True)
class Configuration:
    """One trained configuration and the runs (seeds) that replicate it."""

    dataset: str
    model: str
    mode: str
    attach: str | None
    sidenet_hidden: int | None
    sidenet_order: str | None
    run_ids: tuple[str, ...] = field(default=(), compare=False)

    @property
    def key(self) -> tuple:
        return (self.dataset, self.model, self.mode, self.attach, self.sidenet_hidden, self.sidenet_order)

    @property
    def has_sidenet(self) -> bool:
        return self.attach is not None

    @property
    def label(self) -> str:
        """Short and unique among a dataset's configurations, e.g. 'resnet18 + SideNet@layer1 (h32)'."""
        if not self.has_sidenet:
            return f"{self.model} (MainNet only)"
        extra = "" if self.mode == "joint" else f", {self.mode}"
        order = "" if self.sidenet_order in (None, "linear-bn-relu") else f", {self.sidenet_order}"
        return f"{self.model} + SideNet@{self.attach} (h{self.sidenet_hidden}{order}{extra})"

    @property
    def id(self) -> str:
        """A stable text id (used for widget keys and URLs)."""
        return "|".join("" if v is None else str(v) for v in self.key)


def group_runs(runs: list[dict]) -> list[Configuration]:
    """Complete runs -> configurations, sorted by dataset, model (natural order), attach point.

    Runs that are not complete are ignored (the store lists only complete ones by default).
    """
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        if run.get("status", "complete") != "complete":
            continue
        if run.get("mode") == "mainnet-only" or not run.get("attach"):
            keys = [(run["dataset"], run["model"], run.get("mode") or "mainnet-only", None, None, None)]
        else:
            keys = [(run["dataset"], run["model"], run["mode"], a, run.get("sidenet_hidden"), run.get("sidenet_order"))
                    for a in run["attach"]]
        for key in keys:
            groups.setdefault(key, []).append(run)
    out = []
    for key, members in groups.items():
        members = sorted(members, key=lambda r: (r.get("seed") is None, r.get("seed"), r["run_id"]))
        out.append(Configuration(*key, run_ids=tuple(r["run_id"] for r in members)))
    return sorted(out, key=lambda c: (c.dataset, _natural(c.model), c.has_sidenet, c.mode, _natural(c.attach),
                                      c.sidenet_hidden or 0, c.sidenet_order or ""))


def datasets(configs: list[Configuration]) -> list[str]:
    return sorted({c.dataset for c in configs})


def options(configs: list[Configuration], field_name: str) -> list:
    """The distinct values of a field among configurations, naturally sorted (None left out)."""
    return sorted({getattr(c, field_name) for c in configs} - {None}, key=_natural)


def select(configs: list[Configuration], dataset: str | None = None, models=None, attach=None,
           hidden=None, sidenet: bool | None = None) -> list[Configuration]:
    """Filter configurations; ``None`` keeps everything for that field, a collection keeps its members."""
    def keep(value, wanted):
        return wanted is None or value in wanted
    return [c for c in configs
            if (dataset is None or c.dataset == dataset) and keep(c.model, models)
            and (sidenet is None or c.has_sidenet == sidenet)
            and (not c.has_sidenet or (keep(c.attach, attach) and keep(c.sidenet_hidden, hidden)))]


# -- one prepared run ------------------------------------------------------------------------
@dataclass(frozen=True)
class PreparedRun:
    """One run at one attach point, reduced to what every page needs (no logits kept).

    ``*_conf`` are top-label softmax confidences (float64), ``*_correct`` booleans, all ``(N,)``.
    ``fallback`` is what a deferred sample gets: the MainNet (``curve``) or the logit-sum
    ensemble (``ensemble_curve``).
    """

    run_id: str
    seed: int | None
    attach: str | None
    n: int
    main_conf: np.ndarray
    main_correct: np.ndarray
    costs: dict[str, PathCosts]
    side_conf: np.ndarray | None = None
    side_correct: np.ndarray | None = None
    ens_conf: np.ndarray | None = None
    ens_correct: np.ndarray | None = None
    curve: ThetaCurve | None = None
    ensemble_curve: ThetaCurve | None = None

    @property
    def has_sidenet(self) -> bool:
        return self.curve is not None

    def curve_for(self, ensemble: bool = False) -> ThetaCurve:
        if not self.has_sidenet:
            raise UserError(f"run {self.run_id} has no SideNet (mainnet-only): there is no theta to sweep")
        return self.ensemble_curve if ensemble else self.curve

    def fallback(self, ensemble: bool = False) -> tuple[np.ndarray, np.ndarray]:
        return (self.ens_conf, self.ens_correct) if ensemble else (self.main_conf, self.main_correct)

    @property
    def main_accuracy(self) -> float:
        return float(self.main_correct.mean())

    @property
    def side_accuracy(self) -> float:
        return float(self.side_correct.mean()) if self.has_sidenet else float("nan")

    @property
    def ensemble_accuracy(self) -> float:
        return float(self.ens_correct.mean()) if self.has_sidenet else float("nan")


def prepare(labels, main_logits, side_logits, costs: dict[str, PathCosts], run_id: str = "",
            seed: int | None = None, attach: str | None = None) -> PreparedRun:
    """Precompute a run's confidences, correctness and ThetaCurves (both fallbacks) once."""
    labels = np.asarray(labels)
    main_conf, main_pred = metrics.confidence_and_prediction(main_logits)
    kw = dict(run_id=run_id, seed=seed, attach=attach, n=len(labels), main_conf=main_conf,
              main_correct=main_pred == labels, costs=dict(costs))
    if side_logits is None:
        return PreparedRun(**kw)
    side_conf, side_pred = metrics.confidence_and_prediction(side_logits)
    ens_conf, ens_pred = metrics.confidence_and_prediction(metrics.ensemble_logits(side_logits, main_logits))
    side_ok, ens_ok = side_pred == labels, ens_pred == labels
    main_acc = float(kw["main_correct"].mean())
    # The same sorted arrays ThetaCurve.from_logits builds (float64 confidences), without a second softmax.
    curve = ThetaCurve.from_outcomes(side_conf, side_ok, kw["main_correct"], main_acc)
    ens_curve = ThetaCurve.from_outcomes(side_conf, side_ok, ens_ok, main_acc, ensemble=True)
    return PreparedRun(**kw, side_conf=side_conf, side_correct=side_ok, ens_conf=ens_conf, ens_correct=ens_ok,
                       curve=curve, ensemble_curve=ens_curve)


def prepare_run(store: Store, run_id: str, split: str = "test") -> dict[str | None, PreparedRun]:
    """Load a complete run's logits ONCE and prepare it at each of its attach points.

    Returns ``{attach: PreparedRun}`` (``{None: ...}`` for a mainnet-only run). Raises UserError
    when the run is gone or not complete.
    """
    run = store.get_run(run_id)
    if run["status"] != "complete":
        raise UserError(f"run {run_id} is {run['status']}, not complete")
    data = store.logits(run_id, split)
    costs, latency = store.costs(run_id), store.latency(run_id)
    main = data["heads"]["main"]
    attaches = list(run["attach"] or []) if run.get("mode") != "mainnet-only" else []
    out = {}
    for attach in attaches or [None]:
        side = data["heads"].get(attach) if attach else None
        if attach and side is None:
            raise UserError(f"run {run_id} has no stored {split} logits for its SideNet at {attach}")
        out[attach] = prepare(data["label"], main, side, path_costs(costs, latency, attach), run_id=run_id,
                              seed=run.get("seed"), attach=attach)
    return out


# -- numbers at one theta ---------------------------------------------------------------------
def cost_kinds(runs: list[PreparedRun]) -> list[str]:
    """The cost kinds every run has, in the order params, macs, ms."""
    return [k for k in ALL_COST_KINDS if runs and all(k in r.costs for r in runs)]


def _ms(values) -> tuple[float, float]:
    m, s = metrics.mean_std(np.asarray(values, dtype=np.float64))
    return float(m), float(s)


def summary_at(runs: list[PreparedRun], theta: float, ensemble: bool = False) -> dict:
    """The cascade of one configuration at theta, ``(mean, std)`` over its runs.

    Keys: accuracy, exit_fraction, exited_accuracy, deferred_accuracy, main_accuracy,
    side_accuracy, ensemble_accuracy, accuracy_gain (cascade minus MainNet alone, per run), and per cost kind avg_<k>, saving_<k> (against the
    MainNet alone) and full_<k> (the MainNet alone). Plus n_runs, n (samples per run, mean) and
    ``per_run``: each run's ``ThetaCurve.at`` dict. Mainnet-only runs: only the main/full keys.
    """
    if not runs:
        raise ValueError("summary_at needs at least one run")
    kinds = cost_kinds(runs)
    out: dict = {"theta": float(theta), "n_runs": len(runs), "n": float(np.mean([r.n for r in runs])),
                 "main_accuracy": _ms([r.main_accuracy for r in runs])}
    for k in kinds:
        out[f"full_{k}"] = _ms([r.costs[k].full for r in runs])
    if not all(r.has_sidenet for r in runs):
        out["per_run"] = []
        return out
    per = [r.curve_for(ensemble).at(theta, {k: r.costs[k] for k in kinds}) for r in runs]
    for key in ("accuracy", "exit_fraction", "exited_accuracy", "deferred_accuracy", "side_accuracy"):
        out[key] = _ms([p[key] for p in per])
    out["accuracy_gain"] = _ms([p["accuracy"] - p["main_accuracy"] for p in per])  # vs the MainNet alone
    out["ensemble_accuracy"] = _ms([r.ensemble_accuracy for r in runs])
    for k in kinds:
        out[f"avg_{k}"] = _ms([p[f"avg_{k}"] for p in per])
        out[f"saving_{k}"] = _ms([p[f"saving_{k}"] for p in per])
    out["per_run"] = per
    return out


def compare_fallbacks(runs: list[PreparedRun], theta: float) -> dict:
    """The cascade at theta with the MainNet fallback ("plain") and the ensemble fallback
    ("ensemble"), and the ensemble's accuracy gain per run, (mean, std) ("gain")."""
    plain, ens = summary_at(runs, theta, ensemble=False), summary_at(runs, theta, ensemble=True)
    gain = _ms([e["accuracy"] - p["accuracy"] for p, e in zip(plain["per_run"], ens["per_run"])])
    return {"plain": plain, "ensemble": ens, "gain": gain}


def curve(runs: list[PreparedRun], thetas=None, ensemble: bool = False) -> dict:
    """A configuration's trade-off curve over a theta grid (default 0, 0.005, ..., 1).

    ``metrics.aggregate_curves``: theta, accuracy_mean/std, exit_fraction_mean/std and
    avg_<k>_mean/std per cost kind, each ``(T,)``.
    """
    thetas = metrics.theta_grid() if thetas is None else np.asarray(thetas, dtype=np.float64)
    kinds = cost_kinds(runs)
    return metrics.aggregate_curves([r.curve_for(ensemble) for r in runs],
                                    [{k: r.costs[k] for k in kinds} for r in runs], thetas)


def mainnet_point(runs: list[PreparedRun]) -> dict:
    """A MainNet-alone point (mainnet-only runs): accuracy and full cost per kind, (mean, std)."""
    out = {"accuracy": _ms([r.main_accuracy for r in runs]), "n_runs": len(runs)}
    for k in cost_kinds(runs):
        out[k] = _ms([r.costs[k].full for r in runs])
    return out


# -- tables -----------------------------------------------------------------------------------
def accuracy_table(groups: list[tuple[Configuration, list[PreparedRun]]], thetas=PAPER_THETAS,
                   ensemble: bool = False) -> list[dict]:
    """The paper's Table 3: cascade accuracy at each theta, per configuration.

    One row per SideNet configuration: {"configuration", "seeds", "thetas": (T,),
    "mean": (T,), "std": (T,)} (fractions).
    """
    rows = []
    for cfg, runs in groups:
        if not cfg.has_sidenet or not runs:
            continue
        mean, std = metrics.accuracy_table([r.curve_for(ensemble) for r in runs], thetas)
        rows.append({"configuration": cfg.label, "seeds": len(runs), "thetas": tuple(float(t) for t in thetas),
                     "mean": mean, "std": std})
    return rows


def ece_table(groups: list[tuple[Configuration, list[PreparedRun]]], n_bins: int = metrics.DEFAULT_BINS) -> list[dict]:
    """The paper's Table 1: ECE of the SideNet and of the MainNet per configuration, (mean, std).

    ``*_ece_paper``: the paper's 8 bins (0.2 ... 1.0); ``*_ece_bins``: ``n_bins`` equal bins.
    """
    rows = []
    for cfg, runs in groups:
        if not cfg.has_sidenet or not runs:
            continue
        row = {"configuration": cfg.label, "seeds": len(runs), "n_bins": int(n_bins)}
        for head, conf, ok in (("side", "side_conf", "side_correct"), ("main", "main_conf", "main_correct")):
            for name, kw in (("paper", {"paper": True}), ("bins", {"n_bins": n_bins})):
                row[f"{head}_ece_{name}"] = _ms([metrics.reliability(getattr(r, conf), getattr(r, ok), **kw).ece
                                                 for r in runs])
        rows.append(row)
    return rows


def ensemble_table(groups: list[tuple[Configuration, list[PreparedRun]]]) -> list[dict]:
    """The paper's Table 4: MainNet, SideNet and logit-sum ensemble accuracy, (mean, std)."""
    rows = []
    for cfg, runs in groups:
        if not cfg.has_sidenet or not runs:
            continue
        rows.append({"configuration": cfg.label, "seeds": len(runs),
                     "main_accuracy": _ms([r.main_accuracy for r in runs]),
                     "side_accuracy": _ms([r.side_accuracy for r in runs]),
                     "ensemble_accuracy": _ms([r.ensemble_accuracy for r in runs])})
    return rows


# -- calibration ------------------------------------------------------------------------------
def reliability_summary(confs: list[np.ndarray], corrects: list[np.ndarray], n_bins: int | None = None,
                        paper: bool = False) -> dict:
    """Reliability diagram over runs: per bin accuracy and confidence (mean, std over the runs
    that have samples in the bin), the count per bin (mean over runs and total), ECE (mean, std).

    Keys: edges (B+1,), accuracy_mean/std, confidence_mean/std, count_mean, count_total (B,),
    ece (mean, std), n_total, n_runs. Empty bins have NaN accuracy (no bar).
    """
    rels = [metrics.reliability(c, k, n_bins=n_bins, paper=paper) for c, k in zip(confs, corrects)]
    if not rels:
        raise ValueError("reliability_summary needs at least one run")
    acc_m, acc_s = metrics.mean_std(np.stack([r.accuracy for r in rels]))
    conf_m, conf_s = metrics.mean_std(np.stack([r.confidence for r in rels]))
    counts = np.stack([r.count for r in rels])
    return {"edges": rels[0].edges, "accuracy_mean": acc_m, "accuracy_std": acc_s, "confidence_mean": conf_m,
            "confidence_std": conf_s, "count_mean": counts.mean(axis=0), "count_total": counts.sum(axis=0),
            "ece": _ms([r.ece for r in rels]), "n_total": int(sum(r.n for r in rels)), "n_runs": len(rels)}


def head_reliability(runs: list[PreparedRun], head: str, n_bins: int | None = None, paper: bool = False) -> dict:
    """``reliability_summary`` of one head ("side", "main" or "ensemble") over all test samples."""
    attr = {"side": "side", "main": "main", "ensemble": "ens"}[head]
    return reliability_summary([getattr(r, f"{attr}_conf") for r in runs],
                               [getattr(r, f"{attr}_correct") for r in runs], n_bins=n_bins, paper=paper)


def population_outcomes(run: PreparedRun, theta: float, ensemble: bool = False) -> dict[str, tuple]:
    """``{population: (conf, correct)}`` of the answers each population gets at theta.

    exited: the SideNet's answers on the samples that exit; deferred: the fallback's (MainNet or
    ensemble) on the others; cascade: everyone's final answer -- the same as
    ``metrics.cascade_confidence_and_correct``, from the prepared confidences.
    """
    masks = metrics.population_masks(run.side_conf, theta)
    exited, deferred = masks["exited"], masks["deferred"]
    fb_conf, fb_ok = run.fallback(ensemble)
    return {"exited": (run.side_conf[exited], run.side_correct[exited]),
            "deferred": (fb_conf[deferred], fb_ok[deferred]),
            "cascade": (np.where(exited, run.side_conf, fb_conf), np.where(exited, run.side_correct, fb_ok))}


def populations_at(runs: list[PreparedRun], theta: float, n_bins: int | None = None, paper: bool = False,
                   ensemble: bool = False) -> dict[str, dict]:
    """Calibration of the populations that matter at theta: exited, deferred, cascade.

    Per population: ``reliability_summary`` keys plus fraction, accuracy and confidence
    (mean, std over runs; NaN for a run where the population is empty) and size (mean count).
    """
    per_run = [population_outcomes(r, theta, ensemble) for r in runs]
    out = {}
    for pop in POPULATIONS:
        confs = [p[pop][0] for p in per_run]
        oks = [p[pop][1] for p in per_run]
        summary = reliability_summary(confs, oks, n_bins=n_bins, paper=paper)
        summary.update(
            size=float(np.mean([len(c) for c in confs])),
            fraction=_ms([len(c) / r.n for c, r in zip(confs, runs)]),
            accuracy=_ms([k.mean() if len(k) else np.nan for k in oks]),
            confidence=_ms([c.mean() if len(c) else np.nan for c in confs]))
        out[pop] = summary
    return out


# -- one run's costs ----------------------------------------------------------------------------
def path_table(costs: dict, latency: list[dict]) -> list[dict]:
    """A run's cost per path and attach point: the exit path (trunk + SideNet), the deferred path
    (trunk + SideNet + rest) and the MainNet alone, in each cost kind, with the share of the
    MainNet alone. ``costs``/``latency`` as ``Store.costs`` / ``Store.latency`` return them."""
    rows = []
    for attach in costs:
        pcs = path_costs(costs, latency, None if attach == "none" else attach)
        paths = [("exit at the SideNet", lambda c: c.trunk + c.sidenet),
                 ("deferred to the MainNet", lambda c: c.trunk + c.sidenet + c.rest),
                 ("MainNet alone", lambda c: c.full)]
        if attach == "none":
            paths = paths[2:]
        for name, fn in paths:
            row = {"attach": attach, "path": name}
            for kind, c in pcs.items():
                row[kind] = float(fn(c))
                row[f"{kind}_share"] = float(fn(c) / c.full) if c.full else float("nan")
            rows.append(row)
    return rows
