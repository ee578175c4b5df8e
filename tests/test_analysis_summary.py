"""engine.analysis.summary: a configuration at theta over its seeds (MeanStd: mean and SAMPLE std),
its whole curve, the one-run sweep; checked against each run's own ThetaCurve."""
import json
import math

import numpy as np
import pytest

from engine import metrics
from engine.analysis.runs import prepare
from engine.analysis.summary import (
    MeanStd,
    Summary,
    compare_fallbacks,
    cost_kinds,
    curve,
    mainnet_point,
    summary_at,
    sweep,
    within_drop,
)
from engine.metrics import PathCosts, ThetaCurve

from helpers import THETAS, analysis_costs, make_logits, same, sample_std, strict_json


def assert_mean_std(got: MeanStd, values) -> None:
    values = [v for v in values if not math.isnan(v)]
    assert got.n == len(values)
    if not values:
        assert math.isnan(got.mean) and math.isnan(got.std)
        return
    assert got.mean == pytest.approx(np.mean(values), abs=1e-15)
    if len(values) > 1:
        assert got.std == pytest.approx(sample_std(values), rel=1e-9, abs=1e-15)
    else:
        assert math.isnan(got.std)


# ------------------------------------------------------------------------------ MeanStd
def test_mean_std_is_mean_and_sample_std():
    m = MeanStd.of([0.5, 0.7, 0.9])
    assert m.mean == pytest.approx(0.7) and m.std == pytest.approx(0.2) and m.n == 3  # ddof=1: sqrt(0.08 / 2)
    one = MeanStd.of([0.25])
    assert (one.mean, one.n) == (0.25, 1) and math.isnan(one.std)
    gaps = MeanStd.of([1.0, float("nan"), 3.0])  # a run where the value is undefined is left out
    assert (gaps.mean, gaps.n) == (2.0, 2) and gaps.std == pytest.approx(math.sqrt(2))
    empty = MeanStd.of([])
    assert math.isnan(empty.mean) and math.isnan(empty.std) and empty.n == 0
    assert one.to_json() == {"mean": 0.25, "std": None, "n": 1}  # strict JSON: NaN is null
    assert strict_json(json.dumps(empty.to_json())) == {"mean": None, "std": None, "n": 0}


# ------------------------------------------------------------------------------ at theta
@pytest.mark.parametrize("ensemble", [False, True])
@pytest.mark.parametrize("rule", metrics.EXIT_RULES)
def test_summary_at_is_mean_and_sample_std_of_each_runs_curve(three_seeds, ensemble, rule):
    runs = [p for p, _ in three_seeds]
    costs = analysis_costs()
    for t in THETAS:
        s = summary_at(runs, t, ensemble=ensemble, rule=rule)
        per = [ThetaCurve.from_logits(*data, ensemble=ensemble, exit_rule=rule).at(t, costs) for _, data in three_seeds]
        assert isinstance(s, Summary) and s.theta == t and s.n_runs == 3 and s.n == 500
        assert all(same(a, b) for a, b in zip(s.per_run, per))
        for key in ("accuracy", "exit_fraction", "exited_accuracy", "deferred_accuracy", "side_accuracy"):
            assert_mean_std(getattr(s, key), [p[key] for p in per])
        for kind in ("params", "macs"):
            assert_mean_std(s.avg[kind], [p[f"avg_{kind}"] for p in per])
            assert_mean_std(s.saving[kind], [p[f"saving_{kind}"] for p in per])
            assert s.full[kind].mean == costs[kind].full and s.full[kind].std == 0.0
        assert_mean_std(s.accuracy_gain, [p["accuracy"] - p["main_accuracy"] for p in per])
        assert_mean_std(s.main_accuracy, [p.main_accuracy for p in runs])
        assert_mean_std(s.ensemble_accuracy, [p.ensemble_accuracy for p in runs])
    # theta = 0: everything exits; theta = 1: nothing exits (MainNet / ensemble accuracy)
    start = summary_at(runs, 0.0, rule=rule)
    assert start.exit_fraction.mean == 1.0 and start.exit_fraction.std == 0.0
    end = summary_at(runs, 1.0, ensemble=ensemble, rule=rule)
    assert end.exit_fraction.mean == 0.0 and end.exited_accuracy.n == 0  # no run has an exited sample
    assert end.accuracy.mean == pytest.approx(np.mean([p.ensemble_accuracy if ensemble else p.main_accuracy
                                                       for p in runs]))


def test_one_run_has_no_std(three_seeds):
    s = summary_at([three_seeds[0][0]], 0.6)
    assert s.n_runs == 1 and s.accuracy.n == 1 and math.isnan(s.accuracy.std) and math.isnan(s.avg["macs"].std)


def test_summary_to_json_is_strict_json(three_seeds):
    runs = [p for p, _ in three_seeds]
    for theta in (0.0, 1.0):  # empty populations: undefined accuracies become null
        out = strict_json(json.dumps(summary_at(runs, theta).to_json()))
        assert out["n_runs"] == 3 and set(out["avg"]) == {"params", "macs"}
    assert strict_json(json.dumps(summary_at(runs, 1.0).to_json()))["exited_accuracy"]["mean"] is None
    assert strict_json(json.dumps(summary_at(runs, 0.0).to_json()))["deferred_accuracy"]["mean"] is None


