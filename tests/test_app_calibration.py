"""AppTest: the Calibration page shows the engine's reliability, ECE and populations at theta."""
from engine import explore
from explorer import state

PAGE = "views/calibration.py"


def metrics(at) -> dict:
    return {m.label: m.value for m in at.metric}


def frame(at, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def assert_populations(at, runs, theta, bin_kw, bin_text):
    n = len(runs)
    pops = explore.populations_at(runs, theta, **bin_kw)
    table = frame(at, "share of samples (%)")
    assert table["population"].tolist() == ["exit at the SideNet", "deferred to the MainNet", "whole cascade"]
    for (_, row), pop in zip(table.iterrows(), explore.POPULATIONS):
        p = pops[pop]
        assert row["share of samples (%)"] == state.pm(p["fraction"], n, digits=1, unit="")
        assert row["accuracy (%)"] == state.pm(p["accuracy"], n, digits=2, unit="")
        assert row["mean confidence (%)"] == state.pm(p["confidence"], n, digits=2, unit="")
        assert row[f"ECE ({bin_text}, %)"] == state.pm(p["ece"], n, digits=2, unit="")
    # the cascade population is the trade-off page's cascade
    assert pops["cascade"]["accuracy"] == explore.summary_at(runs, theta)["accuracy"]


def test_theta_moves_the_populations_to_the_engine_values(explorer_dbs, open_app, engine_groups):
    at = open_app(explorer_dbs["many"], PAGE)
    assert not at.exception
    (cfg, runs), = [(c, rs) for c, rs in engine_groups(explorer_dbs["many"]) if c.has_sidenet]
    assert at.selectbox(key="calib_config:fashion-mnist").value == cfg.label
    shown = metrics(at)
    for head, name in (("side", "SideNet"), ("main", "MainNet")):
        assert shown[f"{name} ECE (paper's 8 bins)"] == state.pm(explore.head_reliability(runs, head, paper=True)["ece"], 3)
        assert shown[f"{name} ECE (15 bins)"] == state.pm(explore.head_reliability(runs, head, n_bins=15)["ece"], 3)
    seen = set()
    for theta in (0.0, 0.12, 0.3, 0.8, 1.0):
        at.slider(key="theta_slider").set_value(theta).run()
        assert not at.exception
        assert_populations(at, runs, theta, {"paper": True}, "the paper's 8 bins")
        seen.add(frame(at, "share of samples (%)").iloc[0]["share of samples (%)"])
    assert {"100.0 ± 0.0", "0.0 ± 0.0"} <= seen


def test_equal_bins_and_table1(explorer_dbs, open_app, engine_groups):
    at = open_app(explorer_dbs["many"], PAGE)
    at.radio(key="calib_binning").set_value("equal").run()
    at.number_input(key="calib_n_bins").set_value(10).run()
    assert not at.exception
    groups = [(c, rs) for c, rs in engine_groups(explorer_dbs["many"]) if c.has_sidenet]
    runs = groups[0][1]
    assert metrics(at)["SideNet ECE (10 bins)"] == state.pm(explore.head_reliability(runs, "side", n_bins=10)["ece"], 3)
    at.slider(key="theta_slider").set_value(0.15).run()
    assert_populations(at, runs, 0.15, {"n_bins": 10}, "10 equal bins")
    table1 = frame(at, "SideNet ECE (8 bins)")
    row = explore.ece_table(groups, n_bins=10)[0]
    shown = table1.iloc[0]
    assert shown["configuration"] == row["configuration"]
    assert shown["SideNet ECE (8 bins)"] == state.pm(row["side_ece_paper"], 3, unit="")
    assert shown["MainNet ECE (10 bins)"] == state.pm(row["main_ece_bins"], 3, unit="")
    # the reliability chart: a bar per bin and head, the diagonal, the counts
    import json

    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    side_bars = next(t for t in spec["data"] if t.get("name") == "SideNet")
    assert len(side_bars["x"]) == 10
    rel = explore.head_reliability(runs, "side", n_bins=10)
    assert side_bars["y"] == [None if v != v else round(v * 100, 6) for v in rel["accuracy_mean"]]
    assert any(t.get("name") == "perfect calibration" for t in spec["data"])


def test_other_dataset_and_one_run(explorer_dbs, open_app, engine_groups):
    at = open_app(explorer_dbs["many"], PAGE)
    at.selectbox(key="dataset").set_value("rt-polarity").run()
    assert not at.exception
    (_, runs), = engine_groups(explorer_dbs["many"], "rt-polarity")
    assert_populations(at, runs, state.DEFAULT_THETA, {"paper": True}, "the paper's 8 bins")
    at = open_app(explorer_dbs["one"], PAGE)
    assert not at.exception and "±" not in metrics(at)["SideNet ECE (paper's 8 bins)"]
