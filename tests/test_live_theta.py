"""The live θ control's payload (engine.analysis.live): what the browser gets reproduces the engine's exit
set and counts for every θ on the slider's 0.001 grid, at exact ties (θ equal to a score) and at θ = 1;
it is strict JSON and compact. And the pages send it (AppTest): the numbers they expect the browser to
show are the engine's. The browser's own arithmetic is tested in tests/test_browser_live.py."""
import json

import numpy as np
import pytest
from streamlit import config

from engine import metrics
from engine.analysis import live
from engine.analysis.calibration import POPULATIONS, populations_at
from engine.analysis.runs import prepare
from engine.analysis.summary import compare_fallbacks, summary_at
from explorer.components import live_theta
from explorer.formatting import pm

from helpers import analysis_costs, make_logits

GRID = np.arange(1001) / 1000  # the slider's values, as the doubles Python parses "0.xyz" to


def tricky_run(seed: int, n: int = 400):
    """A prepared run with exact ties (duplicated samples), saturated SideNet scores (exactly 1.0) and a
    score of exactly 0.5 (a binary-like row), besides ordinary ones."""
    side, main, labels = make_logits(seed, n=n, classes=4, dtype=np.float64)
    side[: n // 8] = side[n // 8: n // 4]  # duplicates: ties in every score
    side[n // 4: n // 4 + 10] = 0.0
    side[n // 4: n // 4 + 10, 0] = 800.0  # saturated: max-prob and margin exactly 1.0
    side[n // 4 + 10: n // 4 + 12] = [[3.0, 3.0, -800.0, -800.0]] * 2  # max-prob 0.5 and margin 0.0
    return prepare(labels, main, side, analysis_costs(), run_id=f"t{seed}", seed=seed, attach="layer1")


@pytest.fixture(scope="module")
def runs():
    return [tricky_run(s) for s in (1, 2, 3)]


def thetas_for(runs, rule):
    """The grid, every score of the runs (ties), the float just below each, and 1.0."""
    scores = np.unique(np.concatenate([r.side_scores[rule] for r in runs]))
    return np.unique(np.concatenate([GRID, scores, np.nextafter(scores, 0.0), [1.0]]))


def decoded_counts(p: dict, thetas, fallback: str):
    """What live_math.js computes from one run's payload: (#deferred, #SideNet-right exits, #fallback-right deferred)."""
    n, scores = p["n"], live.unpack_f8(p["scores"])
    cum_side = np.concatenate([[0], np.cumsum(live.unpack_bits(p["side"], n))])
    cum_fb = np.concatenate([[0], np.cumsum(live.unpack_bits(p[fallback], n))])
    k = np.where(thetas >= 1.0, n, np.searchsorted(scores, thetas, side="left"))
    return k, cum_side[n] - cum_side[k], cum_fb[k]


@pytest.mark.parametrize("rule", metrics.EXIT_RULES)
def test_cascade_payload_gives_the_engines_counts_everywhere(runs, rule):
    payload = live.cascade_payload(runs, rule, fallbacks=("main", "ensemble"))
    json.dumps(payload, allow_nan=False)  # strict JSON
    assert payload["kinds"] == ["params", "macs"]
    thetas = thetas_for(runs, rule)
    assert len(thetas) > 1001 + 100
    for run, p in zip(runs, payload["runs"]):
        scores = live.unpack_f8(p["scores"])
        assert np.array_equal(scores, np.sort(run.side_scores[rule]))  # the exact float64 scores, ascending
        assert scores[-1] == 1.0 and (scores == 0.5).any() or rule == "margin"
        assert p["main_accuracy"] == run.main_accuracy and p["ensemble_accuracy"] == run.ensemble_accuracy
        assert p["costs"]["macs"] == [run.costs["macs"].trunk, run.costs["macs"].sidenet, run.costs["macs"].rest,
                                      run.costs["macs"].full]
        for fb, ensemble in (("main", False), ("ensemble", True)):
            curve = run.curve_for(ensemble, rule)
            want = [np.asarray(c) for c in curve._counts(thetas)]
            got = decoded_counts(p, thetas, fb)
            for w, g in zip(want, got):
                assert np.array_equal(w, g)
            # the exit set: the samples with score >= θ (none at θ >= 1), i.e. the sorted scores from k on
            for t, k in zip(thetas[::37], got[0][::37]):
                exited = metrics.population_masks(run.side_scores[rule], t)["exited"]
                assert exited.sum() == p["n"] - k and (scores[k:] >= t).all() and (scores[:k] < t).all() | (t >= 1)


@pytest.mark.parametrize("rule", metrics.EXIT_RULES)
def test_populations_payload_is_each_sample_in_order(runs, rule):
    payload = live.populations_payload(runs, rule, ensemble=True, n_bins=10)
    json.dumps(payload, allow_nan=False)
    assert payload["edges"] == [i / 10 for i in range(11)]
    for run, p in zip(runs, payload["runs"]):
        n = p["n"]
        scores = live.unpack_f8(p["scores"])
        assert np.array_equal(scores, run.side_scores[rule])
        side_conf = scores if p["side_conf"] is None else live.unpack_f8(p["side_conf"])
        assert (p["side_conf"] is None) == (rule == "max-prob")
        assert np.array_equal(side_conf, run.side_conf) and np.array_equal(live.unpack_f8(p["fb_conf"]), run.ens_conf)
        assert np.array_equal(live.unpack_bits(p["side_ok"], n), run.side_correct)
        assert np.array_equal(live.unpack_bits(p["fb_ok"], n), run.ens_correct)
        for t in thetas_for([run], rule):
            mine = (scores >= t) & (t < 1.0)
            assert np.array_equal(mine, metrics.population_masks(run.side_scores[rule], t)["exited"])


def test_payload_is_compact(runs):
    """About 8 bytes per sample for the scores, 1 bit per flag, in base64."""
    one = live.cascade_payload(runs[:1], fallbacks=("main", "ensemble"))
    n = runs[0].n
    assert len(json.dumps(one)) < (8 * n + 3 * n / 8) * 4 / 3 + 600
    with pytest.raises(ValueError, match="fallback"):
        live.cascade_payload(runs, fallbacks=("nope",))
    with pytest.raises(ValueError, match="exit rule"):
        live.cascade_payload(runs, rule="entropy")


def test_fixed_cells():
    assert live_theta.fixed(12.345) == "12.35" and live_theta.fixed(float("nan")) == "–"
    assert live_theta.fixed(0.125) == "0.12"  # Python's rounding (exact binary value, ties to even): the JS mirrors it


# -- the pages send it (AppTest: no browser) ---------------------------------------------------------------
def component_data(at) -> dict:
    (element,) = at.get("bidi_component")
    return json.loads(element.proto.json)


def test_pages_send_the_payload_and_the_engines_numbers(explorer_dbs, open_app, engine_groups):
    (cfg, runs), = [(c, rs) for c, rs in engine_groups(explorer_dbs["many"]) if c.has_sidenet]
    at = open_app(explorer_dbs["many"])
    for theta in (0.8, 0.0, 0.137, 1.0):
        if theta != 0.8:
            at.session_state["theta"] = theta  # what the browser's commit writes
            at.run()
        assert not at.exception
        data = component_data(at)
        assert data["page"] == "tradeoff" and data["theta"] == theta
        static = config.get_option("server.enableStaticServing")  # (.streamlit/config.toml, read from the cwd)
        assert data["plotly_url"] == ("/app/static/plotly.min.js" if static else None) and data["payload"] is not None
        (p,) = data["payload"]
        assert live.unpack_f8(p["runs"][0]["scores"]).tolist() == sorted(runs[0].side_scores["max-prob"].tolist())
        s = summary_at(runs, theta)
        cards = {c[0]: c[1] for c in data["view"]["expect"]["cards"]}
        assert cards["Cascade accuracy"] == pm(s.accuracy) and cards["Exit fraction"] == pm(s.exit_fraction, digits=1)
        row = data["view"]["expect"]["rows"][0]
        assert row[:5] == [cfg.label, "3", f"{100 * s.accuracy.mean:.2f}", f"{100 * s.accuracy.std:.2f}",
                           f"{100 * s.exit_fraction.mean:.2f}"]
    # the same θ on the other pages (the session's θ), with their own numbers
    at.switch_page("views/calibration.py").run()
    data = component_data(at)
    assert data["page"] == "calibration" and data["theta"] == 1.0
    pops = populations_at(runs, 1.0, paper=True)
    assert [r[1] for r in data["view"]["expect"]["rows"]] == [pm(pops[p]["fraction"], digits=1, unit="")
                                                              for p in POPULATIONS]
    at.switch_page("views/ensemble.py").run()
    data = component_data(at)
    c = compare_fallbacks(runs, 1.0)
    assert data["page"] == "ensemble" and data["view"]["expect"]["cards"][0][1] == pm(c["ensemble"].accuracy)
    assert len(data["payload"][0]["runs"]) == 3 and "ensemble" in data["payload"][0]["runs"][0]
