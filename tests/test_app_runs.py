"""AppTest: the Runs page (provenance, training curves, costs, delete with confirmation)."""
import shutil

from engine import explore
from engine.store import Store

PAGE = "views/runs.py"


def frame(at, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


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
    rows = explore.path_table(store.costs(run["run_id"]), store.latency(run["run_id"]))
    assert costs["path"].tolist() == [r["path"] for r in rows]
    assert costs["M params"].tolist() == [r["params"] / 1e6 for r in rows]
    assert costs["params (% of MainNet)"].tolist() == [100 * r["params_share"] for r in rows]
    assert at.json[0].value  # provenance
    assert run["run_id"] in at.json[0].value and "replicated from" in at.json[0].value
    assert at.get("plotly_chart")  # training curves


def test_delete_asks_for_confirmation(explorer_dbs, open_app, tmp_path):
    db = tmp_path / "copy.duckdb"
    shutil.copy(explorer_dbs["many"], db)
    configs = explore.group_runs(Store(db).list_runs())
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
    assert any(f"Deleted {victim}" in s.value for s in at.success)
    assert victim not in frame(at, "status")["run"].tolist()
    # the other pages no longer count it
    at.switch_page("views/tradeoff.py").run()
    at.selectbox(key="dataset").set_value(victim_config.dataset).run()
    assert not at.exception
    shown = dict(zip(frame(at, "exit (%)")["configuration"], frame(at, "exit (%)")["seeds"]))
    assert shown[victim_config.label] == len(victim_config.run_ids) - 1
