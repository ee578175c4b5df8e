"""engine.batches: in-memory image batches and their augmentation (TrainConfig.augment), on real images."""
import pytest
import torch

from engine.batches import FeatureBatches, ImageBatches, augment, batches_for
from engine.datasets import load_dataset
from engine.paths import data_dir

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def split():
    if not (data_dir() / "fashion-mnist").is_dir():
        pytest.skip("data/fashion-mnist missing: run `make setup` first")
    return load_dataset("fashion-mnist", limit=64).train


def _epoch(batches: ImageBatches, seed: int = 0, train: bool = True) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.cat([x for x, _ in batches.iterate(16, generator=gen, train=train)])


def test_flip_only_mirrors_some_images_and_crops_none(split):
    plain = _epoch(ImageBatches(split, CPU), train=False)
    flipped = _epoch(ImageBatches(split, CPU, "flip"))
    same = [torch.equal(a, b) for a, b in zip(flipped, plain)]
    mirrored = [torch.equal(a, b.flip(-1)) for a, b in zip(flipped, plain)]
    assert all(s or m for s, m in zip(same, mirrored))  # every image is itself or its mirror: no shift
    assert 10 < sum(mirrored) < 54 and sum(same) > 10
    assert flipped.is_contiguous(memory_format=torch.channels_last)


def test_none_is_the_evaluation_pipeline_and_crop_flip_shifts(split):
    plain = _epoch(ImageBatches(split, CPU), train=False)
    assert torch.equal(_epoch(ImageBatches(split, CPU, "none")), plain)
    paper = _epoch(ImageBatches(split, CPU, "crop-flip"))
    shifted = [not (torch.equal(a, b) or torch.equal(a, b.flip(-1))) for a, b in zip(paper, plain)]
    assert sum(shifted) > 32  # most of the 9 x 9 offsets move the image
    assert torch.equal(paper, _epoch(ImageBatches(split, CPU, "crop-flip")))  # the seed fixes the draws
    assert batches_for(split, CPU, augment="flip").augment == "flip"


def test_augment_without_shifts_only_flips():
    x = torch.arange(2 * 1 * 3 * 3, dtype=torch.uint8).view(2, 1, 3, 3)
    out = augment(x, None, torch.tensor([True, False]))
    assert torch.equal(out[0], x[0].flip(-1)) and torch.equal(out[1], x[1])


def test_feature_batches_yield_the_dtype_asked():
    feats = {"head": torch.randn(10, 4).half(), "side1": torch.randn(10, 6).half()}
    labels = torch.arange(10)
    for dtype in (torch.float32, torch.bfloat16):
        batches = list(FeatureBatches(feats, labels, CPU, dtype).iterate(4))
        assert [len(y) for _, y in batches] == [4, 4, 2]
        assert all(x[k].dtype == dtype for x, _ in batches for k in feats)
        torch.testing.assert_close(torch.cat([x["side1"] for x, _ in batches]).float(), feats["side1"].float(),
                                   rtol=1e-2, atol=1e-2)
