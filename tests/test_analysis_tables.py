"""engine.analysis.tables: the paper's Tables 1-4 over configurations, and one run's cost per path."""
import numpy as np
import pytest

from engine import metrics
from engine.analysis.configurations import Configuration
from engine.analysis.summary import MeanStd
from engine.analysis.tables import (
    PAPER_THETAS,
    path_table,
    table1_ece,
    table2_mainnet,
    table3_accuracy,
    table4_ensemble,
)

from helpers import prepared_run, sample_std


@pytest.fixture
def three():
    return [prepared_run(s) for s in (0, 1, 2)]


def config(mode="joint", attach="layer1", run_ids=("r0", "r1", "r2"), model="resnet18", variant="", recipe="{}"):
    hidden, order = (32, "linear-bn-relu") if attach else (None, None)
    return Configuration("d", model, mode, attach, hidden, order, variant, recipe, run_ids=run_ids)


def assert_mean_std(got: MeanStd, values, rel=1e-12):
    assert got.n == len(values)
    assert got.mean == pytest.approx(np.mean(values), rel=rel)
    assert got.std == pytest.approx(sample_std(values), rel=1e-9)


def test_table3_is_the_cascade_accuracy_at_the_papers_thetas(three):
    runs = [p for p, _ in three]
    groups = [(config(), runs), (config("mainnet-only", None, ("m",)), runs[:1])]
    for rule in metrics.EXIT_RULES:
        (row,) = table3_accuracy(groups, rule=rule)  # MainNet-only configurations have no row
        assert row["thetas"] == PAPER_THETAS == (0.2, 0.4, 0.6, 0.8, 0.9) and row["seeds"] == 3
        assert row["exit_rule"] == rule and row["run_ids"] == ["r0", "r1", "r2"]
        assert row["configuration"] == groups[0][0].label
        for theta, got in zip(PAPER_THETAS, row["accuracy"]):
            assert_mean_std(got, [p.curve_for(rule=rule).accuracy(theta) for p in runs])
        mean, std = metrics.accuracy_table([p.curve_for(rule=rule) for p in runs], PAPER_THETAS)
        np.testing.assert_allclose([a.mean for a in row["accuracy"]], mean, rtol=1e-15)
        np.testing.assert_allclose([a.std for a in row["accuracy"]], std, rtol=1e-12)
    ens = table3_accuracy(groups, thetas=(0.5,), ensemble=True)[0]["accuracy"][0]
    assert_mean_std(ens, [p.curve_for(True).accuracy(0.5) for p in runs])


def test_table1_ece_paper_bins_and_equal_bins(three):
    runs = [p for p, _ in three]
    (row,) = table1_ece([(config(), runs), (config("mainnet-only", None, ("m",)), runs[:1])], n_bins=10)
    assert row["n_bins"] == 10 and row["seeds"] == 3
    assert_mean_std(row["side_ece_paper"], [metrics.calibration(s, y, paper=True).ece for _, (s, m, y) in three])
    assert_mean_std(row["side_ece_bins"], [metrics.calibration(s, y, n_bins=10).ece for _, (s, m, y) in three])
    assert_mean_std(row["main_ece_paper"], [metrics.calibration(m, y, paper=True).ece for _, (s, m, y) in three])
    assert_mean_std(row["main_ece_bins"], [metrics.calibration(m, y, n_bins=10).ece for _, (s, m, y) in three])


def test_table4_each_head_and_the_ensemble(three):
    runs = [p for p, _ in three]
    (row,) = table4_ensemble([(config(), runs)])
    assert_mean_std(row["ensemble_accuracy"],
                    [metrics.head_accuracy(metrics.ensemble_logits(s, m), y) for _, (s, m, y) in three])
    assert_mean_std(row["main_accuracy"], [metrics.head_accuracy(m, y) for _, (s, m, y) in three])
    assert_mean_std(row["side_accuracy"], [metrics.head_accuracy(s, y) for _, (s, m, y) in three])
    assert table4_ensemble([(config(), [])]) == []  # a configuration whose runs could not be loaded


def test_table2_with_and_without_sidenet(three):
    runs = [p for p, _ in three]
    alone = [prepared_run(s)[0] for s in (10, 11)]
    groups = [(config(), runs), (config(attach="layer2"), runs),  # one run, two attach points: counted once
              (config("mainnet-only", None, ("m10", "m11")), alone),
              (config(model="resnet34"), runs),  # no mainnet-only runs of resnet34: no row
              (config("mainnet-only", None, ("x",), variant="epochs 3", recipe='{"epochs": 3}'), alone[:1]),
              (config("frozen"), runs)]  # frozen: the MainNet was not trained with the SideNet
    (row,) = table2_mainnet(groups)
    assert (row["dataset"], row["model"], row["variant"]) == ("d", "resnet18", "")
    assert_mean_std(row["with_sidenet"], [p.main_accuracy for p in runs])
    assert_mean_std(row["without_sidenet"], [p.main_accuracy for p in alone])
    assert row["difference"] == row["with_sidenet"].mean - row["without_sidenet"].mean
    assert sorted(row["run_ids"]) == ["r0", "r1", "r10", "r11", "r2"]


def test_path_table():
    costs = {"layer1": {"trunk": {"params": 100, "macs": 40.0}, "sidenet": {"params": 10, "macs": 1.0},
                        "rest": {"params": 900, "macs": 60.0}, "full": {"params": 1000, "macs": 100.0}},
             "none": {"trunk": {"params": 1000, "macs": 100.0}, "sidenet": {"params": 0, "macs": 0.0},
                      "rest": {"params": 0, "macs": 0.0}}}
    latency = [{"attach": "layer1", "device": "cpu", "part": part, "median_ms": ms, "batch_size": 1,
                "measured_at": "2026-11-26 01:00:00"} for part, ms in (("trunk+sidenet", 1.0), ("rest", 3.0))]
    rows = path_table(costs, latency)
    exit_row, deferred, alone, none = rows
    assert exit_row == {"attach": "layer1", "path": "exit at the SideNet", "params": 110.0, "params_share": 0.11,
                        "macs": 41.0, "macs_share": 0.41, "ms": 1.0, "ms_share": 0.25}
    assert deferred["params"] == 1010.0 and deferred["ms"] == 4.0 and alone["params_share"] == 1.0
    assert [r["path"] for r in rows] == ["exit at the SideNet", "deferred to the MainNet", "MainNet alone",
                                         "MainNet alone"]
    # with the unsplit MainNet measured, "MainNet alone" is that time (no split overhead)
    latency.append({**latency[0], "part": "full", "median_ms": 3.5})
    exit_row, _, alone, _ = path_table(costs, latency)
    assert alone["ms"] == 3.5 and exit_row["ms_share"] == 1.0 / 3.5
    assert none["attach"] == "none" and none["params"] == 1000.0 and "ms" not in none
    zero = {"none": {part: {"params": 0, "macs": 0.0} for part in ("trunk", "sidenet", "rest")}}
    assert path_table(zero, [])[0]["params_share"] is None  # no division by a zero MainNet
