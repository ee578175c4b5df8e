"""`features list|rm`: the feature cache (engine.features)."""
from __future__ import annotations

from engine.cli import to_json


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def cmd_list(args) -> int:
    from engine.features import FeatureCache

    cache = FeatureCache()
    entries = cache.entries()
    if args.json:
        print(to_json(entries))
        return 0
    if not entries:
        print(f"the feature cache {cache.root} is empty")
        return 0
    for e in entries:
        print(f"{e['id']}  {e['model']:<20} {e['dataset']:<14} {e['split']:<5} {e['tap']:<9} "
              f"{' x '.join(map(str, e['shape'])):<16} {_size(e['bytes']):>9}  {e['created']}")
    print(f"{len(entries)} entries, {_size(sum(e['bytes'] for e in entries))} in {cache.root}")
    return 0


def cmd_rm(args) -> int:
    from engine.errors import UserError
    from engine.features import FeatureCache

    if not args.all and not args.ids:
        raise UserError("give entry ids (python -m engine features list) or --all")
    cache = FeatureCache()
    n = cache.remove(None) if args.all else sum(cache.remove(i) for i in args.ids)
    print(f"removed {n} entr{'y' if n == 1 else 'ies'} from {cache.root}")
    return 0


def add_parsers(sub) -> None:
    f = sub.add_parser("features", help="list or remove feature cache entries (frozen backbones' outputs)")
    what = f.add_subparsers(dest="what", required=True)
    ls = what.add_parser("list", help="entries with their shape and size")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
    rm = what.add_parser("rm", help="remove entries")
    rm.add_argument("ids", nargs="*"), rm.add_argument("--all", action="store_true")
    rm.set_defaults(func=cmd_rm)
