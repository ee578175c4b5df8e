"""torchvision ResNets (18/34/50/152) as MainNets; blocks are layer1..layer4.

Stems (`TrainConfig.stem`):
- "paper" (default): conv1 (7x7, stride 2) + bn + relu, no max-pool, as in the paper's Listing 1:
  at 32 px layer1 runs at 16x16, so ResNet50's SideNet reads 256x16x16 = 65,536 features;
- "torchvision": the ImageNet stem with its 3x3 stride-2 max-pool (layer1 at 8x8 for 32 px,
  4x fewer SideNet inputs, a quarter of the MACs).
The unsplit forward is torchvision's own (its max-pool replaced by an identity for "paper").
"""
from __future__ import annotations

import torch
import torchvision
from torch import nn

from engine.errors import UserError
from engine.mainnets import register
from engine.mainnets.base import MainNet, MainNetSpec
from engine.mainnets.small_maps import use_small_map_convs
from engine.sidenet import SideNet

DEPTHS = (18, 34, 50, 152)
STEMS = ("paper", "torchvision")


class ResNetMainNet(MainNet):
    attach_prefix = "layer"
    num_blocks = 4
    default_attach = 1

    def __init__(self, depth: int, num_classes: int, hidden: int = 32, order: str = "linear-bn-relu",
                 pretrained: bool = False, stem: str = "paper"):
        super().__init__()
        if stem not in STEMS:
            raise UserError(f"unknown stem {stem!r} for resnet{depth}; choose one of: {', '.join(STEMS)}")
        self.family, self.stem = f"resnet{depth}", stem
        builder = getattr(torchvision.models, f"resnet{depth}")
        try:
            self.net = builder(weights="IMAGENET1K_V1" if pretrained else None)
        except (OSError, RuntimeError) as err:  # URLError is an OSError
            raise UserError(f"ImageNet weights for resnet{depth} could not be downloaded ({err.__class__.__name__}); "
                            "offline, drop --pretrained (train from scratch) or use --model efficientnet-lite0") from err
        if stem == "paper":
            self.net.maxpool = nn.Identity()
        # The paper replaces the 1000-way fc by a head shaped like a SideNet.
        self.net.fc = SideNet(self.net.fc.in_features, num_classes, hidden, order)
        self._layers = [self.net.layer1, self.net.layer2, self.net.layer3, self.net.layer4]
        use_small_map_convs(self.net)  # layer4's 2x2 maps train 2-3x faster on the CPU as GEMMs

    @property
    def classifier(self) -> nn.Module:
        return self.net.fc

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 64, H/2, W/2) with the paper's stem, (B, 64, H/4, W/4) with torchvision's."""
        n = self.net
        return n.maxpool(n.relu(n.bn1(n.conv1(x))))

    def blocks(self, state: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        for layer in self._layers[start:stop]:
            state = layer(state)
        return state

    def pool(self, state: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.net.avgpool(state), 1)

    def side_features(self, state: torch.Tensor) -> torch.Tensor:
        return torch.flatten(state, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The unsplit torchvision forward, (B, 3, H, W) -> (B, C)."""
        return self.net(x)


def _builder(depth: int):
    def build(cfg, num_classes: int) -> ResNetMainNet:
        return ResNetMainNet(depth, num_classes, cfg.sidenet_hidden, cfg.sidenet_order, bool(cfg.pretrained), cfg.stem)
    return build


for _depth in DEPTHS:
    register(MainNetSpec(
        name=f"resnet{_depth}", kind="image", attach_prefix="layer", build=_builder(_depth), num_blocks=4,
        default_attach=1, pretrained="online", default_pretrained=False, image_size=32, stems=STEMS,
        notes="torchvision ResNet; ImageNet weights need internet (--pretrained), offline it trains from scratch"))
