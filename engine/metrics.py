"""Metrics for a SideNet early-exit cascade: exits, accuracy, cost and calibration.

Pure numpy. Shapes: ``N`` samples, ``C >= 2`` classes, ``T`` thresholds, ``B`` bins.
A binary head is stored as two-way logits ``[0, z]``, so its confidence is the top-label
probability ``max(p, 1 - p)`` like any other softmax (never ``P(y = 1)``).

Exit rule, the same everywhere (metrics, explorer, runtime): a sample exits with the SideNet's
answer iff ``score >= theta``, except that ``theta >= 1.0`` means "never exit" (a saturated float
softmax reaches exactly 1.0). ``theta = 0`` exits everything. A theta outside [0, 1] raises
``ValueError``. The score (``exit_score``) is, by rule:

- ``"max-prob"`` (default): the top-label softmax probability, ``max(p, 1 - p)`` for a binary head;
- ``"margin"``: top-1 minus top-2 probability, ``|2p - 1|`` for a binary head (under it the
  paper's Table 3 thetas of 0.2 and 0.4 differ; under max-prob both exit every binary sample).

Calibration (ECE, reliability) always uses the top-label confidence, whatever the exit rule.
Statistics over seeds: mean and SAMPLE standard deviation (ddof=1; NaN for a single run).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

PAPER_EDGES = np.arange(2, 11) / 10  # 0.2, 0.3, ..., 1.0: the paper's 8 ECE bins (section 4.1)
DEFAULT_BINS = 15  # Guo et al. (2017)


def _logits(x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"logits must have shape (N, C) with C >= 2, got {x.shape}")
    return x


def _inputs(side_logits, main_logits, labels):
    side, main, labels = _logits(side_logits), _logits(main_logits), np.asarray(labels)
    if side.shape != main.shape or labels.shape != side.shape[:1] or len(labels) == 0:
        raise ValueError(f"shape mismatch: side {side.shape}, main {main.shape}, labels {labels.shape}")
    return side, main, labels


def _check_theta(theta) -> np.ndarray:
    t = np.asarray(theta, dtype=np.float64)
    bad = t[~((t >= 0.0) & (t <= 1.0))]  # NaN is bad too
    if bad.size:
        raise ValueError(f"theta must be in [0, 1], got {bad.flat[0]!r}")
    return t


def _ratio(num, den) -> float:
    return float(num) / den if den else float("nan")


def softmax(logits) -> np.ndarray:
    """Row-wise softmax of ``(N, C)`` logits, in float64, stable (max subtracted)."""
    x = _logits(logits).astype(np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def confidence_and_prediction(logits, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Top-label softmax probability ``conf (N,)`` and ``argmax (N,)`` of ``(N, C)`` logits.

    ``max softmax = 1 / sum(exp(x - max))``: one exp matrix and no normalisation. A saturated
    row gives exactly 1.0. ``dtype=np.float32`` is ~2x faster (exp) and agrees to ~1e-7.
    """
    x = _logits(logits)
    pred = x.argmax(axis=1)
    x = x.astype(dtype, copy=False)
    shifted = x - np.take_along_axis(x, pred[:, None], axis=1)  # <= 0, exactly 0 at the max
    np.exp(shifted, out=shifted)
    conf = 1.0 / (shifted @ np.ones(x.shape[1], dtype=shifted.dtype))  # row sums via BLAS: fast
    return conf, pred


EXIT_RULES = ("max-prob", "margin")


def exit_score(logits, rule: str = "max-prob") -> np.ndarray:
    """The exit rule's score ``(N,)`` in [0, 1], float64, of ``(N, C)`` logits."""
    if rule == "max-prob":
        return confidence_and_prediction(logits)[0]
    if rule != "margin":
        raise ValueError(f"unknown exit rule {rule!r}; choose one of {EXIT_RULES}")
    p = softmax(logits)
    top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
    return np.abs(top2[:, 1] - top2[:, 0])


def head_accuracy(logits, labels) -> float:
    """Fraction of samples whose argmax of ``(N, C)`` logits equals ``labels (N,)``."""
    return float(np.mean(_logits(logits).argmax(axis=1) == np.asarray(labels)))


def ensemble_logits(side_logits, main_logits, dtype=np.float64) -> np.ndarray:
    """The paper's logit-sum ensemble (appendix F): ``(N, C) + (N, C)``."""
    return _logits(side_logits).astype(dtype) + _logits(main_logits).astype(dtype)


