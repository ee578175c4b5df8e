"""engine.sidenet: the SideNet MLP; a binary head is the two-way softmax of one sigmoid logit."""
import pytest
import torch

from engine.sidenet import ORDERS, SideNet


def test_binary_head_is_two_way_softmax_of_a_sigmoid():
    torch.manual_seed(0)
    head = SideNet(8, 2).eval()
    z = head(torch.randn(5, 8))
    assert z.shape == (5, 2) and torch.all(z[:, 0] == 0)
    p = torch.softmax(z, 1)[:, 1]
    assert torch.allclose(p, torch.sigmoid(z[:, 1]))
    assert head.binary and head.mlp[-1].out_features == 1


def test_layer_orders_and_shapes():
    assert [type(m).__name__ for m in SideNet(8, 10).mlp] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert [type(m).__name__ for m in SideNet(8, 10, order="linear-relu-bn").mlp] == \
        ["Linear", "ReLU", "BatchNorm1d", "Linear"]
    assert SideNet(8, 10, hidden=5).mlp[0].out_features == 5
    assert SideNet(8, 10)(torch.randn(4, 8)).shape == (4, 10)
    assert SideNet(8, 10).eval()(torch.randn(1, 8)).shape == (1, 10)  # batch of 1 in eval mode
    assert set(ORDERS) == {"linear-bn-relu", "linear-relu-bn"}
    with pytest.raises(ValueError, match="unknown SideNet order 'bn-first'"):
        SideNet(8, 10, order="bn-first")
