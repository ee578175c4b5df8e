"""engine.mainnets.small_maps: ResNet convolutions on tiny maps as one GEMM while training on the CPU."""
import pytest
import torch
from torch import nn

from engine.mainnets.resnet import ResNetMainNet
from engine.mainnets.small_maps import SmallMapConv2d, conv2d_as_gemm, use_small_map_convs


@pytest.mark.parametrize("cin,cout,k,stride,pad,size,bias", [
    (16, 24, 3, 1, 1, 2, False),   # layer4's 3x3 convs on a 2x2 map
    (8, 16, 3, 2, 1, 4, True),     # its first conv: 4x4 -> 2x2, stride 2
    (8, 16, 1, 2, 0, 4, False),    # its 1x1 stride-2 downsample
    (4, 6, 3, 1, 1, 1, True),      # a 1x1 map
])
def test_gemm_matches_conv2d_values_and_gradients(cin, cout, k, stride, pad, size, bias):
    torch.manual_seed(0)
    x = torch.randn(5, cin, size, size, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    conv = nn.Conv2d(cin, cout, k, stride, pad, bias=bias).double()
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    ref = conv(x1)
    out = conv2d_as_gemm(x2, conv.weight, conv.bias, conv.stride, conv.padding)
    assert out.shape == ref.shape and out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(ref)
    (wg_ref, xg_ref) = torch.autograd.grad(ref, (conv.weight, x1), g)
    (wg, xg) = torch.autograd.grad(out, (conv.weight, x2), g)
    torch.testing.assert_close(wg, wg_ref)
    torch.testing.assert_close(xg, xg_ref)


def test_the_gemm_path_runs_only_when_training_on_small_maps(monkeypatch):
    calls = []
    import engine.mainnets.small_maps as sm
    real = sm.conv2d_as_gemm
    monkeypatch.setattr(sm, "conv2d_as_gemm", lambda *a: calls.append(a[0].shape) or real(*a))
    conv = use_small_map_convs(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1)))[0]
    assert type(conv) is SmallMapConv2d
    conv(torch.randn(2, 4, 2, 2))            # training, a 2x2 output: one GEMM
    conv(torch.randn(2, 4, 3, 3))            # a 3x3 output: the native kernel
    with torch.no_grad():
        conv(torch.randn(2, 4, 2, 2))        # inference (the cascade, latency): native
    conv.weight.requires_grad_(False)
    conv(torch.randn(2, 4, 2, 2))            # a frozen backbone: native
    assert calls == [torch.Size([2, 4, 2, 2])]


def test_resnet_uses_small_map_convs_with_an_unchanged_state_dict():
    net = ResNetMainNet(18, 10)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(type(m) is SmallMapConv2d for m in convs)
    keys = set(net.state_dict())
    use_small_map_convs(net, on=False)
    assert all(type(m) is nn.Conv2d for m in net.modules() if isinstance(m, nn.Conv2d))
    assert set(net.state_dict()) == keys
    # the same weights give the same training-mode logits either way (up to float rounding)
    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32)
    net.train()
    native = net(x)
    use_small_map_convs(net)
    torch.testing.assert_close(net(x), native, rtol=1e-4, atol=1e-4)
