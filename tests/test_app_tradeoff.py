"""AppTest: the Trade-off page (and the app shell: bad DBs, empty DB, deleted runs)."""
import json
import shutil

import pytest

from engine import explore
from engine.store import Store
from explorer import state

PAGE = "views/tradeoff.py"


def metrics(at) -> dict:
    return {m.label: (m.value, m.delta) for m in at.metric}


def frame(at, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def chart_spec(at, index: int = 0) -> dict:
    return json.loads(at.get("plotly_chart")[index].proto.spec)


def assert_shows(at, groups, theta: float) -> None:
    """The page's numbers at theta are exactly the engine's."""
    side = [(c, rs) for c, rs in groups if c.has_sidenet]
    focus_cfg, focus = side[0]
    s = explore.summary_at(focus, theta)
    n = s["n_runs"]
    shown = metrics(at)
    assert shown["Cascade accuracy"][0] == state.pm(s["accuracy"], n)
    assert shown["Cascade accuracy"][1] == f"{state.signed(100 * s['accuracy_gain'][0], 2)} pts vs MainNet alone"
    assert shown["Exit fraction"][0] == state.pm(s["exit_fraction"], n, digits=1)
    assert shown["Average parameters / input"][0] == state.fmt_cost(s["avg_params"][0], "params")
    assert shown["Average MACs / input"][0] == state.fmt_cost(s["avg_macs"][0], "macs")
    assert shown["Average MACs / input"][1] == f"{state.signed(-100 * s['saving_macs'][0], 1)}% vs MainNet alone"
    table = frame(at, "accuracy (%)")
    assert table["configuration"].tolist() == [c.label for c, _ in side]
    for (cfg, rs), (_, row) in zip(side, table.iterrows()):
        x = explore.summary_at(rs, theta)
        assert row["accuracy (%)"] == 100 * x["accuracy"][0]
        assert row["± std"] == 100 * x["accuracy"][1]
        assert row["exit (%)"] == 100 * x["exit_fraction"][0]
        assert row["params saved (%)"] == 100 * x["saving_params"][0]
        assert row["seeds"] == len(rs)


def test_theta_moves_the_numbers_to_the_engine_values(explorer_dbs, open_app, engine_groups):
    at = open_app(explorer_dbs["many"], PAGE)
    assert not at.exception
    groups = engine_groups(explorer_dbs["many"])
    assert_shows(at, groups, state.DEFAULT_THETA)
    seen = {}
    for theta in (0.0, 0.137, 0.35, 0.5, 0.999, 1.0):
        at.slider(key="theta_slider").set_value(theta).run()
        assert not at.exception
        assert at.number_input(key="theta_box").value == theta  # the number box follows the slider
        assert_shows(at, groups, theta)
        seen[theta] = metrics(at)["Exit fraction"][0]
    assert seen[0.0] == "100.0% ± 0.0" and seen[1.0] == "0.0% ± 0.0"  # theta moved what is shown
    # and the number box drives the slider
    at.number_input(key="theta_box").set_value(0.42).run()
    assert at.slider(key="theta_slider").value == 0.42
    assert_shows(at, groups, 0.42)


def test_chart_table3_and_cost_axis(explorer_dbs, open_app, engine_groups):
    at = open_app(explorer_dbs["many"], PAGE)
    groups = engine_groups(explorer_dbs["many"])
    side = [(c, rs) for c, rs in groups if c.has_sidenet]
    spec = chart_spec(at)
    names = [t.get("name") for t in spec["data"]]
    for cfg, _ in groups:
        assert cfg.label in names  # a curve per SideNet configuration, a point per MainNet-only one
    assert spec["layout"]["xaxis"]["title"]["text"] == "average parameters per input (M params)"
    curve = next(t for t in spec["data"] if t["name"] == side[0][0].label and t["mode"] == "lines")
    ref = explore.curve(side[0][1])
    assert curve["y"] == pytest.approx(list(ref["accuracy_mean"] * 100), abs=1e-5)
    assert len(curve["x"]) == 201
    assert any(t.get("marker", {}).get("symbol") == "square" for t in spec["data"])  # MainNet-only point

    at.radio(key="cost_kind").set_value("macs").run()
    assert chart_spec(at)["layout"]["xaxis"]["title"]["text"].endswith("M MACs)")

    table3 = frame(at, "θ = 0.2")
    rows = explore.accuracy_table(side)
    for (_, shown), row in zip(table3.iterrows(), rows):
        assert shown["configuration"] == row["configuration"]
        assert [shown[f"θ = {t:g}"] for t in row["thetas"]] == [
            state.pm((m, s), row["seeds"], digits=1, unit="") for m, s in zip(row["mean"], row["std"])]


def test_failed_and_running_runs_are_not_shown(explorer_dbs, open_app):
    at = open_app(explorer_dbs["many"], PAGE)
    table = frame(at, "accuracy (%)")
    assert table["seeds"].tolist() == [3]  # 3 replicated seeds; the failed 4th and the running one are left out
    everything = json.dumps([d.value.to_dict() for d in at.dataframe]) + json.dumps(
        [m.value for m in at.metric]) + at.get("plotly_chart")[0].proto.spec
    assert explorer_dbs["failed_run"] not in everything and explorer_dbs["running_run"] not in everything
    assert "7 complete runs" in " ".join(c.value for c in at.sidebar.caption)


def test_other_dataset_and_selection(explorer_dbs, open_app, engine_groups):
    at = open_app(explorer_dbs["many"], PAGE)
    at.selectbox(key="dataset").set_value("rt-polarity").run()
    assert not at.exception
    groups = engine_groups(explorer_dbs["many"], "rt-polarity")
    assert_shows(at, groups, state.DEFAULT_THETA)
    assert frame(at, "accuracy (%)")["seeds"].tolist() == [2]
    # deselecting every MainNet leaves a hint, not an error
    at.multiselect(key="tradeoff_models:rt-polarity").set_value([]).run()
    assert not at.exception and any("No SideNet configuration selected" in i.value for i in at.info)


def test_one_run_shows_no_plus_minus(explorer_dbs, open_app, engine_groups):
    at = open_app(explorer_dbs["one"], PAGE)
    assert not at.exception
    assert "±" not in metrics(at)["Cascade accuracy"][0]
    assert_shows(at, engine_groups(explorer_dbs["one"]), state.DEFAULT_THETA)


@pytest.mark.parametrize("which, message", [("missing", "No database at"), ("bad", "Cannot read the database"),
                                            ("empty", "holds no complete run")])
@pytest.mark.parametrize("page", ["views/tradeoff.py", "views/calibration.py", "views/ensemble.py", "views/runs.py"])
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
    db = tmp_path / "copy.duckdb"
    shutil.copy(explorer_dbs["many"], db)
    at = open_app(db, PAGE)
    assert frame(at, "accuracy (%)")["seeds"].tolist() == [3]
    store = Store(db)
    image_runs = [r["run_id"] for r in store.list_runs() if r["dataset"] == "fashion-mnist" and r["attach"]]
    # 1. deleted between reruns: the next rerun simply shows the remaining seeds
    assert store.delete_run(image_runs[0])
    at.run()
    assert not at.exception
    assert frame(at, "accuracy (%)")["seeds"].tolist() == [2]
    assert_shows(at, engine_groups(db), state.DEFAULT_THETA)
    # 2. deleted after the page listed it (a stale run list): a warning, the rest still shown
    monkeypatch.setattr(Store, "version", lambda self: (1, 2, 3))  # freeze the list cache
    at.run()
    state._RUNS.clear()  # as if never loaded before
    assert store.delete_run(image_runs[1])
    at.run()
    assert not at.exception
    assert any("could not be loaded" in w.value for w in at.warning)
    assert frame(at, "accuracy (%)")["seeds"].tolist() == [1]


def test_latency_axis_appears_once_measured(explorer_dbs, open_app, engine_groups, tmp_path):
    db = tmp_path / "latency.duckdb"
    shutil.copy(explorer_dbs["many"], db)
    store = Store(db)
    at = open_app(db, PAGE)
    assert at.radio(key="cost_kind").options == ["parameters", "MACs"]
    for run in store.list_runs():  # what the cascade benchmark stores: batch-1 medians per part
        for attach in run["attach"] or ["none"]:
            store.put_latency(run["run_id"], [
                {"attach": attach, "device": "cpu", "part": "trunk+sidenet", "batch_size": 1, "median_ms": 1.5,
                 "p95_ms": 2.0},
                {"attach": attach, "device": "cpu", "part": "rest", "batch_size": 1, "median_ms": 4.0, "p95_ms": 5.0}])
    assert set(store.latency_stamps()) == {r["run_id"] for r in store.list_runs()}
    at.run()  # latency stored after the runs completed: their cached costs are refreshed
    assert at.radio(key="cost_kind").options == ["parameters", "MACs", "latency"]
    at.radio(key="cost_kind").set_value("ms").run()
    assert not at.exception
    assert chart_spec(at)["layout"]["xaxis"]["title"]["text"] == "average latency per input (ms)"
    side = [rs for c, rs in engine_groups(db) if c.has_sidenet][0]
    s = explore.summary_at(side, state.DEFAULT_THETA)
    assert metrics(at)["Average latency / input"][0] == state.fmt_cost(s["avg_ms"][0], "ms")
