"""Ledger commands: ``db upgrade``, ``status``, ``report``, ``purge``, ``cancel``, ``requeue``."""

from __future__ import annotations

import argparse
import getpass


def _operator(args: argparse.Namespace) -> str:
    return args.actor or f"operator:{getpass.getuser()}"


def _ledger(args: argparse.Namespace):
    from docpost.ledger import Ledger

    return Ledger(args.db_url) if args.db_url else Ledger.from_settings()


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db-url", help="ledger database URL (default: DOCPOST_DB_URL or the Airflow connection)")


def _errors(func):
    """Run a command; ledger errors become a message on stderr and exit code 2."""

    def run(args: argparse.Namespace) -> int:
        import sys

        from docpost.ledger import LedgerError

        try:
            return func(args)
        except LedgerError as exc:
            print(f"docpost: {exc}", file=sys.stderr)
            return 2

    return run


@_errors
def db_upgrade(args: argparse.Namespace) -> int:
    with _ledger(args) as ledger:
        ledger.upgrade(args.revision)
        print(f"ledger at revision {ledger.revision()} ({ledger!r})")
    return 0


@_errors
def status(args: argparse.Namespace) -> int:
    from docpost.ledger.views import timeline

    with _ledger(args) as ledger:
        found = ledger.find(args.query)
        if not found:
            print(f"no message matches {args.query!r} (message UUID, submission id or case number)")
            return 1
        print("\n\n".join(timeline(m, ledger.history(m.id)) for m in found))
    return 0


@_errors
def report(args: argparse.Namespace) -> int:
    import datetime as dt
    import json

    from docpost.ledger.views import report_text

    try:
        day = dt.date.fromisoformat(args.date)
    except ValueError:
        print(f"docpost: --date must be YYYY-MM-DD, not {args.date!r}")
        return 2
    with _ledger(args) as ledger:
        result = ledger.report(day, overdue_hours=args.overdue_hours)
    print(json.dumps(result.to_dict(), indent=2) if args.json else report_text(result))
    return 0


@_errors
def purge(args: argparse.Namespace) -> int:
    if args.older_than < 0:
        print("docpost: --older-than must be zero or more days")
        return 2
    from docpost.replies.store import ReplyStore

    with _ledger(args) as ledger:
        n = ledger.purge(args.older_than, _operator(args))
        replies = ReplyStore(ledger).purge(args.older_than)
    print(f"removed personal data of {n} settled message(s) older than {args.older_than:g} days")
    print(f"removed personal data of {replies} mailed inbound message(s) (replies) older than {args.older_than:g} days")
    return 0


@_errors
def cancel(args: argparse.Namespace) -> int:
    with _ledger(args) as ledger:
        ids = ledger.ids_for(args.message_uuid)
        result = ledger.cancel(ids, _operator(args), args.reason)
    print(f"cancelled {len(result.moved)} message(s); already cancelled: {len(result.unchanged)}")
    return 0


@_errors
def requeue(args: argparse.Namespace) -> int:
    with _ledger(args) as ledger:
        ids = ledger.ids_for(args.message_uuid)
        ledger.requeue(ids, _operator(args), args.reason)
        for m in ledger.messages(ids):
            print(f"requeued {m.message_uuid}: now {m.state.value}")
    return 0


def register(subparsers) -> None:
    db = subparsers.add_parser("db", help="ledger database maintenance")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = db_sub.add_parser("upgrade", help="create or migrate the ledger tables (Alembic)")
    up.add_argument("revision", nargs="?", default="head")
    _common(up)
    up.set_defaults(func=db_upgrade)

    st = subparsers.add_parser("status", help="a message's timeline, by message UUID, submission id or case number")
    st.add_argument("query", metavar="MESSAGE-UUID|SUBMISSION-ID|CASE-NUMBER")
    _common(st)
    st.set_defaults(func=status)

    rp = subparsers.add_parser("report", help="counts by state, channel and source system for a submission date")
    rp.add_argument("--date", required=True, help="submission date, YYYY-MM-DD")
    rp.add_argument("--json", action="store_true", help="print JSON instead of tables")
    rp.add_argument("--overdue-hours", type=float, default=24, help="receipt overdue after this many hours")
    _common(rp)
    rp.set_defaults(func=report)

    pg = subparsers.add_parser("purge", help="remove personal data of settled messages and mailed replies (keeps history)")
    pg.add_argument("--older-than", type=float, required=True, metavar="DAYS")
    pg.add_argument("--actor", help="who runs this (default operator:<user>)")
    _common(pg)
    pg.set_defaults(func=purge)

    cn = subparsers.add_parser("cancel", help="cancel messages not yet submitted")
    cn.add_argument("message_uuid", nargs="+")
    cn.add_argument("--reason", required=True)
    cn.add_argument("--actor", help="who cancels (default operator:<user>)")
    _common(cn)
    cn.set_defaults(func=cancel)

    rq = subparsers.add_parser("requeue", help="send FAILED messages back to be resent")
    rq.add_argument("message_uuid", nargs="+")
    rq.add_argument("--reason", help="why (recorded in the history)")
    rq.add_argument("--actor", help="who requeues (default operator:<user>)")
    _common(rq)
    rq.set_defaults(func=requeue)
