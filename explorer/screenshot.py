"""Serve the explorer and drive it with a real browser (Debian's chromium through Playwright).

    python -m explorer.screenshot --db data/sidenets.duckdb --out docs/tradeoff.png [--theta 0.9]

Used by tests/test_browser*.py, `python -m explorer.bench --browser` and to make the README's
screenshot. Never downloads a browser: it drives /usr/bin/chromium (apt) with Playwright's
``executable_path``.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from engine import paths

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SLIDER = '[data-testid="liveThetaSlider"]'  # the live θ control (explorer/components/live_theta.py)
THETA_BOX = '[data-testid="liveThetaBox"]'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(db: str | os.PathLike, port: int | None = None, timeout: float = 90.0, log_path: Path | None = None):
    """Start the app on 127.0.0.1 with SIDENETS_DB=db, the way `make run` does
    (`python -m explorer.serve`); yield its URL."""
    port = port or free_port()
    env = {**os.environ, "SIDENETS_DB": str(db), "PYTHONUNBUFFERED": "1"}
    log_path = log_path or Path(tempfile.mkstemp(prefix="sidenets-serve-", suffix=".log")[1])
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "explorer.serve", "--address", "127.0.0.1", "--port", str(port)],
                                cwd=str(paths.REPO), env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"the app did not start (exit {proc.poll()}):\n{log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def browser(width: int = 1400, height: int = 1000):
    """A Playwright page in Debian's chromium (no browser download)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b.new_page(viewport={"width": width, "height": height})
        finally:
            b.close()


def wait_rendered(page, timeout: float = 90.0, settle: int = 4) -> None:
    """Until the app has run and every lazily loaded element is drawn (no skeleton, no spinner)
    for ``settle`` polls in a row (a fresh page paints placeholders first)."""
    end, stable = time.monotonic() + timeout, 0
    while time.monotonic() < end:
        ok = page.evaluate("""() => document.querySelectorAll('[data-testid=stSkeleton]').length == 0
            && !document.querySelector('[data-testid=stStatusWidget]')
            && document.querySelectorAll('[data-testid=stElementContainer]').length > 3""")
        stable = stable + 1 if ok else 0
        if stable >= settle:
            return
        time.sleep(0.25)
    raise TimeoutError("the app did not finish rendering")


def wait_live(page, timeout: float = 90.0) -> None:
    """Until the page is rendered and its live θ control has its data, numbers and chart drawn."""
    wait_rendered(page, timeout)
    page.wait_for_function("""() => { const e = document.querySelector('[data-testid=liveTheta]');
        return e && e.dataset.agrees !== undefined
            && (e.querySelector('.snl-chart').hidden || !!e.querySelector('.snl-chart .main-svg')
                || !!e.querySelector('.snl-chart').textContent); }""",
                           timeout=timeout * 1000)


def metric_value(page, label: str) -> str:
    """The value text of the metric whose label is ``label``: an st.metric or a card of the live θ control."""
    box = page.locator('[data-testid="stMetric"], [data-testid="liveMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"], [data-testid="liveMetricLabel"]', has_text=label)).first
    return box.locator('[data-testid="stMetricValue"], [data-testid="liveMetricValue"]').inner_text().strip()


def set_theta(page, theta: float) -> None:
    """Type θ into the live control's number box and press Enter."""
    box = page.locator(THETA_BOX).first
    box.fill(f"{theta:.3f}")
    box.press("Enter")
    box.blur()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m explorer.screenshot", description=__doc__.split("\n")[0])
    p.add_argument("--db", required=True), p.add_argument("--out", required=True)
    p.add_argument("--page", default="", help="URL path of the page (default: the trade-off page)")
    p.add_argument("--theta", type=float, help="set θ first (with the number box)")
    p.add_argument("--width", type=int, default=1400), p.add_argument("--height", type=int, default=1650)
    args = p.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"error: {CHROMIUM} is missing (apt-get install chromium)", file=sys.stderr)
        return 2
    with serve(args.db) as url, browser(args.width, args.height) as page:
        page.goto(f"{url}/{args.page}")
        (wait_live if args.page in ("", "calibration", "ensemble") else wait_rendered)(page)
        if args.theta is not None:
            set_theta(page, args.theta)
            time.sleep(1.0)
            wait_live(page)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
