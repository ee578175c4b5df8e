"""A real browser (Debian's chromium driven by Playwright; no browser download) against a served app:
move theta with the slider and with the number box, see the numbers change to the engine's,
switch page (theta stays), take a screenshot."""
import time

import pytest

from engine.analysis.summary import summary_at
from explorer.formatting import pm
from explorer.screenshot import (
    CHROMIUM,
    SLIDER,
    THETA_BOX,
    browser,
    metric_value,
    serve,
    set_theta,
    wait_live,
    wait_rendered,
)
from explorer.widgets import DEFAULT_THETA

from helpers import copy_db

NO_CHROMIUM = f"{CHROMIUM} is missing: `make browser` (apt-get install chromium) to run the real-browser test"
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)]


def wait_metric(page, label: str, expected: str, timeout: float = 30.0) -> float:
    """Seconds until the metric shows ``expected``."""
    start = time.monotonic()
    while metric_value(page, label) != expected:
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{label!r} shows {metric_value(page, label)!r}, expected {expected!r}")
        time.sleep(0.02)
    return time.monotonic() - start


def test_theta_in_a_real_browser(explorer_dbs, engine_groups, tmp_path):
    db = copy_db(explorer_dbs["many"], tmp_path / "browser.duckdb")
    (cfg, runs), = [(c, rs) for c, rs in engine_groups(db) if c.has_sidenet]

    def expected(theta):
        s = summary_at(runs, theta)
        return pm(s.accuracy), pm(s.exit_fraction, digits=1)

    with serve(db, log_path=tmp_path / "server.log") as url, browser() as page:
        page.goto(url)
        wait_live(page)
        assert page.get_by_text("Trade-off: accuracy against cost").is_visible()
        acc, exit_ = expected(DEFAULT_THETA)
        wait_metric(page, "Cascade accuracy", acc)
        assert metric_value(page, "Exit fraction") == exit_

        # drag the slider to its left end (keyboard: Home) -> theta = 0, everything exits
        slider = page.locator(SLIDER).first
        slider.focus()
        slider.press("Home")
        acc, exit_ = expected(0.0)
        seconds = wait_metric(page, "Exit fraction", exit_)
        assert exit_ == "100.0% ± 0.0" and metric_value(page, "Cascade accuracy") == acc
        assert float(page.locator(THETA_BOX).first.input_value()) == 0.0  # the number box follows the slider

        # type a theta in the number box -> the slider follows and the numbers are the engine's
        set_theta(page, 0.15)
        acc, exit_ = expected(0.15)
        wait_metric(page, "Cascade accuracy", acc)
        assert metric_value(page, "Exit fraction") == exit_
        assert float(slider.input_value()) == 0.15
        print(f"browser saw the slider move reflected after {seconds:.2f} s")

        page.screenshot(path=str(tmp_path / "tradeoff.png"))
        assert (tmp_path / "tradeoff.png").stat().st_size > 20_000

        # another page: theta is kept, the sidebar still names the DB
        page.get_by_role("link", name="Calibration").click()
        wait_live(page)
        assert page.get_by_text("Reliability: SideNet vs MainNet").is_visible()
        assert float(page.locator(THETA_BOX).first.input_value()) == 0.15
        assert str(db) in page.locator('[data-testid="stSidebar"]').inner_text()
        page.screenshot(path=str(tmp_path / "calibration.png"))


def test_bad_database_in_a_real_browser(tmp_path):
    bad = tmp_path / "bad.duckdb"
    bad.write_text("not a database\n")
    with serve(bad, log_path=tmp_path / "server.log") as url, browser() as page:
        page.goto(url)
        wait_rendered(page)
        alert = page.locator('[data-testid="stAlert"]').first
        assert "Cannot read the database" in alert.inner_text()
        page.screenshot(path=str(tmp_path / "bad.png"))


def test_a_page_opened_first_by_its_url_gets_the_apps_navigation(explorer_dbs, tmp_path):
    """On a fresh `streamlit run explorer/app.py`, opening /train before any other page must still
    go through the entry (its st.navigation, sidebar, wide layout), not Streamlit's legacy
    pages/-folder mode (the pages live in explorer/views/ for that reason)."""
    with serve(explorer_dbs["many"], log_path=tmp_path / "server.log") as url, browser() as page:
        page.goto(f"{url}/train")
        wait_rendered(page)
        nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
        assert "Trade-off" in nav and "tradeoff" not in nav
        assert page.locator("h1").first.inner_text() == "Train"
        assert "complete runs" in page.locator('[data-testid="stSidebar"]').inner_text()