@dataclass(frozen=True)
class PathCosts:
    """Cost of each part of the path in one unit (parameters, MACs or ms).

    An exited sample pays ``trunk + sidenet``; a deferred one ``trunk + sidenet + rest``.
    """

    trunk: float
    sidenet: float
    rest: float
    measured_full: float | None = None  # measured time of the unsplit MainNet (ms costs only)

    @property
    def full(self) -> float:
        """The MainNet alone, without any SideNet (its measured time when there is one)."""
        return self.trunk + self.rest if self.measured_full is None else self.measured_full


@dataclass(frozen=True)
class ThetaCurve:
    """The accuracy / exit / cost curve of one run, answered for any theta.

    Built once by sorting the SideNet confidences (ascending, float64) of all samples
    (``conf``), of those the SideNet gets right (``side_right``) and of those the fallback
    head gets right (``fallback_right``). The deferred samples are those with conf < theta,
    so each count is one ``np.searchsorted``. (Three plain sorts are faster than one
    argsort plus gathers and prefix sums.)
    """

    conf: np.ndarray
    side_right: np.ndarray
    fallback_right: np.ndarray
    main_accuracy: float  # the MainNet alone, on all samples
    ensemble: bool = False

    @classmethod
    def from_logits(cls, side_logits, main_logits, labels, ensemble=False, dtype=np.float64, exit_rule="max-prob"):
        """From ``side_logits (N, C)``, ``main_logits (N, C)``, ``labels (N,)``.

        Deferred samples get the MainNet's answer, or argmax(side + main) if ``ensemble``.
        ``conf`` holds the exit rule's scores (the top-label confidence for "max-prob").
        """
        side, main, labels = _inputs(side_logits, main_logits, labels)
        side_conf, side_pred = confidence_and_prediction(side, dtype)
        if exit_rule != "max-prob":
            side_conf = exit_score(side, exit_rule)
        main_ok = main.argmax(axis=1) == labels
        fallback_ok = ensemble_logits(side, main, dtype).argmax(axis=1) == labels if ensemble else main_ok
        return cls.from_outcomes(side_conf, side_pred == labels, fallback_ok, main_ok.mean(), ensemble)

    @classmethod
    def from_outcomes(cls, side_conf, side_correct, fallback_correct, main_accuracy=None, ensemble=False):
        """From ``side_conf (N,)`` and the boolean ``side_correct (N,)``, ``fallback_correct (N,)``."""
        conf = np.asarray(side_conf)
        side_ok, fallback_ok = np.asarray(side_correct, bool), np.asarray(fallback_correct, bool)
        if conf.ndim != 1 or side_ok.shape != conf.shape or fallback_ok.shape != conf.shape:
            raise ValueError("side_conf, side_correct and fallback_correct must be (N,) each")
        main_accuracy = fallback_ok.mean() if main_accuracy is None else main_accuracy
        sort = lambda c: np.sort(c).astype(np.float64)  # noqa: E731  float32 sorts faster; exact cast
        return cls(sort(conf), sort(conf[side_ok]), sort(conf[fallback_ok]), float(main_accuracy), ensemble)

    @property
    def n(self) -> int:
        return len(self.conf)

    def _counts(self, theta):
        """(#deferred, #SideNet-right among exited, #fallback-right among deferred) at theta."""
        t = _check_theta(theta)

        def deferred(sorted_conf):  # #(conf < t), or all of them when t >= 1
            return np.where(t >= 1.0, len(sorted_conf), np.searchsorted(sorted_conf, t, side="left"))

        side_right = self.side_right
        return deferred(self.conf), len(side_right) - deferred(side_right), deferred(self.fallback_right)

    @staticmethod
    def _like(values, theta):
        return float(values) if np.ndim(theta) == 0 else values

    def exit_fraction(self, theta):
        """Fraction of samples that exit at the SideNet; a float or ``(T,)``."""
        return self._like((self.n - self._counts(theta)[0]) / self.n, theta)

    def accuracy(self, theta):
        """Cascade accuracy: exited samples judged on the SideNet, deferred on the fallback."""
        _, side_ok, fallback_ok = self._counts(theta)
        return self._like((side_ok + fallback_ok) / self.n, theta)

    def average_cost(self, theta, costs: PathCosts):
        """Mean cost per sample: ``trunk + sidenet + (1 - exit_fraction) * rest``."""
        return costs.trunk + costs.sidenet + (1.0 - self.exit_fraction(theta)) * costs.rest

    def at(self, theta, costs: dict[str, PathCosts] | None = None) -> dict:
        """Everything at one scalar theta, plus ``avg_<k>`` and ``saving_<k>`` per cost kind."""
        if np.ndim(theta) != 0:
            raise ValueError("at() takes a single theta")
        n = self.n
        deferred, side_ok, fallback_ok = (int(c) for c in self._counts(theta))
        out = {"theta": float(theta), "accuracy": (side_ok + fallback_ok) / n,
               "exit_fraction": (n - deferred) / n, "side_accuracy": len(self.side_right) / n,
               "main_accuracy": self.main_accuracy, "deferred_accuracy": _ratio(fallback_ok, deferred),
               "exited_accuracy": _ratio(side_ok, n - deferred), "n": n, "n_exit": n - deferred}
        for name, c in (costs or {}).items():
            out[f"avg_{name}"] = self.average_cost(theta, c)
            out[f"saving_{name}"] = 1.0 - out[f"avg_{name}"] / c.full
        return out


