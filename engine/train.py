"""The training loop: one run = one (config, seed) -> a complete run in the DuckDB cache.

Loss L = L_M + alpha * sum_k L_S_k (joint), sum_k L_S_k (frozen MainNet), L_M + sum_k L_S_k on a
frozen backbone (head), or L_M (mainnet-only). Optimiser and schedule come from the config: the
paper's Adam with the learning rate divided by 3 after `patience` epochs without validation-loss
improvement, or SGD (nesterov) with a one-cycle schedule, the fast recipe. Head and frozen modes
train from the feature cache (engine.features): the backbone runs once per sample, ever.
"""
from __future__ import annotations

import dataclasses
import math
import random
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from engine import costs as cost_counting
from engine import mainnets
from engine.batches import FeatureBatches, batch_sizes, batches_for
from engine.config import FROM_MAINNET_ONLY, TrainConfig
from engine.datasets import DatasetSplits, load_dataset
from engine.errors import UserError
from engine.faults import point
from engine.features import EVAL_BATCH, FeatureCache, compute_features, weights_digest
from engine.model import SideNetModel, classifier_prefix
from engine.runtime import checkpoint
from engine.runtime.device import amp_dtype, autocast, pick_device
from engine.store import Store

Progress = Callable[[dict], None]
# the settings that decide a cached backbone's features (kept with each cache entry as its source)
CACHE_SOURCE_FIELDS = ("model", "dataset", "mode", "init_from", "pretrained", "stem", "pooling", "max_length", "limit",
                       "amp", "device")


class TrainingDiverged(Exception):
    """The loss or the logits stopped being finite (e.g. a learning rate far too high)."""


def seed_everything(seed: int, device: torch.device) -> None:
    """Seed every generator. On the CPU the algorithms are deterministic too (same seed, same
    logits); on CUDA cuDNN picks its fastest kernels instead (run-to-run noise in the last bits)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if device.type == "cuda":
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = True
    else:
        torch.use_deterministic_algorithms(True, warn_only=True)


def load_data(cfg: TrainConfig, seed: int, subset_train: bool = True) -> DatasetSplits:
    """The config's dataset at its MainNet's input settings; --max-train keeps a seeded subset of
    the training split (subset_train=False: the whole split, e.g. to cache its features)."""
    spec = mainnets.get(cfg.model)
    settings = {"image_size": spec.image_size or 32, "normalize": spec.normalize} if spec.kind == "image" else {}
    data = load_dataset(cfg.dataset, limit=cfg.limit, seed=seed, **settings)
    rows = max_train_rows(cfg, len(data.train), seed)
    if subset_train and rows is not None:
        data.train = data.train.subset(rows.tolist())
    return data


def max_train_rows(cfg: TrainConfig, n: int, seed: int) -> torch.Tensor | None:
    """The sorted rows of the training split that --max-train keeps (seeded), or None for all."""
    if cfg.max_train is None or cfg.max_train >= n:
        return None
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:cfg.max_train].sort().values


def build_model(cfg: TrainConfig, data: DatasetSplits) -> tuple[SideNetModel, Callable]:
    """The MainNet + SideNets of a resolved config: (model, collate)."""
    mainnet = mainnets.build_mainnet(cfg, data.num_classes)
    collate = getattr(mainnet, "collate", None) or torch.utils.data.default_collate
    ks = [] if cfg.mode == "mainnet-only" else sorted(
        {mainnet.attach_index(a) for a in cfg.attach} or {mainnet.default_attach})
    example, _ = collate([data.test[i] for i in range(min(2, len(data.test)))])
    model = SideNetModel(mainnet, ks, data.num_classes, example, cfg.sidenet_hidden, cfg.sidenet_order)
    return model, collate


def attach_labels(model: SideNetModel) -> dict[int, str]:
    """{k: "layer1"} for the model's SideNets."""
    return {k: model.mainnet.attach_names()[k - 1] for k in model.attach}


