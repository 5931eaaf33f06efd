"""``docpost validate``: validate one submission folder or a tree of them."""

from __future__ import annotations

import argparse

from docpost.commands._output import EXIT_OK, EXIT_PROBLEM, UsageError, add_output_argument, emit, progress


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "validate", help="validate submissions and print a summary by reason code",
        description="Validate one submission folder, or every submission below a folder (a night's "
                    "output with inbox/<source>/<date>/<id>/, or any tree). Prints each rejected "
                    "submission with its reason codes and a summary by reason code; with --output json, "
                    "one JSON document {submissions: [{submission, valid, errors}], summary: {...}}. "
                    "Exit 0 when every submission is valid, 1 when any is rejected, 2 when PATH is no "
                    "folder, 3 when the schemas cannot be loaded.")
    parser.add_argument("path", metavar="PATH", help="a submission folder or a tree of them")
    add_output_argument(parser, json_alias=True)
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
    from docpost.errors import ConfigurationError

    try:
        sources = validation.discover(args.path)
    except validation.SourceError as exc:
        raise UsageError(exc.message) from exc
    except OSError as exc:
        raise UsageError(f"cannot read {args.path} ({exc.strerror or type(exc).__name__})") from exc
    try:
        validation.schemas(args.engine)  # fail early if the XSDs cannot be loaded
    except OSError as exc:
        raise ConfigurationError(f"cannot load the submission schemas ({exc.strerror or type(exc).__name__})",
                                 code="config.schemas-unavailable") from exc
    reports = []
    as_json = args.output == "json"
    with progress("validating", total=len(sources)) as advance:
        for report in validation.validate_many(sources, engine=args.engine):
            reports.append(report)
            if not as_json and not report.valid:
                print(report.to_text() if args.verbose else f"REJECTED {report.key}: {', '.join(report.codes)}")
            advance()
    counts = validation.summary(reports)
    if as_json:
        emit(args, {"submissions": [r.to_json() for r in reports], "summary": counts})
    else:
        print(format_summary(counts))
    return EXIT_PROBLEM if counts["rejected"] else EXIT_OK
