"""engine.bench.metrics: the ThetaCurve benchmark measures what it says (a small run)."""
import numpy as np
import pytest

from engine import metrics as M
from engine.bench.metrics import GOAL_MS, bench_curve, fake_logits


def test_fake_logits_are_partly_right_heads():
    side, main, labels = fake_logits(4000, 10, seed=1)
    assert side.dtype == main.dtype == np.float32 and side.shape == main.shape == (4000, 10)
    assert 0.75 < M.head_accuracy(side, labels) < M.head_accuracy(main, labels) < 0.99
    again = fake_logits(4000, 10, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip((side, main, labels), again))  # seeded


@pytest.mark.parametrize("ensemble", [False, True])
def test_bench_curve_reports_the_curve_it_timed(ensemble):
    out = bench_curve(n=2000, repeats=2, ensemble=ensemble)
    assert (out["n"], out["classes"], out["repeats"], out["thetas"]) == (2000, 10, 2, 201)
    side, main, labels = fake_logits(2000, 10)
    curve = M.ThetaCurve.from_logits(side, main, labels, ensemble=ensemble)
    # theta = 0: every sample exits (the SideNet's accuracy); theta = 1: the fallback's
    assert out["side_accuracy"] == round(M.head_accuracy(side, labels), 4) == round(curve.accuracy(0.0), 4)
    assert out["fallback_accuracy"] == round(curve.accuracy(1.0), 4)
    for name in ("build", "grid", "total", "float64_total"):
        assert 0 < out[f"{name}_ms_best"] <= out[f"{name}_ms_median"]
    assert out["total_ms_median"] >= out["build_ms_median"]
    assert out["max_abs_diff_vs_float64"] <= 2 / 2000  # float32 sorts: at most a tie or two moved
    assert out["meets_goal"] == (out["total_ms_median"] <= GOAL_MS)
