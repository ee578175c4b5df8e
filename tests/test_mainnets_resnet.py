"""engine.mainnets.resnet: torchvision ResNets with the paper's stem (no max-pool) or torchvision's."""
import pytest
import torch
import torchvision

from engine.errors import UserError
from engine.mainnets.resnet import STEMS, ResNetMainNet


@pytest.fixture
def x():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("stem, side", [("paper", 16), ("torchvision", 8)])
def test_stem_sets_the_size_of_layer1(stem, side, x):
    torch.manual_seed(0)
    net = ResNetMainNet(18, 10, stem=stem).eval()
    with torch.no_grad():
        assert net.embed(x).shape == (2, 64, side, side)
        layer1 = net.trunk(x, 1)
        assert layer1.shape == (2, 64, side, side)
        assert net.side_features(layer1).shape == (2, 64 * side * side)  # what the SideNet reads
        full = net(x)
        for k in (1, 2, 3):
            assert torch.equal(net.rest(net.trunk(x, k), k), full)
    assert isinstance(net.net.maxpool, torch.nn.Identity if stem == "paper" else torch.nn.MaxPool2d)
    assert stem in STEMS


def test_the_unsplit_forward_is_torchvisions_own(x):
    """Same weights in a plain torchvision ResNet18 (max-pool removed for the paper's stem) give the
    same logits: the MainNet is torchvision's network, not a re-implementation."""
    torch.manual_seed(0)
    net = ResNetMainNet(18, 10).eval()
    plain = torchvision.models.resnet18(num_classes=10)
    plain.maxpool = torch.nn.Identity()
    plain.fc = net.net.fc
    plain.load_state_dict(net.net.state_dict())
    with torch.no_grad():
        assert torch.equal(plain.eval()(x), net(x))


@pytest.mark.slow
def test_bottleneck_resnets_read_four_times_the_channels():
    torch.manual_seed(0)
    net = ResNetMainNet(50, 10).eval()
    with torch.no_grad():
        assert net.trunk(torch.randn(1, 3, 32, 32), 1).shape == (1, 256, 16, 16)  # 65,536 SideNet inputs


def test_unknown_stem_and_offline_weights_are_user_errors(monkeypatch):
    with pytest.raises(UserError, match="unknown stem 'big' for resnet18; choose one of: paper, torchvision"):
        ResNetMainNet(18, 10, stem="big")

    def offline(weights=None):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models, "resnet34", offline)
    with pytest.raises(UserError, match="ImageNet weights for resnet34 could not be downloaded"):
        ResNetMainNet(34, 10, pretrained=True)
