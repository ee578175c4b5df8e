"""AppTest: the Trade-off page (and the app shell: bad DBs, empty DB, deleted runs). The numbers at θ
are those the page hands its live θ control (tests/test_browser_live.py checks the browser draws them)."""
import json

import pytest

from engine.analysis.summary import curve, summary_at
from engine.analysis.tables import table3_accuracy
from engine.store import Store
from explorer import cache
from explorer.formatting import fmt_cost, pm, signed
from explorer.widgets import DEFAULT_THETA

from helpers import copy_db, fixed, frame, live_cards, live_table, live_view, set_theta

PAGE = "views/tradeoff.py"


def assert_shows(at, groups, theta: float, rule: str = "max-prob") -> None:
    """The page's numbers at theta are exactly the engine's."""
    assert live_view(at)["theta"] == theta
    side = [(c, rs) for c, rs in groups if c.has_sidenet]
    _, focus = side[0]
    s = summary_at(focus, theta, rule=rule)
    cards = live_cards(at)
    assert cards["Cascade accuracy"] == (pm(s.accuracy), f"{signed(100 * s.accuracy_gain.mean, 2)} pts vs MainNet alone")
    assert cards["Exit fraction"] == (pm(s.exit_fraction, digits=1), None)
    assert cards["Average parameters / input"][0] == fmt_cost(s.avg["params"].mean, "params")
    assert cards["Average MACs / input"] == (fmt_cost(s.avg["macs"].mean, "macs"),
                                             f"{signed(-100 * s.saving['macs'].mean, 1)}% vs MainNet alone")
    table = live_table(at)
    assert table["configuration"].tolist() == [c.label for c, _ in side]
    for (_, rs), (_, row) in zip(side, table.iterrows()):
        x = summary_at(rs, theta, rule=rule)
        assert row["accuracy (%)"] == fixed(100 * x.accuracy.mean)
        assert row["± std"] == fixed(100 * x.accuracy.std)
        assert row["exit (%)"] == fixed(100 * x.exit_fraction.mean)
        assert row["MainNet (%)"] == fixed(100 * x.main_accuracy.mean)
        assert row["params saved (%)"] == fixed(100 * x.saving["params"].mean)
        assert row["MACs saved (%)"] == fixed(100 * x.saving["macs"].mean)
        assert row["seeds"] == str(len(rs)) == str(x.n_runs)


def test_theta_moves_the_numbers_to_the_engine_values(explorer_dbs, open_app, engine_groups):
    at = open_app(explorer_dbs["many"], PAGE)
    assert not at.exception
    groups = engine_groups(explorer_dbs["many"])
    assert_shows(at, groups, DEFAULT_THETA)
    seen = {}
    for theta in (0.0, 0.137, 0.35, 0.5, 0.999, 1.0):
        set_theta(at, theta)
        assert not at.exception
        assert_shows(at, groups, theta)
        seen[theta] = live_cards(at)["Exit fraction"][0]
    assert seen[0.0] == "100.0% ± 0.0" and seen[1.0] == "0.0% ± 0.0"  # theta moved what is shown
    set_theta(at, 7.5)  # a θ outside [0, 1] in the session never reaches the engine
    assert not at.exception and live_view(at)["theta"] == DEFAULT_THETA


def test_the_exit_rule_changes_the_numbers(explorer_dbs, open_app, engine_groups):
    """On the binary rt-polarity runs, theta 0.4 exits everything under max-prob, not under margin."""
    at = open_app(explorer_dbs["many"], PAGE)
    at.selectbox(key="dataset").set_value("rt-polarity").run()
    set_theta(at, 0.4)
    groups = engine_groups(explorer_dbs["many"], "rt-polarity")
    assert live_cards(at)["Exit fraction"][0] == "100.0% ± 0.0"
    at.radio(key="exit_rule").set_value("margin").run()
    assert not at.exception
    assert_shows(at, groups, 0.4, rule="margin")
    assert live_cards(at)["Exit fraction"][0] != "100.0% ± 0.0"
    table3 = frame(at, "θ = 0.2")
    (row,) = table3_accuracy([g for g in groups if g[0].has_sidenet], rule="margin")
    assert table3.iloc[0]["θ = 0.4"] == pm(row["accuracy"][1], digits=1, unit="")


def test_chart_table3_and_cost_axis(explorer_dbs, open_app, engine_groups):
    at = open_app(explorer_dbs["many"], PAGE)
    groups = engine_groups(explorer_dbs["many"])
    side = [(c, rs) for c, rs in groups if c.has_sidenet]
    spec = live_view(at)["chart"]["figure"]
    names = [t.get("name") for t in spec["data"]]
    for cfg, _ in groups:
        assert cfg.label in names  # a curve per SideNet configuration, a point per MainNet-only one
    assert spec["layout"]["xaxis"]["title"]["text"] == "average parameters per input (M params)"
    line = next(t for t in spec["data"] if t["name"] == side[0][0].label and t["mode"] == "lines")
    ref = curve(side[0][1])
    assert line["y"] == pytest.approx(list(ref["accuracy_mean"] * 100), abs=1e-5)
    assert len(line["x"]) == 201
    assert any(t.get("marker", {}).get("symbol") == "square" for t in spec["data"])  # MainNet-only point

    at.radio(key="cost_kind").set_value("macs").run()
    assert live_view(at)["chart"]["figure"]["layout"]["xaxis"]["title"]["text"].endswith("M MACs)")

    table3 = frame(at, "θ = 0.2")
    rows = table3_accuracy(side)
    for (_, shown), row in zip(table3.iterrows(), rows):
        assert shown["configuration"] == row["configuration"] and shown["seeds"] == row["seeds"]
        assert [shown[f"θ = {t:g}"] for t in row["thetas"]] == [pm(a, digits=1, unit="") for a in row["accuracy"]]


