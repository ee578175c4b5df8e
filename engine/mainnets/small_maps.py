"""Convolutions on tiny feature maps as one matrix product, for training on the CPU.

At 32 px the paper's ResNet stem leaves layer4 a 2x2 map. There oneDNN's bf16 convolution backward
takes 4-6x its forward (~80 ms per 512->512 conv at batch 128 on a 2-core AMX CPU); the same
convolution written as unfold + one GEMM trains 2-3x faster (`python -m engine bench epochs`
prints the epoch time with and without). Same parameters, same state_dict, same results up to
float rounding; only the CPU, only with gradients on, only for outputs of <= MAX_POSITIONS
positions: inference (the cascade, latency) and CUDA keep the native kernels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MAX_POSITIONS = 4  # output maps of at most 2x2


def conv2d_as_gemm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, int],
                   padding: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) conv (O, C, kh, kw) -> (B, O, Ho, Wo) in channels_last, as (B*Ho*Wo, C*kh*kw) @ (C*kh*kw, O)."""
    b = x.shape[0]
    o, _, kh, kw = weight.shape
    ho = (x.shape[2] + 2 * padding[0] - kh) // stride[0] + 1
    wo = (x.shape[3] + 2 * padding[1] - kw) // stride[1] + 1
    cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)  # (B, C*kh*kw, Ho*Wo)
    y = cols.transpose(1, 2).reshape(b * ho * wo, -1) @ weight.reshape(o, -1).t()
    if bias is not None:
        y = y + bias
    return y.view(b, ho, wo, o).permute(0, 3, 1, 2)


class SmallMapConv2d(nn.Conv2d):
    """An nn.Conv2d that trains as one GEMM on the CPU when its output map is tiny."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if (x.device.type == "cpu" and torch.is_grad_enabled() and weight.requires_grad and self.groups == 1
                and self.dilation == (1, 1) and self.padding_mode == "zeros" and isinstance(self.padding, tuple)):
            ho = (x.shape[2] + 2 * self.padding[0] - self.kernel_size[0]) // self.stride[0] + 1
            wo = (x.shape[3] + 2 * self.padding[1] - self.kernel_size[1]) // self.stride[1] + 1
            if ho * wo <= MAX_POSITIONS:
                return conv2d_as_gemm(x, weight, bias, self.stride, self.padding)
        return super()._conv_forward(x, weight, bias)


def use_small_map_convs(module: nn.Module, on: bool = True) -> nn.Module:
    """Every plain nn.Conv2d in `module` becomes a SmallMapConv2d, or back with on=False (in place:
    the same parameters)."""
    for m in module.modules():
        if type(m) in (nn.Conv2d, SmallMapConv2d):
            m.__class__ = SmallMapConv2d if on else nn.Conv2d
    return module
