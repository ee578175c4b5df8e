"""One run, loaded once and reduced to what every view needs: confidences, exit scores, correctness
and its ThetaCurves (per exit rule and fallback); never the logits again.

    prepared = prepare_run(store, run_id)          # {attach: PreparedRun} ({None: ...} mainnet-only)
    run = prepared["layer1"]
    run.curve_for(ensemble=False, rule="margin").at(0.4, run.costs)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine import metrics
from engine.errors import UserError
from engine.metrics import EXIT_RULES, PathCosts, ThetaCurve

COST_KINDS = ("params", "macs")
ALL_COST_KINDS = COST_KINDS + ("ms",)


def path_costs_of(costs: dict, latency: list[dict], attach: str | None) -> dict[str, PathCosts]:
    """{"params"|"macs"|"ms": PathCosts} of one attach point from ``Store.costs`` / ``Store.latency``.

    ms: where latency was measured at batch 1, on the device measured last (one device, never a
    mix); the exit path is trunk + SideNet, and the baseline is the measured unsplit MainNet.
    """
    parts = costs.get(attach or "none") or {}
    out = {kind: PathCosts(trunk=parts["trunk"][kind], sidenet=parts["sidenet"][kind], rest=parts["rest"][kind])
           for kind in COST_KINDS if "trunk" in parts}
    rows = [r for r in latency if r["attach"] == (attach or "none") and r["batch_size"] == 1]
    if rows:
        device = max(rows, key=lambda r: str(r["measured_at"]))["device"]
        ms = {r["part"]: r["median_ms"] for r in rows if r["device"] == device}
        if {"trunk+sidenet", "rest"} <= ms.keys():
            out["ms"] = PathCosts(trunk=ms["trunk+sidenet"], sidenet=0.0, rest=ms["rest"], measured_full=ms.get("full"))
        elif attach is None and "full" in ms:  # a MainNet-only run: the whole network is its one path
            out["ms"] = PathCosts(trunk=ms["full"], sidenet=0.0, rest=0.0)
    return out


@dataclass(frozen=True)
class PreparedRun:
    """One run at one attach point. ``*_conf``: top-label softmax confidences (float64, for
    calibration), ``side_scores[rule]``: the SideNet's exit scores, ``*_correct``: booleans, all
    ``(N,)``. A deferred sample gets the MainNet's answer, or the logit-sum ensemble's."""

    run_id: str
    seed: int | None
    attach: str | None
    labels: np.ndarray
    main_conf: np.ndarray
    main_correct: np.ndarray
    costs: dict[str, PathCosts]
    side_conf: np.ndarray | None = None
    side_correct: np.ndarray | None = None
    ens_conf: np.ndarray | None = None
    ens_correct: np.ndarray | None = None
    side_scores: dict[str, np.ndarray] = field(default_factory=dict)
    curves: dict[tuple[str, bool], ThetaCurve] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.labels)

    @property
    def has_sidenet(self) -> bool:
        return self.side_conf is not None

    def curve_for(self, ensemble: bool = False, rule: str = "max-prob") -> ThetaCurve:
        if not self.has_sidenet:
            raise UserError(f"run {self.run_id} has no SideNet (mainnet-only): there is no theta to sweep")
        if rule not in EXIT_RULES:
            raise UserError(f"unknown exit rule {rule!r}; choose one of: {', '.join(EXIT_RULES)}")
        return self.curves[rule, ensemble]

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
    """Precompute a run's confidences, exit scores, correctness and ThetaCurves once."""
    labels = np.asarray(labels)
    main_conf, main_pred = metrics.confidence_and_prediction(main_logits)
    main_ok = main_pred == labels
    kw = dict(run_id=run_id, seed=seed, attach=attach, labels=labels, main_conf=main_conf, main_correct=main_ok,
              costs=dict(costs))
    if side_logits is None:
        return PreparedRun(**kw)
    side_conf, side_pred = metrics.confidence_and_prediction(side_logits)
    ens_conf, ens_pred = metrics.confidence_and_prediction(metrics.ensemble_logits(side_logits, main_logits))
    side_ok, ens_ok = side_pred == labels, ens_pred == labels
    scores = {rule: side_conf if rule == "max-prob" else metrics.exit_score(side_logits, rule) for rule in EXIT_RULES}
    main_acc = float(main_ok.mean())
    # The same sorted arrays ThetaCurve.from_logits builds, without a second softmax.
    curves = {(rule, ens): ThetaCurve.from_outcomes(scores[rule], side_ok, ens_ok if ens else main_ok, main_acc, ens)
              for rule in EXIT_RULES for ens in (False, True)}
    return PreparedRun(**kw, side_conf=side_conf, side_correct=side_ok, ens_conf=ens_conf, ens_correct=ens_ok,
                       side_scores=scores, curves=curves)


def prepare_run(store, run_id: str, split: str = "test") -> dict[str | None, PreparedRun]:
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
        out[attach] = prepare(data["label"], main, side, path_costs_of(costs, latency, attach), run_id=run_id,
                              seed=run.get("seed"), attach=attach)
    return out


def prepare_one(store, run_id: str, attach: str | None = None, split: str = "test") -> PreparedRun:
    """One attach point of a run (default: its first SideNet); UserError for an unknown one."""
    prepared = prepare_run(store, run_id, split)
    if attach is None:
        return next(iter(prepared.values()))
    if attach not in prepared:
        names = ", ".join(a for a in prepared if a) or "none"
        raise UserError(f"run {run_id} has no SideNet at {attach!r}; it has: {names}")
    return prepared[attach]
