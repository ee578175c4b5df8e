"""The training loop: one run = one (config, seed) -> a complete run in the DuckDB cache.

Loss L = L_M + alpha * sum_k L_S_k (joint), sum_k L_S_k (frozen MainNet), or L_M (mainnet-only).
Adam, lr divided by 3 after `patience` epochs without validation-loss improvement.
"""
from __future__ import annotations

import platform
import random
import subprocess
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader
from tqdm import tqdm

from engine.config import TrainConfig
from engine.costs import path_costs
from engine.datasets import DatasetSplits, load_dataset
from engine.errors import UserError
from engine.mainnets import build_mainnet, image_settings, model_kind
from engine.model import SideNetModel
from engine.store import REPO, Store

Progress = Callable[[dict], None]


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but no CUDA GPU is visible")
    return torch.device(name)


def amp_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """The autocast dtype of an amp setting on a device: bf16 on CUDA by default (or on CPU when
    asked), None when autocast is off."""
    return torch.bfloat16 if amp == "bf16" or (amp == "auto" and device.type == "cuda") else None


def autocast(device: torch.device, amp: str):
    """bf16 autocast where amp_dtype says so; a disabled (no-op) autocast otherwise."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp_dtype(device, amp) is not None)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def to_device(batch, device: torch.device):
    if isinstance(batch, dict):
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    return batch.to(device, non_blocking=True)


def load_data(cfg: TrainConfig, seed: int) -> DatasetSplits:
    kind = model_kind(cfg.model)
    settings = image_settings(cfg.model) if kind == "image" else {}
    data = load_dataset(cfg.dataset, limit=cfg.limit, seed=seed, **settings)
    if data.kind != kind:
        raise UserError(f"model {cfg.model!r} takes {kind} inputs but dataset {cfg.dataset!r} is {data.kind}")
    if cfg.max_train is not None and cfg.max_train < len(data.train):
        keep = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(seed))[:cfg.max_train]
        data.train = torch.utils.data.Subset(data.train, keep.tolist())
    return data


def build_model(cfg: TrainConfig, data: DatasetSplits, example_items: list) -> tuple[SideNetModel, Callable, list[int]]:
    """The MainNet + SideNets for a config; returns (model, collate_fn, attach indices)."""
    mainnet = build_mainnet(cfg.model, data.num_classes, cfg.sidenet_hidden, cfg.sidenet_order, cfg.pretrained)
    collate = getattr(mainnet, "collate", None) or torch.utils.data.default_collate
    if cfg.mode == "mainnet-only":
        ks = []
    else:
        ks = sorted({mainnet.attach_index(a) for a in cfg.attach} or {mainnet.default_attach})
    example, _ = collate(example_items)
    model = SideNetModel(mainnet, ks, data.num_classes, example, cfg.sidenet_hidden, cfg.sidenet_order)
    return model, collate, ks


def model_for_run(run: dict, device: str = "cpu") -> tuple[SideNetModel, DatasetSplits, Callable]:
    """Rebuild a finished run's model from its config and checkpoint, in eval mode (for the cascade/demo)."""
    ckpt = run.get("checkpoint")
    if not ckpt or not Path(ckpt).exists():
        raise UserError(f"run {run['run_id']} has no checkpoint on disk ({ckpt or 'none recorded'})")
    cfg = TrainConfig(**{**run["config"], "pretrained": False, "init_from": None})
    data = load_data(cfg, run["seed"])
    model, collate, _ = build_model(cfg, data, [data.test[i] for i in range(2)])
    model.load_state_dict(load_file(ckpt))
    return model.to(pick_device(device)).eval(), data, collate


def _loss(main, side: dict, y, cfg: TrainConfig):
    """(total loss, {head: per-head loss}) for the run's mode."""
    losses = {f"side{k}": F.cross_entropy(z, y) for k, z in side.items()}
    if main is not None:
        losses["main"] = F.cross_entropy(main, y)
    if cfg.mode == "joint":
        total = losses["main"] + cfg.alpha * sum(v for k, v in losses.items() if k != "main")
    elif cfg.mode == "frozen":
        total = sum(losses.values()) - losses.get("main", 0)
    else:
        total = losses["main"]
    return total, losses


def train_step(model: SideNetModel, optimizer, x, y, cfg: TrainConfig, device: torch.device,
               need_main: bool = True) -> torch.Tensor:
    """One optimisation step on a batch; returns the detached loss (no host sync)."""
    x, y = to_device(x, device), y.to(device, non_blocking=True)
    with autocast(device, cfg.amp):
        main, side = model(x, need_main=need_main)
        loss, _ = _loss(main, side, y, cfg)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def evaluate(model: SideNetModel, loader: DataLoader, device, amp: str, names: dict[int, str],
             cfg: TrainConfig, desc: str) -> tuple[float, dict]:
    """Mean loss and every head's logits on a split: (loss, {"label", "heads": {name: (N, C)}})."""
    model.eval()
    labels, heads, total, count = [], {}, 0.0, 0
    with torch.inference_mode():
        for x, y in tqdm(loader, desc=desc, leave=False, dynamic_ncols=True):
            x, y = to_device(x, device), y.to(device)
            with autocast(device, amp):
                main, side = model(x, need_main=True)
            main, side = main.float(), {k: v.float() for k, v in side.items()}
            loss, _ = _loss(main, side, y, cfg)
            total += float(loss) * len(y)
            count += len(y)
            labels.append(y.cpu())
            for name, z in [("main", main)] + [(names[k], v) for k, v in side.items()]:
                heads.setdefault(name, []).append(z.cpu())
    out = {"label": torch.cat(labels).numpy(), "heads": {h: torch.cat(v).numpy() for h, v in heads.items()}}
    return total / max(count, 1), out


