"""Receipt commands: ``receipts pull``, one drain of the receipts now (what the docpost_receipts
DAG's fetch task runs).

With ``DOCPOST_AMQP_URL`` set it drains the Beskedfordeler's queue (batches of
``DOCPOST_AMQP_BATCH``, each acknowledged after the ledger committed); without, it pages the
simulator's receipt feed. It prints counts only: by outcome, quarantined (set aside) by reason
code; never a receipt's content. Exit 0 when done (quarantined receipts are reported, not an
error: they are kept for an operator), 3 when the broker, S3 or the ledger is unavailable.
"""

from __future__ import annotations

import argparse

from docpost.commands._output import EXIT_OK, UsageError, add_output_argument, emit

#: the counts shown, in this order
COUNTS = ("received", "applied", "duplicates", "stale", "pending", "intermediate", "set_aside", "quarantined",
          "redelivered", "batches")


def _text(data: dict) -> str:
    source = data.get("source") or "feed"
    where = f"queue {data['queue']}" if source == "beskedfordeler" else "the receipt feed"
    lines = [f"receipts from {where}:"]
    lines += [f"  {name:<13}{data[name]:>8}" for name in COUNTS if name in data]
    if "receipts" in data:
        lines.append(f"  {'receipts':<13}{data['receipts']:>8}")
    for code, n in (data.get("set_aside_by_code") or {}).items():
        lines.append(f"  set aside {code}: {n}")
    if source == "beskedfordeler":
        lines.append("  the queue is drained" if data.get("drained") else "  more may wait: the limit was reached")
    return "\n".join(lines)


def pull(args: argparse.Namespace) -> int:
    from docpost import pipeline

    if args.max is not None and args.max < 1:
        raise UsageError("--max must be at least 1")
    actor = args.actor or "cli:receipts-pull"
    result = pipeline.fetch_receipts(actor=actor, max_messages=args.max)
    emit(args, result, text=_text)
    return EXIT_OK


def register(subparsers) -> None:  # noqa: ANN001
    parser = subparsers.add_parser("receipts", help="delivery receipts: drain them into the ledger now")
    sub = parser.add_subparsers(dest="receipts_command", metavar="ACTION", required=True)
    p = sub.add_parser("pull", help="drain the receipts once (the Beskedfordeler queue, or the feed) and "
                                    "print what was settled")
    p.add_argument("--max", type=int, default=None, metavar="N",
                   help="take at most N messages from the queue (default: 50 batches of DOCPOST_AMQP_BATCH)")
    p.add_argument("--actor", help="actor recorded with the ledger events (default cli:receipts-pull)")
    add_output_argument(p)
    p.set_defaults(func=pull)