def test_mainnet_only_configuration():
    _, main, labels = make_logits(3)
    p = prepare(labels, main, None, {"params": PathCosts(5e6, 0, 0)})
    s = summary_at([p], 0.5)
    assert s.main_accuracy.mean == metrics.head_accuracy(main, labels) and math.isnan(s.main_accuracy.std)
    assert s.accuracy is None and s.avg == {} and s.full["params"].mean == 5e6
    assert strict_json(json.dumps(s.to_json()))["accuracy"] is None
    point = mainnet_point([p, p])
    assert point["n_runs"] == 2 and point["accuracy"] == MeanStd(p.main_accuracy, 0.0, 2)
    assert point["params"] == MeanStd(5e6, 0.0, 2) and "macs" not in point
    with pytest.raises(ValueError, match="at least one run"):
        summary_at([], 0.5)


def test_compare_fallbacks(three_seeds):
    runs = [p for p, _ in three_seeds]
    for rule in metrics.EXIT_RULES:
        c = compare_fallbacks(runs, 0.6, rule)
        assert c["plain"] == summary_at(runs, 0.6, False, rule) and c["ensemble"] == summary_at(runs, 0.6, True, rule)
        assert_mean_std(c["gain"], [e["accuracy"] - p["accuracy"]
                                    for p, e in zip(c["plain"].per_run, c["ensemble"].per_run)])


@pytest.mark.parametrize("rule", metrics.EXIT_RULES)
def test_curve_is_aggregate_curves(three_seeds, rule):
    runs = [p for p, _ in three_seeds]
    got = curve(runs, rule=rule)
    ref = metrics.aggregate_curves([p.curve_for(rule=rule) for p in runs], [analysis_costs()] * 3, metrics.theta_grid())
    assert set(got) == set(ref) and len(got["theta"]) == 201
    for key in ref:
        np.testing.assert_array_equal(got[key], ref[key])
    few = curve(runs, thetas=[0.2, 0.4], ensemble=True, rule=rule)
    each = [p.curve_for(True, rule).accuracy(np.array([0.2, 0.4])) for p in runs]
    np.testing.assert_array_equal(few["accuracy_mean"], np.mean(each, axis=0))


def test_cost_kinds_are_the_common_ones():
    side, main, labels = make_logits(0)
    a = prepare(labels, main, side, {**analysis_costs(), "ms": PathCosts(1, 0, 2)})
    b = prepare(labels, main, side, analysis_costs())
    assert cost_kinds([a]) == ["params", "macs", "ms"]
    assert cost_kinds([a, b]) == ["params", "macs"]
    assert cost_kinds([]) == []


# ------------------------------------------------------------------------------ one run (the CLI's sweep)
@pytest.mark.parametrize("rule", metrics.EXIT_RULES)
def test_sweep_of_one_run(three_seeds, rule):
    p, (side, main, labels) = three_seeds[0]
    for t in THETAS:
        out = sweep(p, t, rule=rule)
        ref = ThetaCurve.from_logits(side, main, labels, exit_rule=rule).at(t, analysis_costs())
        assert out["run_id"] == "r0" and out["attach"] == "layer1" and out["exit_rule"] == rule
        assert out["ensemble"] is False and out["ensemble_accuracy"] == p.ensemble_accuracy
        for key, value in ref.items():
            assert out[key] == (None if isinstance(value, float) and math.isnan(value) else value), key
        # the same numbers as the configuration summary of that run alone
        s = summary_at([p], t, rule=rule)
        assert out["accuracy"] == s.accuracy.mean and out["saving_macs"] == s.saving["macs"].mean
    assert sweep(p, 1.0)["exited_accuracy"] is None and sweep(p, 0.0)["deferred_accuracy"] is None
    strict_json(json.dumps(sweep(p, 1.0, ensemble=True)))  # strict-JSON-ready as it is


def test_within_drop_is_the_first_grid_theta_of_the_mean_curve_within_the_drop(three_seeds):
    runs = [p for p, _ in three_seeds]
    c = curve(runs)
    main = np.mean([r.main_accuracy for r in runs])
    for drop in (0.0, 0.005, 0.05):
        got = within_drop(runs, drop)
        i = int(np.searchsorted(c["theta"], got["theta"]))
        assert c["theta"][i] == got["theta"] and got["n_runs"] == 3 and got["main_accuracy"] == pytest.approx(main)
        assert got["accuracy"] == c["accuracy_mean"][i] >= main - drop - 1e-12
        assert all(c["accuracy_mean"][:i] < main - drop)  # no smaller grid theta keeps that accuracy
        full = np.mean([r.costs["macs"].full for r in runs])
        assert got["saving_macs"] == pytest.approx(1 - c["avg_macs_mean"][i] / full)
    assert within_drop(runs, 0.05)["saving_macs"] >= within_drop(runs, 0.005)["saving_macs"]
