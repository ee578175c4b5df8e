"""`python -m engine`: train, list, sweep, export and benchmark runs from the terminal."""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import signal
import sys

from engine.config import AMP_CHOICES
from engine.errors import UserError

SUMMARY_THETAS = (0.5, 0.8, 0.9, 0.95, 0.99)


def _theta(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"theta must be a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise argparse.ArgumentTypeError(f"theta must be in [0, 1], got {value}")
    return value


def _train_configs(args) -> list:
    from engine.config import TrainConfig, load_toml, preset

    if args.preset and args.config:
        raise UserError("give either --preset or --config, not both")
    configs = preset(args.preset) if args.preset else load_toml(args.config) if args.config else [TrainConfig()]
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                 if getattr(args, f.name, None) is not None}
    return [dataclasses.replace(c, **overrides).resolved() for c in configs]


def cmd_train(args) -> int:
    from engine.store import Store
    from engine.train import train_run

    configs = _train_configs(args)  # validate every config before the first minute of training
    store = Store(args.db)
    total, done = sum(len(c.seeds) for c in configs), []
    for cfg in configs:
        for seed in cfg.seeds:
            print(f"[{len(done) + 1}/{total}] training {cfg.model} on {cfg.dataset} ({cfg.mode}, seed {seed})",
                  file=sys.stderr, flush=True)
            done.append(train_run(cfg, seed, store))
    print_summary(store, done)
    return 0


def print_summary(store, run_ids: list[str] | None = None, thetas=SUMMARY_THETAS, as_json: bool = False) -> None:
    """Per run: accuracy of each head and of the cascade at a few thetas, with exit fraction and MAC saving."""
    from engine.analysis import load_view, sweep

    runs = [r for r in store.list_runs() if run_ids is None or r["run_id"] in run_ids]
    rows = []
    for run in runs:
        view = load_view(store, run["run_id"])
        row = {"run_id": run["run_id"], "model": run["model"], "dataset": run["dataset"], "attach": view.attach,
               "main_accuracy": float((view.main_logits.argmax(1) == view.labels).mean()), "cascade": []}
        if view.side_logits is not None:
            row["side_accuracy"] = float((view.side_logits.argmax(1) == view.labels).mean())
            row["cascade"] = [sweep(view, t) for t in thetas]
        rows.append(row)
    if as_json:
        print(json.dumps(rows, indent=2, default=float))
        return
    if not rows:
        print("no complete runs yet: python -m engine train --preset quickstart")
    for row in rows:
        side = f", SideNet@{row['attach']} {row['side_accuracy']:.2%}" if row["cascade"] else ""
        print(f"\n{row['run_id']}  ({row['model']} on {row['dataset']}): MainNet {row['main_accuracy']:.2%}{side}")
        if row["cascade"]:
            print(f"  {'theta':>6} {'accuracy':>9} {'exit':>7} {'params saved':>13} {'MACs saved':>11}")
            for c in row["cascade"]:
                print(f"  {c['theta']:>6.2f} {c['accuracy']:>9.2%} {c['exit_fraction']:>7.1%} "
                      f"{c['saving_params']:>13.1%} {c['saving_macs']:>11.1%}")


def cmd_runs(args) -> int:
    from engine.store import Store

    runs = Store(args.db).list_runs(include_all=args.all)
    if args.json:
        print(json.dumps(runs, indent=2, default=str))
        return 0
    if not runs:
        print("no runs yet: python -m engine train --preset smoke")
    for r in runs:
        print(f"{r['run_id']:<45} {r['status']:<9} {r['model']:<20} {r['dataset']:<14} {r['mode']:<13} "
              f"seed {r['seed']}  attach {','.join(r['attach'] or []) or '-'}  {r['device']}")
    return 0


def cmd_sweep(args) -> int:
    from engine.analysis import load_view, sweep
    from engine.store import Store

    out = sweep(load_view(Store(args.db), args.run, args.attach, args.split), args.theta, args.ensemble)
    if args.json:
        print(json.dumps(out, indent=2, default=float))
    else:
        for key, value in out.items():
            print(f"{key:>20}: {value:.4f}" if isinstance(value, float) else f"{key:>20}: {value}")
    return 0


