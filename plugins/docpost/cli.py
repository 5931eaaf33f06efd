"""The ``docpost`` command: one sub-command module per concern under ``docpost.commands``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from docpost import commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="docpost", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
