"""`python -m engine bench cascade RUN --theta T [--batch B]`: does the early exit show on the clock?

On the run's test inputs (the same collated batches for both), the wall-clock of the real
cascade (engine.runtime.cascade.Cascade) against the full MainNet (its unsplit forward):

    realized speed-up = time(full MainNet) / time(cascade)
    ideal speed-up    = full MACs / average cascade MACs at theta
                      = (trunk + rest) / (trunk + sidenet + (1 - exit fraction) * rest)
    ratio             = realized / ideal        (goal: >= 0.9 on CPU, >= 0.8 on CUDA at batch >= 64)

MACs are counted (torch.utils.flop_counter) at each timed batch's own shape, so that a text
batch's padded length counts; with the exits of that batch, this gives the average cascade MACs.
Timing is interleaved to survive a shared, noisy machine: each round walks the test set in
segments, timing one segment with the MainNet and then with the cascade (the order rotates
segment by segment); the realised speed-up is the median over rounds of the per-round ratio.
`--pool` adds a third contender, Cascade.stream: the deferred samples of consecutive batches are
pooled so that `rest` always runs on a full batch (throughput mode).
On CUDA a segment is a whole pass (timed between torch.cuda.synchronize calls), so the MainNet
keeps its CPU/GPU overlap across batches. The cascade's answers are checked once (untimed)
against the cached-logit computation.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from engine.analysis.runs import prepare_one
from engine.errors import UserError
from engine.metrics import ThetaCurve
from engine.runtime.cascade import auto_theta_for_run, load_cascade
from engine.runtime.device import device_label, pick_device, to_device
from engine.runtime.latency import timer

GOALS = {"cpu": 0.9, "cuda": 0.8}
SEGMENTS = 40  # per round on CPU


def _batches(data, collate, device, batch: int, limit: int | None) -> tuple[list, int]:
    n = len(data.test) if limit is None else min(limit, len(data.test))
    out = []
    for start in range(0, n, batch):
        items = [data.test[i] for i in range(start, min(start + batch, n))]
        out.append(to_device(collate(items)[0], device))
    return out, n


def _cached_answers(side_logits, main_logits, theta: float, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """(pred (n,), exited (n,)) of the cached-logit computation: engine.metrics' exit rule."""
    from engine.metrics import exit_score, population_masks

    exited = population_masks(exit_score(side_logits, rule), theta)["exited"]
    return np.where(exited, side_logits.argmax(1), main_logits.argmax(1)), exited


def _batch_macs(cascade, batches: list, n_deferred: list[int]) -> tuple[float, float]:
    """(full MainNet MACs, cascade MACs) summed over the timed batches, each counted at its own shape.

    A text batch is padded to its longest sentence, so its MACs depend on that length; the hard
    (deferred) sentences tend to be the longer ones, so the run's stored per-input MACs (counted
    on one test batch) would misstate the ideal. MACs are linear in the batch size, so each
    distinct input shape is counted once, on one row (torch.utils.flop_counter, engine.costs).
    """
    from engine.costs import measure_paths
    from engine.mainnets import batch_size, select

    per_shape: dict[tuple, dict] = {}
    full_total = cascade_total = 0.0
    one = torch.zeros(1, dtype=torch.long, device=cascade.device)
    for x, deferred in zip(batches, n_deferred):
        shape = tuple(tuple(v.shape[1:]) for v in x.values()) if isinstance(x, dict) else tuple(x.shape[1:])
        if shape not in per_shape:
            with torch.inference_mode():
                per_shape[shape] = measure_paths(cascade.model, select(x, one), 1)[cascade.k]
        c = per_shape[shape]
        size = batch_size(x)
        full_total += size * c["full"]["macs"]
        cascade_total += size * (c["trunk"]["macs"] + c["sidenet"]["macs"]) + deferred * c["rest"]["macs"]
    return full_total, cascade_total


