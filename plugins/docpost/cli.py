"""The ``docpost`` command: one sub-command module per concern under ``docpost.commands``.

Installed packages add sub-commands through the ``docpost.commands`` entry point group (the test
bench adds ``demo``, ``generate`` and ``simulator``); a group member that cannot be imported is
left out with a note, so a production install without the bench still has every other command.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from importlib.metadata import entry_points

from docpost import commands

ENTRY_POINT_GROUP = "docpost.commands"


def _command_modules():
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        yield importlib.import_module(f"{commands.__name__}.{info.name}")
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            yield ep.load()
        except ImportError as exc:  # a bench command whose extra is not installed
            print(f"docpost: command {ep.name!r} unavailable ({exc.name or exc})", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="docpost", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _command_modules():
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
