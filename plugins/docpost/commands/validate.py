"""``docpost validate``: validate one submission folder or a tree of them."""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "validate", help="validate submissions and print a summary by reason code",
        description="Validate one submission folder, or every submission below a folder (a night's "
                    "output with inbox/<source>/<date>/<id>/, or any tree). Prints each rejected "
                    "submission with its reason codes and a summary by reason code; with --json, one "
                    "JSON object per submission on stdout and the summary on stderr. Exits 0 when it "
                    "ran, whatever it found; 2 when it could not run.")
    parser.add_argument("path", metavar="PATH", help="a submission folder or a tree of them")
    parser.add_argument("--json", action="store_true", help="one JSON object per submission")
    parser.add_argument("--verbose", "-v", action="store_true", help="every problem of every rejected submission")
    parser.add_argument("--engine", choices=("lxml", "xmlschema"), default="lxml", help=argparse.SUPPRESS)
    parser.set_defaults(func=_validate)


def format_summary(counts: dict) -> str:
    lines = [f"{counts['submissions']} submissions: {counts['valid']} valid, {counts['rejected']} rejected"]
    if counts["by_code"]:
        lines.append("Rejections by reason code (submissions):")
        width = max(len(code) for code in counts["by_code"])
        lines += [f"  {code:<{width}}  {n:>6}" for code, n in counts["by_code"].items()]
    return "\n".join(lines)


def _validate(args: argparse.Namespace) -> int:
    from docpost import validation

    try:
        sources = validation.discover(args.path)
        validation.schemas(args.engine)  # fail early (exit 2) if the XSDs cannot be loaded
    except (validation.SourceError, OSError) as exc:
        print(f"docpost validate: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    reports = []
    for report in validation.validate_many(sources, engine=args.engine):
        reports.append(report)
        if args.json:
            print(validation.report_json_line(report))
        elif not report.valid:
            print(report.to_text() if args.verbose else f"REJECTED {report.key}: {', '.join(report.codes)}")
    print(format_summary(validation.summary(reports)), file=sys.stderr if args.json else sys.stdout)
    return 0