def _accuracies(out: dict) -> dict:
    return {h: float((z.argmax(1) == out["label"]).mean()) for h, z in out["heads"].items()}


def device_label(device: torch.device) -> str:
    """The device string stored with runs and latency rows: the GPU's name, or the CPU and its threads."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def provenance(device: torch.device) -> dict:
    import duckdb
    import torchvision
    import transformers

    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    name = device_label(device)
    versions = {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
                "transformers": transformers.__version__, "numpy": np.__version__, "duckdb": duckdb.__version__}
    return {"device": name, "versions": versions, "git_commit": commit}


def train_run(cfg: TrainConfig, seed: int, store: Store, progress: Progress | None = None,
              checkpoint_dir: Path | None = None) -> str:
    """Train one run and write it to the store; returns its run_id. Failures are recorded as failed runs."""
    cfg = cfg.resolved()
    device = pick_device(cfg.device)
    seed_everything(seed)
    data = load_data(cfg, seed)
    example_items = [data.test[i] for i in range(min(16, len(data.test)))]
    model, collate, ks = build_model(cfg, data, example_items)
    names = {k: model.mainnet.attach_names()[k - 1] for k in ks}
    if cfg.init_from:
        source = store.get_run(cfg.init_from)
        if not source.get("checkpoint") or not Path(source["checkpoint"]).exists():
            raise UserError(f"run {cfg.init_from} has no checkpoint to initialise from")
        missing, _ = model.load_state_dict(load_file(source["checkpoint"]), strict=False)
        if any(not m.startswith("sidenets.") for m in missing):
            raise UserError(f"run {cfg.init_from} is a different model; cannot initialise {cfg.model} from it")
    if cfg.mode == "frozen":
        model.freeze_mainnet()
    model.to(device)
    if device.type == "cuda" and data.kind == "image":
        model.to(memory_format=torch.channels_last)

    meta = {"model": cfg.model, "dataset": cfg.dataset, "mode": cfg.mode, "seed": seed,
            "attach": list(names.values()), "sidenet_hidden": cfg.sidenet_hidden, "sidenet_order": cfg.sidenet_order,
            "num_classes": data.num_classes, "class_names": data.class_names, "config": {**cfg.to_dict(), "seeds": [seed]},
            **provenance(device)}
    run_id = store.start_run(meta)
    started = time.perf_counter()
    try:
        record = _fit_and_evaluate(model, cfg, data, collate, device, names, seed, progress, run_id)
        costs_by_k = path_costs(model, to_device(collate(example_items)[0], device), len(example_items))
        costs = {names.get(k, "none"): parts for k, parts in costs_by_k.items()}
        ckpt_dir = checkpoint_dir or store.path.parent / "checkpoints"
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        ckpt = ckpt_dir / f"{run_id}.safetensors"
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(ckpt))
        store.finish_run(run_id, epochs=record["epochs"], costs=costs, samples=record["samples"],
                         wall_time_s=time.perf_counter() - started, checkpoint=str(ckpt.resolve()))
    except BaseException as err:  # KeyboardInterrupt / SystemExit (cancel) included
        store.fail_run(run_id, f"{err.__class__.__name__}: {err}")
        raise
    return run_id


def _fit_and_evaluate(model, cfg, data, collate, device, names, seed, progress, run_id) -> dict:
    gen = torch.Generator().manual_seed(seed)
    n_train = len(data.train)
    train_loader = DataLoader(data.train, batch_size=cfg.batch_size, shuffle=True, generator=gen, collate_fn=collate,
                              drop_last=n_train % cfg.batch_size == 1,  # a batch of 1 would break BatchNorm
                              num_workers=cfg.num_workers, pin_memory=device.type == "cuda")
    eval_kw = {"batch_size": max(cfg.batch_size, 128), "collate_fn": collate, "num_workers": cfg.num_workers}
    val_loader, test_loader = DataLoader(data.val, **eval_kw), DataLoader(data.test, **eval_kw)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=cfg.lr_factor, patience=cfg.patience)
    need_main = cfg.mode != "frozen"
    epochs, val_out, steps = [], None, len(train_loader)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        t0, running = time.perf_counter(), torch.zeros((), device=device)
        bar = tqdm(train_loader, desc=f"{run_id} epoch {epoch}/{cfg.epochs}", dynamic_ncols=True)
        for step, (x, y) in enumerate(bar, 1):
            running += train_step(model, optimizer, x, y, cfg, device, need_main)
            if step % 25 == 0 or step == steps:  # one host sync every 25 steps, not per step
                bar.set_postfix(loss=f"{running.item() / step:.4f}")
                if progress:
                    rate = bar.format_dict.get("rate") or 0
                    progress({"run_id": run_id, "epoch": epoch, "epochs": cfg.epochs, "step": step, "steps": steps,
                              "loss": running.item() / step, "eta_s": (steps - step) / rate if rate else None})
        train_loss = running.item() / max(steps, 1)
        val_loss, val_out = evaluate(model, val_loader, device, cfg.amp, names, cfg, "validate")
        scheduler.step(val_loss)
        epochs.append({"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], "train_loss": train_loss,
                       "val_loss": val_loss, "val_acc": _accuracies(val_out), "seconds": time.perf_counter() - t0})
        tqdm.write(f"{run_id} epoch {epoch}: train loss {train_loss:.4f}, val loss {val_loss:.4f}, "
                   + ", ".join(f"{h} acc {a:.4f}" for h, a in epochs[-1]["val_acc"].items()))
    _, test_out = evaluate(model, test_loader, device, cfg.amp, names, cfg, "test")
    samples = {split: {"idx": np.arange(len(out["label"])), "label": out["label"], "heads": out["heads"]}
               for split, out in (("val", val_out), ("test", test_out))}
    return {"epochs": epochs, "samples": samples}
