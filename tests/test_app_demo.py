"""The live-demo page driven headless with Streamlit's AppTest, on the real smoke runs.

AppTest (Streamlit 1.67) drives st.file_uploader (`set_value((name, bytes, mime))`), so uploads
are tested through the page itself; the byte-level cases are also tested in test_demo.py.
"""
from __future__ import annotations

import duckdb
import pytest
from PIL import Image

from engine.runtime import demo as D

from helpers import REPO, by_prefix, copy_db, odd_rgba, png_bytes, texts

PAGE = str(REPO / "explorer" / "views" / "demo.py")
TIMEOUT = 300  # loading a model on a busy 2-core CPU

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def page(smoke_runs, monkeypatch):
    from streamlit.testing.v1 import AppTest

    store, runs = smoke_runs
    monkeypatch.setenv("SIDENETS_DB", str(store.path))

    def open_page(kind: str):
        at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
        at.run()
        assert not at.exception, at.exception
        at.selectbox(key="demo_run").set_value(D.run_label(store.get_run(runs[kind]), store)).run()
        assert not at.exception, at.exception
        return at

    return open_page


def _assert_result(at):
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 1
    decision = texts(at.success) + texts(at.info)
    assert "Exit." in decision or "Deferred." in decision
    labels = {m.label: m.value for m in at.metric}
    assert labels["Answered by"].startswith(("SideNet", "MainNet"))
    assert labels["Time of the path taken"].endswith("ms")


def test_gallery_image_and_ask_the_mainnet(page, smoke_runs):
    at = page("image")
    _assert_result(at)
    assert len(at.get("image")) >= 2  # the gallery and the input are shown as images
    by_prefix(at.selectbox, "demo_pick_image_").set_value(3).run()
    _assert_result(at)
    slider = by_prefix(at.slider, "demo_theta_")
    slider.set_value(0.0).run()  # everything exits: the MainNet's answer is on request
    _assert_result(at)
    assert "Exit." in texts(at.success)
    assert "MainNet's answer" not in texts(at.markdown)
    at.button(key="demo_ask_main").click().run()
    assert not at.exception
    assert "MainNet's answer" in texts(at.markdown)
    slider.set_value(1.0).run()  # nothing exits: the MainNet answered already
    _assert_result(at)
    assert "Deferred." in texts(at.info) and "MainNet's answer" in texts(at.markdown)


def test_uploaded_images(page):
    at = page("image")
    at.radio(key="demo_source_image").set_value("Upload an image").run()
    assert not at.exception and "Upload an image" in texts(at.info)
    rgba = odd_rgba(alpha=None)
    at.file_uploader(key="demo_upload").set_value(("odd size.png", png_bytes(rgba), "image/png")).run()
    _assert_result(at)
    gray = Image.new("L", (1000, 700), 90)
    at.file_uploader(key="demo_upload").set_value(("gray.jpg", png_bytes(gray, "JPEG"), "image/jpeg")).run()
    _assert_result(at)


@pytest.mark.parametrize("name, payload, message", [
    ("corrupt.png", png_bytes(Image.new("RGB", (64, 64)))[:70], "corrupt or truncated"),
    ("notes.png", b"this is not an image at all", "not a readable PNG or JPEG"),
    ("huge.png", png_bytes(Image.new("L", (8000, 5001))), "megapixels"),
])
def test_bad_uploads_give_a_message(page, name, payload, message):
    at = page("image")
    at.radio(key="demo_source_image").set_value("Upload an image").run()
    at.file_uploader(key="demo_upload").set_value((name, payload, "image/png")).run()
    assert not at.exception, at.exception
    errors = texts(at.error)
    assert "Cannot use this file" in errors and message in errors
    assert len(at.get("plotly_chart")) == 0


def test_text_gallery_and_typed_sentences(page):
    at = page("text")
    _assert_result(at)  # the first test sentence
    assert by_prefix(at.radio, "demo_pick_text_").options  # sentences shown as text
    at.radio(key="exit_rule").set_value("margin").run()  # the demo's cascade follows the exit rule
    _assert_result(at)
    assert by_prefix(at.slider, "demo_theta_").key.endswith("_margin")
    at.radio(key="demo_source_text").set_value("Type a sentence").run()
    assert not at.exception and "empty" in texts(at.info)  # nothing typed yet
    at.text_area(key="demo_text").input("a gripping, beautifully acted and moving film").run()
    _assert_result(at)
    at.text_area(key="demo_text").input("   ").run()
    assert not at.exception and "empty" in texts(at.info) and len(at.get("plotly_chart")) == 0
    at.text_area(key="demo_text").input("a dull, tedious and overlong mess of a movie " * 60).run()
    _assert_result(at)
    assert "truncated" in texts(at.warning)


def test_missing_checkpoint_and_empty_cache(smoke_runs, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    store, runs = smoke_runs
    copy = copy_db(store.path, tmp_path / "copy.duckdb")
    con = duckdb.connect(str(copy))
    con.execute("UPDATE runs SET checkpoint = ? WHERE run_id = ?",
                [str(tmp_path / "deleted.safetensors"), runs["image"]])
    con.close()
    monkeypatch.setenv("SIDENETS_DB", str(copy))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    missing = next(o for o in at.selectbox(key="demo_run").options if runs["image"] in o)
    assert "(no checkpoint)" in missing
    at.selectbox(key="demo_run").set_value(missing).run()
    assert not at.exception and "checkpoint" in texts(at.error) and "missing" in texts(at.error)

    monkeypatch.setenv("SIDENETS_DB", str(tmp_path / "nothing-here.duckdb"))
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()  # the explorer's shared empty state
    assert not at.exception and "No database at" in texts(at.error)
    assert any("make run" in m.value for m in at.markdown)


def test_demo_page_inside_the_explorer(smoke_runs, open_app):
    """The page as the explorer registers it (st.navigation in explorer/app.py)."""
    store, runs = smoke_runs
    at = open_app(store.path, "views/demo.py", timeout=TIMEOUT)
    assert not at.exception, at.exception
    at.selectbox(key="demo_run").set_value(D.run_label(store.get_run(runs["image"]), store)).run()
    _assert_result(at)
