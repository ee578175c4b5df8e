"""`train` and `quickstart`."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from engine.cli import positive_int
from engine.config import AMP_CHOICES, AUGMENTS, MODE_HELP, MODES, OPTIMIZERS, SCHEDULES, TrainConfig, load_toml
from engine.errors import UserError
from engine.sidenet import ORDERS


def train_configs(args) -> list[TrainConfig]:
    """The configs of --preset / --config / flags, with the flags overriding; all validated."""
    from engine.presets import preset

    if args.preset and args.config:
        raise UserError("give either --preset or --config, not both")
    configs = preset(args.preset) if args.preset else load_toml(args.config) if args.config else [TrainConfig()]
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                 if getattr(args, f.name, None) is not None}
    return [dataclasses.replace(c, **overrides).resolved() for c in configs]


def complete_run_of(cfg: TrainConfig, seed: int, store, runs: list[dict]) -> str | None:
    """The newest of `runs` (e.g. the store's complete runs) trained with exactly this config and seed, if any."""
    from engine.train import resolve_init_from

    try:
        wanted = json.loads(json.dumps({**resolve_init_from(cfg, seed, store).to_dict(), "seeds": [seed]}))
    except UserError:  # a frozen config whose mainnet-only run is not trained yet
        return None
    return next((r["run_id"] for r in runs if r["config"] == wanted), None)


def cmd_train(args) -> int:
    from engine.cli.runs import print_summary
    from engine.store import Store
    from engine.train import train_run

    configs = train_configs(args)  # validate every config before the first minute of training
    store = Store(args.db)
    total, done = sum(len(c.seeds) for c in configs), []
    finished_before = store.list_runs() if args.resume else []  # read once: runs trained below are new
    for cfg in configs:
        for seed in cfg.seeds:
            step = f"[{len(done) + 1}/{total}]"
            finished = args.resume and complete_run_of(cfg, seed, store, finished_before)
            if finished:
                print(f"{step} {finished} already trained this configuration (--resume)", file=sys.stderr)
                done.append(finished)
                continue
            print(f"{step} training {cfg.model} on {cfg.dataset} ({cfg.mode}, seed {seed})", file=sys.stderr, flush=True)
            done.append(train_run(cfg, seed, store))
    print_summary(store, done)
    return 0


def cmd_quickstart(args) -> int:
    """`make run`'s first half: train the quickstart's first configuration now (the explorer serves
    once it is in), queue the rest as background jobs. It resumes: a (config, seed) pair is skipped
    when a run of it is complete, still training, or failed for a reason a retry would meet again
    (an interrupted or killed run trains again), and a configuration when a job of it is queued,
    running or was cancelled. A DB holding any run from outside the quickstart is left alone."""
    from engine.cli.runs import print_summary
    from engine.jobs import ACTIVE, JobQueue
    from engine.presets import QUICKSTART_FOREGROUND, preset
    from engine.store import Store
    from engine.train import train_run

    store = Store(args.db)
    runs = []
    if store.path.exists():
        store.migrate()  # a DB of an older version: `make run` upgrades it (readers refuse old files)
        runs = store.list_runs(include_all=True)
    if any(r["config"].get("preset") != "quickstart" for r in runs):
        print(f"{store.path} already holds runs of its own; skipping the quickstart training", file=sys.stderr)
        return 0
    settled = [r for r in runs if r["status"] != "failed" or not _interrupted(r["error"])]
    configs = [c.resolved() for c in preset("quickstart")]
    now, later = configs[:QUICKSTART_FOREGROUND], configs[QUICKSTART_FOREGROUND:]
    done, failed = [], []
    for cfg in now:
        for seed in cfg.seeds:
            if _settled(cfg, seed, store, settled):
                continue
            print(f"quickstart: training {cfg.model} on {cfg.dataset} ({cfg.mode}, seed {seed})", file=sys.stderr,
                  flush=True)
            try:
                done.append(train_run(cfg, seed, store))
            except Exception as err:  # recorded as a failed run; the rest is still queued, the explorer serves
                failed.append(f"{cfg.model} seed {seed}: {err.__class__.__name__}: {err}")
    queue = JobQueue(db=store.path)
    taken = [_without_seeds(j["config"]) for j in queue.jobs() if j["state"] in (*ACTIVE, "cancelled")] if later else []
    submitted = 0
    for cfg in later:
        missing = [s for s in cfg.seeds if not _settled(cfg, s, store, settled)]
        if missing and _without_seeds(cfg.to_dict()) not in taken:
            queue.submit(cfg.to_dict(), missing, label=f"quickstart: {cfg.model} on {cfg.dataset} ({cfg.mode})")
            submitted += 1
    if submitted:
        queue.ensure_worker()
        print(f"quickstart: {submitted} more configuration(s) train in the background; their runs appear in "
              "the explorer as they land (progress on its Train page)", file=sys.stderr)
    if not done and not submitted and not failed:
        print("quickstart: every configuration is trained, training, queued or settled", file=sys.stderr)
    if done:
        print_summary(store, done)
    if failed:
        raise UserError("the quickstart's run failed: " + "; ".join(failed))
    return 0


def _interrupted(error: str | None) -> bool:
    """A failed run's error says it was stopped (Ctrl-C, a cancel, a kill), not that it broke."""
    from engine.store.store import DEAD_RUN

    return (error or "").startswith(("KeyboardInterrupt", "SystemExit")) or error == DEAD_RUN


def _settled(cfg: TrainConfig, seed: int, store, settled: list[dict]) -> bool:
    """Whether `settled` (complete, training, or failed-for-good runs) holds this (config, seed);
    a run that failed for good is named, with how to train it again."""
    run_id = complete_run_of(cfg, seed, store, settled)
    run = next((r for r in settled if r["run_id"] == run_id), None)
    if run and run["status"] == "failed":
        print(f"quickstart: {run_id} failed ({run['error'][:200]}); not trained again: `python -m engine delete "
              f"{run_id}` and the next `make run` retries it", file=sys.stderr)
    return run is not None


def _without_seeds(config: dict) -> dict:
    """A config as JSON has it (lists, not tuples; fields added since filled in as a stored run's
    are), its seeds left out: the same configuration."""
    from engine.store.schema import CONFIG_FIELDS_ADDED

    return {k: v for k, v in json.loads(json.dumps({**CONFIG_FIELDS_ADDED, **config})).items() if k != "seeds"}


def add_parsers(sub) -> None:
    t = sub.add_parser("train", help="train MainNet + SideNet runs into the cache")
    t.add_argument("--preset", help="a preset name (python -m engine presets lists them)")
    t.add_argument("--config", help="a TOML file of TrainConfig fields (optional [[runs]] tables)")
    t.add_argument("--model"), t.add_argument("--dataset")
    t.add_argument("--attach", nargs="+", help="attach point(s), e.g. layer1 layer2 / encoder4 / block3")
    t.add_argument("--hidden", dest="sidenet_hidden", type=positive_int, help="SideNet hidden units (default 32)")
    t.add_argument("--order", dest="sidenet_order", choices=ORDERS)
    t.add_argument("--mode", choices=MODES, help="; ".join(f"{m}: {h}" for m, h in MODE_HELP.items()))
    t.add_argument("--seeds", nargs="+", type=int)
    t.add_argument("--epochs", type=positive_int), t.add_argument("--batch-size", type=positive_int)
    t.add_argument("--lr", type=float), t.add_argument("--lr-factor", type=float)
    t.add_argument("--head-lr", type=float,
                   help="learning rate of the new heads (SideNets, final head); default: --lr. In head and frozen "
                        "modes every trainable weight is a head: this rate is the one used")
    t.add_argument("--optimizer", choices=OPTIMIZERS), t.add_argument("--schedule", choices=SCHEDULES)
    t.add_argument("--momentum", type=float), t.add_argument("--weight-decay", type=float)
    t.add_argument("--label-smoothing", type=float)
    t.add_argument("--alpha", type=float), t.add_argument("--patience", type=positive_int)
    t.add_argument("--limit", type=positive_int, help="cap every split at N samples (real small subsets)")
    t.add_argument("--max-train", type=positive_int, help="cap the training split only at N samples")
    t.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=None)
    t.add_argument("--init-from", help="initialise from a run's checkpoint (frozen mode needs it)")
    t.add_argument("--stem", help="ResNets: paper (no max-pool, default) or torchvision")
    t.add_argument("--pooling", help="text encoders: cls or mean (default: the model's)")
    t.add_argument("--max-length", type=positive_int), t.add_argument("--device")
    t.add_argument("--amp", choices=AMP_CHOICES)
    t.add_argument("--augment", choices=AUGMENTS, help="images, training: crop-flip (the paper's), flip or none")
    t.add_argument("--resume", action="store_true",
                   help="skip the (config, seed) pairs the DB already holds a complete run of (an interrupted preset)")
    t.set_defaults(func=cmd_train)

    q = sub.add_parser("quickstart", help="train the quickstart's first configuration, queue the rest in the "
                       "background; resumes an interrupted quickstart (nothing if the DB holds other runs)")
    q.set_defaults(func=cmd_quickstart)
