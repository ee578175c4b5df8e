"""AppTest: the Runs page (provenance, training curves, costs, delete with confirmation)."""
from engine.analysis.configurations import group_runs
from engine.analysis.tables import path_table
from engine.store import Store

from helpers import copy_db, frame, live_table

PAGE = "views/runs.py"


def test_lists_complete_runs_and_hides_failed_ones(explorer_dbs, open_app):
    at = open_app(explorer_dbs["many"], PAGE)
    assert not at.exception
    store = Store(explorer_dbs["many"])
    table = frame(at, "status")
    assert sorted(table["run"]) == sorted(r["run_id"] for r in store.list_runs())
    assert set(table["status"]) == {"complete"}
    assert any("2 failed or running run(s) hidden" in c.value for c in at.caption)
    at.toggle(key="runs_all").set_value(True).run()
    table = frame(at, "status")
    assert {explorer_dbs["failed_run"], explorer_dbs["running_run"]} <= set(table["run"])
    failed = table[table["run"] == explorer_dbs["failed_run"]].iloc[0]
    assert failed["status"] == "failed" and "a test failure" in failed["error"]
    at.selectbox(key="runs_selected").set_value(explorer_dbs["failed_run"]).run()
    assert any("This run failed" in e.value for e in at.error)


def test_details_show_costs_epochs_and_provenance(explorer_dbs, open_app):
    at = open_app(explorer_dbs["many"], PAGE)
    store = Store(explorer_dbs["many"])
    run = next(r for r in store.list_runs() if r["dataset"] == "fashion-mnist" and r["attach"])
    at.selectbox(key="runs_selected").set_value(run["run_id"]).run()
    assert not at.exception
    costs = frame(at, "path")
    rows = path_table(store.costs(run["run_id"]), store.latency(run["run_id"]))
    assert costs["path"].tolist() == [r["path"] for r in rows]
    assert costs["M params"].tolist() == [r["params"] / 1e6 for r in rows]
    assert costs["params (% of MainNet)"].tolist() == [100 * r["params_share"] for r in rows]
    assert at.json[0].value  # provenance
    assert run["run_id"] in at.json[0].value and "replicated from" in at.json[0].value
    assert at.get("plotly_chart")  # training curves


def test_delete_asks_for_confirmation(explorer_dbs, open_app, tmp_path):
    db = copy_db(explorer_dbs["many"], tmp_path / "copy.duckdb")
    configs = group_runs(Store(db).list_runs())
    victim_config = next(c for c in configs if c.has_sidenet and len(c.run_ids) > 1)  # a seed of a SideNet config
    victim = victim_config.run_ids[-1]
    at = open_app(db, PAGE)
    at.selectbox(key="runs_selected").set_value(victim).run()
    at.button(key="runs_delete").click().run()
    assert any("cannot be undone" in w.value for w in at.warning)
    at.button(key="runs_delete_cancel").click().run()
    assert victim in {r["run_id"] for r in Store(db).list_runs()}
    at.button(key="runs_delete").click().run()
    at.button(key="runs_delete_confirm").click().run()
    assert not at.exception
    assert victim not in {r["run_id"] for r in Store(db).list_runs(include_all=True)}
    assert any(f"Deleted {victim}" in s.value.replace("\\", "") for s in at.success)
    assert victim not in frame(at, "status")["run"].tolist()
    # the other pages no longer count it
    at.switch_page("views/tradeoff.py").run()
    at.selectbox(key="dataset").set_value(victim_config.dataset).run()
    assert not at.exception
    table = live_table(at)
    shown = dict(zip(table["configuration"], table["seeds"]))
    assert shown[victim_config.label] == str(len(victim_config.run_ids) - 1)


def test_a_running_run_cannot_be_deleted_from_the_page(explorer_dbs, open_app):
    at = open_app(explorer_dbs["many"], PAGE)
    at.toggle(key="runs_all").set_value(True).run()
    at.selectbox(key="runs_selected").set_value(explorer_dbs["running_run"]).run()
    assert not at.exception
    assert at.button(key="runs_delete").disabled
    assert any("still training" in i.value for i in at.info)
