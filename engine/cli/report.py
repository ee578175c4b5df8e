"""`report`: the paper's tables and figures from the DB, as files (engine.analysis.report)."""
from __future__ import annotations


def cmd_report(args) -> int:
    from engine.analysis.report import write_report
    from engine.store import Store

    written = write_report(Store(args.db), out=args.out, dataset=args.dataset, with_figures=not args.no_figures,
                           reproduction=args.reproduction)
    for path in written:
        print(path)
    return 0


def add_parsers(sub) -> None:
    r = sub.add_parser("report", help="Tables 1-4 (Markdown, CSV) and Figures 2-4 (PNG, HTML) from the DB")
    r.add_argument("--dataset", action="append", help="only this dataset (repeatable; default: all)")
    r.add_argument("--out", default="report", help="output folder (default: report/)")
    r.add_argument("--no-figures", action="store_true", help="tables only (no PNG/HTML)")
    r.add_argument("--reproduction", help="also write REPRODUCTION.md to this path")
    r.set_defaults(func=cmd_report)
