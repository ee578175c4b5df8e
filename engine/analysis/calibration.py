"""Calibration over a configuration's runs: reliability diagrams (the paper's Figure 3) of each
head, and of the populations that matter at theta (the samples that exit, those deferred, the
whole cascade). Confidence is always the top-label softmax probability, whatever the exit rule.
"""
from __future__ import annotations

import numpy as np

from engine import metrics
from engine.analysis.runs import PreparedRun
from engine.analysis.summary import MeanStd

POPULATIONS = ("exited", "deferred", "cascade")


def reliability_summary(confs: list[np.ndarray], corrects: list[np.ndarray], n_bins: int | None = None,
                        paper: bool = False) -> dict:
    """Reliability diagram over runs: per bin accuracy and confidence (mean, sample std over the
    runs that have samples in the bin), the count per bin (mean over runs and total), ECE (MeanStd).

    Keys: edges (B+1,), accuracy_mean/std, confidence_mean/std, count_mean, count_total (B,),
    ece (MeanStd), n_total, n_runs. Empty bins have NaN accuracy (no bar).
    """
    rels = [metrics.reliability(c, k, n_bins=n_bins, paper=paper) for c, k in zip(confs, corrects)]
    if not rels:
        raise ValueError("reliability_summary needs at least one run")
    acc_m, acc_s = metrics.mean_std(np.stack([r.accuracy for r in rels]))
    conf_m, conf_s = metrics.mean_std(np.stack([r.confidence for r in rels]))
    counts = np.stack([r.count for r in rels])
    return {"edges": rels[0].edges, "accuracy_mean": acc_m, "accuracy_std": acc_s, "confidence_mean": conf_m,
            "confidence_std": conf_s, "count_mean": counts.mean(axis=0), "count_total": counts.sum(axis=0),
            "ece": MeanStd.of([r.ece for r in rels]), "n_total": int(sum(r.n for r in rels)), "n_runs": len(rels)}


def head_reliability(runs: list[PreparedRun], head: str, n_bins: int | None = None, paper: bool = False) -> dict:
    """``reliability_summary`` of one head ("side", "main" or "ensemble") over all test samples."""
    attr = {"side": "side", "main": "main", "ensemble": "ens"}[head]
    return reliability_summary([getattr(r, f"{attr}_conf") for r in runs],
                               [getattr(r, f"{attr}_correct") for r in runs], n_bins=n_bins, paper=paper)


def population_outcomes(run: PreparedRun, theta: float, ensemble: bool = False,
                        rule: str = "max-prob") -> dict[str, tuple]:
    """``{population: (conf, correct)}`` of the answers each population gets at theta.

    exited: the SideNet's answers on the samples that exit (by the exit rule's score); deferred:
    the fallback's (MainNet or ensemble) on the others; cascade: everyone's final answer -- the
    same as ``metrics.cascade_confidence_and_correct``, from the prepared arrays.
    """
    masks = metrics.population_masks(run.side_scores[rule], theta)
    exited, deferred = masks["exited"], masks["deferred"]
    fb_conf, fb_ok = run.fallback(ensemble)
    return {"exited": (run.side_conf[exited], run.side_correct[exited]),
            "deferred": (fb_conf[deferred], fb_ok[deferred]),
            "cascade": (np.where(exited, run.side_conf, fb_conf), np.where(exited, run.side_correct, fb_ok))}


def populations_at(runs: list[PreparedRun], theta: float, n_bins: int | None = None, paper: bool = False,
                   ensemble: bool = False, rule: str = "max-prob") -> dict[str, dict]:
    """Calibration of the populations at theta: exited, deferred, cascade. Per population:
    ``reliability_summary`` keys plus fraction, accuracy and confidence (MeanStd over runs; a run
    where the population is empty counts as NaN and is left out) and size (mean count)."""
    per_run = [population_outcomes(r, theta, ensemble, rule) for r in runs]
    out = {}
    for pop in POPULATIONS:
        confs = [p[pop][0] for p in per_run]
        oks = [p[pop][1] for p in per_run]
        summary = reliability_summary(confs, oks, n_bins=n_bins, paper=paper)
        summary.update(
            size=float(np.mean([len(c) for c in confs])),
            fraction=MeanStd.of([len(c) / r.n for c, r in zip(confs, runs)]),
            accuracy=MeanStd.of([k.mean() if len(k) else np.nan for k in oks]),
            confidence=MeanStd.of([c.mean() if len(c) else np.nan for c in confs]))
        out[pop] = summary
    return out
