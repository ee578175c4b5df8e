"""Benchmark: build a ThetaCurve (the sorts) and evaluate the whole 201-point theta grid.

Run with ``python -m engine bench metrics`` (or ``python -m engine.bench.metrics``, JSON); both call ``bench_curve``.
"""
from __future__ import annotations

import json
import time

import numpy as np

from engine.metrics import PathCosts, ThetaCurve, theta_grid

GOAL_MS = 20
# Illustrative ResNet-18-like path costs (parameters, MACs, ms); only their arithmetic is timed.
COSTS = {
    "params": PathCosts(trunk=0.16e6, sidenet=0.66e6, rest=11.0e6),
    "macs": PathCosts(trunk=160e6, sidenet=0.66e6, rest=400e6),
    "ms": PathCosts(trunk=0.3, sidenet=0.05, rest=1.0),
}


def fake_logits(n: int, classes: int, seed: int = 0):
    """float32 ``side (n, C)``, ``main (n, C)`` and ``labels (n,)``: about 87% / 94% accurate."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(classes, size=n)
    onehot = np.eye(classes, dtype=np.float32)[labels]
    easy = rng.gamma(2.0, 1.0, size=(n, 1)).astype(np.float32)  # per-sample easiness
    side = rng.normal(size=(n, classes)).astype(np.float32) + 2.7 * easy * onehot
    main = rng.normal(size=(n, classes)).astype(np.float32) + 4.5 * easy * onehot
    return side, main, labels


def _grid(curve: ThetaCurve, thetas: np.ndarray) -> dict:
    out = {"accuracy": curve.accuracy(thetas), "exit_fraction": curve.exit_fraction(thetas)}
    out.update({k: curve.average_cost(thetas, c) for k, c in COSTS.items()})
    return out


def _time(side, main, labels, thetas, repeats, **kw) -> tuple[np.ndarray, np.ndarray, dict]:
    """Build and grid milliseconds ``(repeats,)`` each, after one warm-up; the last grid values."""
    build_ms, grid_ms = np.zeros(repeats), np.zeros(repeats)
    for i in range(-1, repeats):  # i = -1 is the warm-up
        start = time.perf_counter()
        curve = ThetaCurve.from_logits(side, main, labels, **kw)
        built = time.perf_counter()
        values = _grid(curve, thetas)
        if i >= 0:
            build_ms[i], grid_ms[i] = (built - start) * 1e3, (time.perf_counter() - built) * 1e3
    return build_ms, grid_ms, values


def bench_curve(n: int = 100_000, classes: int = 10, repeats: int = 20, ensemble: bool = False) -> dict:
    """Time ``ThetaCurve.from_logits`` (float32 path) + the 201-point grid, in milliseconds.

    Also times the float64 path and reports how far the float32 curves are from it.
    """
    side, main, labels = fake_logits(n, classes)
    thetas = theta_grid()
    data = (side, main, labels, thetas, repeats)
    build_ms, grid_ms, values = _time(*data, ensemble=ensemble, dtype=np.float32)
    build64, grid64, ref = _time(*data, ensemble=ensemble, dtype=np.float64)
    out = {"n": n, "classes": classes, "repeats": repeats, "thetas": len(thetas)}
    timings = {"build": build_ms, "grid": grid_ms, "total": build_ms + grid_ms,
               "float64_total": build64 + grid64}
    for name, ms in timings.items():
        out[f"{name}_ms_median"] = round(float(np.median(ms)), 3)
        out[f"{name}_ms_best"] = round(float(np.min(ms)), 3)
    out["max_abs_diff_vs_float64"] = max(float(np.max(np.abs(values[k] - ref[k])))
                                         for k in ("accuracy", "exit_fraction"))
    out["side_accuracy"] = round(float(values["accuracy"][0]), 4)  # theta = 0: everything exits
    out["fallback_accuracy"] = round(float(values["accuracy"][-1]), 4)  # theta = 1: nothing exits
    out["goal_ms"] = GOAL_MS
    out["meets_goal"] = out["total_ms_median"] <= GOAL_MS
    return out


if __name__ == "__main__":
    print(json.dumps(bench_curve(), indent=2))