def cmd_export(args) -> int:
    from engine.store import Store

    n = Store(args.db).export_parquet(args.run, args.out)
    print(f"wrote {n} rows to {args.out}")
    return 0


def cmd_delete(args) -> int:
    from engine.store import Store

    if not Store(args.db).delete_run(args.run):
        raise UserError(f"no run {args.run!r}")
    print(f"deleted {args.run}")
    return 0


def cmd_summary(args) -> int:
    from engine.store import Store

    print_summary(Store(args.db), thetas=args.thetas, as_json=args.json)
    return 0


def cmd_quickstart(args) -> int:
    """`make run`'s first half: train the quickstart preset if the cache has no complete run, then summarise."""
    from engine.store import Store

    store = Store(args.db)
    if store.path.exists() and store.list_runs():
        print(f"{store.path} already holds complete runs; skipping the quickstart training", file=sys.stderr)
    else:
        args.preset, args.config = "quickstart", None
        return cmd_train(args)
    print_summary(store)
    return 0


def _theta_or_auto(text: str):
    return "auto" if text == "auto" else _theta(text)


def cmd_bench_cascade(args) -> int:
    from engine.bench_cascade import bench_cascade, format_report
    from engine.store import Store

    if not args.run:
        raise UserError("bench cascade needs a run id: python -m engine bench cascade RUN --theta auto")
    if args.theta is None:
        raise UserError("bench cascade needs --theta T (a number in [0, 1]) or --theta auto")
    out = bench_cascade(Store(args.db), args.run, args.theta, batch=args.batch, rounds=args.rounds,
                        device=args.device or "auto", attach=args.attach, limit=args.limit, threads=args.threads,
                        pool=args.pool, cuda_graphs=args.cuda_graphs)
    print(json.dumps(out, indent=2, default=float) if args.json else format_report(out))
    return 0


def cmd_latency(args) -> int:
    from engine.latency import measure_run
    from engine.store import Store

    if args.threads is not None:
        if args.threads < 1:
            raise UserError("--threads must be at least 1")
        import torch

        torch.set_num_threads(args.threads)  # part of the stored device name ("cpu (..., N threads)")
    rows = measure_run(Store(args.db), args.run, device=args.device, batch_size=args.batch, repeats=args.repeats)
    if args.json:
        print(json.dumps(rows, indent=2, default=float))
        return 0
    print(f"{args.run} on {rows[0]['device']} (stored):")
    for r in rows:
        print(f"  {r['attach']:<10} {r['part']:<14} batch {r['batch_size']:>4}: median {r['median_ms']:8.3f} ms, "
              f"p95 {r['p95_ms']:8.3f} ms, {r['throughput']:9.1f} inputs/s")
    return 0


