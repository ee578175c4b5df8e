"""Cost of each path of a cascade: parameters and MACs per input, counted, not hand-derived.

Parameters: every parameter of the modules a path actually calls (forward pre-hooks).
MACs: torch.utils.flop_counter, FLOPs / 2 per input. Attention runs on PyTorch's math kernel while
counting, so its matmuls count on every device (the CPU's fused kernel would count as zero).
Images: one batch of test inputs (every input costs the same). Text: an input pays for its own
token length, unpadded (not for its batch's longest), averaged over the test split. A transformer's
MACs are a quadratic in the length L (its linear layers grow with L, attention with L^2), so three
lengths are counted, the quadratic through them gives every other length, and a fourth count checks
it; a model whose counts do not fit is counted at every distinct length of the split instead.
"""
from __future__ import annotations

import functools
import math
from collections import Counter

import numpy as np
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from engine.model import SideNetModel

PARTS = ("trunk", "sidenet", "rest", "full")


def _count(root: nn.Module, fn, batch_size: int) -> tuple[dict, object]:
    """Run fn() once; the parameters of the modules it called and its MACs per input."""
    called: dict[int, nn.Module] = {}

    def note(module, _args):
        called[id(module)] = module

    hooks = [m.register_forward_pre_hook(note) for m in root.modules()]
    try:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            out = fn()
    finally:
        for h in hooks:
            h.remove()
    params = sum(p.numel() for m in called.values() for p in m.parameters(recurse=False))
    return {"params": int(params), "macs": counter.get_total_flops() / 2 / batch_size}, out


def measure_paths(model: SideNetModel, example_input, batch_size: int) -> dict[int, dict[str, dict]]:
    """{k: {"trunk"|"sidenet"|"rest"|"full": {"params", "macs"}}} for each attach point k, per input
    of ``example_input`` (a batch of ``batch_size``). With no SideNet (mainnet-only) the key is 0."""
    was = model.training
    model.eval()
    net = model.mainnet
    full, _ = _count(net, lambda: net(example_input), batch_size)
    zero = {"params": 0, "macs": 0.0}
    result = {0: {"trunk": full, "sidenet": zero, "rest": zero, "full": full}} if not model.attach else {}
    for k in model.attach:
        trunk, x_c = _count(net, lambda k=k: net.trunk(example_input, k), batch_size)
        side_net = model.sidenets[str(k)]
        side, _ = _count(side_net, lambda s=side_net, x=x_c: s(net.side_features(x)), batch_size)
        rest, _ = _count(net, lambda k=k, x=x_c: net.rest(x, k), batch_size)
        result[k] = {"trunk": trunk, "sidenet": side, "rest": rest, "full": full}
    model.train(was)
    return result


def _average(parts: list[tuple[int, dict]]) -> dict:
    """Weighted mean over (count, measure_paths result) pairs, per attach point and part."""
    total = sum(n for n, _ in parts)
    first = parts[0][1]
    return {k: {part: {"params": first[k][part]["params"],
                       "macs": sum(n * r[k][part]["macs"] for n, r in parts) / total} for part in PARTS}
            for k in first}


def run_costs(model: SideNetModel, data, collate, device: torch.device, names: dict[int, str]) -> dict:
    """{attach name (or "none"): {part: {"params", "macs"}}} per input of the run's test split."""
    if data.kind == "image":
        items = [data.test[i] for i in range(min(16, len(data.test)))]
        x = collate(items)[0].to(device)
        by_k = measure_paths(model, x.contiguous(memory_format=torch.channels_last), len(items))
    else:
        by_k = _average(list(_text_lengths(model, data, collate, device)))
    return {names.get(k, "none"): parts for k, parts in by_k.items()}


def _text_lengths(model: SideNetModel, data, collate, device):
    """(how many test sentences have this token length, measure_paths at that length unpadded)."""
    texts = [data.test[i] for i in range(len(data.test))]
    lengths: Counter = Counter()
    example: dict[int, tuple] = {}
    for start in range(0, len(texts), 256):
        batch = texts[start:start + 256]
        tokens, _ = collate(batch)
        for row, n in enumerate(tokens["attention_mask"].sum(1).tolist()):
            lengths[n] += 1
            example.setdefault(n, batch[row])

    @functools.cache  # the fallback reuses the quadratic's four counts
    def count(n: int) -> dict:
        tokens, _ = collate([example[n]])
        assert tokens["input_ids"].shape[1] == n  # one sentence alone: no padding
        return measure_paths(model, {k: v.to(device) for k, v in tokens.items()}, 1)

    ns = sorted(lengths)
    by_length = _quadratic_in_length(ns, count) if len(ns) > 4 else None
    for n in ns:
        yield lengths[n], by_length[n] if by_length else count(n)


def _quadratic_in_length(ns: list[int], count) -> dict[int, dict] | None:
    """{n: measure_paths result} for every length in ns from counts at three of them (the MACs of
    each part on the quadratic through them, the parameters as counted), or None when a count at a
    fourth length disagrees (a model whose cost is no quadratic in the length)."""
    probes = [ns[0], ns[len(ns) // 2], ns[-1]]
    check = ns[len(ns) // 4]
    counted = {n: count(n) for n in (*probes, check)}
    first = counted[probes[0]]
    fits = {(k, part): np.polyfit(probes, [counted[n][k][part]["macs"] for n in probes], 2)
            for k in first for part in PARTS}
    predicted = {n: {k: {part: {"params": first[k][part]["params"],
                                "macs": float(np.polyval(fits[k, part], n))} for part in PARTS} for k in first}
                 for n in ns}
    for n, result in counted.items():
        for k in first:
            for part in PARTS:
                got, want = result[k][part], predicted[n][k][part]
                if got["params"] != want["params"] or not math.isclose(got["macs"], want["macs"], rel_tol=1e-9,
                                                                       abs_tol=1e-6):
                    return None
    return {**predicted, **counted}
