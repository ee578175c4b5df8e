"""Property tests of engine.metrics against brute-force per-sample python loops."""
import math
import warnings

import numpy as np
import pytest

from engine import metrics as M
from engine.metrics import PathCosts, ThetaCurve

from helpers import binary_logits, make_logits, sample_std

COSTS = {"params": PathCosts(trunk=10.0, sidenet=2.0, rest=88.0), "ms": PathCosts(0.3, 0.05, 1.2)}
SEEDS = [0, 1, 2, 3, 4]


def thetas_for(conf):
    """A grid, exact confidence values (ties with theta) and the endpoints."""
    return np.unique(np.concatenate([M.theta_grid(0.01), conf[::7], [0.0, 1.0, np.nextafter(1.0, 0)]]))


def brute(side, main, labels, thetas, ensemble=False, rule="max-prob"):
    """Per-sample loop: the cascade outcome at each theta (one dict per theta); a sample exits
    when its exit score (M.exit_score, checked on its own below) is >= theta, never at theta 1."""
    conf = M.exit_score(side, rule).tolist()
    fallback = side.astype(float) + main.astype(float) if ensemble else main
    side_ok = [int(np.argmax(r)) == y for r, y in zip(side, labels)]
    fb_ok = [int(np.argmax(r)) == y for r, y in zip(fallback, labels)]
    n, out = len(labels), []
    for theta in np.atleast_1d(thetas).tolist():
        n_exit = right_exit = right_def = 0
        cost = dict.fromkeys(COSTS, 0.0)
        for i in range(n):
            exits = theta < 1.0 and conf[i] >= theta
            n_exit += exits
            right_exit += exits and side_ok[i]
            right_def += (not exits) and fb_ok[i]
            for k, c in COSTS.items():
                cost[k] += c.trunk + c.sidenet + (0.0 if exits else c.rest)
        out.append({
            "n_exit": n_exit,
            "exit_fraction": n_exit / n,
            "accuracy": (right_exit + right_def) / n,
            "exited_accuracy": right_exit / n_exit if n_exit else math.nan,
            "deferred_accuracy": right_def / (n - n_exit) if n - n_exit else math.nan,
            "costs": {k: v / n for k, v in cost.items()},
        })
    return out if np.ndim(thetas) else out[0]


def brute_score(row, rule):
    """One row's exit score by the definition: softmax, then top-1 (max-prob) or top-1 - top-2 (margin)."""
    top = max(row)
    exps = [math.exp(v - top) for v in row]
    probs = sorted((e / sum(exps) for e in exps), reverse=True)
    return probs[0] if rule == "max-prob" else probs[0] - probs[1]


# ---------------------------------------------------------------- softmax and confidences

def test_softmax_is_stable_and_normalised():
    p = M.softmax(np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]]))
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[1], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum())


@pytest.mark.parametrize("seed", SEEDS)
def test_confidence_matches_softmax(seed):
    side, _, _ = make_logits(seed)
    conf, pred = M.confidence_and_prediction(side)
    np.testing.assert_allclose(conf, M.softmax(side).max(axis=1), rtol=1e-12)
    np.testing.assert_array_equal(pred, side.argmax(axis=1))
    conf32, pred32 = M.confidence_and_prediction(side, dtype=np.float32)
    np.testing.assert_allclose(conf32, conf, rtol=1e-6)
    np.testing.assert_array_equal(pred32, pred)


def test_binary_head_confidence_is_top_label():
    z = np.array([-30.0, -2.0, -0.1, 0.0, 0.3, 4.0, 50.0])
    conf, pred = M.confidence_and_prediction(np.stack([np.zeros_like(z), z], axis=1))
    sig = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(conf, np.maximum(sig, 1 - sig), rtol=1e-12)
    assert np.all(conf >= 0.5)
    np.testing.assert_array_equal(pred, (z > 0).astype(int))


def test_saturated_confidence_is_exactly_one():
    for dtype in (np.float64, np.float32):
        conf, pred = M.confidence_and_prediction(np.array([[1000, 0], [0, 1000]], dtype=np.float32), dtype)
        assert conf.tolist() == [1.0, 1.0] and pred.tolist() == [0, 1]


# ---------------------------------------------------------------- exit rules

@pytest.mark.parametrize("rule", M.EXIT_RULES)
@pytest.mark.parametrize("classes", [2, 3, 10])
def test_exit_score_matches_its_definition(rule, classes):
    side, _, _ = make_logits(4, n=200, classes=classes)
    got = M.exit_score(side, rule)
    assert got.dtype == np.float64 and got.shape == (200,)
    np.testing.assert_allclose(got, [brute_score(row.tolist(), rule) for row in side], rtol=1e-12, atol=1e-15)
    assert np.all((got >= 0) & (got <= 1))
    if rule == "max-prob":  # the top-label confidence, to the bit
        np.testing.assert_array_equal(got, M.confidence_and_prediction(side)[0])


