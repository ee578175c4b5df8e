"""The live θ control in a real browser (Debian's chromium through Playwright; no browser download):
dragging the slider changes the numbers before the button is released, and they are the engine's; the
keyboard and the number box still work; the browser's own arithmetic equals the engine's for every θ
on the 0.001 grid, at ties (θ equal to a score) and at θ = 1, on the Trade-off, Calibration and Ensemble
pages; the page asks nothing from outside 127.0.0.1. Under CI (CI set) a missing chromium fails."""
import math
import os

import numpy as np
import pytest

from engine.analysis.calibration import POPULATIONS, populations_at
from engine.analysis.summary import MeanStd, compare_fallbacks, summary_at
from explorer.components import live_theta
from explorer.formatting import pm
from explorer.screenshot import CHROMIUM, SLIDER, THETA_BOX, browser, metric_value, serve, set_theta, wait_live

from helpers import copy_db

IN_CI = bool(os.environ.get("CI"))
pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists() and not IN_CI,
                                 reason=f"{CHROMIUM} is missing: `make browser` (apt-get install chromium)")]
GRID = np.arange(1001) / 1000
ROOT = '[data-testid="liveTheta"]'


@pytest.fixture(scope="session", autouse=True)
def chromium_is_there():  # (session scope: checked before the session's databases are built)
    if not CHROMIUM.exists():  # only reached under CI: there the real-browser tests must run
        pytest.fail(f"CI: {CHROMIUM} is missing (`make browser` installs it); the real-browser tests cannot be skipped")


def same(js, py) -> bool:
    """A number from the page (NaN sent as "NaN") is exactly the engine's float."""
    js = float(js) if js is not None else math.nan
    return js == py or (math.isnan(js) and math.isnan(py))


def same_ms(js: dict, py) -> bool:
    return same(js["mean"], py.mean) and same(js["std"], py.std) and js["n"] == py.n


def probe(page, name: str, thetas) -> list[dict]:
    return page.evaluate("([name, ts]) => ts.map((t) => window.__sidenetsLive.pages[name].probe(t))",
                         [name, [float(t) for t in thetas]])


def ties(runs, rule="max-prob"):
    """Every score of the runs (θ equal to a score: a tie), and 1.0."""
    return np.unique(np.concatenate([r.side_scores[rule] for r in runs] + [[1.0]]))


def shown(page) -> dict:
    return {label: metric_value(page, label) for label in ("Cascade accuracy", "Exit fraction")}


def wait_painted(page) -> float:
    """θ in the number box once the numbers for it are on screen (the next animation frame)."""
    page.wait_for_function(f"""() => document.querySelector('{ROOT}').dataset.theta
                                     === document.querySelector('{THETA_BOX}').value""")
    return float(page.locator(THETA_BOX).input_value())


def wait_server(page, rev: int) -> None:
    page.wait_for_function(f"""() => {{ const e = document.querySelector('{ROOT}');
        return Number(e.dataset.serverRev) >= {rev} && e.dataset.serverTheta === e.dataset.theta; }}""")
    assert page.locator(ROOT).get_attribute("data-agrees") == "true"


