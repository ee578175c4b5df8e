"""AppTest: the Ensemble page (appendix F) as a live toggle, Table 4."""
import json

from engine import explore
from explorer import state

PAGE = "views/ensemble.py"


def frame(at, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_toggle_and_theta_show_the_engine_values(explorer_dbs, open_app, engine_groups):
    at = open_app(explorer_dbs["many"], PAGE)
    assert not at.exception
    (cfg, runs), = [(c, rs) for c, rs in engine_groups(explorer_dbs["many"]) if c.has_sidenet]
    for theta in (0.0, 0.11, 0.5, 1.0):
        at.slider(key="theta_slider").set_value(theta).run()
        for on in (True, False):
            at.toggle(key="ensemble_on").set_value(on).run()
            assert not at.exception
            c = explore.compare_fallbacks(runs, theta)
            s = c["ensemble" if on else "plain"]
            metric = at.metric[0]
            assert metric.label == f"Cascade accuracy: {cfg.label}"
            assert metric.value == state.pm(s["accuracy"], 3)
            assert metric.delta == (f"{state.signed(100 * c['gain'][0], 2)} pts from the ensemble" if on else "")
            row = frame(at, "cascade, ensemble fallback (%)").iloc[0]
            assert row["cascade, MainNet fallback (%)"] == 100 * c["plain"]["accuracy"][0]
            assert row["cascade, ensemble fallback (%)"] == 100 * c["ensemble"]["accuracy"][0]
            names = [t["name"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]
            assert (f"{cfg.label}, ensemble fallback" in names) == on
    # at theta = 1 nothing exits: the ensemble fallback is the ensemble head itself
    assert c["ensemble"]["accuracy"][0] == explore.summary_at(runs, 1.0)["ensemble_accuracy"][0]


def test_table4(explorer_dbs, open_app, engine_groups):
    at = open_app(explorer_dbs["many"], PAGE)
    groups = [(c, rs) for c, rs in engine_groups(explorer_dbs["many"]) if c.has_sidenet]
    shown = frame(at, "Ensemble acc (%)").iloc[0]
    row = explore.ensemble_table(groups)[0]
    assert shown["MainNet acc (%)"] == state.pm(row["main_accuracy"], 3, unit="")
    assert shown["SideNet acc (%)"] == state.pm(row["side_accuracy"], 3, unit="")
    assert shown["Ensemble acc (%)"] == state.pm(row["ensemble_accuracy"], 3, unit="")


def test_theta_is_shared_across_pages(explorer_dbs, open_app):
    at = open_app(explorer_dbs["many"])
    at.slider(key="theta_slider").set_value(0.321).run()
    for page in ("views/ensemble.py", "views/calibration.py", "views/tradeoff.py"):
        at.switch_page(page).run()
        assert not at.exception
        assert at.slider(key="theta_slider").value == 0.321, page
        assert at.number_input(key="theta_box").value == 0.321, page