def test_margin_of_a_binary_head_is_abs_2p_minus_1():
    z = np.array([-30.0, -2.0, -0.1, 0.0, 0.3, 1.0, 4.0, 50.0])
    p = 1 / (1 + np.exp(-z))  # P(y = 1) of the sigmoid head
    np.testing.assert_allclose(M.exit_score(binary_logits(z), "margin"), np.abs(2 * p - 1), rtol=1e-12, atol=1e-15)
    # max-prob is max(p, 1 - p) = (1 + |2p - 1|) / 2: never below 0.5 for a binary head
    np.testing.assert_allclose(M.exit_score(binary_logits(z), "max-prob"), (1 + np.abs(2 * p - 1)) / 2, rtol=1e-12)


def test_unknown_exit_rule_raises():
    side, main, labels = make_logits(0, n=20)
    with pytest.raises(ValueError, match="unknown exit rule 'entropy'"):
        M.exit_score(side, "entropy")
    with pytest.raises(ValueError, match="unknown exit rule 'entropy'"):
        ThetaCurve.from_logits(side, main, labels, exit_rule="entropy")
    with pytest.raises(ValueError, match="unknown exit rule 'entropy'"):
        M.cascade_confidence_and_correct(side, main, labels, 0.5, exit_rule="entropy")


def test_paper_thetas_differ_under_margin_for_a_binary_head():
    """Under max-prob a binary head's score is >= 0.5, so theta 0.2 and 0.4 both exit everything;
    under margin (|2p - 1|) they exit different samples and give different accuracies."""
    rng = np.random.default_rng(3)
    labels = rng.integers(2, size=400)
    side = binary_logits(rng.normal(0, 1.2, 400) + (2 * labels - 1) * 0.8)
    main = binary_logits(rng.normal(0, 1.0, 400) + (2 * labels - 1) * 2.5)
    prob = ThetaCurve.from_logits(side, main, labels)
    assert prob.exit_fraction(0.2) == prob.exit_fraction(0.4) == 1.0
    assert prob.accuracy(0.2) == prob.accuracy(0.4)
    margin = ThetaCurve.from_logits(side, main, labels, exit_rule="margin")
    assert margin.exit_fraction(0.2) > margin.exit_fraction(0.4)
    assert margin.accuracy(0.2) != margin.accuracy(0.4)
    for theta in (0.2, 0.4):
        want = brute(side, main, labels, theta, rule="margin")
        assert margin.exit_fraction(theta) == want["exit_fraction"]
        assert margin.accuracy(theta) == pytest.approx(want["accuracy"], abs=1e-12)


def test_head_accuracy_and_ensemble_logits():
    side, main, labels = make_logits(7)
    right = sum(int(np.argmax(row)) == y for row, y in zip(main, labels))
    assert M.head_accuracy(main, labels) == right / len(labels)
    np.testing.assert_array_equal(M.ensemble_logits(side, main), side.astype(float) + main.astype(float))


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((5, 1)), np.zeros((2, 3, 4))])
def test_bad_logit_shapes_raise(bad):
    with pytest.raises(ValueError, match="shape"):
        M.confidence_and_prediction(bad)


def test_mismatched_inputs_raise():
    side, main, labels = make_logits(0, n=20)
    with pytest.raises(ValueError, match="mismatch"):
        ThetaCurve.from_logits(side, main[:10], labels)
    with pytest.raises(ValueError, match="mismatch"):
        ThetaCurve.from_logits(side, main, labels[:5])


# ---------------------------------------------------------------- the theta curve

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("classes", [2, 10])
@pytest.mark.parametrize("ensemble", [False, True])
@pytest.mark.parametrize("rule", M.EXIT_RULES)
def test_curve_matches_brute_force(seed, classes, ensemble, rule):
    side, main, labels = make_logits(seed, n=300, classes=classes)
    curve = ThetaCurve.from_logits(side, main, labels, ensemble=ensemble, exit_rule=rule)
    thetas = thetas_for(M.exit_score(side, rule))
    acc, ef = curve.accuracy(thetas), curve.exit_fraction(thetas)
    costs = {k: curve.average_cost(thetas, c) for k, c in COSTS.items()}
    assert acc.shape == ef.shape == thetas.shape
    for i, (theta, want) in enumerate(zip(thetas, brute(side, main, labels, thetas, ensemble, rule))):
        assert ef[i] == want["exit_fraction"], theta
        assert acc[i] == pytest.approx(want["accuracy"], abs=1e-12), theta
        for k in COSTS:
            assert costs[k][i] == pytest.approx(want["costs"][k], rel=1e-12)
        assert curve.exit_fraction(float(theta)) == ef[i]  # scalar path agrees and is a float


