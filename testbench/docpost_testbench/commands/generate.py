"""``docpost generate``: write a night of realistic sample submissions."""

from __future__ import annotations

import argparse
import datetime as dt
import sys


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate", help="write N sample submissions (some broken) to a folder",
        description="Write N realistic submissions under OUT/inbox/<source>/<date>/<id>/ (each with "
                    "_READY last), OUT/recipients.json (the simulator's recipient register) and "
                    "OUT/expected.json (the reason codes each broken one must be rejected with). "
                    "Deterministic for a seed.")
    parser.add_argument("--count", "-n", type=int, required=True, help="number of submissions")
    parser.add_argument("--out", "-o", required=True, help="output folder")
    parser.add_argument("--date", type=dt.date.fromisoformat, default=None, help="the night, YYYY-MM-DD (default today)")
    parser.add_argument("--broken-share", type=_share, default=0.0, help="share of broken submissions, 0..1")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.set_defaults(func=_generate)


def _generate(args: argparse.Namespace) -> int:
    from docpost_testbench.generate import generate_night

    if args.count < 0:
        print("docpost generate: --count must not be negative", file=sys.stderr)
        return 2
    try:
        result = generate_night(args.count, args.date, args.out, broken_share=args.broken_share, seed=args.seed)
    except OSError as exc:
        print(f"docpost generate: cannot write to {args.out}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"wrote {result.count} submissions for {result.date} to {args.out} "
          f"({result.count - result.broken} good, {result.broken} broken)")
    return 0
