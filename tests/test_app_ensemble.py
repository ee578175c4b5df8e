"""AppTest: the Ensemble page (appendix F) as a live toggle, Table 4."""
from engine.analysis.summary import compare_fallbacks, summary_at
from engine.analysis.tables import table4_ensemble
from explorer.formatting import pm, signed

from helpers import fixed, frame, live_cards, live_table, live_view, set_theta

PAGE = "views/ensemble.py"


def test_toggle_and_theta_show_the_engine_values(explorer_dbs, open_app, engine_groups):
    at = open_app(explorer_dbs["many"], PAGE)
    assert not at.exception
    (cfg, runs), = [(c, rs) for c, rs in engine_groups(explorer_dbs["many"]) if c.has_sidenet]
    for theta in (0.0, 0.11, 0.5, 1.0):
        set_theta(at, theta)
        for on in (True, False):
            at.toggle(key="ensemble_on").set_value(on).run()
            assert not at.exception and live_view(at)["theta"] == theta
            c = compare_fallbacks(runs, theta)
            s = c["ensemble" if on else "plain"]
            gain = f"{signed(100 * c['gain'].mean, 2)} pts from the ensemble" if on else None
            assert live_cards(at) == {f"Cascade accuracy: {cfg.label}": (pm(s.accuracy), gain)}
            row = live_table(at).iloc[0]
            assert row["cascade, MainNet fallback (%)"] == fixed(100 * c["plain"].accuracy.mean)
            assert row["cascade, ensemble fallback (%)"] == fixed(100 * c["ensemble"].accuracy.mean)
            assert row["deferred right, ensemble (%)"] == fixed(100 * c["ensemble"].deferred_accuracy.mean)
            assert row["exit (%)"] == fixed(100 * s.exit_fraction.mean)
            names = [t["name"] for t in live_view(at)["chart"]["figure"]["data"]]
            assert (f"{cfg.label}, ensemble fallback" in names) == on
    # at theta = 1 nothing exits: the ensemble fallback is the ensemble head itself
    assert c["ensemble"].accuracy.mean == summary_at(runs, 1.0).ensemble_accuracy.mean


def test_table4(explorer_dbs, open_app, engine_groups):
    at = open_app(explorer_dbs["many"], PAGE)
    groups = [(c, rs) for c, rs in engine_groups(explorer_dbs["many"]) if c.has_sidenet]
    shown = frame(at, "Ensemble acc (%)").iloc[0]
    row = table4_ensemble(groups)[0]
    assert shown["configuration"] == row["configuration"] and shown["seeds"] == 3
    assert shown["MainNet acc (%)"] == pm(row["main_accuracy"], unit="")
    assert shown["SideNet acc (%)"] == pm(row["side_accuracy"], unit="")
    assert shown["Ensemble acc (%)"] == pm(row["ensemble_accuracy"], unit="")


def test_no_configuration_picked(explorer_dbs, open_app):
    at = open_app(explorer_dbs["many"], PAGE)
    at.multiselect(key="ens_configs:fashion-mnist").set_value([]).run()
    assert not at.exception and any("Pick at least one configuration" in i.value for i in at.info)


def test_theta_is_shared_across_pages(explorer_dbs, open_app):
    at = open_app(explorer_dbs["many"])
    set_theta(at, 0.321)
    for page in ("views/ensemble.py", "views/calibration.py", "views/tradeoff.py"):
        at.switch_page(page).run()
        assert not at.exception
        assert live_view(at)["theta"] == 0.321, page