@pytest.mark.parametrize("seed", SEEDS)
def test_at_matches_brute_force(seed):
    side, main, labels = make_logits(seed, n=250)
    curve = ThetaCurve.from_logits(side, main, labels)
    for theta in (0.0, 0.35, 0.5, 0.8, 0.97, 1.0):
        got, want = curve.at(theta, COSTS), brute(side, main, labels, theta)
        assert set(got) == {"theta", "accuracy", "exit_fraction", "side_accuracy", "main_accuracy",
                            "deferred_accuracy", "exited_accuracy", "n", "n_exit",
                            "avg_params", "saving_params", "avg_ms", "saving_ms"}
        assert got["n"] == 250 and got["n_exit"] == want["n_exit"] and got["theta"] == theta
        for key in ("accuracy", "exit_fraction", "exited_accuracy", "deferred_accuracy"):
            assert got[key] == pytest.approx(want[key], nan_ok=True), (theta, key)
        assert got["side_accuracy"] == M.head_accuracy(side, labels)
        assert got["main_accuracy"] == M.head_accuracy(main, labels)
        for k, c in COSTS.items():
            assert got[f"avg_{k}"] == pytest.approx(want["costs"][k])
            assert got[f"saving_{k}"] == pytest.approx(1 - want["costs"][k] / (c.trunk + c.rest))


def test_ties_at_theta_all_exit():
    rng = np.random.default_rng(11)
    rows = np.array([[2.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 3.0], [0.5, 0.0, 0.0]])
    side = rows[rng.integers(4, size=500)]  # only four distinct confidences, many ties
    main = rng.normal(size=(500, 3))
    labels = rng.integers(3, size=500)
    curve = ThetaCurve.from_logits(side, main, labels)
    conf = M.confidence_and_prediction(side)[0]
    for tie in np.unique(conf):
        assert curve.exit_fraction(tie) == np.mean(conf >= tie)
        assert curve.exit_fraction(np.nextafter(tie, 1)) == np.mean(conf > tie)
        assert curve.accuracy(tie) == pytest.approx(brute(side, main, labels, tie)["accuracy"])
    # tie-breaking of argmax: [1, 1, 0] predicts class 0, as np.argmax does
    assert M.confidence_and_prediction(rows)[1].tolist() == [0, 0, 2, 0]


def test_theta_endpoints():
    side, main, labels = make_logits(3)
    side[:20] = [1000] + [0] * 9  # saturated: conf == 1.0 exactly
    curve = ThetaCurve.from_logits(side, main, labels)
    assert curve.exit_fraction(0.0) == 1.0
    assert curve.accuracy(0.0) == M.head_accuracy(side, labels)
    assert curve.exit_fraction(1.0) == 0.0  # conf == 1.0 does NOT exit at theta = 1.0
    assert curve.accuracy(1.0) == M.head_accuracy(main, labels)
    assert curve.exit_fraction(np.nextafter(1.0, 0)) >= 20 / len(labels)
    assert math.isnan(curve.at(1.0)["exited_accuracy"]) and curve.at(1.0)["n_exit"] == 0
    assert math.isnan(curve.at(0.0)["deferred_accuracy"])
    assert curve.average_cost(0.0, COSTS["params"]) == 12.0
    assert curve.average_cost(1.0, COSTS["params"]) == 100.0
    assert COSTS["params"].full == 98.0
    ens = ThetaCurve.from_logits(side, main, labels, ensemble=True)
    assert ens.accuracy(1.0) == M.head_accuracy(M.ensemble_logits(side, main), labels)
    assert ens.at(1.0)["main_accuracy"] == M.head_accuracy(main, labels)


@pytest.mark.parametrize("bad", [-0.01, 1.01, float("nan"), np.array([0.5, 2.0]), float("inf")])
def test_invalid_theta_raises(bad):
    side, main, labels = make_logits(0, n=30)
    curve = ThetaCurve.from_logits(side, main, labels)
    for call in (curve.exit_fraction, curve.accuracy, lambda t: curve.average_cost(t, COSTS["ms"]),
                 lambda t: M.population_masks(np.full(3, 0.5), t)):
        with pytest.raises(ValueError, match=r"theta must be in \[0, 1\]"):
            call(bad)
    with pytest.raises(ValueError, match="single theta"):
        curve.at(np.array([0.5, 0.6]))