def test_failed_and_running_runs_are_not_shown(explorer_dbs, open_app):
    at = open_app(explorer_dbs["many"], PAGE)
    table = live_table(at)
    assert table["seeds"].tolist() == ["3"]  # 3 replicated seeds; the failed 4th and the running one are left out
    everything = json.dumps([d.value.to_dict() for d in at.dataframe]) + json.dumps(live_view(at))
    assert explorer_dbs["failed_run"] not in everything and explorer_dbs["running_run"] not in everything
    assert "7 complete runs" in " ".join(c.value for c in at.sidebar.caption)


def test_other_dataset_and_selection(explorer_dbs, open_app, engine_groups):
    at = open_app(explorer_dbs["many"], PAGE)
    at.selectbox(key="dataset").set_value("rt-polarity").run()
    assert not at.exception
    groups = engine_groups(explorer_dbs["many"], "rt-polarity")
    assert_shows(at, groups, DEFAULT_THETA)
    assert live_table(at)["seeds"].tolist() == ["2"]
    # deselecting every MainNet leaves a hint, not an error
    at.multiselect(key="tradeoff_models:rt-polarity").set_value([]).run()
    assert not at.exception and any("No SideNet configuration selected" in i.value for i in at.info)


def test_one_run_shows_no_plus_minus(explorer_dbs, open_app, engine_groups):
    at = open_app(explorer_dbs["one"], PAGE)
    assert not at.exception
    assert "±" not in live_cards(at)["Cascade accuracy"][0]
    assert_shows(at, engine_groups(explorer_dbs["one"]), DEFAULT_THETA)


@pytest.mark.parametrize("which, message", [("missing", "No database at"), ("bad", "Cannot read the database"),
                                            ("empty", "holds no complete run")])
@pytest.mark.parametrize("page", ["views/tradeoff.py", "views/calibration.py", "views/ensemble.py", "views/runs.py",
                                  "views/paper.py"])
def test_bad_or_empty_database_gives_a_clear_message(explorer_dbs, open_app, which, message, page):
    at = open_app(explorer_dbs[which], page)
    assert not at.exception  # the app stays up
    shown = [e.value for e in at.error] + [i.value for i in at.info]
    assert any(message in text for text in shown), shown
    assert any("make run" in m.value for m in at.markdown)  # the hint: how to get runs
    if page == PAGE:  # (AppTest drops the sidebar's elements after switch_page)
        assert str(explorer_dbs[which]) in " ".join(c.value for c in at.sidebar.caption)
    if which == "bad":
        assert any("DuckDB" in e.value for e in at.error)


def test_a_run_deleted_while_shown(explorer_dbs, open_app, engine_groups, tmp_path, monkeypatch):
    db = copy_db(explorer_dbs["many"], tmp_path / "copy.duckdb")
    at = open_app(db, PAGE)
    assert live_table(at)["seeds"].tolist() == ["3"]
    store = Store(db)
    image_runs = [r["run_id"] for r in store.list_runs() if r["dataset"] == "fashion-mnist" and r["attach"]]
    # 1. deleted between reruns: the next rerun simply shows the remaining seeds
    assert store.delete_run(image_runs[0])
    at.run()
    assert not at.exception
    assert live_table(at)["seeds"].tolist() == ["2"]
    assert_shows(at, engine_groups(db), DEFAULT_THETA)
    # 2. deleted after the page listed it (a stale run list): a warning, the rest still shown
    monkeypatch.setattr(Store, "version", lambda self: (1, 2, 3))  # freeze the list cache
    at.run()
    cache._RUNS.clear()  # as if never loaded before
    assert store.delete_run(image_runs[1])
    at.run()
    assert not at.exception
    assert any("could not be loaded" in w.value for w in at.warning)
    assert live_table(at)["seeds"].tolist() == ["1"]


def test_latency_axis_appears_once_measured(explorer_dbs, open_app, engine_groups, tmp_path):
    db = copy_db(explorer_dbs["many"], tmp_path / "latency.duckdb")
    store = Store(db)
    at = open_app(db, PAGE)
    assert at.radio(key="cost_kind").options == ["parameters", "MACs"]
    for run in store.list_runs():  # what `python -m engine latency` stores: batch-1 medians per part
        for attach in run["attach"] or ["none"]:
            store.put_latency(run["run_id"], [
                {"attach": attach, "device": "cpu", "part": "trunk+sidenet", "batch_size": 1, "median_ms": 1.5,
                 "p95_ms": 2.0},
                {"attach": attach, "device": "cpu", "part": "rest", "batch_size": 1, "median_ms": 4.0, "p95_ms": 5.0},
                {"attach": attach, "device": "cpu", "part": "full", "batch_size": 1, "median_ms": 5.0, "p95_ms": 6.0}])
    assert set(store.latency_stamps()) == {r["run_id"] for r in store.list_runs()}
    at.run()  # latency stored after the runs completed: their cached costs are refreshed
    assert at.radio(key="cost_kind").options == ["parameters", "MACs", "latency"]
    at.radio(key="cost_kind").set_value("ms").run()
    assert not at.exception
    assert live_view(at)["chart"]["figure"]["layout"]["xaxis"]["title"]["text"] == "average latency per input (ms)"
    side = [rs for c, rs in engine_groups(db) if c.has_sidenet][0]
    s = summary_at(side, DEFAULT_THETA)
    assert s.full["ms"].mean == 5.0  # the measured unsplit MainNet is the baseline
    assert live_cards(at)["Average latency / input"] == (fmt_cost(s.avg["ms"].mean, "ms"),
                                                         f"{signed(-100 * s.saving['ms'].mean, 1)}% vs MainNet alone")
