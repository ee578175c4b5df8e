"""A MainNet with its SideNets: one module to train, checkpoint and evaluate."""
from __future__ import annotations

import torch
from torch import nn

from engine.mainnets import MainNet
from engine.sidenet import SideNet


class SideNetModel(nn.Module):
    """mainnet + one SideNet per attach point k (paper 3.3: several may train in parallel).

    forward(x) -> (main_logits (B, C) or None, {k: side_logits (B, C)}).
    forward_features(feats) does the same from cached features {"side<k>": (B, F_k), "head": (B, F)}
    (engine.features): the frozen backbone is skipped, the heads are the same modules.

    freeze("frozen"): the whole MainNet is fixed (no gradients, eval-mode BatchNorm); only the
    SideNets train. freeze("head"): the backbone is fixed, its final classifier and the SideNets train.
    """

    def __init__(self, mainnet: MainNet, attach: list[int], num_classes: int, example_input,
                 hidden: int = 32, order: str = "linear-bn-relu"):
        super().__init__()
        self.mainnet, self.attach = mainnet, sorted(attach)
        self.sidenets = nn.ModuleDict({
            str(k): SideNet(mainnet.side_in_features(k, example_input), num_classes, hidden, order)
            for k in self.attach})
        self.frozen: str | None = None

    def freeze(self, mode: str) -> None:
        """mode "frozen" (the MainNet whole) or "head" (the MainNet but its classifier)."""
        self.frozen = mode
        self.mainnet.requires_grad_(False)
        if mode == "head":
            self.mainnet.classifier.requires_grad_(True)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen == "frozen":
            self.mainnet.eval()
        elif self.frozen == "head":
            self.mainnet.eval()
            self.mainnet.classifier.train(mode)
        return self

    def trained_state(self) -> dict[str, torch.Tensor]:
        """The weights training changed: all of them, or only the heads when the backbone is frozen
        (a checkpoint then names its backbone: the pretrained weights or the --init-from run)."""
        state = self.state_dict()
        if self.frozen is None:
            return state
        keep = ("sidenets.",) + (("mainnet." + classifier_prefix(self.mainnet),) if self.frozen == "head" else ())
        return {k: v for k, v in state.items() if k.startswith(keep)}

    def forward(self, x, need_main: bool = True):
        skip_rest = self.frozen == "frozen" and not need_main
        main, taps = self.mainnet.forward_taps(x, self.attach, stop_after_last=skip_rest)
        side = {k: self.sidenets[str(k)](self.mainnet.side_features(taps[k])) for k in self.attach}
        return main, side

    def forward_features(self, feats: dict[str, torch.Tensor], need_main: bool = True):
        """The heads on cached features: (main logits or None, {k: side logits})."""
        main = self.mainnet.classifier(feats["head"]) if need_main else None
        side = {k: self.sidenets[str(k)](feats[f"side{k}"]) for k in self.attach}
        return main, side


def classifier_prefix(mainnet: MainNet) -> str:
    """The classifier's attribute path inside the MainNet, e.g. "net.fc." or "head_net."."""
    for name, module in mainnet.named_modules():
        if module is mainnet.classifier and name:
            return name + "."
    raise ValueError("the MainNet's classifier is not one of its modules")