def test_float32_path_agrees_with_float64():
    side, main, labels = make_logits(5, n=5000)
    grid = M.theta_grid()
    c64 = ThetaCurve.from_logits(side, main, labels)
    c32 = ThetaCurve.from_logits(side, main, labels, dtype=np.float32)
    assert np.max(np.abs(c64.exit_fraction(grid) - c32.exit_fraction(grid))) <= 2 / 5000
    assert np.max(np.abs(c64.accuracy(grid) - c32.accuracy(grid))) <= 2 / 5000


def test_from_outcomes_validates_shapes():
    with pytest.raises(ValueError, match=r"must be \(N,\) each"):
        ThetaCurve.from_outcomes(np.ones(4), np.ones(3, bool), np.ones(4, bool))
    curve = ThetaCurve.from_outcomes([0.9, 0.6, 0.3], [True, False, True], [False, True, True])
    assert curve.accuracy(0.5) == pytest.approx(2 / 3)  # exits 0.9 (right), 0.6 (wrong); 0.3 right
    assert curve.main_accuracy == pytest.approx(2 / 3)


@pytest.mark.parametrize("ensemble", [False, True])
@pytest.mark.parametrize("rule", M.EXIT_RULES)
def test_cascade_populations_match_loop(ensemble, rule):
    side, main, labels = make_logits(9, n=200)
    side_conf = M.confidence_and_prediction(side)[0]
    score = M.exit_score(side, rule)
    fallback = M.ensemble_logits(side, main) if ensemble else main
    fb_probs = M.softmax(fallback)
    for theta in (0.0, 0.3, 0.6, 0.9, 1.0):
        masks = M.population_masks(score, theta)
        conf, correct = M.cascade_confidence_and_correct(side, main, labels, theta, ensemble=ensemble,
                                                         exit_rule=rule)
        for i in range(len(labels)):
            exits = theta < 1.0 and score[i] >= theta
            assert masks["exited"][i] == exits and masks["deferred"][i] == (not exits)
            if exits:
                assert conf[i] == side_conf[i] and correct[i] == (np.argmax(side[i]) == labels[i])
            else:
                assert conf[i] == pytest.approx(fb_probs[i].max())
                assert correct[i] == (np.argmax(fallback[i]) == labels[i])
        # the answer's confidence is the top-label one whatever the exit rule
        assert np.mean(correct) == pytest.approx(
            ThetaCurve.from_logits(side, main, labels, ensemble=ensemble, exit_rule=rule).accuracy(theta))


# ---------------------------------------------------------------- aggregation

def test_mean_std_is_the_sample_std():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice" / "degrees of freedom" noise
        mean, std = M.mean_std([[0.5, 0.7]])
        assert mean.tolist() == [0.5, 0.7] and np.isnan(std).all()  # one run: no spread to speak of
        mean, std = M.mean_std([[1.0, np.nan, np.nan], [3.0, 2.0, np.nan]])
    assert mean[:2].tolist() == [2.0, 2.0] and np.isnan(mean[2])
    assert std[0] == pytest.approx(math.sqrt(2.0))  # ddof=1: ((1-2)^2 + (3-2)^2) / (2 - 1)
    assert np.isnan(std[1]) and np.isnan(std[2])  # one value left after dropping NaN; none
    values = np.random.default_rng(0).normal(size=(5, 3))
    mean, std = M.mean_std(values)
    np.testing.assert_allclose(std, [sample_std(values[:, j]) for j in range(3)], rtol=1e-12)
    np.testing.assert_allclose(M.mean_std(values.T, axis=1)[1], std, rtol=1e-12)


def test_theta_grid():
    grid = M.theta_grid()
    assert len(grid) == 201 and grid[0] == 0.0 and grid[-1] == 1.0
    assert grid[60] == 0.3 and np.all(np.diff(grid) > 0)
    assert len(M.theta_grid(0.1)) == 11
    with pytest.raises(ValueError, match="step must divide 1"):
        M.theta_grid(0.3)