@dataclass(frozen=True)
class Reliability:
    """Reliability diagram: ``edges (B+1,)``; ``count``, ``accuracy``, ``confidence (B,)``.

    Empty bins have NaN accuracy and confidence (no bar) and contribute 0 to ``ece``.
    """

    edges: np.ndarray
    count: np.ndarray
    accuracy: np.ndarray
    confidence: np.ndarray
    ece: float
    n: int


def reliability(conf, correct, n_bins=None, paper=False) -> Reliability:
    """Bin ``conf (N,)`` in [0, 1] with boolean ``correct (N,)``; ECE = sum count/N |acc - conf|.

    ``paper=True``: the paper's 8 bins with edges 0.2, 0.3, ..., 1.0, and confidences below
    0.2 go into the first bin. Otherwise ``n_bins`` (default 15) equal bins on [0, 1]. Bins
    are [lo, hi) except the last, [lo, 1.0], so conf == 1.0 lands in the last bin.
    ECE is biased upwards at small N.
    """
    conf, correct = np.asarray(conf, dtype=np.float64).ravel(), np.asarray(correct, dtype=np.float64).ravel()
    if conf.shape != correct.shape or not np.all((conf >= 0) & (conf <= 1)):
        raise ValueError("conf and correct must be (N,) each, with conf in [0, 1]")
    if paper:
        if n_bins not in (None, 8):
            raise ValueError("paper=True uses the paper's 8 bins; do not pass n_bins")
        edges = PAPER_EDGES
    else:
        n_bins = DEFAULT_BINS if n_bins is None else int(n_bins)
        if n_bins < 1:
            raise ValueError(f"n_bins must be >= 1, got {n_bins}")
        edges = np.arange(n_bins + 1) / n_bins  # exact i/B, so e.g. 0.3 is exactly an edge
    n_b, n = len(edges) - 1, len(conf)
    idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_b - 1)
    count = np.bincount(idx, minlength=n_b)
    sum_conf = np.bincount(idx, weights=conf, minlength=n_b)
    sum_acc = np.bincount(idx, weights=correct, minlength=n_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(count > 0, sum_acc / count, np.nan)
        mean_conf = np.where(count > 0, sum_conf / count, np.nan)
    ece = float(np.abs(sum_acc - sum_conf).sum() / n) if n else float("nan")
    return Reliability(edges.copy(), count, acc, mean_conf, ece, n)


def calibration(logits, labels, **kw) -> Reliability:
    """``reliability`` of a head's top-label confidence, from ``(N, C)`` logits and ``labels (N,)``."""
    conf, pred = confidence_and_prediction(logits)
    return reliability(conf, pred == np.asarray(labels), **kw)


def population_masks(side_conf, theta) -> dict[str, np.ndarray]:
    """Boolean ``(N,)`` masks "exited" and "deferred" at one scalar theta (the exit rule), from
    the SideNet's exit scores ``side_conf (N,)``."""
    t = float(_check_theta(theta))
    conf = np.asarray(side_conf)
    exited = (conf >= t) if t < 1.0 else np.zeros(conf.shape, dtype=bool)
    return {"exited": exited, "deferred": ~exited}


def cascade_confidence_and_correct(side_logits, main_logits, labels, theta, ensemble=False, exit_rule="max-prob"):
    """Per-sample ``(conf (N,), correct (N,))`` of the answer the cascade gives at theta.

    Exited samples: the SideNet's; deferred: the MainNet's (or the ensemble softmax's). conf is
    the top-label confidence of the answer given; the exit itself follows ``exit_rule``.
    """
    side, main, labels = _inputs(side_logits, main_logits, labels)
    side_conf, side_pred = confidence_and_prediction(side)
    fb_conf, fb_pred = confidence_and_prediction(ensemble_logits(side, main) if ensemble else main)
    exited = population_masks(exit_score(side, exit_rule), theta)["exited"]
    return np.where(exited, side_conf, fb_conf), np.where(exited, side_pred, fb_pred) == labels


def mean_std(values, axis=0) -> tuple[np.ndarray, np.ndarray]:
    """NaN-aware mean and SAMPLE std (ddof=1) over runs; fewer than two values give std NaN."""
    v = np.asarray(values, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN / single-value slices: NaN, silently
        return np.nanmean(v, axis=axis), np.nanstd(v, axis=axis, ddof=1)


def theta_grid(step=0.005) -> np.ndarray:
    """Thresholds ``0, step, ..., 1`` inclusive (201 by default), as exact ``i / n`` values."""
    n = int(round(1.0 / step))
    if n < 1 or not np.isclose(n * step, 1.0):
        raise ValueError(f"step must divide 1, got {step}")
    return np.arange(n + 1) / n


def aggregate_curves(curves: list[ThetaCurve], costs: list[dict[str, PathCosts]], thetas) -> dict:
    """Mean and std over runs of accuracy, exit_fraction and avg_<k> at each of ``thetas (T,)``.

    Returns ``{"theta": (T,), "<series>_mean": (T,), "<series>_std": (T,), ...}``.
    """
    if not curves or len(curves) != len(costs):
        raise ValueError("need at least one curve, and one costs dict per curve")
    thetas = _check_theta(thetas)
    series = {"accuracy": [c.accuracy(thetas) for c in curves],
              "exit_fraction": [c.exit_fraction(thetas) for c in curves]}
    for name in costs[0]:
        series[f"avg_{name}"] = [c.average_cost(thetas, cs[name]) for c, cs in zip(curves, costs)]
    out = {"theta": thetas}
    for name, rows in series.items():
        out[f"{name}_mean"], out[f"{name}_std"] = mean_std(np.stack(rows))
    return out


def accuracy_table(curves: list[ThetaCurve], thetas=(0.2, 0.4, 0.6, 0.8, 0.9)):
    """Cascade accuracy ``(mean (T,), std (T,))`` over runs (fractions), like the paper's Table 3."""
    thetas = _check_theta(thetas)
    return mean_std(np.stack([c.accuracy(thetas) for c in curves]))


def auto_theta(curve: ThetaCurve, max_drop: float = 0.005) -> dict:
    """The smallest theta (largest exit) whose cascade accuracy is >= MainNet accuracy - max_drop.

    curve: a ThetaCurve, normally of the VALIDATION split. The candidates are every distinct
    SideNet confidence (a sample exits iff conf >= theta, so only these values change anything),
    the largest float below 1.0 when some confidences saturate at exactly 1.0 (it exits only
    those) and 1.0 (nothing exits, accuracy = the MainNet's, always feasible). Returns {"theta", "accuracy",
    "exit_fraction", "main_accuracy", "max_drop"} on that split.
    """
    if not 0.0 <= max_drop <= 1.0:
        raise ValueError(f"max_drop must be in [0, 1], got {max_drop}")
    extra = [np.nextafter(1.0, 0.0), 1.0] if curve.n and curve.conf[-1] >= 1.0 else [1.0]
    candidates = np.unique(np.concatenate([curve.conf[curve.conf < 1.0], extra]))
    accuracy = np.asarray(curve.accuracy(candidates))
    floor = curve.main_accuracy - max_drop - 1e-12  # 1e-12: counts / n are not exact decimals
    ok = np.flatnonzero(accuracy >= floor)  # never empty: theta = 1.0 is the MainNet itself
    theta = float(candidates[ok[0]])
    return {"theta": theta, "accuracy": float(accuracy[ok[0]]), "exit_fraction": float(curve.exit_fraction(theta)),
            "main_accuracy": curve.main_accuracy, "max_drop": max_drop}
