"""engine.bench.train: the engine's training step against a plain hand-written loop (a short run)."""
import pytest
import torch

from engine.bench.train import PlainResNetWithSideNet, bench_train_step
from engine.config import TrainConfig
from engine.datasets import load_dataset
from engine.train import build_model


def test_the_plain_loop_is_the_same_network():
    torch.manual_seed(0)
    cfg = TrainConfig(model="resnet18").resolved()
    model, _ = build_model(cfg, load_dataset("fashion-mnist", limit=4))
    plain = PlainResNetWithSideNet(model.mainnet.net, model.sidenets["1"]).eval()
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        main, side = model(x)
        plain_main, plain_side = plain(x)
    torch.testing.assert_close(plain_main, main)
    torch.testing.assert_close(plain_side, side[1])


@pytest.mark.slow
def test_bench_train_step_reports_each_round():
    out = bench_train_step(steps=2, rounds=2, batch_size=8)
    assert out["model"] == "resnet18" and out["steps_per_round"] == 2 and len(out["rounds"]) == 2
    for r in out["rounds"]:
        assert r["engine_img_s"] > 0 and r["plain_img_s"] > 0
        assert r["ratio"] == pytest.approx(r["engine_img_s"] / r["plain_img_s"])
    assert min(r["ratio"] for r in out["rounds"]) <= out["ratio_median"] <= max(r["ratio"] for r in out["rounds"])


def test_bench_train_takes_only_resnets():
    from engine.errors import UserError

    with pytest.raises(UserError, match="give a ResNet .* not 'efficientnet-lite0'"):
        bench_train_step(model="efficientnet-lite0")
