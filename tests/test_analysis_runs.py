"""engine.analysis.runs: one run loaded once (PreparedRun), against engine.metrics on the same logits."""
import numpy as np
import pytest

from engine import metrics
from engine.analysis.runs import COST_KINDS, path_costs_of, prepare, prepare_one, prepare_run
from engine.errors import UserError
from engine.metrics import EXIT_RULES, PathCosts, ThetaCurve
from engine.store import Store

from helpers import STORE_META, analysis_costs, make_logits, prepared_run, run_payload, same

THETAS = [0.0, 0.1, 0.25, 0.5, 0.73, 0.9, 0.999, 1.0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prepare_matches_theta_curve_from_logits(seed):
    p, (side, main, labels) = prepared_run(seed)
    costs = analysis_costs()
    for rule in EXIT_RULES:
        np.testing.assert_array_equal(p.side_scores[rule], metrics.exit_score(side, rule))
        for ensemble in (False, True):
            ref = ThetaCurve.from_logits(side, main, labels, ensemble=ensemble, exit_rule=rule)
            got = p.curve_for(ensemble, rule)
            for name in ("conf", "side_right", "fallback_right"):
                np.testing.assert_array_equal(getattr(got, name), getattr(ref, name))
            assert got.main_accuracy == ref.main_accuracy and got.ensemble == ensemble
            for t in THETAS:
                assert same(got.at(t, costs), ref.at(t, costs))
    assert p.n == 500 and p.has_sidenet and p.run_id == f"r{seed}" and p.attach == "layer1"
    np.testing.assert_array_equal(p.side_conf, metrics.confidence_and_prediction(side)[0])
    np.testing.assert_array_equal(p.ens_conf, metrics.confidence_and_prediction(metrics.ensemble_logits(side, main))[0])
    assert p.main_accuracy == metrics.head_accuracy(main, labels)
    assert p.side_accuracy == metrics.head_accuracy(side, labels)
    assert p.ensemble_accuracy == metrics.head_accuracy(metrics.ensemble_logits(side, main), labels)
    assert p.fallback(True) == (p.ens_conf, p.ens_correct) and p.fallback(False) == (p.main_conf, p.main_correct)


def test_unknown_exit_rule_is_a_user_error():
    p, _ = prepared_run(0, n=50)
    with pytest.raises(UserError, match="unknown exit rule 'entropy'; choose one of: max-prob, margin"):
        p.curve_for(rule="entropy")


def test_mainnet_only_run_has_no_theta():
    _, main, labels = make_logits(3)
    p = prepare(labels, main, None, {"params": PathCosts(5e6, 0, 0)})
    assert not p.has_sidenet and p.side_scores == {} and p.curves == {}
    with pytest.raises(UserError, match="no SideNet"):
        p.curve_for()
    assert p.main_accuracy == metrics.head_accuracy(main, labels)
    assert np.isnan(p.side_accuracy) and np.isnan(p.ensemble_accuracy)


# ------------------------------------------------------------------------------ path costs
def _row(device, part, ms, when, batch=1, attach="layer1"):
    return {"attach": attach, "device": device, "part": part, "batch_size": batch, "median_ms": ms, "measured_at": when}


def test_path_costs_of_counts_and_latency_from_one_device_the_last_measured():
    costs = {"layer1": {part: {"params": 1.0, "macs": 2.0} for part in ("trunk", "sidenet", "rest", "full")}}
    out = path_costs_of(costs, [], "layer1")
    assert set(out) == set(COST_KINDS)  # no latency measured: no "ms"
    assert out["macs"] == PathCosts(trunk=2.0, sidenet=2.0, rest=2.0) and out["macs"].full == 4.0
    latency = [_row("cpu", "trunk+sidenet", 2.0, "2026-01-01"), _row("cpu", "rest", 6.0, "2026-01-01"),
               _row("cpu", "full", 7.0, "2026-01-01"), _row("NVIDIA H200", "trunk+sidenet", 0.2, "2026-02-01"),
               _row("NVIDIA H200", "rest", 0.3, "2026-02-01"), _row("NVIDIA H200", "full", 0.4, "2026-02-01"),
               _row("NVIDIA H200", "rest", 9.0, "2026-03-01", batch=64), _row("cpu", "rest", 1.0, "2027-01-01",
                                                                            attach="layer2")]
    ms = path_costs_of(costs, latency, "layer1")["ms"]
    assert (ms.trunk, ms.sidenet, ms.rest, ms.full) == (0.2, 0.0, 0.3, 0.4)  # never a mix of devices
    without_full = path_costs_of(costs, latency[:2], "layer1")["ms"]
    assert without_full.full == 8.0  # trunk + rest when the unsplit MainNet was not measured
    assert path_costs_of(costs, latency[:3], "layer1")["ms"].full == 7.0
    assert "ms" not in path_costs_of(costs, latency[2:3], "layer1")  # only "full": not a path of a SideNet run
    # a MainNet-only run: its measured full time is its one path
    alone = {"none": {part: {"params": 1.0, "macs": 1.0} for part in ("trunk", "sidenet", "rest")}}
    ms = path_costs_of(alone, [_row("cpu", "full", 7.0, "2026-01-01", attach="none")], None)["ms"]
    assert (ms.trunk, ms.rest, ms.full) == (7.0, 0.0, 7.0)
    assert path_costs_of({}, [], "layer3") == {}  # nothing stored for that attach point


# ------------------------------------------------------------------------------ from a store
@pytest.fixture
def fake_store(tmp_path):
    """A DB with one complete run (random logits at main + layer1, test split only), no training."""
    store = Store(tmp_path / "runs.duckdb")
    samples, costs, epochs = run_payload()
    run_id = store.start_run(STORE_META)
    store.finish_run(run_id, epochs=epochs, costs=costs, samples=samples, wall_time_s=1.0, checkpoint=None)
    return store, run_id, samples["test"]


def test_prepare_run_reads_the_stored_logits_once_per_attach_point(fake_store):
    store, run_id, test = fake_store
    (attach, p), = prepare_run(store, run_id).items()
    assert attach == "layer1" and p.run_id == run_id and p.seed == STORE_META["seed"]
    ref = ThetaCurve.from_logits(test["heads"]["layer1"], test["heads"]["main"], test["label"])
    for t in THETAS:
        assert same(p.curve_for().at(t), ref.at(t))
    assert p.costs == path_costs_of(store.costs(run_id), [], "layer1")
    assert prepare_one(store, run_id).run_id == run_id
    assert prepare_one(store, run_id, "layer1").attach == "layer1"
    with pytest.raises(UserError, match="has no SideNet at 'layer2'; it has: layer1"):
        prepare_one(store, run_id, "layer2")
    with pytest.raises(UserError, match="has no val samples"):
        prepare_run(store, run_id, split="val")
    with pytest.raises(UserError, match="no run 'no-such-run'"):
        prepare_run(store, "no-such-run")


def test_prepare_run_refuses_incomplete_runs_and_missing_sidenet_logits(tmp_path):
    store = Store(tmp_path / "runs.duckdb")
    running = store.start_run(STORE_META)
    with pytest.raises(UserError, match=f"run {running} is running, not complete"):
        prepare_run(store, running)
    store.fail_run(running, "boom")
    with pytest.raises(UserError, match="is failed, not complete"):
        prepare_run(store, running)
    samples, costs, epochs = run_payload()
    del samples["test"]["heads"]["layer1"]  # the run says it has a SideNet at layer1, the DB has no logits of it
    broken = store.start_run(STORE_META)
    store.finish_run(broken, epochs=epochs, costs=costs, samples=samples, wall_time_s=1.0, checkpoint=None)
    with pytest.raises(UserError, match="has no stored test logits for its SideNet at layer1"):
        prepare_run(store, broken)


def test_prepare_run_of_a_mainnet_only_run(tmp_path):
    store = Store(tmp_path / "runs.duckdb")
    samples, _, epochs = run_payload()
    del samples["test"]["heads"]["layer1"]
    zero = {"params": 0, "macs": 0.0}
    full = {"params": 100, "macs": 50.0}
    run_id = store.start_run({**STORE_META, "mode": "mainnet-only", "attach": []})
    costs = {"none": {"trunk": full, "sidenet": zero, "rest": zero, "full": full}}
    store.finish_run(run_id, epochs=epochs, costs=costs, samples=samples, wall_time_s=1.0, checkpoint=None)
    (attach, p), = prepare_run(store, run_id).items()
    assert attach is None and not p.has_sidenet and p.costs["params"].full == 100
    assert prepare_one(store, run_id).attach is None


def test_prepare_run_on_real_smoke_runs(smoke_runs):
    store, runs = smoke_runs
    for run_id in runs.values():
        run = store.get_run(run_id)
        for split in ("test", "val"):
            prepared = prepare_run(store, run_id, split)
            assert list(prepared) == run["attach"]
            data = store.logits(run_id, split)
            for attach, p in prepared.items():
                assert p.n == len(data["label"]) and set(p.costs) == set(COST_KINDS)  # no latency measured
                ref = ThetaCurve.from_logits(data["heads"][attach], data["heads"]["main"], data["label"])
                for t in (0.0, 0.3, 0.5, 0.8, 0.95, 1.0):
                    assert same(p.curve_for().at(t, p.costs), ref.at(t, p.costs)), (run_id, split, t)