def test_live_theta_in_a_real_browser(explorer_dbs, engine_groups, tmp_path):
    db = copy_db(explorer_dbs["many"], tmp_path / "live.duckdb")
    (cfg, runs), = [(c, rs) for c, rs in engine_groups(db) if c.has_sidenet]
    kinds = ["params", "macs"]

    def expected(theta):
        s = summary_at(runs, theta)
        return {"Cascade accuracy": pm(s.accuracy), "Exit fraction": pm(s.exit_fraction, digits=1)}

    with serve(db, log_path=tmp_path / "server.log") as url, browser() as page:
        requests, errors = [], []
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url)
        wait_live(page)
        assert shown(page) == expected(0.8)

        # 1. drag with the mouse: the numbers follow before the button is released, with no server run
        slider = page.locator(SLIDER)
        slider.scroll_into_view_if_needed()
        box = slider.bounding_box()
        y = box["y"] + box["height"] / 2
        targets = np.quantile(np.concatenate([r.side_scores["max-prob"] for r in runs]), [0.8, 0.5, 0.2])
        page.mouse.move(box["x"] + box["width"] * 0.8, y)
        page.mouse.down()
        seen = set()
        for target in targets:
            page.mouse.move(box["x"] + box["width"] * target, y, steps=3)
            theta = wait_painted(page)
            assert shown(page) == expected(theta), theta
            seen.add(shown(page)["Exit fraction"])
            assert page.locator(ROOT).get_attribute("data-server-rev") == "0"  # nothing sent yet
        assert len(seen) == 3  # the three θs exit different fractions
        page.mouse.up()
        wait_server(page, 1)
        assert shown(page) == expected(theta)

        # 2. the keyboard: arrows step by 0.001, Home goes to 0
        slider.focus()
        for _ in range(3):
            slider.press("ArrowLeft")
        assert wait_painted(page) == round(theta - 0.003, 3)
        wait_server(page, 2)
        slider.press("Home")
        assert wait_painted(page) == 0.0 and shown(page)["Exit fraction"] == "100.0% ± 0.0"
        wait_server(page, 3)

        # 3. the number box drives the slider and the numbers
        set_theta(page, 0.15)
        assert wait_painted(page) == 0.15 and slider.input_value() == "0.15"
        assert shown(page) == expected(0.15)
        wait_server(page, 4)

        # 4. the browser's arithmetic = the engine's: every grid θ, every tie, θ = 1 (cards, table, raw numbers)
        thetas = np.unique(np.concatenate([GRID, ties(runs)]))
        for t, got in zip(thetas, probe(page, "tradeoff", thetas)):
            s = summary_at(runs, t)
            assert got["cards"] == [[c["label"], c["value"], c["delta"]] for c in live_theta.tradeoff_cards(s, kinds)], t
            assert got["rows"] == live_theta.tradeoff_table([(cfg.label, s)], kinds)[2], t
            raw = got["summaries"][0]
            for name in ("accuracy", "exit_fraction", "exited_accuracy", "deferred_accuracy", "accuracy_gain"):
                assert same_ms(raw[name], getattr(s, name)), (t, name)
            assert all(same_ms(raw["avg"][k], s.avg[k]) and same_ms(raw["saving"][k], s.saving[k]) for k in kinds)

        # 5. Calibration (θ kept): the exited / deferred / cascade populations, ties included
        page.get_by_role("link", name="Calibration").click()
        wait_live(page)
        assert page.locator(THETA_BOX).input_value() == "0.150"
        thetas = np.unique(np.concatenate([GRID[::4], ties(runs), [0.15]]))
        for t, got in zip(thetas, probe(page, "calibration", thetas)):
            pops = populations_at(runs, t, paper=True)
            assert [row[1:] for row in got["rows"]] == [
                [pm(pops[p][k], digits=1 if k == "fraction" else 2, unit="") for k in ("fraction", "accuracy",
                                                                                      "confidence", "ece")]
                for p in POPULATIONS], t
            for p in POPULATIONS:
                raw = got["populations"][p]
                assert all(same_ms(raw[k], pops[p][k]) for k in ("fraction", "accuracy", "confidence", "ece")), (t, p)
        rows = page.locator('[data-testid="liveTable"] tbody tr')
        assert rows.nth(0).inner_text().split("\t")[1] == pm(populations_at(runs, 0.15, paper=True)["exited"]["fraction"],
                                                             digits=1, unit="")

        # 6. Ensemble: both fallbacks and the ensemble's gain
        page.get_by_role("link", name="Ensemble").click()
        wait_live(page)
        thetas = np.unique(np.concatenate([GRID[::4], ties(runs)]))
        for t, got in zip(thetas, probe(page, "ensemble", thetas)):
            c = compare_fallbacks(runs, t)
            s = c["ensemble"]
            want = live_theta.ensemble_cards([(cfg.label, s, c["gain"])], on=True)
            assert got["cards"] == [[w["label"], w["value"], w["delta"]] for w in want], t
            assert got["rows"] == live_theta.ensemble_rows([(cfg.label, s, c["plain"], s)]), t
            assert same_ms(got["summaries"][0]["gain"], c["gain"])

        # 7. the toggle (MainNet fallback) and the margin exit rule (scores other than the confidences)
        page.get_by_text("Ensemble deferred samples").click()
        page.wait_for_function(f"() => document.querySelector('{ROOT} .snl-text').textContent.includes('MainNet alone')")
        wait_server(page, 4)
        for t, got in zip(thetas[::7], probe(page, "ensemble", thetas[::7])):
            c = compare_fallbacks(runs, t)
            assert got["cards"] == [[f"Cascade accuracy: {cfg.label}", pm(c["plain"].accuracy), None]], t
        page.get_by_role("link", name="Calibration").click()
        wait_live(page)
        before = page.evaluate("() => window.__sidenetsLive.pages.calibration.payloadId")
        page.get_by_text("top-1 − top-2 probability ≥ θ").first.click()
        page.wait_for_function("(id) => window.__sidenetsLive.pages.calibration.payloadId !== id", arg=before)
        assert page.locator(ROOT).get_attribute("data-agrees") == "true"
        thetas = np.unique(np.concatenate([GRID[::10], ties(runs, "margin")]))
        for t, got in zip(thetas, probe(page, "calibration", thetas)):
            pops = populations_at(runs, t, paper=True, rule="margin")
            assert all(same_ms(got["populations"][p]["accuracy"], pops[p]["accuracy"]) for p in POPULATIONS), t
        check_arithmetic(page)

    assert not [e for e in errors if "live θ" in e]  # the browser never disagreed with the engine's page
    outside = [u for u in requests if not u.startswith((url, f"blob:{url}", "data:"))]
    assert not outside, outside  # nothing outside 127.0.0.1 (no CDN, no fonts, no favicon lookups)


def check_arithmetic(page) -> None:
    """The page's formatting and statistics against Python's on values where they are easy to get wrong:
    exact binary ties (0.125 -> "0.12", Python rounds half to even), -0.0, grouping, and numpy's pairwise sums."""
    values = [0.125, 0.375, 2.5, 0.5, 1.005, 87.125, -0.0, -0.001, 1e-7, 12345.678, 999.95, 0.0625, -2.675, 1e16]
    got = page.evaluate("(vs) => vs.map((v) => [0, 1, 2, 3].map((d) => window.__sidenetsLive.math.pyFixed(v, d)))", values)
    assert got == [[f"{v:.{d}f}" for d in range(4)] for v in values]
    rng = np.random.default_rng(0)
    arrays = [rng.random(n) * rng.choice([1e-8, 1.0, 1e8], n) for n in (1, 2, 7, 8, 9, 15, 16, 17, 127, 128, 129, 300, 1000)]
    sums = page.evaluate("(as) => as.map((a) => window.__sidenetsLive.math.npSum(Float64Array.from(a)))",
                         [a.tolist() for a in arrays])
    assert sums == [float(np.sum(a)) for a in arrays]
    seeds = [a[:10].tolist() + [math.nan] * (i % 3) for i, a in enumerate(arrays)]
    stats = page.evaluate("(vs) => vs.map((v) => window.__sidenetsLive.math.meanStd(v.map((x) => x ?? NaN)))",
                          [[x if not math.isnan(x) else None for x in v] for v in seeds])
    for js, v in zip(stats, seeds):
        assert same_ms(js, MeanStd.of(v))
