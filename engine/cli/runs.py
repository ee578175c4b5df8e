"""`runs`, `sweep`, `summary`, `export`, `delete`, `migrate`, `presets`."""
from __future__ import annotations

import sys
from pathlib import Path

from engine.cli import theta_arg, to_json
from engine.errors import UserError
from engine.metrics import EXIT_RULES

SUMMARY_THETAS = (0.5, 0.8, 0.9, 0.95, 0.99)
WITHIN = 0.005  # summary's last line: the largest saving within half a point of the MainNet


def summary_rows(store, run_ids: list[str] | None = None, thetas=SUMMARY_THETAS, rule: str = "max-prob") -> list[dict]:
    """Per run: accuracy of each head and of the cascade at a few thetas."""
    from engine.analysis.runs import prepare_one
    from engine.analysis.summary import sweep
    from engine.metrics import auto_theta

    rows, summarised = [], {}  # run_id -> (run, view, row) of the SideNet rows
    for run in store.list_runs():
        if run_ids is not None and run["run_id"] not in run_ids:
            continue
        try:
            view = prepare_one(store, run["run_id"])
        except UserError as err:  # one unreadable run (a DB written elsewhere) does not hide the others
            print(f"warning: skipping run {run['run_id']}: {err}", file=sys.stderr)
            continue
        row = {"run_id": run["run_id"], "model": run["model"], "dataset": run["dataset"], "attach": view.attach,
               "main_accuracy": view.main_accuracy, "side_accuracy": None, "cascade": []}
        if view.has_sidenet:
            row["side_accuracy"] = view.side_accuracy
            row["cascade"] = [sweep(view, t, rule=rule) for t in thetas]
            # the most the cascade saves while losing <= 0.5 points against the MainNet, on this (test) split
            within = auto_theta(view.curve_for(rule=rule), max_drop=WITHIN)["theta"]
            row["within_half_point"] = sweep(view, within, rule=rule)
            summarised[run["run_id"]] = (run, view, row)
        rows.append(row)
    _add_configurations(summarised, rule)
    return rows


def _add_configurations(summarised: dict, rule: str) -> None:
    """Each SideNet row (summarised: run_id -> (run, its view, its row)) of a configuration with several
    seeds gets "configuration": its label and its mean curve's largest MAC saving within half a point
    (engine.analysis.summary.within_drop), from the views already prepared."""
    from engine.analysis.configurations import group_runs
    from engine.analysis.summary import within_drop

    runs = [run for run, _, _ in summarised.values()  # records another program wrote badly: skipped
            if all(isinstance(run.get(k), str) and run[k] for k in ("model", "dataset", "mode"))]
    for config in group_runs(runs):
        mine = [summarised[rid] for rid in config.run_ids if summarised[rid][1].attach == config.attach]
        if len(config.run_ids) < 2 or len(mine) != len(config.run_ids):
            continue
        result = within_drop([view for _, view, _ in mine], WITHIN, rule)
        for _, _, row in mine:
            row["configuration"] = {"label": f"{config.dataset}: {config.label}", **result}


def print_summary(store, run_ids: list[str] | None = None, thetas=SUMMARY_THETAS, as_json: bool = False,
                  rule: str = "max-prob") -> None:
    rows = summary_rows(store, run_ids, thetas, rule)
    if as_json:
        print(to_json(rows))
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
            best = row["within_half_point"]
            print(f"  within 0.5 points of the MainNet (this test split): theta {best['theta']:.4f} saves "
                  f"{best['saving_macs']:.1%} of MACs at {best['accuracy']:.2%}, exit {best['exit_fraction']:.1%}")
    configs = {row["configuration"]["label"]: row["configuration"] for row in rows if "configuration" in row}
    if configs:
        print("\nconfigurations with several seeds, on their mean curve (test split, theta grid 0.005):")
    for label, c in configs.items():
        where = "no theta" if c["theta"] is None else f"theta {c['theta']:.3f}"
        print(f"  {label} ({c['n_runs']} seeds): within 0.5 points of the MainNet's {c['main_accuracy']:.2%}, "
              f"{where} saves {c['saving_macs']:.1%} of MACs at {c['accuracy']:.2%}, exit {c['exit_fraction']:.1%}")


def existing_store(path):
    """The Store of an existing DB file (a command that only reads or edits it never creates one)."""
    from engine.store import Store

    store = Store(path)
    if not store.path.exists():
        raise UserError(f"no database at {store.path}")
    return store


