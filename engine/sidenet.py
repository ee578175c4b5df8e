"""The SideNet: a one-hidden-layer MLP read off an intermediate tensor x_c (paper 3.2)."""
from __future__ import annotations

import torch
from torch import nn

ORDERS = ("linear-bn-relu", "linear-relu-bn")


class SideNet(nn.Module):
    """features (B, in_features) -> logits (B, num_classes).

    Linear(in, hidden) -> BatchNorm1d -> ReLU -> Linear(hidden, out) (the paper's section 4 text);
    order="linear-relu-bn" gives its Appendix B listing instead. A binary task gets one sigmoid
    logit z, returned as the two-way logits [0, z] so that softmax([0, z]) = [1 - sigmoid(z),
    sigmoid(z)] and every head is stored and scored the same way (confidence = max(p, 1 - p)).
    The same module is the MainNet's final head ("a fully connected layer with the same
    architecture as a SideNet").
    """

    def __init__(self, in_features: int, num_classes: int, hidden: int = 32, order: str = "linear-bn-relu"):
        super().__init__()
        if order not in ORDERS:
            raise ValueError(f"unknown SideNet order {order!r}; choose one of {ORDERS}")
        self.binary = num_classes == 2
        middle = [nn.BatchNorm1d(hidden), nn.ReLU()]
        if order == "linear-relu-bn":
            middle.reverse()
        self.mlp = nn.Sequential(nn.Linear(in_features, hidden), *middle,
                                 nn.Linear(hidden, 1 if self.binary else num_classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        z = self.mlp(features)
        if self.binary:
            return torch.cat([torch.zeros_like(z), z], dim=1)
        return z
