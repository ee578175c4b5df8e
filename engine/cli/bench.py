"""`bench metrics|train|cascade|features|epochs` and `latency`: benchmarks that print ratios measured in one run."""
from __future__ import annotations

import argparse

from engine.cli import positive_int, theta_arg, to_json
from engine.metrics import EXIT_RULES


def _theta_or_auto(text: str):
    return "auto" if text == "auto" else theta_arg(text)


def _threads(n: int | None) -> None:
    if n is not None:
        import torch

        torch.set_num_threads(n)  # part of the stored device name ("cpu (..., N threads)")


def cmd_metrics(args) -> int:
    from engine.bench.metrics import bench_curve

    print(to_json(bench_curve(n=args.n)))
    return 0


def cmd_train(args) -> int:
    from engine.bench.train import bench_train_step

    print(to_json(bench_train_step(model=args.model, steps=args.steps, rounds=args.rounds)))
    return 0


def cmd_cascade(args) -> int:
    from engine.bench.cascade import bench_cascade, format_report
    from engine.store import Store

    out = bench_cascade(Store(args.db), args.run, args.theta, batch=args.batch, rounds=args.rounds,
                        device=args.device or "auto", attach=args.attach, limit=args.limit, threads=args.threads,
                        pool=args.pool, cuda_graphs=args.cuda_graphs, exit_rule=args.exit_rule)
    print(to_json(out) if args.json else format_report(out))
    return 0


def cmd_features(args) -> int:
    from engine.bench.features import bench_features, format_report

    _threads(args.threads)
    out = bench_features(model=args.model, attach=args.attach, dataset=args.dataset, batches=args.batches,
                         seeds=args.seeds, hidden=args.hidden, epochs=args.epochs, amp=args.amp)
    print(to_json(out) if args.json else format_report(out))
    return 0


def cmd_epochs(args) -> int:
    from engine.bench.epochs import bench_epochs, format_report

    out = bench_epochs(models=args.models, batch_sizes=args.batch_sizes, epochs=args.epochs, device=args.device,
                       compile_step=args.compile, limit=args.limit, small_maps=args.small_maps)
    print(to_json(out) if args.json else format_report(out))
    return 0


def cmd_latency(args) -> int:
    from engine.runtime.latency import measure_run
    from engine.store import Store

    _threads(args.threads)
    rows = measure_run(Store(args.db), args.run, device=args.device, batch_size=args.batch, repeats=args.repeats)
    if args.json:
        print(to_json(rows))
        return 0
    print(f"{args.run} on {rows[0]['device']} (stored):")
    for r in rows:
        print(f"  {r['attach']:<10} {r['part']:<14} batch {r['batch_size']:>4}: median {r['median_ms']:8.3f} ms, "
              f"p95 {r['p95_ms']:8.3f} ms, {r['throughput']:9.1f} inputs/s")
    return 0


def add_parsers(sub) -> None:
    b = sub.add_parser("bench", help="benchmarks that print ratios measured in one run")
    kinds = b.add_subparsers(dest="what", required=True)

    m = kinds.add_parser("metrics", help="the full theta curve of N samples, float32 vs float64")
    m.add_argument("--n", type=positive_int, default=100_000)
    m.set_defaults(func=cmd_metrics)

    t = kinds.add_parser("train", help="the engine's training step vs a hand-written loop")
    t.add_argument("--model", default="resnet18"), t.add_argument("--steps", type=positive_int, default=20)
    t.add_argument("--rounds", type=positive_int, default=3)
    t.set_defaults(func=cmd_train)

    c = kinds.add_parser("cascade", help="the real cascade against the full MainNet, realised vs ideal speed-up")
    c.add_argument("run")
    c.add_argument("--theta", type=_theta_or_auto, required=True,
                   help="a theta in [0, 1], or auto (at most 0.5 accuracy points lost on the validation split)")
    c.add_argument("--batch", type=positive_int, default=64, help="batch size (1 = one input at a time)")
    c.add_argument("--attach", help="the SideNet's attach point (default: the run's first)")
    c.add_argument("--limit", type=positive_int, help="only the first N test inputs")
    c.add_argument("--device", help="cpu, cuda (default: cuda when visible)")
    c.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's own setting)")
    c.add_argument("--rounds", type=positive_int, default=3)
    c.add_argument("--pool", action="store_true", help="also time the pooled stream (deferred samples of "
                   "several batches go through rest together)")
    c.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=None,
                   help="run the MainNet and the cascade as CUDA graphs (default: on for image MainNets on CUDA)")
    c.add_argument("--exit-rule", choices=EXIT_RULES, default="max-prob")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_cascade)

    f = kinds.add_parser("features", help="SideNet training from the feature cache vs re-running the backbone")
    f.add_argument("--model", default="efficientnet-lite0"), f.add_argument("--attach", default="block3")
    f.add_argument("--dataset", default="fashion-mnist")
    f.add_argument("--batches", type=positive_int, default=40, help="batches timed when re-running the backbone")
    f.add_argument("--seeds", type=positive_int, default=5), f.add_argument("--epochs", type=positive_int, default=3)
    f.add_argument("--hidden", type=positive_int, nargs="+", default=[32, 768])
    f.add_argument("--amp", choices=("bf16", "none"), default="bf16", help="autocast of both trainings (default bf16)")
    f.add_argument("--threads", type=positive_int)
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=cmd_features)

    e = kinds.add_parser("epochs", help="seconds per training epoch of MainNets (joint mode), for the GPU grid")
    e.add_argument("--models", nargs="+", default=["resnet18", "resnet34", "resnet50", "resnet152"])
    e.add_argument("--batch-sizes", type=positive_int, nargs="+", default=[64, 512])
    e.add_argument("--epochs", type=positive_int, default=2, help="timed epochs per setting (after one untimed warm-up)")
    e.add_argument("--limit", type=positive_int, help="images per epoch (default: the whole training split)")
    e.add_argument("--device", default="auto")
    e.add_argument("--compile", nargs="?", const="default", metavar="MODE",
                   choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
                   help="torch.compile the training step (MODE: default, or reduce-overhead: CUDA graphs on a GPU)")
    e.add_argument("--small-maps", choices=("on", "off", "both"), default="on",
                   help="ResNet convs on <= 2x2 maps as one GEMM while training on the CPU (engine.mainnets.small_maps); "
                        "both: time each setting with and without")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_epochs)

    lat = sub.add_parser("latency", help="measure a run's per-part latency on a device and store it in the cache")
    lat.add_argument("run"), lat.add_argument("--device", default="auto", help="cpu, cuda (default: cuda when visible)")
    lat.add_argument("--batch", type=positive_int, default=64, help="batch size of the throughput rows")
    lat.add_argument("--repeats", type=positive_int, default=100, help="timed calls at batch size 1, per part")
    lat.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's own setting)")
    lat.add_argument("--json", action="store_true")
    lat.set_defaults(func=cmd_latency)
