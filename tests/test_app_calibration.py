"""AppTest: the Calibration page shows the engine's reliability, ECE and populations at theta."""
import math

from engine.analysis.calibration import POPULATIONS, head_reliability, populations_at
from engine.analysis.summary import summary_at
from engine.analysis.tables import table1_ece
from explorer.formatting import pm
from explorer.widgets import DEFAULT_THETA

from helpers import chart_spec, frame, live_table, live_view, metric_values, set_theta

PAGE = "views/calibration.py"


def assert_populations(at, runs, theta, bin_kw, bin_text, rule="max-prob"):
    assert live_view(at)["theta"] == theta
    pops = populations_at(runs, theta, rule=rule, **bin_kw)
    table = live_table(at)
    assert table["population"].tolist() == ["exit at the SideNet", "deferred to the MainNet", "whole cascade"]
    for (_, row), pop in zip(table.iterrows(), POPULATIONS):
        p = pops[pop]
        assert row["share of samples (%)"] == pm(p["fraction"], digits=1, unit="")
        assert row["accuracy (%)"] == pm(p["accuracy"], digits=2, unit="")
        assert row["mean confidence (%)"] == pm(p["confidence"], digits=2, unit="")
        assert row[f"ECE ({bin_text}, %)"] == pm(p["ece"], digits=2, unit="")
    # the cascade population is the trade-off page's cascade
    assert pops["cascade"]["accuracy"] == summary_at(runs, theta, rule=rule).accuracy


def test_theta_moves_the_populations_to_the_engine_values(explorer_dbs, open_app, engine_groups):
    at = open_app(explorer_dbs["many"], PAGE)
    assert not at.exception
    (cfg, runs), = [(c, rs) for c, rs in engine_groups(explorer_dbs["many"]) if c.has_sidenet]
    assert at.selectbox(key="calib_config:fashion-mnist").value == cfg.label
    shown = metric_values(at)
    for head, name in (("side", "SideNet"), ("main", "MainNet")):
        assert shown[f"{name} ECE (paper's 8 bins)"] == pm(head_reliability(runs, head, paper=True)["ece"])
        assert shown[f"{name} ECE (15 bins)"] == pm(head_reliability(runs, head, n_bins=15)["ece"])
    seen = set()
    for theta in (0.0, 0.12, 0.3, 0.8, 1.0):
        set_theta(at, theta)
        assert not at.exception
        assert_populations(at, runs, theta, {"paper": True}, "the paper's 8 bins")
        seen.add(live_table(at).iloc[0]["share of samples (%)"])
    assert {"100.0 ± 0.0", "0.0 ± 0.0"} <= seen
    at.radio(key="exit_rule").set_value("margin").run()  # the populations follow the exit rule
    assert_populations(at, runs, 1.0, {"paper": True}, "the paper's 8 bins", rule="margin")


def test_equal_bins_and_table1(explorer_dbs, open_app, engine_groups):
    at = open_app(explorer_dbs["many"], PAGE)
    at.radio(key="calib_binning").set_value("equal").run()
    at.number_input(key="calib_n_bins").set_value(10).run()
    assert not at.exception
    groups = [(c, rs) for c, rs in engine_groups(explorer_dbs["many"]) if c.has_sidenet]
    runs = groups[0][1]
    assert metric_values(at)["SideNet ECE (10 bins)"] == pm(head_reliability(runs, "side", n_bins=10)["ece"])
    set_theta(at, 0.15)
    assert_populations(at, runs, 0.15, {"n_bins": 10}, "10 equal bins")
    table1 = frame(at, "SideNet ECE (8 bins)")
    row = table1_ece(groups, n_bins=10)[0]
    shown = table1.iloc[0]
    assert shown["configuration"] == row["configuration"] and shown["seeds"] == 3
    assert shown["SideNet ECE (8 bins)"] == pm(row["side_ece_paper"], unit="")
    assert shown["MainNet ECE (10 bins)"] == pm(row["main_ece_bins"], unit="")
    # the reliability chart: a bar per bin and head, the diagonal, the counts
    spec = chart_spec(at)
    side_bars = next(t for t in spec["data"] if t.get("name") == "SideNet")
    assert len(side_bars["x"]) == 10
    rel = head_reliability(runs, "side", n_bins=10)
    assert side_bars["y"] == [None if math.isnan(v) else round(v * 100, 6) for v in rel["accuracy_mean"]]
    assert any(t.get("name") == "perfect calibration" for t in spec["data"])
    # the populations' diagram at θ (drawn by the live control): the exited samples' accuracy per bin
    exited = populations_at(runs, 0.15, n_bins=10)["exited"]
    bars = next(t for t in live_view(at)["chart"]["figure"]["data"] if t.get("name", "").lower().startswith("exit"))
    assert bars["y"] == [None if math.isnan(v) else round(v * 100, 6) for v in exited["accuracy_mean"]]


def test_other_dataset_and_one_run(explorer_dbs, open_app, engine_groups):
    at = open_app(explorer_dbs["many"], PAGE)
    at.selectbox(key="dataset").set_value("rt-polarity").run()
    assert not at.exception
    (_, runs), = engine_groups(explorer_dbs["many"], "rt-polarity")
    assert_populations(at, runs, DEFAULT_THETA, {"paper": True}, "the paper's 8 bins")
    at = open_app(explorer_dbs["one"], PAGE)
    assert not at.exception and "±" not in metric_values(at)["SideNet ECE (paper's 8 bins)"]


def test_only_mainnet_only_runs_give_a_hint(explorer_dbs, open_app, tmp_path):
    from engine.store import Store

    from helpers import copy_db

    db = copy_db(explorer_dbs["many"], tmp_path / "alone.duckdb")
    store = Store(db)
    for run in store.list_runs():
        if run["attach"]:
            store.delete_run(run["run_id"])
    at = open_app(db, PAGE)
    assert not at.exception and any("no complete run has a SideNet" in i.value for i in at.info)