def bench_cascade(store, run_id: str, theta="auto", batch: int = 64, rounds: int = 5, device: str = "auto",
                  attach: str | None = None, limit: int | None = None, threads: int | None = None,
                  pool: bool = False, cuda_graphs: bool | None = None, exit_rule: str = "max-prob") -> dict:
    """Realised vs ideal speed-up of the run's cascade at theta (a float, or "auto").

    threads: torch's intra-op CPU threads for the measurement (None: leave torch's setting).
    pool: also time Cascade.stream (deferred samples pooled across batches into full batches
    for `rest`), interleaved with the other two.
    cuda_graphs: None = the Cascade's default (on for image MainNets on CUDA); it applies to the
    full-MainNet baseline as well, so both sides are timed the same way.
    """
    if batch < 1 or rounds < 1 or (limit is not None and limit < 1) or (threads is not None and threads < 1):
        raise UserError("--batch, --rounds, --limit and --threads must be at least 1")
    if threads is not None:
        torch.set_num_threads(threads)
    dev = pick_device(device)
    chosen = None
    if theta == "auto":
        chosen = auto_theta_for_run(store, run_id, attach, exit_rule=exit_rule)
        theta = chosen["theta"]
    theta = float(theta)
    view = prepare_one(store, run_id, attach, "test")
    if not view.has_sidenet:
        raise UserError(f"run {run_id} has no SideNet (mainnet-only): there is no cascade to benchmark")
    cascade, data, collate, run = load_cascade(store, run_id, theta, view.attach, str(dev), cuda_graphs=cuda_graphs,
                                               exit_rule=exit_rule)
    batches, n = _batches(data, collate, dev, batch, limit)
    if n != view.n and limit is None:
        raise UserError(f"run {run_id}: the test split rebuilt from its config has {n} inputs but the cache "
                        f"holds {view.n}; the dataset files changed?")
    logits = store.logits(run_id, "test")
    side_logits, main_logits = logits["heads"][view.attach][:n], logits["heads"]["main"][:n]

    # correctness, untimed: the cascade's answers against the cached-logit computation
    preds, exits = [], []
    for x in batches:
        out = cascade(x)
        preds.append(out.pred.cpu())
        exits.append(out.exited.cpu())
    pred, exited = torch.cat(preds).numpy(), torch.cat(exits).numpy()
    want_pred, want_exit = _cached_answers(side_logits, main_logits, theta, exit_rule)

    # timing: interleaved segments, alternating order
    now = timer(dev)
    segments = 1 if dev.type == "cuda" else min(SEGMENTS, len(batches))
    bounds = np.linspace(0, len(batches), segments + 1).round().astype(int)
    def each(fn):
        def run(xs):
            for x in xs:
                fn(x)
        return run

    def pooled(xs):
        for _ in cascade.stream(xs, pool=batch):
            pass

    fns = {"full": each(cascade.full), "cascade": each(cascade)}
    if pool:
        fns["pooled"] = pooled
    names = list(fns)
    for fn in fns.values():  # warm-up: a few batches of each
        fn(batches[:3])
    per_round = {name: [] for name in fns}
    for r in range(rounds):
        spent = dict.fromkeys(fns, 0.0)
        for s in range(segments):
            shift = (r + s) % len(names)  # rotate who goes first
            for name in names[shift:] + names[:shift]:
                t0 = now()
                fns[name](batches[bounds[s]:bounds[s + 1]])
                spent[name] += now() - t0
        for name in fns:
            per_round[name].append(spent[name])
    full_s, cascade_s = np.array(per_round["full"]), np.array(per_round["cascade"])
    realized = float(np.median(full_s / cascade_s))
    pooled_s = np.array(per_round.get("pooled", []))

    curve = ThetaCurve.from_logits(side_logits, main_logits, view.labels[:n], exit_rule=exit_rule)  # the inputs timed
    at = curve.at(theta, view.costs)
    full_macs, cascade_macs = _batch_macs(cascade, batches, [int((~e).sum()) for e in exits])
    ideal = full_macs / cascade_macs
    goal = GOALS.get(dev.type, 0.9)
    return {
        "run_id": run_id, "model": run["model"], "dataset": run["dataset"], "attach": view.attach,
        "device": device_label(dev), "exit_rule": exit_rule, "batch": batch, "n": n, "rounds": rounds,
        "theta": theta, "theta_source": "auto" if chosen else "given", "auto_theta_val": chosen,
        "test_accuracy": at["accuracy"], "test_main_accuracy": at["main_accuracy"],
        "exit_fraction": at["exit_fraction"], "exit_fraction_measured": float(exited.mean()),
        "agreement_with_cached": float((pred == want_pred).mean()),
        "exit_agreement_with_cached": float((exited == want_exit).mean()),
        "full_ms_per_input": float(np.median(full_s)) * 1e3 / n,
        "cascade_ms_per_input": float(np.median(cascade_s)) * 1e3 / n,
        "realized_speedup": realized, "realized_speedup_per_round": (full_s / cascade_s).round(4).tolist(),
        "full_macs": full_macs / n, "avg_cascade_macs": cascade_macs / n, "ideal_speedup": ideal,
        "ideal_speedup_stored_costs": view.costs["macs"].full / at["avg_macs"],
        "ratio": realized / ideal, "goal": goal, "meets_goal": realized / ideal >= goal,
        "threads": torch.get_num_threads(), "cuda_graphs": cascade.cuda_graphs,
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        **({"pooled_ms_per_input": float(np.median(pooled_s)) * 1e3 / n,
            "realized_speedup_pooled": float(np.median(full_s / pooled_s)),
            "realized_speedup_pooled_per_round": (full_s / pooled_s).round(4).tolist(),
            "ratio_pooled": float(np.median(full_s / pooled_s)) / ideal,
            "meets_goal_pooled": float(np.median(full_s / pooled_s)) / ideal >= goal} if pool else {}),
    }


