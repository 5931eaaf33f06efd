"""The ``docpost`` command: one sub-command module per concern under ``docpost.commands``.

Installed packages add sub-commands through the ``docpost.commands`` entry point group (the test
bench adds ``demo``, ``generate`` and ``simulator``); a group member that cannot be imported is
left out with a note, so a production install without the bench still has every other command.

Conventions every command keeps (as Airflow's own CLI does; shared code in
``docpost.commands._output``):

- Data on stdout, everything else on stderr: errors, warnings, summaries of what a check found
  when the output is JSON, and progress bars (shown only while stderr is a terminal).
- ``--output table|json`` on every command that prints data. ``table`` (default) is for people:
  a rich table on a terminal, plain aligned text in pipes and files, or the command's own layout
  (a timeline, a tree). ``json`` is one JSON document on stdout with sorted, stable keys. The older
  ``--json`` of ``report`` and ``validate`` is a deprecated alias of ``--output json``.
- One error path: a :class:`docpost.errors.DocpostError` that reaches :func:`main` is printed as
  ``docpost: error: <code>: <message>`` on stderr (the message carries no personal data) and
  ends the command with the exit code of its class, below.
- An unexpected exception (a bug) prints ``docpost: internal error: internal.<Type>`` with where
  it was raised (file, line, function of each frame; no values, no message, so no personal data)
  and exits 4. ``DOCPOST_TRACEBACK=1`` prints Python's full traceback instead (it may show data).

Exit codes, the same in every command:

====  ==========================================================================================
0     ok: the command did what was asked and found nothing wrong
1     the command ran and found a problem, or refused the request: ``validate`` rejected a
      submission, a ``check`` found problems, ``status`` matched nothing, ``render`` produced a
      PDF that is not print-ready, an illegal transition, an unknown message, a refused
      assignment (any DocpostError not in 2 or 3)
2     usage error: argparse's own (unknown command, missing or malformed argument) or an
      argument the command cannot use (``validate`` of a path that is no folder)
3     configuration or infrastructure error: ConfigurationError (a broken profiles or hierarchy
      file, no ledger configured), Unavailable (S3, the database, a mail server unreachable)
4     internal error: an unexpected exception, a bug in docpost
130   interrupted (Ctrl-C)
====  ==========================================================================================

A reader that closes the pipe early (``docpost status X | head``) ends the command quietly, with 0.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from importlib.metadata import entry_points

from docpost import commands
from docpost.commands._output import (
    EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_PROBLEM, EXIT_UNAVAILABLE, EXIT_USAGE, UsageError,
)
from docpost.errors import ConfigurationError, DocpostError, Unavailable, describe, internal_code, is_infrastructure
from docpost.settings import show_traceback

ENTRY_POINT_GROUP = "docpost.commands"


def _command_modules():
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):  # shared helpers, not commands
            continue
        yield importlib.import_module(f"{commands.__name__}.{info.name}")
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            yield ep.load()
        except ImportError as exc:  # a bench command whose extra is not installed
            print(f"docpost: command {ep.name!r} unavailable ({exc.name or exc})", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="docpost", description=__doc__.split("\n\n")[0],
        epilog="exit codes: 0 ok, 1 a problem found or the request refused, 2 usage error, "
               "3 configuration or infrastructure error, 4 internal error, 130 interrupted")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _command_modules():
        module.register(sub)
    return parser


def exit_code(exc: BaseException) -> int:
    """The exit code for an exception that ended a command (see the table above)."""
    if isinstance(exc, UsageError):
        return EXIT_USAGE
    if isinstance(exc, (ConfigurationError, Unavailable)) or is_infrastructure(exc):
        return EXIT_UNAVAILABLE
    if isinstance(exc, DocpostError):
        return EXIT_PROBLEM
    return EXIT_INTERNAL


def error_line(exc: BaseException) -> str:
    """``docpost: error: <code>: <message>``: what stderr shows for an error (no personal data)."""
    if isinstance(exc, DocpostError):
        where = getattr(exc, "location", None) if getattr(exc, "path", None) else None
        return f"docpost: error: {exc.code}: {where + ': ' if where else ''}{exc.message}"
    # a database or network error that is nobody's fault but the infrastructure's: type only
    return (f"docpost: error: {Unavailable.code}: a service is unreachable "
            f"({type(exc).__module__}.{type(exc).__qualname__})")




def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's last flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code (also for argparse's usage errors and ``--help``)."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else EXIT_USAGE)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        print("docpost: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_OK
    except Exception as exc:
        code = exit_code(exc)
        if code != EXIT_INTERNAL:
            print(error_line(exc), file=sys.stderr)
            return code
        if show_traceback():
            import traceback

            traceback.print_exc()
        else:
            print(f"docpost: internal error: {internal_code(exc)} (a bug in docpost; run again with "
                  f"DOCPOST_TRACEBACK=1 for the full traceback)\n{describe(exc, trace=True)}",
                  file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
