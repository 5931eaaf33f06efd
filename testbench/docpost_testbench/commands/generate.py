"""``docpost generate``: write a night of realistic sample submissions."""

from __future__ import annotations

import argparse

from docpost.commands._output import EXIT_OK, UsageError, add_output_argument, emit, iso_date, progress


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
    parser.add_argument("--date", type=iso_date, default=None, help="the night, YYYY-MM-DD (default today)")
    parser.add_argument("--broken-share", type=_share, default=0.0, help="share of broken submissions, 0..1")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_output_argument(parser)
    parser.set_defaults(func=_generate)


def _generate(args: argparse.Namespace) -> int:
    from docpost_testbench.generate import DirectorySink, generate_night

    if args.count < 0:
        raise UsageError("--count must not be negative")
    write = DirectorySink(args.out)
    try:
        with progress("generating", total=args.count) as advance:
            def sink(relative_key: str, data: bytes) -> None:
                write(relative_key, data)
                if relative_key.endswith("/_READY"):  # each submission's last file
                    advance()

            result = generate_night(args.count, args.date, sink=sink, broken_share=args.broken_share,
                                    seed=args.seed)
    except OSError as exc:
        raise UsageError(f"cannot write to {args.out}: {exc.strerror or type(exc).__name__}") from exc
    data = {"count": result.count, "date": result.date, "out": str(args.out),
            "good": result.count - result.broken, "broken": result.broken}
    emit(args, data, text=f"wrote {result.count} submissions for {result.date} to {args.out} "
                          f"({data['good']} good, {data['broken']} broken)")
    return EXIT_OK
