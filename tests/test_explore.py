"""engine.explore: configurations, per-configuration numbers at theta, tables and calibration,
checked against engine.metrics / engine.analysis (synthetic logits) and on real smoke runs."""
import math
import warnings

import numpy as np
import pytest

from engine import analysis, explore, metrics
from engine.errors import UserError
from engine.metrics import PathCosts, ThetaCurve

COSTS = {"params": PathCosts(trunk=1e6, sidenet=0.2e6, rest=10e6), "macs": PathCosts(40e6, 0.2e6, 500e6)}
THETAS = [0.0, 0.1, 0.25, 0.5, 0.73, 0.9, 0.999, 1.0]


def make_logits(seed, n=500, classes=10):
    rng = np.random.default_rng(seed)
    labels = rng.integers(classes, size=n)
    onehot = np.eye(classes)[labels]
    easy = rng.gamma(2.0, 1.0, size=(n, 1))
    side = (rng.normal(size=(n, classes)) + 2.0 * easy * onehot).astype(np.float32)
    main = (rng.normal(size=(n, classes)) + 3.5 * easy * onehot).astype(np.float32)
    return side, main, labels


def prepared(seed, **kw):
    side, main, labels = make_logits(seed, **kw)
    return explore.prepare(labels, main, side, COSTS, run_id=f"r{seed}", seed=seed, attach="layer1"), (side, main, labels)


@pytest.fixture(scope="module")
def three():
    return [prepared(s) for s in (0, 1, 2)]