def cmd_runs(args) -> int:
    from engine.store import Store

    runs = Store(args.db).list_runs(include_all=args.all)
    if args.json:
        print(to_json(runs))
        return 0
    if not runs:
        print("no runs yet: python -m engine train --preset smoke")
    for r in runs:
        print(f"{r['run_id']!s:<45} {r['status']!s:<9} {r['model']!s:<20} {r['dataset']!s:<14} {r['mode']!s:<13} "
              f"seed {r['seed']}  attach {','.join(map(str, r['attach'] or [])) or '-'}  {r['device']}")
    return 0


def cmd_sweep(args) -> int:
    from engine.analysis.runs import prepare_one
    from engine.analysis.summary import sweep
    from engine.store import Store

    out = sweep(prepare_one(Store(args.db), args.run, args.attach, args.split), args.theta, args.ensemble,
                args.exit_rule)
    if args.json:
        print(to_json(out))
    else:
        for key, value in out.items():
            print(f"{key:>20}: {value:.4f}" if isinstance(value, float) else f"{key:>20}: {value}")
    return 0


def cmd_export(args) -> int:
    out = Path(args.out)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name, e.g. {out / (args.run + '.parquet')}")
    if not out.parent.exists():
        raise UserError(f"--out {out}: the folder {out.parent} does not exist")
    n = existing_store(args.db).export_parquet(args.run, out)
    print(f"wrote {n} rows to {out}")
    return 0


def cmd_delete(args) -> int:
    store = existing_store(args.db)
    if not store.delete_run(args.run, cancel=args.cancel):
        raise UserError(f"no run {args.run!r} in {store.path}")
    print(f"deleted {args.run}")
    return 0


def cmd_summary(args) -> int:
    from engine.store import Store

    print_summary(Store(args.db), thetas=args.thetas, as_json=args.json, rule=args.exit_rule)
    return 0


def cmd_migrate(args) -> int:
    store = existing_store(args.db)
    print(f"{store.path}: schema version {store.migrate()}")
    return 0


def cmd_import(args) -> int:
    from engine.store import Store

    source = existing_store(args.source)
    new = Store(args.db).import_runs(source)
    print(f"imported {len(new)} complete run(s) from {source.path} (without their checkpoints)")
    return 0


def cmd_presets(args) -> int:
    from engine.presets import PRESETS

    if args.json:
        print(to_json([{"name": p.name, "summary": p.summary, "protocol": p.protocol, "where": p.where,
                        "configs": [c.to_dict() for c in p.configs]} for p in PRESETS.values()]))
        return 0
    for p in PRESETS.values():
        runs = sum(len(c.seeds) for c in p.configs)
        print(f"{p.name:<22} {runs:>4} run(s), {p.where:<13} {p.summary}\n{'':<22} protocol: {p.protocol}")
    return 0


def add_parsers(sub) -> None:
    r = sub.add_parser("runs", help="list runs")
    r.add_argument("--json", action="store_true")
    r.add_argument("--all", action="store_true", help="also running/failed")
    r.set_defaults(func=cmd_runs)

    s = sub.add_parser("sweep", help="the cascade of one run at a theta")
    s.add_argument("run"), s.add_argument("--theta", type=theta_arg, required=True)
    s.add_argument("--attach"), s.add_argument("--split", choices=["test", "val"], default="test")
    s.add_argument("--ensemble", action="store_true", help="deferred samples answered by SideNet + MainNet logits")
    s.add_argument("--exit-rule", choices=EXIT_RULES, default="max-prob",
                   help="max-prob: top-label probability >= theta; margin: top-1 minus top-2 probability >= theta")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_sweep)

    e = sub.add_parser("export", help="write a run's per-sample rows to Parquet")
    e.add_argument("run"), e.add_argument("--out", required=True)
    e.set_defaults(func=cmd_export)

    d = sub.add_parser("delete", help="delete a run (a running one only with --cancel)")
    d.add_argument("run")
    d.add_argument("--cancel", action="store_true", help="a run still training: stop its process first")
    d.set_defaults(func=cmd_delete)

    m = sub.add_parser("summary", help="accuracy of both heads and of the cascade at a few thetas, per run")
    m.add_argument("--thetas", nargs="+", type=theta_arg, default=list(SUMMARY_THETAS))
    m.add_argument("--exit-rule", choices=EXIT_RULES, default="max-prob")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_summary)

    g = sub.add_parser("migrate", help="bring a DB written by an older version to the current schema")
    g.set_defaults(func=cmd_migrate)

    i = sub.add_parser("import", help="copy the complete runs of another DB (e.g. from a GPU machine) into this one")
    i.add_argument("source", help="the other .duckdb file")
    i.set_defaults(func=cmd_import)

    p = sub.add_parser("presets", help="list the presets and the protocol each follows")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_presets)
