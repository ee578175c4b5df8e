"""The demo's engine side: decoding uploads, text limits, one input through the cascade."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from engine.errors import UserError
from engine.runtime import demo as D
from engine.runtime.cascade import load_cascade

from helpers import odd_rgba, png_bytes

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def image_run(smoke_runs):
    """(a fresh Cascade at theta 0.5, data, collate, run) of the smoke image run."""
    store, runs = smoke_runs
    return load_cascade(store, runs["image"], theta=0.5)


@pytest.fixture
def text_run(smoke_runs):
    store, runs = smoke_runs
    return load_cascade(store, runs["text"], theta=0.5)


# ----------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("make", [
    lambda: png_bytes(odd_rgba()),  # odd size, RGBA
    lambda: png_bytes(Image.new("L", (1, 1), 128)),  # one grey pixel
    lambda: png_bytes(Image.new("RGB", (640, 480), (200, 10, 10)), "JPEG", quality=80),
    lambda: png_bytes(Image.new("L", (300, 20), 30), "JPEG"),  # grayscale JPEG, extreme aspect
    lambda: png_bytes(Image.new("P", (20, 20))),  # palette
    lambda: png_bytes(Image.new("CMYK", (40, 30), (0, 255, 255, 0)), "JPEG"),
])
def test_decode_accepts_any_png_or_jpeg(make, image_run):
    cascade, data, collate, _ = image_run
    img = D.decode_image(make())
    x = D.to_batch(img, data, collate, "cpu")
    assert x.shape == (1, 3, data.image_size, data.image_size) and torch.isfinite(x).all()


def test_sixteen_bit_png_is_scaled_not_clipped():
    arr = np.full((10, 10), 32768, dtype=np.uint16)  # mid-grey in 16 bits
    img = D.decode_image(png_bytes(Image.fromarray(arr)))
    assert img.mode == "L" and np.asarray(img).max() == 128


def test_upload_converted_exactly_like_the_dataset(image_run):
    cascade, data, collate, _ = image_run
    raw = data.raw_test(3)
    img = D.decode_image(png_bytes(raw))  # the test image, saved and uploaded as a PNG
    torch.testing.assert_close(D.to_batch(img, data, collate, "cpu")[0], data.test[3][0], rtol=0, atol=0)


@pytest.mark.parametrize("payload, message", [
    (b"", "empty"),
    (b"hello, this is a text file, not a picture", "not a readable PNG or JPEG"),
    (png_bytes(Image.new("RGB", (64, 64)))[:60], "corrupt or truncated"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, "not a readable"),
    (png_bytes(Image.new("RGB", (8, 8)), "GIF"), "upload a PNG or JPEG"),
    (png_bytes(Image.new("RGB", (8, 8)), "BMP"), "upload a PNG or JPEG"),
])
def test_decode_refuses_bad_files_with_a_message(payload, message):
    with pytest.raises(UserError, match=message):
        D.decode_image(payload)


def test_truncated_jpeg_refused():
    data = png_bytes(Image.fromarray(np.random.default_rng(1).integers(0, 256, (200, 200, 3), dtype=np.uint8)), "JPEG")
    with pytest.raises(UserError, match="corrupt or truncated"):
        D.decode_image(data[: len(data) // 2])


def test_huge_images_refused_before_decoding():
    big = png_bytes(Image.new("L", (8000, 5001)))  # 40.0 MP + a row: a small file, a huge image
    assert len(big) < D.MAX_UPLOAD_BYTES
    with pytest.raises(UserError, match="megapixels"):
        D.decode_image(big)
    with pytest.raises(UserError, match="MB"):
        D.decode_image(b"\x89PNG" + b"\x00" * (D.MAX_UPLOAD_BYTES + 1))
    with pytest.raises(UserError, match="megapixels"):
        D.decode_image(png_bytes(Image.new("L", (20, 20))), max_pixels=100)


# ----------------------------------------------------------------------------- text


def test_prepare_text(text_run):
    cascade, data, collate, _ = text_run
    tok, max_tokens = cascade.net.tokenizer, cascade.net.max_length
    for empty in ("", "   \n\t "):
        with pytest.raises(UserError, match="empty"):
            D.prepare_text(empty, tok, max_tokens)
    short = D.prepare_text("  a gripping film  ", tok, max_tokens)
    assert short.text == "a gripping film" and not short.truncated and short.notice is None
    long = D.prepare_text("what a wonderful film " * 200, tok, max_tokens)
    assert long.truncated and "truncated" in long.notice and str(max_tokens) in long.notice
    assert long.n_tokens > max_tokens and 0 < len(long.kept_text) < len(long.text)
    huge = D.prepare_text("x" * (D.MAX_TEXT_CHARS + 10), tok, max_tokens)
    assert len(huge.text) == D.MAX_TEXT_CHARS and "characters" in huge.notice
    x = D.to_batch(long.text, data, collate, "cpu")  # the collate truncates to the model's max tokens
    assert x["input_ids"].shape == (1, max_tokens)
    result = D.run_single(cascade, x, data.class_names, repeats=1)
    assert result["answer"] in data.class_names


def test_to_batch_refuses_the_wrong_kind(image_run, text_run):
    _, data, collate, _ = image_run
    with pytest.raises(UserError, match="this run classifies images; give it an image"):
        D.to_batch("a sentence", data, collate, "cpu")
    _, tdata, tcollate, _ = text_run
    for bad in (Image.new("L", (4, 4)), "   "):
        with pytest.raises(UserError, match="this run classifies sentences; give it a non-empty sentence"):
            D.to_batch(bad, tdata, tcollate, "cpu")
    with pytest.raises(UserError, match="type a sentence"):
        D.prepare_text(None, tdata, 16)


# ----------------------------------------------------------------------------- one input


@pytest.mark.parametrize("kind", ["image", "text"])
def test_run_single(kind, image_run, text_run):
    cascade, data, collate, _ = image_run if kind == "image" else text_run
    x = D.to_batch(data.raw_test(0), data, collate, "cpu")
    cascade.theta = 0.0  # exits
    r = D.run_single(cascade, x, data.class_names, repeats=2)
    assert r["exited"] and r["head"] == "SideNet" and r["main"] is None
    assert r["side_probs"].shape == (data.num_classes,) and r["side_probs"].sum() == pytest.approx(1.0)
    assert r["side_conf"] == pytest.approx(r["side_probs"].max())
    assert r["answer"] == data.class_names[int(np.argmax(r["side_probs"]))]
    assert r["path_ms"] > 0 and r["full_ms"] > 0 and r["speedup"] == pytest.approx(r["full_ms"] / r["path_ms"])
    assert r["attach"] == cascade.attach_name and r["theta"] == 0.0
    main = D.main_answer(cascade, x, data.class_names)
    with torch.inference_mode():
        want = cascade.model.mainnet(x).argmax(1).item()
    assert main["pred"] == want and main["answer"] == data.class_names[want]
    cascade.theta = 1.0  # defers: the MainNet's answer comes with it
    r = D.run_single(cascade, x, data.class_names, timing=False)
    assert not r["exited"] and r["head"] == "MainNet" and r["main"]["pred"] == want == r["pred"]
    assert r["main"]["conf"] == pytest.approx(r["main"]["probs"].max()) and "path_ms" not in r


def test_gallery_and_model_view(image_run, text_run):
    _, data, collate, _ = image_run
    items = D.gallery(data, 0, 5)
    assert [i for i, _, _ in items] == list(range(5))
    assert all(isinstance(img, Image.Image) and label in data.class_names for _, img, label in items)
    assert len(D.gallery(data, len(data.test) - 2, 12)) == 2
    view = D.model_view(D.to_batch(items[0][1], data, collate, "cpu"), data)
    assert view.size == (data.image_size, data.image_size) and view.mode == "RGB"
    _, tdata, _, _ = text_run
    assert all(isinstance(s, str) and s for _, s, _ in D.gallery(tdata, 0, 3))


def test_checkpoint_problem_and_run_label(smoke_runs, tmp_path):
    store, runs = smoke_runs
    run = store.get_run(runs["image"])
    assert D.checkpoint_problem(run, store) is None
    assert not run["checkpoint"].startswith("/")  # stored relative to the DB's folder
    assert D.run_label(run, store) == f"resnet18 on fashion-mnist @ layer1 · {run['run_id']}"
    assert "missing" in D.checkpoint_problem({**run, "checkpoint": str(tmp_path / "gone.safetensors")}, store)
    assert "missing" in D.checkpoint_problem({**run, "checkpoint": "checkpoints/gone.safetensors"}, store)
    assert "no checkpoint" in D.checkpoint_problem({**run, "checkpoint": None}, store)
    assert "MainNet-only" in D.checkpoint_problem({**run, "attach": []}, store)
    assert D.run_label({**run, "checkpoint": str(tmp_path / "gone")}, store).endswith("  (no checkpoint)")
    assert "@ no SideNet" in D.run_label({**run, "attach": []}, store)


def test_probabilities():
    probs = D.probabilities(torch.tensor([0.0, 1.0, 2.0]))
    assert probs.dtype == np.float64 and probs.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(probs, np.exp([0, 1, 2]) / np.exp([0, 1, 2]).sum())


def test_slider_default():
    assert D.slider_default(None) == 0.9
    assert D.slider_default({"theta": 0.15413712}) == 0.154
    assert D.slider_default({"theta": 1.0}) == 1.0
    assert D.slider_default({"theta": 0.999999}) == 0.999
    assert D.slider_default({"theta": 0.0}) == 0.0
