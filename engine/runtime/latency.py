"""Measured time of each part of a cascade, per run and device, stored in the DB.

Parts (the `latency` table's `part`):
    "trunk+sidenet"  trunk + SideNet + the exit decision (what an exited input pays)
    "rest"           the rest of the MainNet from x_c (what a deferred input pays on top)
    "full"           the MainNet alone, its unsplit forward (the baseline)
each at batch size 1 (median and p95 over many calls on real test inputs, after a warm-up) and
at a larger batch size (throughput = inputs per second at the median). On CUDA every timed call
is bracketed by torch.cuda.synchronize. The three parts are timed interleaved (call by call, in
rotating order), so a noisy machine slows all of them alike. engine.analysis turns the batch-1
medians into the "ms" cost axis beside parameters and MACs.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from engine.errors import UserError
from engine.mainnets import batch_size
from engine.runtime.cascade import Cascade, prepare
from engine.runtime.checkpoint import model_for_run
from engine.runtime.device import autocast, device_label, pick_device, to_device

PARTS = ("trunk+sidenet", "rest", "full")


def timer(device: torch.device) -> Callable[[], float]:
    """perf_counter that first waits for the GPU (a no-op wait on CPU)."""
    if device.type == "cuda":
        def now() -> float:
            torch.cuda.synchronize(device)
            return time.perf_counter()
        return now
    return time.perf_counter


def inputs_for(data, collate, device: torch.device, batch_size: int, count: int, start: int = 0) -> list:
    """`count` collated batches of `batch_size` consecutive test inputs, on the device (wraps around)."""
    n = len(data.test)
    out = []
    for b in range(count):
        items = [data.test[(start + b * batch_size + i) % n] for i in range(batch_size)]
        out.append(to_device(collate(items)[0], device))
    return out


def time_parts(fns: dict[str, Callable], inputs: list, device: torch.device, repeats: int,
               warmup: int) -> dict[str, np.ndarray]:
    """Milliseconds (repeats,) of each fn(inputs[i % len]) call, interleaved in rotating order."""
    now, names = timer(device), list(fns)
    ms = {name: np.zeros(repeats) for name in names}
    with torch.inference_mode():
        for r in range(-warmup, repeats):
            x = inputs[r % len(inputs)]
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                t0 = now()
                fns[name](x)
                t1 = now()
                if r >= 0:
                    ms[name][r] = (t1 - t0) * 1e3
    return ms


def _exit_path(cascade: Cascade):
    def run(x):
        _, _, _, exited = cascade.front(x)
        return torch.nonzero(~exited)  # the exit decision reaches the host, as in the cascade
    return run


def _rest_path(cascade: Cascade, by_input: dict[int, object]):
    def run(x):
        return cascade.rest(by_input[id(x)])
    return run


def measure(model, device: torch.device, inputs_1: list, inputs_b: list, repeats: int = 100,
            batch_repeats: int = 20, warmup: int = 10, amp: str = "auto") -> list[dict]:
    """Latency rows (without device) for every attach point of a model (or "none": full only).

    amp: as in Cascade ("auto": bf16 autocast on CUDA, like the run's evaluation).
    """
    size_b = batch_size(inputs_b[0])
    rows = []
    for k in model.attach or [0]:
        if k == 0:
            def full(x):
                with autocast(device, amp):
                    return model.mainnet(x)
            fns = lambda inputs: {"full": full}  # noqa: E731
            attach = "none"
        else:
            cascade = Cascade(model, k, theta=0.5, amp=amp)
            attach = cascade.attach_name

            def fns(inputs, cascade=cascade):
                with torch.inference_mode():
                    x_c = {id(x): cascade.front(x)[0] for x in inputs}  # rest starts from the real x_c
                return {"trunk+sidenet": _exit_path(cascade), "rest": _rest_path(cascade, x_c), "full": cascade.full}

        for inputs, size, reps in ((inputs_1, 1, repeats), (inputs_b, size_b, batch_repeats)):
            times = time_parts(fns(inputs), inputs, device, reps, warmup if size == 1 else max(2, warmup // 5))
            for part, ms in times.items():
                median = float(np.median(ms))
                rows.append({"attach": attach, "part": part, "batch_size": size, "median_ms": median,
                             "p95_ms": float(np.percentile(ms, 95)), "throughput": size * 1e3 / median})
    return rows


def measure_run(store, run_id: str, device: str = "auto", batch_size: int = 64, repeats: int = 100,
                batch_repeats: int = 20, warmup: int = 10, n_inputs: int = 32, save: bool = True) -> list[dict]:
    """Measure a complete run's latency on a device and (save=True) store it; returns the rows.

    Batch-1 calls cycle over the first `n_inputs` test inputs (real sentences vary in length);
    the batched calls use consecutive test batches of `batch_size`.
    """
    if min(batch_size, repeats, batch_repeats, n_inputs) < 1 or warmup < 0:
        raise UserError("batch size, repeats and inputs must be at least 1")
    run = store.get_run(run_id)
    if run["status"] != "complete":
        raise UserError(f"run {run_id} is {run['status']}, not complete")
    dev = pick_device(device)
    model, data, collate = model_for_run(run, store, str(dev))
    prepare(model)  # the same layout as the cascade runtime (channels_last for images)
    amp = (run.get("config") or {}).get("amp", "auto")
    inputs_1 = inputs_for(data, collate, dev, 1, min(n_inputs, len(data.test)))
    inputs_b = inputs_for(data, collate, dev, batch_size, 4)
    name = device_label(dev)
    rows = [{**r, "device": name} for r in measure(model, dev, inputs_1, inputs_b, repeats, batch_repeats, warmup, amp)]
    if save:
        store.put_latency(run_id, rows)
    return rows
