"""What every ``docpost`` command shares: the ``--output`` option, printing data, usage errors,
exit codes and progress bars (the conventions are described in :mod:`docpost.cli`).

Modelled on Airflow's own CLI (``airflow.cli.simple_table.AirflowConsole`` and its ``--output``
argument), with two formats: ``table`` for people (a rich table on a terminal, plain aligned text
otherwise, or the command's own text layout) and ``json`` for programs (one JSON document on
stdout, keys sorted, dates in ISO 8601). Only the long form ``--output`` exists: ``-o`` is taken
(``docpost generate -o``).

Not a command module: :mod:`docpost.cli` skips modules whose name starts with ``_``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import enum
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from docpost.errors import DocpostError

# ------------------------------------------------------------------------------ exit codes
#: the command did what was asked and found nothing wrong
EXIT_OK = 0
#: the command ran and found a problem, or refused the request: a submission rejected, a check
#: failed, nothing matched, an illegal transition, an assignment refused (any DocpostError that is
#: neither a usage nor a configuration/infrastructure error)
EXIT_PROBLEM = 1
#: usage error: argparse's own, or an argument the command itself found unusable
EXIT_USAGE = 2
#: configuration or infrastructure error: ConfigurationError, Unavailable, database unreachable
EXIT_UNAVAILABLE = 3
#: an unexpected exception (a bug in docpost)
EXIT_INTERNAL = 4
#: interrupted (Ctrl-C / SIGINT)
EXIT_INTERRUPTED = 130

OUTPUT_FORMATS = ("table", "json")


class UsageError(DocpostError):
    """An argument the parser accepted but the command cannot use (exit code 2)."""

    code = "cli.usage"


# ------------------------------------------------------------------------------ the option
def add_output_argument(parser: argparse.ArgumentParser, *, json_alias: bool = False) -> None:
    """Add ``--output table|json`` to a command that prints data.

    ``json_alias`` also keeps an older ``--json`` flag working, as a deprecated alias.
    """
    parser.add_argument(
        "--output", choices=OUTPUT_FORMATS, default="table", metavar="{table,json}",
        help="output format: table (for people; the default) or json (one JSON document on stdout, "
             "stable keys)")
    if json_alias:
        parser.add_argument("--json", dest="output", action="store_const", const="json",
                            help="deprecated: same as --output json")


def iso_date(text: str) -> dt.date:
    """argparse ``type`` for a date argument: YYYY-MM-DD, or a usage error (exit 2)."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a date YYYY-MM-DD, not {text!r}") from None


def port(text: str) -> int:
    """An argparse ``type`` for a TCP port to listen on (0: any free port)."""
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be 0..65535 (0: any free port)")
    return value


def accepts_output(parser: argparse.ArgumentParser) -> bool:
    """Whether a (sub-)parser has the ``--output`` option."""
    return any("--output" in action.option_strings for action in parser._actions)


# ------------------------------------------------------------------------------ printing data
def is_tty(stream=None) -> bool:
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced (pytest's capsys)
        return False


def jsonable(value: Any) -> Any:
    """``value`` made of what JSON knows: dates as ISO 8601, enums by value, dataclasses as dicts."""
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def to_json(data: Any) -> str:
    return json.dumps(jsonable(data), indent=2, sort_keys=True, ensure_ascii=False)


def table_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
               right: Sequence[str] = ()) -> str:
    """Rows as plain aligned text: a header, a rule, one line a row (``right``: right-aligned columns)."""
    columns = list(columns or (rows[0].keys() if rows else ()))
    cells = [columns] + [["-" if row.get(c) is None else str(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]

    def line(row: list[str]) -> str:
        return "  ".join(cell.rjust(w) if col in right else cell.ljust(w)
                         for col, cell, w in zip(columns, row, widths)).rstrip()

    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *(line(r) for r in cells[1:])])


def _rich_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], right: Sequence[str]) -> None:
    from rich.box import SIMPLE_HEAD
    from rich.console import Console
    from rich.table import Table

    table = Table(box=SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for col in columns:
        table.add_column(col, justify="right" if col in right else "left", overflow="fold")
    for row in rows:
        table.add_row(*("-" if row.get(c) is None else str(row.get(c)) for c in columns))
    Console(file=sys.stdout, highlight=False, soft_wrap=True).print(table)


def emit(output: str | argparse.Namespace, data: Any, *,
         text: str | Callable[[Any], str] | None = None,
         columns: Sequence[str] | None = None, right: Sequence[str] = ()) -> None:
    """Print ``data`` on stdout in the chosen format: the one rendering function of docpost's CLI.

    - ``json``: ``data`` as one JSON document (keys sorted).
    - ``table``: ``text`` when the command has its own layout (a string, or a function of ``data``);
      otherwise ``data`` is a list of rows (dicts), printed as a rich table when stdout is a
      terminal and as plain aligned text when it is not (pipes, files, tests).
    """
    fmt = output.output if isinstance(output, argparse.Namespace) else output
    if fmt == "json":
        print(to_json(data))
        return
    if text is not None:
        rendered = text(data) if callable(text) else text
        if rendered:
            print(rendered)
        return
    rows = list(data)
    if not rows:
        print("(none)")
        return
    columns = list(columns or rows[0].keys())
    if is_tty(sys.stdout):
        _rich_table(rows, columns, right)
    else:
        print(table_text(rows, columns, right))


def note(message: str) -> None:
    """A message for people that is not data (a finding's summary, a hint): on stderr."""
    print(message, file=sys.stderr)


# ------------------------------------------------------------------------------ progress
@contextlib.contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr while long work runs, only when stderr is a terminal.

    Yields ``advance(n=1)``; when stderr is not a terminal (tests, pipes, cron) nothing is printed
    and ``advance`` does nothing.
    """
    if not is_tty(sys.stderr):
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=Console(file=sys.stderr, force_terminal=True), transient=True,
                  # lines printed meanwhile go above the bar only when stdout is that terminal too
                  redirect_stdout=is_tty(sys.stdout), redirect_stderr=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
