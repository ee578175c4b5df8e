"""engine.datasets.base: carving, limits, the image pipeline's pieces and the in-memory datasets."""
import numpy as np
import pytest
import torch
from PIL import Image

from engine.datasets import base

from helpers import odd_rgba


def test_carve_is_fixed_and_disjoint():
    rest, val = base.carve(100, 10)
    assert len(rest) == 90 and len(val) == 10 and not set(rest) & set(val)
    assert np.all(np.diff(rest) > 0)  # rest sorted, val in random order
    again_rest, again_val = base.carve(100, 10)
    assert np.array_equal(val, again_val) and not np.array_equal(base.carve(100, 10, seed=1)[1], val)
    with pytest.raises(ValueError, match="cannot carve 11 from 10"):
        base.carve(10, 11)


def test_split_sizes_and_limits():
    assert base.split_sizes(9565, (6920, 872, 1821)) == [6885, 868, 1812]
    assert sum(base.split_sizes(101, (1, 1, 1))) == 101
    idx = np.arange(10, 30)
    assert np.array_equal(base.limit_train(idx, None, 0), idx) and np.array_equal(base.limit_train(idx, 50, 0), idx)
    picked = base.limit_train(idx, 5, seed=3)
    assert len(picked) == 5 and np.all(np.diff(picked) > 0) and set(picked) <= set(idx)
    assert np.array_equal(picked, base.limit_train(idx, 5, seed=3))
    assert np.array_equal(base.limit_eval(idx, 3), [10, 11, 12]) and base.limit_eval(idx, None) is idx
    for bad in (0, -1, 2.5, "3"):
        with pytest.raises(ValueError, match="limit must be a positive int or None"):
            base.check_limit(bad)


def test_pil_conversions():
    rgba = odd_rgba(5, 7, alpha=0)  # fully transparent: composited onto black
    assert base.pil_to_uint8(rgba, gray=False).sum() == 0 and base.pil_to_uint8(rgba, gray=True).shape == (1, 5, 7)
    rgb = Image.fromarray(np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3), "RGB")
    x = base.pil_to_uint8(rgb, gray=False)
    assert x.shape == (3, 5, 7) and x.dtype == torch.uint8
    assert np.array_equal(np.asarray(base.uint8_to_pil(x)), np.asarray(rgb))  # pixel for pixel
    assert base.uint8_to_pil(x[:1]).mode == "L"
    square = torch.zeros(3, 7, 7, dtype=torch.uint8)
    assert base.resize_uint8(square, 7) is square  # already at size: untouched
    assert base.resize_uint8(x, 12).shape == (3, 12, 12) and base.resize_uint8(x, 12).dtype == torch.uint8


def test_normalizer():
    norm = base.Normalizer((0.5,), (0.25,))
    assert norm.mean == (0.5,) * 3 and norm.std == (0.25,) * 3
    out = norm(torch.full((1, 2, 2), 255, dtype=torch.uint8))
    assert out.shape == (3, 2, 2) and torch.allclose(out, torch.full((3, 2, 2), 2.0))
    for mean, std in (((0.5, 0.5), (1.0,)), ((0.5,), (0.0,))):
        with pytest.raises(ValueError, match="normalize needs 1 or 3 means and positive stds"):
            base.Normalizer(mean, std)


def test_image_array_dataset():
    images = torch.randint(0, 256, (6, 1, 10, 10), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(6)
    ds = base.ImageArrayDataset(images, labels, image_size=16, normalizer=base.Normalizer((0.5,), (0.5,)), train=False)
    assert len(ds) == 6 and ds[2][0].shape == (3, 16, 16) and ds[2][1] == 2
    sub = ds.subset([4, 1])
    assert sub.labels.tolist() == [4, 1] and torch.equal(sub[0][0], ds[4][0]) and len(ds) == 6
    with pytest.raises(ValueError, match=r"images must be uint8 \(N, C, H, W\)"):
        base.ImageArrayDataset(images.float(), labels, image_size=16, normalizer=ds.normalizer, train=False)
    with pytest.raises(ValueError, match="image_size must be >= 8"):
        base.make_image_splits("x", train_images=images, train_labels=labels, test_images=images, test_labels=labels,
                               class_names=["a"] * 6, n_val=1, gray=True, image_size=4, normalize=None,
                               default_normalize=((0.5,), (0.5,)), limit=None, seed=0)


def test_text_dataset_and_preprocess():
    ds = base.TextDataset(["a", "b", "c"], [0, 1, 0])
    assert ds[1] == ("b", 1) and ds.subset([2, 0]).texts == ["c", "a"] and ds.subset([2, 0]).labels.tolist() == [0, 0]
    with pytest.raises(ValueError, match="texts and labels differ in length"):
        base.TextDataset(["a"], [0, 1])
    assert base.preprocess_text("\tgood\n") == "good"
    with pytest.raises(TypeError, match="expects a str, got int"):
        base.preprocess_text(3)
