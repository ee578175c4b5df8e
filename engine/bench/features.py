"""`python -m engine bench features`: SideNet training from the feature cache against the same
training re-running the frozen backbone, and a seeds x hidden-sizes sweep from the cache.

1. The cache entry of the model's attach point (and of its final head) is built if missing (timed).
2. A sweep of real head-mode runs (engine.train.train_run into a temporary DB: the heads train
   from cached features, costs are counted, checkpoints written): `seeds` x `hidden` sizes,
   `epochs` each, timed whole. Goal (issue 10): 5 seeds x {32, 768} x 3 epochs at EfficientNet-
   Lite0's block3 on 55,000 Fashion-MNIST images in <= 3 minutes on the 2-core CPU.
3. Per epoch: the cached runs' own epoch time (from their epoch records) against an epoch of the
   same SideNet training that re-runs the backbone on the images (stem + blocks up to the attach
   point, no gradient), timed on `batches` batches and scaled to the epoch. Goal: >= 50x.
Last measured: see the README's "Feature cache" section.
"""
from __future__ import annotations

import statistics
import tempfile
import time

import torch

from engine.batches import batches_for
from engine.config import TrainConfig
from engine.features import FeatureCache
from engine.runtime.device import device_label, pick_device
from engine.store import Store
from engine.train import build_model, cached_splits, load_data, optimizer_for, param_groups, train_run, train_step

BATCH = 256
LR = 1e-3


def bench_features(model: str = "efficientnet-lite0", attach: str = "block3", dataset: str = "fashion-mnist",
                   batches: int = 40, seeds: int = 5, hidden: list[int] = (32, 768), epochs: int = 3,
                   amp: str = "bf16") -> dict:
    """amp: the runs' autocast, both ways (bf16 entries are their own cache entries)."""
    device = pick_device("auto")
    base = TrainConfig(model=model, dataset=dataset, attach=[attach], mode="head", batch_size=BATCH, lr=LR,
                       epochs=epochs, amp=amp)
    cfg = base.resolved()
    # 1. the cache entries (built when missing)
    data = load_data(cfg, 0, subset_train=False)
    net, _ = build_model(cfg, data)
    net.to(device)
    t0 = time.perf_counter()
    splits = cached_splits(net, cfg, data, 0, device)
    cache_s = time.perf_counter() - t0
    n_train = len(splits["train"])
    width = next(v.shape[1] for k, v in splits["train"].features.items() if k != "head")
    # 2. the sweep, through the engine's real path
    with tempfile.TemporaryDirectory(prefix="sidenets-bench-") as tmp:
        store = Store(f"{tmp}/bench.duckdb")
        t0 = time.perf_counter()
        run_ids = [train_run(TrainConfig(**{**base.to_dict(), "sidenet_hidden": h, "seeds": [s]}), s, store)
                   for h in hidden for s in range(seeds)]
        sweep_s = time.perf_counter() - t0
        per_run = {h: [] for h in hidden}
        for run in store.list_runs():
            epochs_done = store.epochs(run["run_id"])
            per_run[run["sidenet_hidden"]].append({"run_id": run["run_id"], "seconds": run["wall_time_s"],
                                                  "epoch_s": statistics.median(e["seconds"] for e in epochs_done),
                                                  "side_val_acc": epochs_done[-1]["val_acc"].get(attach)})
    # 3. the same SideNet training re-running the backbone, on `batches` batches
    backbone = {}
    for h in hidden:
        hcfg = TrainConfig(**{**base.to_dict(), "sidenet_hidden": h}).resolved()
        m, collate = build_model(hcfg, data)
        m.freeze("head")
        m.to(device).train()
        opt, _, _ = optimizer_for(hcfg, param_groups(m, hcfg), 1)
        gen = torch.Generator().manual_seed(0)
        it = batches_for(data.train, device, collate).iterate(BATCH, shuffle=True, generator=gen)
        x, y = next(it)
        train_step(m, opt, x, y, hcfg, device)  # warm-up
        t0, seen = time.perf_counter(), 0
        for i, (x, y) in enumerate(it):
            if i == batches:
                break
            train_step(m, opt, x, y, hcfg, device)
            seen += len(y)
        backbone[h] = (time.perf_counter() - t0) / seen * n_train
    rows = []
    for h in hidden:
        cached_epoch = statistics.median(r["epoch_s"] for r in per_run[h])
        rows.append({"hidden": h, "cached_epoch_s": cached_epoch, "backbone_epoch_s": backbone[h],
                     "speedup": backbone[h] / cached_epoch, "runs": per_run[h]})
    return {"device": device_label(device), "amp": amp, "model": model, "attach": attach, "features": width,
            "train_images": n_train, "cache_build_s": cache_s, "sweep_runs": len(run_ids), "sweep_s": sweep_s,
            "sweep_goal_s": 180.0, "epochs": epochs, "rows": rows, "speedup_goal": 50.0,
            "cache_entries": len(FeatureCache().entries())}


def format_report(out: dict) -> str:
    lines = [f"{out['model']} @ {out['attach']} ({out['features']:,} features), {out['train_images']:,} training "
             f"images, on {out['device']}, autocast {out['amp']}",
             f"  cache: {out['cache_build_s']:.1f} s to build or check the entries",
             f"  sweep: {out['sweep_runs']} head-mode runs x {out['epochs']} epochs from the cache in "
             f"{out['sweep_s']:.1f} s (goal <= {out['sweep_goal_s']:.0f} s: "
             f"{'met' if out['sweep_s'] <= out['sweep_goal_s'] else 'NOT met'})"]
    for r in out["rows"]:
        accs = [x["side_val_acc"] for x in r["runs"] if x["side_val_acc"] is not None]
        lines.append(f"  hidden {r['hidden']:>4}: an epoch from the cache {r['cached_epoch_s']:.2f} s, re-running the "
                     f"backbone {r['backbone_epoch_s']:.1f} s: {r['speedup']:.0f}x (goal >= {out['speedup_goal']:.0f}x: "
                     f"{'met' if r['speedup'] >= out['speedup_goal'] else 'NOT met'}); SideNet val accuracy "
                     f"{100 * statistics.mean(accs):.2f}% over {len(accs)} seeds")
    return "\n".join(lines)