def cmd_bench(args) -> int:
    if args.what == "cascade":
        return cmd_bench_cascade(args)
    if args.what == "metrics":
        from engine.bench_metrics import bench_curve

        out = bench_curve(n=args.n)
    else:
        from engine.bench_train import bench_train_step

        out = bench_train_step(model=args.model, steps=args.steps, rounds=args.rounds)
    print(json.dumps(out, indent=2, default=float))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine", description="SideNets engine: train, cache, sweep.")
    p.add_argument("--db", help="DuckDB file (default: $SIDENETS_DB or data/sidenets.duckdb)")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train MainNet + SideNet runs into the cache")
    t.add_argument("--preset", help="smoke, quickstart, paper-vision or paper-text")
    t.add_argument("--config", help="a TOML file of TrainConfig fields (optional [[runs]] tables)")
    t.add_argument("--model"), t.add_argument("--dataset")
    t.add_argument("--attach", nargs="+", help="attach point(s), e.g. layer1 layer2 / encoder4 / block3")
    t.add_argument("--hidden", dest="sidenet_hidden", type=int, help="SideNet hidden units (default 32)")
    t.add_argument("--order", dest="sidenet_order", choices=["linear-bn-relu", "linear-relu-bn"])
    t.add_argument("--mode", choices=["joint", "frozen", "mainnet-only"])
    t.add_argument("--seeds", nargs="+", type=int)
    t.add_argument("--epochs", type=int), t.add_argument("--batch-size", type=int), t.add_argument("--lr", type=float)
    t.add_argument("--alpha", type=float), t.add_argument("--patience", type=int)
    t.add_argument("--limit", type=int, help="cap every split at N samples (real small subsets)")
    t.add_argument("--max-train", type=int, help="cap the training split only at N samples")
    t.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=None)
    t.add_argument("--init-from", help="initialise from a run's checkpoint (frozen mode needs it)")
    t.add_argument("--max-length", type=int), t.add_argument("--device"), t.add_argument("--amp", choices=AMP_CHOICES)
    t.set_defaults(func=cmd_train)

    r = sub.add_parser("runs", help="list runs")
    r.add_argument("--json", action="store_true"), r.add_argument("--all", action="store_true", help="also running/failed")
    r.set_defaults(func=cmd_runs)

    s = sub.add_parser("sweep", help="the cascade of one run at a theta")
    s.add_argument("run"), s.add_argument("--theta", type=_theta, required=True)
    s.add_argument("--attach"), s.add_argument("--split", choices=["test", "val"], default="test")
    s.add_argument("--ensemble", action="store_true", help="deferred samples answered by SideNet + MainNet logits")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_sweep)

    e = sub.add_parser("export", help="write a run's per-sample rows to Parquet")
    e.add_argument("run"), e.add_argument("--out", required=True)
    e.set_defaults(func=cmd_export)

    d = sub.add_parser("delete", help="delete a run")
    d.add_argument("run")
    d.set_defaults(func=cmd_delete)

    m = sub.add_parser("summary", help="accuracy of both heads and of the cascade at a few thetas, per run")
    m.add_argument("--thetas", nargs="+", type=_theta, default=list(SUMMARY_THETAS)), m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_summary)

    q = sub.add_parser("quickstart", help="train the quickstart preset unless the cache has runs; print the summary")
    q.set_defaults(func=cmd_quickstart)

    b = sub.add_parser("bench", help="benchmarks that print ratios measured in one run")
    b.add_argument("what", choices=["metrics", "train", "cascade"])
    b.add_argument("run", nargs="?", help="cascade: the run to benchmark")
    b.add_argument("--theta", type=_theta_or_auto, help="cascade: a theta in [0, 1], or auto (at most 0.5 "
                   "accuracy points lost on the validation split)")
    b.add_argument("--batch", type=int, default=64, help="cascade: batch size (1 = one input at a time)")
    b.add_argument("--attach", help="cascade: the SideNet's attach point (default: the run's first)")
    b.add_argument("--limit", type=int, help="cascade: only the first N test inputs")
    b.add_argument("--device", help="cascade: cpu, cuda (default: cuda when visible)")
    b.add_argument("--threads", type=int, help="cascade: torch CPU threads (default: torch's own setting)")
    b.add_argument("--pool", action="store_true", help="cascade: also time the pooled stream (deferred samples of "
                   "several batches go through rest together)")
    b.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=None,
                   help="cascade: run the MainNet and the cascade as CUDA graphs (default: on for image "
                   "MainNets on CUDA)")
    b.add_argument("--json", action="store_true")
    b.add_argument("--n", type=int, default=100_000), b.add_argument("--model", default="resnet18")
    b.add_argument("--steps", type=int, default=20), b.add_argument("--rounds", type=int, default=3)
    b.set_defaults(func=cmd_bench)

    lat = sub.add_parser("latency", help="measure a run's per-part latency on a device and store it in the cache")
    lat.add_argument("run"), lat.add_argument("--device", default="auto", help="cpu, cuda (default: cuda when visible)")
    lat.add_argument("--batch", type=int, default=64, help="batch size of the throughput rows")
    lat.add_argument("--repeats", type=int, default=100, help="timed calls at batch size 1, per part")
    lat.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own setting)")
    lat.add_argument("--json", action="store_true")
    lat.set_defaults(func=cmd_latency)
    return p


def _terminate(signum, _frame):
    raise KeyboardInterrupt(f"stopped by signal {signum}")  # lets a training run record itself as failed


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