def same(a: dict, b: dict) -> bool:
    """Dict equality where NaN equals NaN (an empty population's accuracy)."""
    return a.keys() == b.keys() and all(
        a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def run_dict(run_id, seed, model="resnet18", attach=("layer1",), mode="joint", status="complete", dataset="fashion-mnist",
             hidden=32):
    return {"run_id": run_id, "seed": seed, "model": model, "attach": list(attach), "mode": mode, "status": status,
            "dataset": dataset, "sidenet_hidden": hidden, "sidenet_order": "linear-bn-relu"}


# ------------------------------------------------------------------------------ configurations
def test_group_runs_seeds_attach_points_and_mainnet_only():
    runs = [run_dict("a0", 0), run_dict("a1", 1), run_dict("b0", 0, model="resnet152"),
            run_dict("m0", 0, attach=(), mode="mainnet-only"), run_dict("m1", 1, attach=(), mode="mainnet-only"),
            run_dict("two", 0, model="resnet34", attach=("layer1", "layer2")),
            run_dict("h", 0, hidden=768), run_dict("bad", 2, status="failed"),
            run_dict("t", 0, model="minilm-l6", attach=("encoder1",), dataset="rt-polarity")]
    configs = explore.group_runs(runs)
    keys = [(c.dataset, c.model, c.attach, c.sidenet_hidden, c.run_ids) for c in configs]
    assert keys == [
        ("fashion-mnist", "resnet18", None, None, ("m0", "m1")),  # natural order, MainNet-only first per model
        ("fashion-mnist", "resnet18", "layer1", 32, ("a0", "a1")),
        ("fashion-mnist", "resnet18", "layer1", 768, ("h",)),
        ("fashion-mnist", "resnet34", "layer1", 32, ("two",)),
        ("fashion-mnist", "resnet34", "layer2", 32, ("two",)),
        ("fashion-mnist", "resnet152", "layer1", 32, ("b0",)),
        ("rt-polarity", "minilm-l6", "encoder1", 32, ("t",)),
    ]
    assert all("bad" not in c.run_ids for c in configs)  # a failed run is never part of a configuration
    assert explore.datasets(configs) == ["fashion-mnist", "rt-polarity"]
    assert explore.options(configs, "model") == ["minilm-l6", "resnet18", "resnet34", "resnet152"]
    assert len({c.label for c in configs if c.dataset == "fashion-mnist"}) == 6  # labels unique within a dataset
    sel = explore.select(configs, dataset="fashion-mnist", models=["resnet18"], hidden=[32])
    assert [c.run_ids for c in sel] == [("m0", "m1"), ("a0", "a1")]  # MainNet-only kept: hidden does not apply
    assert [c.run_ids for c in explore.select(configs, sidenet=False)] == [("m0", "m1")]
    assert explore.select(configs, attach=["layer2"], sidenet=True)[0].run_ids == ("two",)


# ------------------------------------------------------------------------------ one run
def test_prepare_matches_theta_curve_from_logits(three):
    for p, (side, main, labels) in three:
        for ensemble in (False, True):
            ref = ThetaCurve.from_logits(side, main, labels, ensemble=ensemble)
            got = p.curve_for(ensemble)
            for name in ("conf", "side_right", "fallback_right"):
                np.testing.assert_array_equal(getattr(got, name), getattr(ref, name))
            assert got.main_accuracy == ref.main_accuracy
            for t in THETAS:
                assert same(got.at(t, COSTS), ref.at(t, COSTS))
        assert p.main_accuracy == metrics.head_accuracy(main, labels)
        assert p.side_accuracy == metrics.head_accuracy(side, labels)
        assert p.ensemble_accuracy == metrics.head_accuracy(metrics.ensemble_logits(side, main), labels)


def test_mainnet_only_run_has_no_theta():
    _, main, labels = make_logits(3)
    p = explore.prepare(labels, main, None, {"params": PathCosts(5e6, 0, 0)})
    assert not p.has_sidenet
    with pytest.raises(UserError, match="no SideNet"):
        p.curve_for()
    s = explore.summary_at([p], 0.5)
    assert s["main_accuracy"] == (metrics.head_accuracy(main, labels), 0.0) and "accuracy" not in s
    assert explore.mainnet_point([p]) == {"accuracy": (p.main_accuracy, 0.0), "n_runs": 1, "params": (5e6, 0.0)}


# ------------------------------------------------------------------------------ at theta
@pytest.mark.parametrize("ensemble", [False, True])
def test_summary_at_is_mean_and_std_of_each_runs_curve(three, ensemble):
    runs = [p for p, _ in three]
    for t in THETAS:
        s = explore.summary_at(runs, t, ensemble=ensemble)
        per = [ThetaCurve.from_logits(*data, ensemble=ensemble).at(t, COSTS) for _, data in three]
        assert all(same(a, b) for a, b in zip(s["per_run"], per)) and len(per) == 3
        for key in ("accuracy", "exit_fraction", "avg_params", "avg_macs", "saving_params", "saving_macs"):
            vals = np.array([p[key] for p in per])
            assert s[key] == (np.mean(vals), np.std(vals)), key
        gain = np.array([p["accuracy"] - p["main_accuracy"] for p in per])
        assert s["accuracy_gain"] == pytest.approx((gain.mean(), gain.std()))
        assert s["full_params"] == (COSTS["params"].full, 0.0) and s["n_runs"] == 3
    # theta = 0: everything exits; theta = 1: nothing exits (MainNet / ensemble accuracy)
    assert explore.summary_at(runs, 0.0)["exit_fraction"] == (1.0, 0.0)
    end = explore.summary_at(runs, 1.0, ensemble=ensemble)
    assert end["exit_fraction"] == (0.0, 0.0)
    assert end["accuracy"][0] == pytest.approx(np.mean([p.ensemble_accuracy if ensemble else p.main_accuracy
                                                        for p in runs]))


def test_summary_matches_analysis_sweep_of_a_view(three):
    p, (side, main, labels) = three[0]
    view = analysis.RunView({"run_id": "x"}, "layer1", labels, main, side, COSTS)
    for t in THETAS:
        ref = analysis.sweep(view, t)
        got = explore.summary_at([p], t)
        for key in ("accuracy", "exit_fraction", "avg_params", "saving_macs"):
            assert got[key] == (ref[key], 0.0)


def test_compare_fallbacks(three):
    runs = [p for p, _ in three]
    c = explore.compare_fallbacks(runs, 0.6)
    gains = [e["accuracy"] - p["accuracy"] for p, e in zip(c["plain"]["per_run"], c["ensemble"]["per_run"])]
    assert c["gain"] == pytest.approx((np.mean(gains), np.std(gains)))


def test_curve_is_aggregate_curves(three):
    runs = [p for p, _ in three]
    grid = metrics.theta_grid()
    got = explore.curve(runs)
    ref = metrics.aggregate_curves([p.curve for p in runs], [COSTS] * 3, grid)
    assert set(got) == set(ref)
    for key in ref:
        np.testing.assert_array_equal(got[key], ref[key])
    assert len(got["theta"]) == 201


def test_cost_kinds_are_the_common_ones():
    side, main, labels = make_logits(0)
    a = explore.prepare(labels, main, side, {**COSTS, "ms": PathCosts(1, 0, 2)})
    b = explore.prepare(labels, main, side, COSTS)
    assert explore.cost_kinds([a]) == ["params", "macs", "ms"]
    assert explore.cost_kinds([a, b]) == ["params", "macs"]


# ------------------------------------------------------------------------------ tables
def test_tables(three):
    runs = [p for p, _ in three]
    cfg = explore.Configuration("d", "resnet18", "joint", "layer1", 32, "linear-bn-relu", ("r0", "r1", "r2"))
    alone = explore.Configuration("d", "resnet18", "mainnet-only", None, None, None, ("m",))
    groups = [(cfg, runs), (alone, runs[:1])]
    t3 = explore.accuracy_table(groups)
    assert len(t3) == 1 and t3[0]["thetas"] == explore.PAPER_THETAS and t3[0]["seeds"] == 3
    mean, std = metrics.accuracy_table([p.curve for p in runs], explore.PAPER_THETAS)
    np.testing.assert_array_equal(t3[0]["mean"], mean)
    np.testing.assert_array_equal(t3[0]["std"], std)

    t1 = explore.ece_table(groups, n_bins=10)
    side_paper = [metrics.calibration(s, y, paper=True).ece for _, (s, m, y) in three]
    main_bins = [metrics.calibration(m, y, n_bins=10).ece for _, (s, m, y) in three]
    assert t1[0]["side_ece_paper"] == pytest.approx((np.mean(side_paper), np.std(side_paper)), rel=1e-12)
    assert t1[0]["main_ece_bins"] == pytest.approx((np.mean(main_bins), np.std(main_bins)), rel=1e-12)

    t4 = explore.ensemble_table(groups)
    ens = [metrics.head_accuracy(metrics.ensemble_logits(s, m), y) for _, (s, m, y) in three]
    assert t4[0]["ensemble_accuracy"] == (np.mean(ens), np.std(ens))
    assert t4[0]["main_accuracy"][0] == np.mean([p.main_accuracy for p in runs])


# ------------------------------------------------------------------------------ calibration
def test_reliability_summary_of_one_run_is_reliability(three):
    p, (side, main, labels) = three[0]
    for kw in ({"paper": True}, {"n_bins": 15}, {"n_bins": 7}):
        ref = metrics.calibration(side, labels, **kw)
        got = explore.head_reliability([p], "side", **kw)
        np.testing.assert_array_equal(got["edges"], ref.edges)
        np.testing.assert_array_equal(got["count_total"], ref.count)
        np.testing.assert_array_equal(got["accuracy_mean"], ref.accuracy)
        assert got["ece"] == (ref.ece, 0.0) and got["n_total"] == len(labels)


def test_reliability_summary_over_runs(three):
    runs = [p for p, _ in three]
    got = explore.head_reliability(runs, "main", n_bins=10)
    rels = [metrics.calibration(m, y, n_bins=10) for _, (s, m, y) in three]
    np.testing.assert_array_equal(got["count_total"], sum(r.count for r in rels))
    np.testing.assert_allclose(got["count_mean"], np.mean([r.count for r in rels], axis=0))
    acc = np.stack([r.accuracy for r in rels])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # bins empty in every run: NaN
        np.testing.assert_allclose(got["accuracy_mean"], np.nanmean(acc, axis=0))
    assert got["ece"] == pytest.approx((np.mean([r.ece for r in rels]), np.std([r.ece for r in rels])))


@pytest.mark.parametrize("ensemble", [False, True])
def test_populations_match_cascade_confidence_and_correct(three, ensemble):
    for p, (side, main, labels) in three:
        for t in THETAS:
            pops = explore.population_outcomes(p, t, ensemble)
            conf, ok = metrics.cascade_confidence_and_correct(side, main, labels, t, ensemble=ensemble)
            np.testing.assert_array_equal(pops["cascade"][0], conf)
            np.testing.assert_array_equal(pops["cascade"][1], ok)
            exited = metrics.population_masks(metrics.confidence_and_prediction(side)[0], t)["exited"]
            np.testing.assert_array_equal(pops["exited"][0], conf[exited])
            np.testing.assert_array_equal(pops["deferred"][1], ok[~exited])
            # the cascade's accuracy is the ThetaCurve's
            assert ok.mean() == pytest.approx(p.curve_for(ensemble).accuracy(t), abs=1e-15)


def test_populations_at(three):
    runs = [p for p, _ in three]
    pops = explore.populations_at(runs, 0.7, paper=True)
    s = explore.summary_at(runs, 0.7)
    assert pops["exited"]["fraction"] == pytest.approx(s["exit_fraction"])
    assert pops["cascade"]["accuracy"] == pytest.approx(s["accuracy"])
    assert pops["exited"]["accuracy"] == pytest.approx(s["exited_accuracy"])
    assert pops["deferred"]["accuracy"] == pytest.approx(s["deferred_accuracy"])
    assert pops["exited"]["size"] + pops["deferred"]["size"] == pytest.approx(500)
    assert pops["cascade"]["n_total"] == 1500
    # empty populations: NaN accuracy, zero share, no crash
    never = explore.populations_at(runs, 1.0)
    assert never["exited"]["fraction"] == (0.0, 0.0) and math.isnan(never["exited"]["accuracy"][0])
    assert math.isnan(never["exited"]["ece"][0])
    everything = explore.populations_at(runs, 0.0)
    assert everything["deferred"]["size"] == 0 and everything["exited"]["fraction"] == (1.0, 0.0)


def test_path_table():
    costs = {"layer1": {"trunk": {"params": 100, "macs": 40.0}, "sidenet": {"params": 10, "macs": 1.0},
                        "rest": {"params": 900, "macs": 60.0}, "full": {"params": 1000, "macs": 100.0}},
             "none": {"trunk": {"params": 1000, "macs": 100.0}, "sidenet": {"params": 0, "macs": 0.0},
                      "rest": {"params": 0, "macs": 0.0}}}
    latency = [{"attach": "layer1", "device": "cpu", "part": part, "median_ms": ms, "batch_size": 1,
                "measured_at": "2026-11-26 01:00:00"} for part, ms in (("trunk+sidenet", 1.0), ("rest", 3.0))]
    rows = explore.path_table(costs, latency)
    exit_row, deferred, alone, none = rows
    assert exit_row == {"attach": "layer1", "path": "exit at the SideNet", "params": 110.0, "params_share": 0.11,
                        "macs": 41.0, "macs_share": 0.41, "ms": 1.0, "ms_share": 0.25}
    assert deferred["params"] == 1010.0 and deferred["ms"] == 4.0 and alone["params_share"] == 1.0
    # with the unsplit MainNet measured, "MainNet alone" is that time (no split overhead)
    latency.append({**latency[0], "part": "full", "median_ms": 3.5})
    exit_row, _, alone, _ = explore.path_table(costs, latency)
    assert alone["ms"] == 3.5 and exit_row["ms_share"] == 1.0 / 3.5
    assert none["path"] == "MainNet alone" and none["params"] == 1000.0


# ------------------------------------------------------------------------------ real runs
def test_prepare_run_on_real_smoke_runs(smoke_runs):
    store, runs = smoke_runs
    for run_id in runs.values():
        prepared_by_attach = explore.prepare_run(store, run_id)
        for attach, p in prepared_by_attach.items():
            view = analysis.load_view(store, run_id, attach)
            for t in (0.0, 0.3, 0.5, 0.8, 0.95, 1.0):
                ref = analysis.sweep(view, t)
                got = explore.summary_at([p], t)
                for key in ("accuracy", "exit_fraction", "avg_params", "avg_macs", "saving_params"):
                    assert got[key] == (ref[key], 0.0), (run_id, t, key)
            assert p.costs.keys() == view.costs.keys()
    configs = explore.group_runs(store.list_runs())
    assert {c.run_ids for c in configs} >= {(r,) for r in runs.values()}


def test_prepare_run_missing_run_raises(smoke_runs):
    store, _ = smoke_runs
    with pytest.raises(UserError, match="no run"):
        explore.prepare_run(store, "no-such-run")
