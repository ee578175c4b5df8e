"""`python -m engine`: train, list, sweep, report, export and benchmark runs from the terminal.

One module per group of commands; each adds its subparsers with `add_parsers(sub)` and sets
`func`. A UserError prints one `error:` line and exits 2; `--json` output is strict JSON.
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np

from engine import procs
from engine.errors import UserError


def to_json(obj) -> str:
    """Strict JSON: NaN and infinities become null; numpy values, tuples and typed results (with
    a to_json method) become plain JSON."""
    def plain(v):
        if hasattr(v, "to_json"):
            return plain(v.to_json())
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, np.ndarray):
            return plain(v.tolist())
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        return str(v)  # timestamps, paths
    return json.dumps(plain(obj), indent=2, allow_nan=False)


def theta_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"theta must be a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise argparse.ArgumentTypeError(f"theta must be in [0, 1], got {value}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from engine.cli import bench, features, report, runs, train

    p = argparse.ArgumentParser(prog="python -m engine", description="SideNets engine: train, cache, sweep, report.")
    p.add_argument("--db", help="DuckDB file (default: $SIDENETS_DB or data/sidenets.duckdb)")
    sub = p.add_subparsers(dest="command", required=True)
    for module in (train, runs, report, features, bench):
        module.add_parsers(sub)
    j = sub.add_parser("jobs", help="the background training queue (same as python -m engine.jobs)", add_help=False)
    j.add_argument("rest", nargs=argparse.REMAINDER)
    j.set_defaults(func=_jobs)
    return p


def _jobs(args) -> int:
    """`python -m engine [--db F] jobs ...`: the queue's own CLI, the top-level --db passed on."""
    from engine.jobs.__main__ import main

    forward = args.db and args.rest and "--db" not in args.rest
    return main([*args.rest, "--db", args.db] if forward else args.rest)


def main(argv: list[str] | None = None) -> int:
    procs.interrupt_on_sigterm()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
