"""From the cache to the numbers users ask for: one run's view, its theta curve, a sweep.

Shared by the CLI and the explorer; the math itself is in engine.metrics.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine import metrics
from engine.errors import UserError
from engine.metrics import PathCosts, ThetaCurve
from engine.store import Store

COST_KINDS = ("params", "macs")


@dataclass
class RunView:
    """One run at one attach point: labels (N,), side/main logits (N, C), costs per kind."""
    run: dict
    attach: str | None
    labels: np.ndarray
    main_logits: np.ndarray
    side_logits: np.ndarray | None
    costs: dict[str, PathCosts]

    def curve(self, ensemble: bool = False) -> ThetaCurve:
        if self.side_logits is None:
            raise UserError(f"run {self.run['run_id']} has no SideNet (mainnet-only): there is no theta to sweep")
        return ThetaCurve.from_logits(self.side_logits, self.main_logits, self.labels, ensemble=ensemble)


def path_costs(costs: dict, latency: list[dict], attach: str | None) -> dict[str, PathCosts]:
    """{"params"|"macs"|"ms": PathCosts} of one attach point.

    ms: where latency was measured at batch 1, on the device measured last (one device, never a
    mix); the exit path is trunk + SideNet, and the baseline is the measured unsplit MainNet.
    """
    parts = costs.get(attach or "none") or {}
    out = {kind: PathCosts(trunk=parts["trunk"][kind], sidenet=parts["sidenet"][kind], rest=parts["rest"][kind])
           for kind in COST_KINDS if "trunk" in parts}
    rows = [r for r in latency if r["attach"] == (attach or "none") and r["batch_size"] == 1]
    if rows:
        device = max(rows, key=lambda r: str(r["measured_at"]))["device"]
        ms = {r["part"]: r["median_ms"] for r in rows if r["device"] == device}
        if {"trunk+sidenet", "rest"} <= ms.keys():
            out["ms"] = PathCosts(trunk=ms["trunk+sidenet"], sidenet=0.0, rest=ms["rest"], measured_full=ms.get("full"))
        elif attach is None and "full" in ms:  # a MainNet-only run: the whole network is its one path
            out["ms"] = PathCosts(trunk=ms["full"], sidenet=0.0, rest=0.0)
    return out


def load_view(store: Store, run_id: str, attach: str | None = None, split: str = "test") -> RunView:
    run = store.get_run(run_id)
    if run["status"] != "complete":
        raise UserError(f"run {run_id} is {run['status']}, not complete")
    if attach is None:
        attach = run["attach"][0] if run["attach"] else None
    elif attach not in run["attach"]:
        raise UserError(f"run {run_id} has no SideNet at {attach!r}; it has: {', '.join(run['attach']) or 'none'}")
    data = store.logits(run_id, split)
    side = data["heads"].get(attach) if attach else None
    return RunView(run, attach, data["label"], data["heads"]["main"], side,
                   path_costs(store.costs(run_id), store.latency(run_id), attach))


def sweep(view: RunView, theta: float, ensemble: bool = False) -> dict:
    """The cascade at theta: accuracy, exit fraction, average and saved params / MACs, each head's accuracy."""
    out = view.curve(ensemble).at(theta, view.costs)
    out.update(run_id=view.run["run_id"], attach=view.attach, ensemble=ensemble,
               ensemble_accuracy=metrics.head_accuracy(metrics.ensemble_logits(view.side_logits, view.main_logits),
                                                       view.labels))
    return out
