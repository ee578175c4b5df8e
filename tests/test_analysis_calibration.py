"""engine.analysis.calibration: reliability over runs and the populations at theta, against engine.metrics."""
import math
import warnings

import numpy as np
import pytest

from engine import metrics
from engine.analysis.calibration import (
    POPULATIONS,
    head_reliability,
    population_outcomes,
    populations_at,
    reliability_summary,
)
from engine.analysis.summary import summary_at

from helpers import THETAS, sample_std


def test_reliability_summary_of_one_run_is_reliability(three_seeds):
    p, (side, main, labels) = three_seeds[0]
    for kw in ({"paper": True}, {"n_bins": 15}, {"n_bins": 7}):
        ref = metrics.calibration(side, labels, **kw)
        got = head_reliability([p], "side", **kw)
        np.testing.assert_array_equal(got["edges"], ref.edges)
        np.testing.assert_array_equal(got["count_total"], ref.count)
        np.testing.assert_array_equal(got["accuracy_mean"], ref.accuracy)
        np.testing.assert_array_equal(got["confidence_mean"], ref.confidence)
        assert got["ece"].mean == ref.ece and math.isnan(got["ece"].std) and got["ece"].n == 1
        assert got["n_total"] == len(labels) and got["n_runs"] == 1
    ens = head_reliability([p], "ensemble", n_bins=10)
    assert ens["ece"].mean == metrics.calibration(metrics.ensemble_logits(side, main), labels, n_bins=10).ece
    with pytest.raises(ValueError, match="at least one run"):
        reliability_summary([], [])


def test_reliability_summary_over_runs(three_seeds):
    runs = [p for p, _ in three_seeds]
    got = head_reliability(runs, "main", n_bins=10)
    rels = [metrics.calibration(m, y, n_bins=10) for _, (s, m, y) in three_seeds]
    np.testing.assert_array_equal(got["count_total"], sum(r.count for r in rels))
    np.testing.assert_allclose(got["count_mean"], np.mean([r.count for r in rels], axis=0))
    acc = np.stack([r.accuracy for r in rels])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # bins empty in every run: NaN
        np.testing.assert_allclose(got["accuracy_mean"], np.nanmean(acc, axis=0))
        np.testing.assert_allclose(got["accuracy_std"], np.nanstd(acc, axis=0, ddof=1))
    assert got["ece"].mean == pytest.approx(np.mean([r.ece for r in rels]))
    assert got["ece"].std == pytest.approx(sample_std([r.ece for r in rels]))
    assert got["n_runs"] == 3 and got["n_total"] == 1500


@pytest.mark.parametrize("ensemble", [False, True])
@pytest.mark.parametrize("rule", metrics.EXIT_RULES)
def test_populations_match_cascade_confidence_and_correct(three_seeds, ensemble, rule):
    for p, (side, main, labels) in three_seeds:
        for t in THETAS:
            pops = population_outcomes(p, t, ensemble, rule)
            conf, ok = metrics.cascade_confidence_and_correct(side, main, labels, t, ensemble=ensemble, exit_rule=rule)
            np.testing.assert_array_equal(pops["cascade"][0], conf)
            np.testing.assert_array_equal(pops["cascade"][1], ok)
            exited = metrics.population_masks(metrics.exit_score(side, rule), t)["exited"]
            np.testing.assert_array_equal(pops["exited"][0], conf[exited])
            np.testing.assert_array_equal(pops["deferred"][1], ok[~exited])
            # the cascade's accuracy is the ThetaCurve's
            assert ok.mean() == pytest.approx(p.curve_for(ensemble, rule).accuracy(t), abs=1e-15)


def test_populations_at(three_seeds):
    runs = [p for p, _ in three_seeds]
    pops = populations_at(runs, 0.7, paper=True)
    assert set(pops) == set(POPULATIONS) == {"exited", "deferred", "cascade"}
    s = summary_at(runs, 0.7)
    for pop, key in (("exited", "exited_accuracy"), ("deferred", "deferred_accuracy"), ("cascade", "accuracy")):
        assert pops[pop]["accuracy"].mean == pytest.approx(getattr(s, key).mean)
        assert pops[pop]["accuracy"].std == pytest.approx(getattr(s, key).std)
    assert pops["exited"]["fraction"].mean == pytest.approx(s.exit_fraction.mean)
    assert pops["exited"]["size"] + pops["deferred"]["size"] == pytest.approx(500)
    assert pops["cascade"]["n_total"] == 1500 and pops["cascade"]["fraction"].mean == 1.0
    confidence = [population_outcomes(p, 0.7)["exited"][0].mean() for p in runs]
    assert pops["exited"]["confidence"].mean == pytest.approx(np.mean(confidence))
    assert pops["exited"]["confidence"].std == pytest.approx(sample_std(confidence))
    margin = populations_at(runs, 0.7, rule="margin", n_bins=10)
    assert margin["exited"]["fraction"].mean == pytest.approx(summary_at(runs, 0.7, rule="margin").exit_fraction.mean)
    assert margin["exited"]["fraction"].mean < pops["exited"]["fraction"].mean  # margin <= max-prob: fewer exit
    # empty populations: NaN accuracy, zero share, no crash
    never = populations_at(runs, 1.0)
    assert never["exited"]["fraction"].mean == 0.0 and never["exited"]["fraction"].std == 0.0
    assert math.isnan(never["exited"]["accuracy"].mean) and never["exited"]["accuracy"].n == 0
    assert math.isnan(never["exited"]["ece"].mean)
    everything = populations_at(runs, 0.0)
    assert everything["deferred"]["size"] == 0 and everything["exited"]["fraction"].mean == 1.0