def format_report(out: dict) -> str:
    auto = out["auto_theta_val"]
    theta = f"{out['theta']:.6g}" + (f" (auto: val accuracy {auto['accuracy']:.2%} vs MainNet {auto['main_accuracy']:.2%}, "
                                     f"val exit {auto['exit_fraction']:.1%})" if auto else "")
    lines = [
        f"{out['run_id']} ({out['model']} on {out['dataset']}, SideNet at {out['attach']}) on {out['device']}",
        f"  theta {theta}",
        f"  test: {out['n']} inputs, batch {out['batch']}, {out['rounds']} interleaved rounds"
        + (", CUDA graphs (MainNet and cascade)" if out.get("cuda_graphs") else ""),
        f"  exit fraction {out['exit_fraction']:.1%} (measured {out['exit_fraction_measured']:.1%}); "
        f"cascade accuracy {out['test_accuracy']:.2%} vs MainNet {out['test_main_accuracy']:.2%}",
        f"  answers equal to the cached-logit computation: {out['agreement_with_cached']:.2%}",
        f"  full MainNet {out['full_ms_per_input']:.4g} ms/input, cascade {out['cascade_ms_per_input']:.4g} ms/input",
        f"  realized speed-up {out['realized_speedup']:.3f}x (per round: "
        f"{', '.join(f'{v:.3f}' for v in out['realized_speedup_per_round'])})",
        f"  ideal speed-up from MACs {out['ideal_speedup']:.3f}x ({out['full_macs'] / 1e6:.2f}M / "
        f"{out['avg_cascade_macs'] / 1e6:.2f}M MACs per input, each batch counted at its own shape; "
        f"{out['ideal_speedup_stored_costs']:.3f}x from the run's stored costs)",
        f"  ratio realized/ideal {out['ratio']:.3f} (goal >= {out['goal']}: {'met' if out['meets_goal'] else 'NOT met'})",
    ]
    if "ratio_pooled" in out:
        lines += [
            f"  pooled (Cascade.stream: deferred samples of several batches go through rest together): "
            f"{out['pooled_ms_per_input']:.4g} ms/input",
            f"    realized speed-up {out['realized_speedup_pooled']:.3f}x (per round: "
            f"{', '.join(f'{v:.3f}' for v in out['realized_speedup_pooled_per_round'])}), ratio {out['ratio_pooled']:.3f} "
            f"({'met' if out['meets_goal_pooled'] else 'NOT met'})",
        ]
    return "\n".join(lines)
