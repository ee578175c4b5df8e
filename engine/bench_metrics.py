"""Benchmark: build a ThetaCurve (the sorts) and evaluate the whole 201-point theta grid.

Run with ``python -m engine.bench_metrics`` (prints JSON); the CLI calls ``bench_curve``.
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


def _time(fn, repeats: int) -> tuple[np.ndarray, object]:
    """Milliseconds of ``repeats`` calls after one warm-up call, and the last result."""
    times, result = [], fn()
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1e3)
    return np.array(times), result


def bench_curve(n: int = 100_000, classes: int = 10, repeats: int = 20, ensemble: bool = False) -> dict:
    """Time ``ThetaCurve.from_logits`` (float32 path) + the 201-point grid; milliseconds.

    Also reports the float64 path's total and how far the float32 curves are from it.
    """
    side, main, labels = fake_logits(n, classes)
    thetas = theta_grid()

    def build(dtype):
        return lambda: ThetaCurve.from_logits(side, main, labels, ensemble=ensemble, dtype=dtype)

    build_ms, curve = _time(build(np.float32), repeats)
    grid_ms, values = _time(lambda: _grid(curve, thetas), repeats)
    total_ms, _ = _time(lambda: _grid(build(np.float32)(), thetas), repeats)
    total64_ms, _ = _time(lambda: _grid(build(np.float64)(), thetas), repeats)
    ref = _grid(build(np.float64)(), thetas)
    out = {"n": n, "classes": classes, "repeats": repeats, "thetas": len(thetas)}
    timings = {"build": build_ms, "grid": grid_ms, "total": total_ms, "float64_total": total64_ms}
    for name, ms in timings.items():
        out[f"{name}_ms_median"] = round(float(np.median(ms)), 3)
        out[f"{name}_ms_best"] = round(float(np.min(ms)), 3)
    out["max_abs_diff_vs_float64"] = max(float(np.max(np.abs(values[k] - ref[k])))
                                         for k in ("accuracy", "exit_fraction"))
    out["side_accuracy"] = round(curve.at(0.0)["accuracy"], 4)
    out["main_accuracy"] = round(curve.main_accuracy, 4)
    out["goal_ms"] = GOAL_MS
    out["meets_goal"] = out["total_ms_median"] <= GOAL_MS
    return out


if __name__ == "__main__":
    print(json.dumps(bench_curve(), indent=2))
