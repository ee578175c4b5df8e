"""torchvision ResNets (18/34/50/152) as MainNets; blocks are layer1..layer4."""
from __future__ import annotations

import torch
import torchvision
from torch import nn

from engine.errors import UserError
from engine.mainnets.base import MainNet
from engine.sidenet import SideNet

DEPTHS = (18, 34, 50, 152)


class ResNetMainNet(MainNet):
    family = "resnet"
    attach_prefix = "layer"
    num_blocks = 4
    default_attach = 1

    def __init__(self, depth: int, num_classes: int, hidden: int = 32, order: str = "linear-bn-relu",
                 pretrained: bool = False):
        super().__init__()
        self.family = f"resnet{depth}"
        builder = getattr(torchvision.models, f"resnet{depth}")
        weights = "IMAGENET1K_V1" if pretrained else None
        try:
            self.net = builder(weights=weights)
        except (OSError, RuntimeError) as err:  # URLError is an OSError
            raise UserError(f"ImageNet weights for resnet{depth} could not be downloaded ({err.__class__.__name__}); "
                            "offline, drop --pretrained (train from scratch) or use --model efficientnet-lite0") from err
        # The paper replaces the 1000-way fc by a head shaped like a SideNet.
        self.net.fc = SideNet(self.net.fc.in_features, num_classes, hidden, order)
        self._layers = [self.net.layer1, self.net.layer2, self.net.layer3, self.net.layer4]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 64, H/4, W/4)."""
        n = self.net
        return n.maxpool(n.relu(n.bn1(n.conv1(x))))

    def blocks(self, state: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        for layer in self._layers[start:stop]:
            state = layer(state)
        return state

    def head(self, state: torch.Tensor) -> torch.Tensor:
        return self.net.fc(torch.flatten(self.net.avgpool(state), 1))

    def side_features(self, state: torch.Tensor) -> torch.Tensor:
        return torch.flatten(state, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The unsplit torchvision forward, (B, 3, H, W) -> (B, C)."""
        return self.net(x)


def build(name: str, num_classes: int, hidden: int, order: str, pretrained: bool) -> ResNetMainNet:
    return ResNetMainNet(int(name.removeprefix("resnet")), num_classes, hidden, order, pretrained)
