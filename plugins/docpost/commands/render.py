"""``docpost render``: render one submission's letter to a PDF for preview (the operator's dry run)."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import sys
from pathlib import Path


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
        print(report.to_text(), file=sys.stderr)
        return 1
    submission = report.submission
    try:
        stamp = stamping.stamp(submission, stamping.load_profiles(args.profiles))
    except (stamping.StampingError, stamping.ProfilesError) as exc:
        print(f"{submission.key}: cannot stamp: {exc}", file=sys.stderr)
        return 1
    reference = short_reference(submission)
    created = args.created or dt.datetime.combine(submission.key.date, dt.time(0), dt.UTC)
    issues: list = []
    try:
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
    except rendering.RenderError as exc:
        print(f"{submission.key}: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(pdf)
    from pypdf import PdfReader
    import io

    pages = len(PdfReader(io.BytesIO(pdf)).pages)
    print(f"{submission.key}: {what}, {pages} page(s), ref. {reference}, "
          f"reply {stamp.reply.reply_type.value} -> {out} (sha256 {hashlib.sha256(pdf).hexdigest()[:16]})")
    for issue in issues:
        print(f"  not print-ready: {issue}", file=sys.stderr)
    return 1 if issues else 0
