"""Training-step throughput: the engine's step against a plain hand-written PyTorch loop.

Both train the same architecture (a torchvision ResNet with a SideNet after layer1, the paper's
Listing 1 written out by hand for the plain loop) on the same real Fashion-MNIST batches, in
interleaved rounds so that a noisy machine slows both alike; the ratio is per round.
"""
from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F
from torch import nn

from engine.config import TrainConfig
from engine.datasets import load_dataset
from engine.errors import UserError
from engine.runtime.device import pick_device
from engine.runtime.latency import timer
from engine.train import build_model, optimizer_for, param_groups, train_step


class PlainResNetWithSideNet(nn.Module):
    """The hand-written reference: torchvision ResNet + a SideNet read after layer1."""

    def __init__(self, net: nn.Module, sidenet: nn.Module):
        super().__init__()
        self.net, self.sidenet = net, sidenet

    def forward(self, x):
        n = self.net
        h = n.layer1(n.maxpool(n.relu(n.bn1(n.conv1(x)))))
        side = self.sidenet(torch.flatten(h, 1))
        h = n.layer4(n.layer3(n.layer2(h)))
        return n.fc(torch.flatten(n.avgpool(h), 1)), side


def bench_train_step(model: str = "resnet18", steps: int = 20, rounds: int = 3, batch_size: int = 64) -> dict:
    if not model.startswith("resnet"):
        raise UserError(f"bench train compares the engine's step with a hand-written ResNet loop: give a ResNet "
                        f"(resnet18, resnet34, resnet50, resnet152), not {model!r}")
    device = pick_device("auto")
    cfg = TrainConfig(model=model, dataset="fashion-mnist", batch_size=batch_size).resolved()
    data = load_dataset("fashion-mnist", limit=batch_size * steps)
    items = [data.train[i] for i in range(batch_size * steps)]
    batches = [torch.utils.data.default_collate(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]
    batches = [(x.to(device), y.to(device)) for x, y in batches]

    torch.manual_seed(0)
    engine_model, _ = build_model(cfg, data)
    torch.manual_seed(0)
    twin, _ = build_model(cfg, data)
    plain = PlainResNetWithSideNet(twin.mainnet.net, twin.sidenets["1"])
    engine_model.to(device).train(), plain.to(device).train()
    opt_engine, _, _ = optimizer_for(cfg, param_groups(engine_model, cfg), steps)  # what training uses: fused
    opt_plain = torch.optim.Adam(plain.parameters(), lr=cfg.lr, fused=True)

    def run_engine():
        for x, y in batches:
            train_step(engine_model, opt_engine, x, y, cfg, device)

    def run_plain():
        for x, y in batches:
            main, side = plain(x)
            loss = F.cross_entropy(main, y) + F.cross_entropy(side, y)
            opt_plain.zero_grad(set_to_none=True)
            loss.backward()
            opt_plain.step()

    now = timer(device)

    def timed(fn) -> float:
        t0 = now()
        fn()
        return now() - t0

    run_engine(), run_plain()  # warm-up
    rows = []
    for r in range(rounds):
        order = (run_engine, run_plain) if r % 2 == 0 else (run_plain, run_engine)
        t = {fn.__name__: timed(fn) for fn in order}
        n = len(batches) * batch_size
        rows.append({"engine_img_s": n / t["run_engine"], "plain_img_s": n / t["run_plain"],
                     "ratio": t["run_plain"] / t["run_engine"]})
    return {"model": model, "device": str(device), "batch_size": batch_size, "steps_per_round": len(batches),
            "rounds": rows, "ratio_median": statistics.median(r["ratio"] for r in rows), "goal_ratio": 0.95}
