"""A MainNet with its SideNets: one module to train, checkpoint and evaluate."""
from __future__ import annotations

import torch
from torch import nn

from engine.mainnets import MainNet
from engine.sidenet import SideNet


class SideNetModel(nn.Module):
    """mainnet + one SideNet per attach point k (paper 3.3: several may train in parallel).

    forward(x) -> (main_logits (B, C) or None when the MainNet is frozen and only SideNets
    train, {k: side_logits (B, C)}).
    """

    def __init__(self, mainnet: MainNet, attach: list[int], num_classes: int, example_input,
                 hidden: int = 32, order: str = "linear-bn-relu"):
        super().__init__()
        self.mainnet, self.attach = mainnet, sorted(attach)
        self.sidenets = nn.ModuleDict({
            str(k): SideNet(mainnet.side_in_features(k, example_input), num_classes, hidden, order)
            for k in self.attach})
        self.main_frozen = False

    def freeze_mainnet(self) -> None:
        """Frozen mode: no gradients AND eval-mode BatchNorm statistics in the MainNet."""
        self.main_frozen = True
        self.mainnet.requires_grad_(False)
        self.mainnet.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.main_frozen:
            self.mainnet.eval()
        return self

    def forward(self, x, need_main: bool = True):
        skip_rest = self.main_frozen and not need_main
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.main_frozen):
            main, taps = self.mainnet.forward_taps(x, self.attach, stop_after_last=skip_rest)
        side = {k: self.sidenets[str(k)](self.mainnet.side_features(taps[k])) for k in self.attach}
        return main, side
