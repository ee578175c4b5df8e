"""`python -m engine bench epochs`: seconds per training epoch of MainNets in joint mode, and the
paper's vision grid projected from them (the GPU question of issue 10).

Each setting (model, batch size) trains the engine's own step (engine.train.train_step) on
GPU-resident Fashion-MNIST batches (engine.batches.ImageBatches: the augmentation runs on the
device, no DataLoader workers, no per-step host synchronisation), bf16 autocast + channels_last,
optionally with the whole step compiled (torch.compile; mode "reduce-overhead" replays CUDA graphs
on a GPU, where eager steps at these small maps are bound by kernel launches). The first epoch
(or `--limit` images of it) warms up; the next ones are timed between device synchronisations. `--small-maps both` times
each setting with and without engine.mainnets.small_maps (ResNet convolutions on <= 2x2 maps as
one GEMM while training on the CPU) and prints the ratio measured in the same run.

The grid: 4 ResNets x 5 seeds x 50 epochs x (with, without SideNet) = 2,000 epochs; at the paper's
RTX 2070 times (60 s per epoch for ResNet18/34/50, 120 s for ResNet152) ~42 GPU-hours.
Last measured: see the README's "GPU" section (the command and the card are printed with it).
"""
from __future__ import annotations

import time

import torch

from engine.batches import ImageBatches
from engine.config import TrainConfig
from engine.errors import UserError
from engine.mainnets.small_maps import use_small_map_convs
from engine.runtime.device import device_label, pick_device
from engine.train import build_model, load_data, optimizer_for, param_groups, train_step

PAPER_SECONDS = {"resnet18": 60, "resnet34": 60, "resnet50": 60, "resnet152": 120}
GRID_EPOCHS = 5 * 50 * 2  # seeds x epochs x (with, without SideNet), per model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_epochs(model_name: str, batch_size: int, epochs: int, device: torch.device, compile_step: str | None,
                limit: int | None, small_maps: bool = True) -> dict:
    """compile_step: None (eager) or a torch.compile mode ("default", "reduce-overhead", ...)."""
    cfg = TrainConfig(model=model_name, dataset="fashion-mnist", batch_size=batch_size, epochs=1, amp="bf16",
                      optimizer="sgd", schedule="onecycle", lr=0.05, device=str(device)).resolved()
    data = load_data(cfg, 0)
    model, _ = build_model(cfg, data)
    use_small_map_convs(model, on=small_maps)
    model.to(device).to(memory_format=torch.channels_last).train()
    batches = ImageBatches(data.train, device)
    n = min(limit or len(batches), len(batches))
    steps = n // batch_size
    optimizer, _, _ = optimizer_for(cfg, param_groups(model, cfg), steps)
    step = torch.compile(train_step, mode=compile_step) if compile_step else train_step
    graphs = compile_step in ("reduce-overhead", "max-autotune") and device.type == "cuda"
    gen = torch.Generator().manual_seed(0)
    times = []
    for epoch in range(epochs + 1):  # epoch 0 warms up (and compiles)
        _sync(device)
        t0 = time.perf_counter()
        loss = torch.zeros((), device=device)
        for i, (x, y) in enumerate(batches.iterate(batch_size, shuffle=True, generator=gen, train=True)):
            if i == steps:
                break
            if graphs:  # the previous step's graph outputs are consumed: a new step of the CUDA graph tree
                torch.compiler.cudagraph_mark_step_begin()
            loss += step(model, optimizer, x, y, cfg, device)
        _sync(device)
        if epoch:
            times.append(time.perf_counter() - t0)
    per_image = min(times) / (steps * batch_size)
    return {"model": model_name, "batch_size": batch_size, "compiled": compile_step, "small_maps": small_maps,
            "images_timed": steps * batch_size,
            "seconds_per_epoch": per_image * len(batches), "images_per_s": 1 / per_image,
            "epoch_images": len(batches), "final_loss": float(loss) / max(steps, 1)}


def bench_epochs(models: list[str], batch_sizes: list[int], epochs: int = 2, device: str = "auto",
                 compile_step: str | None = None, limit: int | None = None, small_maps: str = "on") -> dict:
    """small_maps: "on" (the engine's default), "off", or "both" (each setting timed both ways)."""
    if limit is not None and limit < max(batch_sizes):
        raise UserError(f"--limit {limit} holds no batch of {max(batch_sizes)} images: give --limit >= the largest "
                        "--batch-sizes")
    dev = pick_device(device)
    torch.backends.cudnn.benchmark = dev.type == "cuda"
    ways = {"on": (True,), "off": (False,), "both": (True, False)}[small_maps]
    rows = [time_epochs(m, b, epochs, dev, compile_step, limit, way) for m in models for b in batch_sizes for way in ways]
    grid = {}
    for b in batch_sizes:
        per = {r["model"]: r["seconds_per_epoch"] for r in rows if r["batch_size"] == b and r["small_maps"] == ways[0]}
        grid[str(b)] = {"hours": sum(per.values()) * GRID_EPOCHS / 3600,
                        "paper_rtx2070_hours": sum(PAPER_SECONDS.get(m, 60) for m in per) * GRID_EPOCHS / 3600,
                        "models": sorted(per)}
    return {"device": device_label(dev), "rows": rows, "grid_projection": grid, "epochs_timed": epochs}


def format_report(out: dict) -> str:
    lines = [f"seconds per training epoch on {out['device']} (joint mode, bf16, channels_last, "
             f"data resident on the device; best of {out['epochs_timed']} timed epochs):"]
    for r in out["rows"]:
        compiled = f" compiled ({r['compiled']})" if r["compiled"] else ""
        lines.append(f"  {r['model']:<10} batch {r['batch_size']:>5}{compiled}"
                     f"{'' if r['small_maps'] else ' native convs only'}: "
                     f"{r['seconds_per_epoch']:8.2f} s per {r['epoch_images']:,} images ({r['images_per_s']:,.0f} img/s)")
    for on, off in zip(out["rows"][::2], out["rows"][1::2]):
        if on["small_maps"] and not off["small_maps"] and on["model"] == off["model"]:
            lines.append(f"  {on['model']} batch {on['batch_size']}: small-map GEMM convs "
                         f"{off['seconds_per_epoch'] / on['seconds_per_epoch']:.2f}x faster per epoch")
    for b, g in out["grid_projection"].items():
        lines.append(f"  the paper's grid ({', '.join(g['models'])} x 5 seeds x 50 epochs x with/without SideNet) at "
                     f"batch {b}: {g['hours']:.2f} h (the paper's RTX 2070: {g['paper_rtx2070_hours']:.0f} h)")
    return "\n".join(lines)

