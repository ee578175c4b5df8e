"""Cost of each path of a cascade: parameters and MACs per input, counted, not hand-derived.

Parameters: every parameter of the modules a path actually calls (forward hooks).
MACs: torch.utils.flop_counter on a real example batch, FLOPs / 2 / batch size.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from engine.model import SideNetModel


def _count(root: nn.Module, fn, batch_size: int) -> dict:
    """Run fn() once; the parameters of the modules it called and its MACs per input."""
    called: dict[int, nn.Module] = {}
    def note(module, _args):
        called[id(module)] = module

    hooks = [m.register_forward_pre_hook(note) for m in root.modules()]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = fn()
    finally:
        for h in hooks:
            h.remove()
    params = sum(p.numel() for m in called.values() for p in m.parameters(recurse=False))
    return {"params": int(params), "macs": counter.get_total_flops() / 2 / batch_size}, out


def path_costs(model: SideNetModel, example_input, batch_size: int) -> dict[int, dict[str, dict]]:
    """{k: {"trunk"|"sidenet"|"rest"|"full": {"params", "macs"}}} for each attach point k.

    With no SideNet (mainnet-only runs) the key is 0 and only "full" is meaningful.
    """
    was = model.training
    model.eval()
    net = model.mainnet
    full, _ = _count(net, lambda: net(example_input), batch_size)
    result = {}
    for k in model.attach or [0]:
        if k == 0:
            result[0] = {"trunk": full, "sidenet": {"params": 0, "macs": 0.0}, "rest": {"params": 0, "macs": 0.0}, "full": full}
            continue
        trunk, x_c = _count(net, lambda: net.trunk(example_input, k), batch_size)
        side_net = model.sidenets[str(k)]
        side, _ = _count(side_net, lambda: side_net(net.side_features(x_c)), batch_size)
        rest, _ = _count(net, lambda: net.rest(x_c, k), batch_size)
        result[k] = {"trunk": trunk, "sidenet": side, "rest": rest, "full": full}
    model.train(was)
    return result