def param_groups(model: SideNetModel, cfg: TrainConfig) -> list[dict]:
    """The trainable parameters as optimiser groups: the pretrained or backbone weights at cfg.lr
    first, then, when cfg.head_lr is set, the newly initialised heads (the SideNets and the
    MainNet's final SideNet-shaped head) at cfg.head_lr."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if cfg.head_lr is None:
        return [{"params": [p for _, p in trainable], "lr": cfg.lr}]
    heads = ("sidenets.", "mainnet." + classifier_prefix(model.mainnet))
    groups = [{"params": [p for n, p in trainable if not n.startswith(heads)], "lr": cfg.lr},
              {"params": [p for n, p in trainable if n.startswith(heads)], "lr": cfg.head_lr}]
    return [g for g in groups if g["params"]]


def optimizer_for(cfg: TrainConfig, groups, steps_per_epoch: int):
    """(optimizer, scheduler, steps_per_batch) for param_groups(): the paper's Adam + plateau, or
    SGD + one-cycle (every group's rate on the same cycle, peaking at its own rate).
    Both fused (one kernel for every parameter, CPU or CUDA): a 768-hidden SideNet's Adam step
    was 2-3x faster on the CPU than the default per-tensor one, and most of its training step."""
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    else:
        opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0,
                              weight_decay=cfg.weight_decay, fused=True)
    if cfg.schedule == "onecycle":
        total = cfg.epochs * steps_per_epoch
        if total < 4:  # too short to warm up and anneal: a constant learning rate
            return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0), True
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total,
                                                    pct_start=max(0.25, 2.5 / total), anneal_strategy="linear")
        return opt, sched, True
    # "after 5 epochs in which the validation loss doesn't go down": PyTorch decays once the number
    # of bad epochs EXCEEDS its patience, so the paper's 5 is PyTorch's 4.
    return opt, torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=cfg.lr_factor, patience=cfg.patience - 1), False


def _loss(main, side: dict, y, cfg: TrainConfig) -> torch.Tensor:
    smooth = cfg.label_smoothing
    side_loss = sum((F.cross_entropy(z, y, label_smoothing=smooth) for z in side.values()), torch.zeros((), device=y.device))
    if main is None:  # frozen: the SideNets only
        return side_loss
    main_loss = F.cross_entropy(main, y, label_smoothing=smooth)
    return main_loss + (cfg.alpha if cfg.mode == "joint" else 1.0) * side_loss


def train_step(model: SideNetModel, optimizer, x, y, cfg: TrainConfig, device, need_main: bool = True) -> torch.Tensor:
    """One optimisation step on a batch already on the device; the detached loss (no host sync)."""
    with autocast(device, cfg.amp):
        main, side = _forward(model, x, need_main)
        loss = _loss(main, side, y, cfg)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def resolve_init_from(cfg: TrainConfig, seed: int, store) -> TrainConfig:
    """A config whose init_from is FROM_MAINNET_ONLY, pointed at the newest complete mainnet-only run
    of the same model, dataset and seed in the store (UserError when there is none)."""
    if cfg.init_from != FROM_MAINNET_ONLY:
        return cfg
    found = [r for r in store.list_runs() if r["mode"] == "mainnet-only" and r["model"] == cfg.model
             and r["dataset"] == cfg.dataset and r["seed"] == seed and not checkpoint.init_mismatch(cfg, r)]
    if not found:
        raise UserError(f"no complete mainnet-only run of {cfg.model} on {cfg.dataset} with seed {seed} (stem "
                        f"{cfg.stem}, pooling {cfg.pooling}) to freeze: train it first (the preset lists it before its "
                        "frozen runs)")
    return dataclasses.replace(cfg, init_from=found[0]["run_id"])


def train_run(cfg: TrainConfig, seed: int, store: Store, progress: Progress | None = None) -> str:
    """Train one run and write it to the store; returns its run_id. Failures are recorded as failed runs."""
    cfg = resolve_init_from(cfg.resolved(), seed, store)
    device = pick_device(cfg.device)
    checkpoint.check_writable(store)  # before any training, not after it
    seed_everything(seed, device)
    data = load_data(cfg, seed, subset_train=not cfg.cached)
    model, collate = build_model(cfg, data)
    backbone = checkpoint.initialise(model, cfg, store)
    names = attach_labels(model)
    model.to(device)
    if data.kind == "image":
        model.to(memory_format=torch.channels_last)
    meta = {"model": cfg.model, "dataset": cfg.dataset, "mode": cfg.mode, "seed": seed, "attach": list(names.values()),
            "sidenet_hidden": cfg.sidenet_hidden, "sidenet_order": cfg.sidenet_order, "num_classes": data.num_classes,
            "class_names": data.class_names, "config": {**cfg.to_dict(), "seeds": [seed]},
            **checkpoint.provenance(device)}
    run_id = store.start_run(meta)
    point("train:after-start")
    started = time.perf_counter()
    try:
        if cfg.cached:
            report = progress and (lambda p: progress({**p, "run_id": run_id}))
            splits = cached_splits(model, cfg, data, seed, device, report)
        else:
            splits = {s: batches_for(getattr(data, s), device, collate, cfg.num_workers, cfg.augment)
                      for s in ("train", "val", "test")}
        record = _fit(model, cfg, splits, device, names, seed, progress, run_id)
        point("train:after-fit")
        costs = cost_counting.run_costs(model, data, collate, device, names)
        ckpt = checkpoint.save(model, store, run_id, backbone)
        point("train:after-checkpoint")
        store.finish_run(run_id, epochs=record["epochs"], costs=costs, samples=record["samples"],
                         wall_time_s=time.perf_counter() - started, checkpoint=ckpt)
        point("train:after-finish")
    except BaseException as err:  # KeyboardInterrupt / SystemExit (cancel) included
        store.fail_run(run_id, f"{err.__class__.__name__}: {err}", only_running=True)
        raise
    return run_id


def cached_splits(model: SideNetModel, cfg: TrainConfig, data: DatasetSplits, seed: int, device,
                  progress: Progress | None = None) -> dict[str, FeatureBatches]:
    """Every split as cached features (built on a miss, then read back): the SideNets' taps and
    "head" (the final head's input). data.train is the WHOLE training split; --max-train picks
    its rows afterwards, so every seed shares one cache entry."""
    model.eval()
    collate = getattr(model.mainnet, "collate", None) or torch.utils.data.default_collate
    digest = weights_digest(model.mainnet, skip=(classifier_prefix(model.mainnet),))
    names = attach_labels(model)
    by_name = {name: k for k, name in names.items()}
    prep = {"image_size": data.image_size, "normalize": data.normalize, "stem": cfg.stem, "pooling": cfg.pooling,
            "max_length": cfg.max_length if data.kind == "text" else None, "limit": cfg.limit,
            "amp": str(amp_dtype(device, cfg.amp))}
    source = {k: getattr(cfg, k) for k in CACHE_SOURCE_FIELDS}
    cache, out = FeatureCache(), {}
    for split in ("train", "val", "test"):
        ds = getattr(data, split)
        labels = ds.labels.numpy()
        subset = seed if split == "train" and cfg.limit else None  # --limit picks a seeded training subset
        keys = {t: {"model": cfg.model, "weights": digest, "dataset": cfg.dataset, "split": split, "prep": prep,
                    "subset_seed": subset, "tap": t} for t in [*names.values(), "head"]}
        if progress:
            progress({"phase": "caching", "split": split})
        batches = batches_for(ds, device, collate)
        feats = cache.get(keys, labels, lambda missing, b=batches, s=split: compute_features(
            model, b, missing, by_name, device, cfg.amp, f"caching {cfg.model} features ({s})"), source=source)
        rows = max_train_rows(cfg, len(labels), seed) if split == "train" else None
        if rows is not None:
            feats, labels = {t: v[rows] for t, v in feats.items()}, labels[rows.numpy()]
        out[split] = FeatureBatches({("head" if t == "head" else f"side{by_name[t]}"): v for t, v in feats.items()},
                                    torch.from_numpy(labels), device, amp_dtype(device, cfg.amp) or torch.float32)
    return out


def _forward(model: SideNetModel, x, need_main: bool = True):
    if isinstance(x, dict) and "head" in x:
        return model.forward_features(x, need_main)
    return model(x, need_main=need_main)


def _fit(model: SideNetModel, cfg: TrainConfig, splits: dict, device, names: dict[int, str], seed: int,
         progress: Progress | None, run_id: str) -> dict:
    """Train for cfg.epochs, validate each epoch; {"epochs": [...], "samples": {split: logits}}."""
    gen = torch.Generator().manual_seed(seed)
    train = splits["train"]
    steps = len(batch_sizes(len(train), cfg.batch_size, drop_single=True))
    optimizer, scheduler, per_step = optimizer_for(cfg, param_groups(model, cfg), steps)
    need_main = cfg.mode != "frozen"
    epochs, val_out = [], None
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        t0, running = time.perf_counter(), torch.zeros((), device=device)
        bar = tqdm(train.iterate(cfg.batch_size, shuffle=True, generator=gen, train=True, drop_single=True),
                   total=steps, desc=f"{run_id} epoch {epoch}/{cfg.epochs}", dynamic_ncols=True)
        for step, (x, y) in enumerate(bar, 1):
            running += train_step(model, optimizer, x, y, cfg, device, need_main)
            if step == 1:
                point("train:first-step")
            if per_step:
                scheduler.step()
            if step % 25 == 0 or step == steps:  # one host sync every 25 steps, not per step
                bar.set_postfix(loss=f"{running.item() / step:.4f}")
                if progress:
                    rate = bar.format_dict.get("rate") or 0
                    progress({"run_id": run_id, "phase": "training", "epoch": epoch, "epochs": cfg.epochs,
                              "step": step, "steps": steps, "loss": running.item() / step,
                              "eta_s": (steps - step) / rate if rate else None})
        train_loss = running.item() / max(steps, 1)
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"the training loss became {train_loss} in epoch {epoch} (learning rate too high?)")
        val_loss, val_out = evaluate(model, splits["val"], device, cfg, names)
        if not per_step:
            scheduler.step(val_loss)
        epochs.append({"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], "train_loss": train_loss,
                       "val_loss": val_loss, "val_acc": _accuracies(val_out), "seconds": time.perf_counter() - t0})
        tqdm.write(f"{run_id} epoch {epoch}: train loss {train_loss:.4f}, val loss {val_loss:.4f}, "
                   + ", ".join(f"{h} acc {a:.4f}" for h, a in epochs[-1]["val_acc"].items()), file=sys.stderr)
    _, test_out = evaluate(model, splits["test"], device, cfg, names)
    samples = {split: {"idx": np.arange(len(out["label"])), "label": out["label"], "heads": out["heads"]}
               for split, out in (("val", val_out), ("test", test_out))}
    for split, out in samples.items():
        for head, logits in out["heads"].items():
            if not np.isfinite(logits).all():
                raise TrainingDiverged(f"the {head} logits on the {split} split are not all finite")
    return {"epochs": epochs, "samples": samples}


def evaluate(model: SideNetModel, batches, device, cfg: TrainConfig, names: dict[int, str]) -> tuple[float, dict]:
    """Mean loss and every head's logits on a split: (loss, {"label" (N,), "heads": {name: (N, C)}})."""
    model.eval()
    labels, heads, total = [], {}, torch.zeros((), dtype=torch.float64, device=device)
    with torch.inference_mode():
        for x, y in batches.iterate(EVAL_BATCH):
            with autocast(device, cfg.amp):
                main, side = _forward(model, x, need_main=True)
            main, side = main.float(), {k: v.float() for k, v in side.items()}
            total += _loss(main, side, y, cfg).double() * len(y)
            labels.append(y.cpu())
            for name, z in [("main", main)] + [(names[k], v) for k, v in side.items()]:
                heads.setdefault(name, []).append(z.cpu())
    out = {"label": torch.cat(labels).numpy(), "heads": {h: torch.cat(v).numpy() for h, v in heads.items()}}
    return float(total) / max(len(out["label"]), 1), out


def _accuracies(out: dict) -> dict:
    return {h: float((z.argmax(1) == out["label"]).mean()) for h, z in out["heads"].items()}
