"""``docpost render``: render one submission's letter to a PDF for preview (the operator's dry run)."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
from pathlib import Path

from docpost.commands._output import EXIT_OK, EXIT_PROBLEM, UsageError, add_output_argument, emit, note


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "render", help="render one submission's letter to a PDF for preview",
        description="Validate and stamp a submission folder, then write the PDF that would be sent: "
                    "the rendered letter, or the supplied main PDF after the print-readiness check. "
                    "Exit 0 when the PDF was written and is print-ready, 1 otherwise.")
    parser.add_argument("submission_dir", metavar="SUBMISSION_DIR", help="the submission folder (manifest.xml ...)")
    parser.add_argument("--out", metavar="FILE.pdf", required=True, help="where to write the PDF")
    parser.add_argument("--with-attachments", action="store_true",
                        help="append the attachments, as for the physical channel")
    parser.add_argument("--created", metavar="ISO", type=dt.datetime.fromisoformat,
                        help="creation time in the PDF (default: the submission date, 00:00 UTC)")
    parser.add_argument("--profiles", metavar="FILE", help="sending profiles (default: <config dir>/profiles.xml)")
    add_output_argument(parser)
    parser.set_defaults(func=_render)


def short_reference(submission) -> str:
    """The message's short reference printed on the letter: the first 8 hex digits of its messageUUID."""
    from docpost.ledger.identity import message_uuid

    key = submission.key
    return message_uuid(key.source_system, key.submission_id, submission.content_hash)[:8].upper()


def _render(args: argparse.Namespace) -> int:
    from docpost import rendering, stamping, validation

    report = validation.validate(validation.LocalSubmission(args.submission_dir))
    if not report.valid:
        note(report.to_text())
        return EXIT_PROBLEM
    submission = report.submission
    # a stamping or rendering error ends the command through docpost.cli's one error path:
    # exit 1 for the letter's own problem, 3 for a broken profiles file
    stamp = stamping.stamp(submission, stamping.load_profiles(args.profiles))
    reference = short_reference(submission)
    created = args.created or dt.datetime.combine(submission.key.date, dt.time(0), dt.UTC)
    issues: list = []
    if submission.letter is not None:
        line = stamping.reply_line(stamp.reply, stamping.letter_reference(submission) or reference)
        pdf = rendering.render_letter(submission, stamp.letterhead, line, reference, created)
        what = "rendered letter"
    else:
        pdf = submission.documents[submission.manifest.main_file.name]
        issues = rendering.check_print_ready(pdf)
        what = "supplied main PDF"
    if args.with_attachments:
        pdf = rendering.assemble(pdf, [submission.documents[f.name] for f in submission.manifest.attachments])
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(pdf)
    except OSError as exc:
        raise UsageError(f"cannot write {out} ({exc.strerror or type(exc).__name__})") from exc
    import io

    from pypdf import PdfReader

    data = {"submission": str(submission.key), "what": what, "pages": len(PdfReader(io.BytesIO(pdf)).pages),
            "reference": reference, "reply_type": stamp.reply.reply_type.value, "out": str(out),
            "sha256": hashlib.sha256(pdf).hexdigest(), "print_ready": not issues,
            "issues": [str(issue) for issue in issues]}
    emit(args, data, text=f"{data['submission']}: {what}, {data['pages']} page(s), ref. {reference}, "
                          f"reply {data['reply_type']} -> {out} (sha256 {data['sha256'][:16]})")
    for issue in issues:
        note(f"  not print-ready: {issue}")
    return EXIT_PROBLEM if issues else EXIT_OK