def test_aggregate_curves_and_table():
    runs = [make_logits(s, n=300) for s in SEEDS]
    curves = [ThetaCurve.from_logits(*r) for r in runs]
    grid = M.theta_grid(0.05)
    agg = M.aggregate_curves(curves, [COSTS] * len(curves), grid)
    assert set(agg) == {"theta"} | {f"{s}_{m}" for s in ("accuracy", "exit_fraction", "avg_params", "avg_ms")
                                    for m in ("mean", "std")}
    accs = np.array([[b["accuracy"] for b in brute(*r, grid)] for r in runs])
    np.testing.assert_allclose(agg["accuracy_mean"], accs.mean(axis=0))
    np.testing.assert_allclose(agg["accuracy_std"], accs.std(axis=0, ddof=1), atol=1e-12)
    efs = np.array([c.exit_fraction(grid) for c in curves])
    np.testing.assert_allclose(agg["avg_params_mean"], 12.0 + (1 - efs.mean(axis=0)) * 88.0)
    assert np.any(agg["accuracy_std"] > 0) and agg["exit_fraction_mean"][0] == 1.0
    mean, std = M.accuracy_table(curves)
    table = accs[:, [4, 8, 12, 16, 18]]  # grid points 0.2, 0.4, 0.6, 0.8, 0.9
    np.testing.assert_allclose(mean, table.mean(axis=0))
    np.testing.assert_allclose(std, table.std(axis=0, ddof=1), atol=1e-12)
    with pytest.raises(ValueError, match="one costs dict per curve"):
        M.aggregate_curves(curves, [COSTS], grid)
    with pytest.raises(ValueError, match="at least one curve"):
        M.aggregate_curves([], [], grid)
    one = M.aggregate_curves(curves[:1], [COSTS], grid)  # a single run: the curve itself, no std
    np.testing.assert_array_equal(one["accuracy_mean"], curves[0].accuracy(grid))
    assert np.isnan(one["accuracy_std"]).all()


# ---------------------------------------------------------------- auto theta (--theta auto)

def _brute_auto_theta(curve, max_drop):
    cands = np.unique(np.concatenate([curve.conf[curve.conf < 1],
                                      [np.nextafter(1.0, 0.0)] * bool((curve.conf == 1).any()), [1.0]]))
    for t in cands:  # ascending: the first feasible is the smallest theta = the largest exit
        if curve.accuracy(float(t)) >= curve.main_accuracy - max_drop - 1e-12:
            return float(t)
    raise AssertionError("theta = 1 is always feasible")


@pytest.mark.parametrize("seed", range(5))
def test_auto_theta_is_the_largest_exit_within_half_a_point(seed):
    rng = np.random.default_rng(seed)
    n = 400
    conf = rng.uniform(0.3, 1.0, n).round(3)  # ties on purpose
    side_ok = rng.uniform(size=n) < conf  # roughly calibrated
    main_ok = rng.uniform(size=n) < 0.9
    curve = ThetaCurve.from_outcomes(conf, side_ok, main_ok)
    out = M.auto_theta(curve)
    assert out["theta"] == _brute_auto_theta(curve, 0.005) and out["max_drop"] == 0.005
    assert out["accuracy"] >= curve.main_accuracy - 0.005 - 1e-12 and out["main_accuracy"] == curve.main_accuracy
    assert out["exit_fraction"] == curve.exit_fraction(out["theta"])
    # every smaller candidate theta exits more but loses more than half a point
    smaller = np.unique(conf[conf < out["theta"]])
    assert all(curve.accuracy(float(t)) < curve.main_accuracy - 0.005 for t in smaller)
    looser = M.auto_theta(curve, max_drop=0.05)
    assert looser["theta"] == _brute_auto_theta(curve, 0.05) <= out["theta"]


def test_auto_theta_edge_cases():
    # a useless SideNet: nothing may exit -> theta 1.0, the MainNet's accuracy
    curve = ThetaCurve.from_outcomes(np.full(100, 0.99), np.zeros(100, bool), np.ones(100, bool))
    assert M.auto_theta(curve)["theta"] == 1.0 and M.auto_theta(curve)["exit_fraction"] == 0.0
    # a perfect SideNet: everything exits at the smallest confidence
    conf = np.linspace(0.5, 1.0, 100)
    curve = ThetaCurve.from_outcomes(conf, np.ones(100, bool), np.ones(100, bool))
    assert M.auto_theta(curve)["theta"] == 0.5 and M.auto_theta(curve)["exit_fraction"] == 1.0
    # only saturated confidences (exactly 1.0) are right: theta just below 1 exits them, 1.0 would not
    conf = np.r_[np.ones(50), np.full(50, 0.9)]
    side_ok = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    curve = ThetaCurve.from_outcomes(conf, side_ok, np.ones(100, bool))
    out = M.auto_theta(curve)
    assert out["theta"] == np.nextafter(1.0, 0.0) and out["exit_fraction"] == 0.5 and out["accuracy"] == 1.0
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"max_drop must be in \[0, 1\]"):
            M.auto_theta(curve, max_drop=bad)
