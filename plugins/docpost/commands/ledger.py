"""Ledger commands: ``db upgrade``, ``status``, ``report``, ``purge``, ``cancel``, ``requeue``."""

from __future__ import annotations

import argparse
import getpass

from docpost.commands._output import EXIT_OK, EXIT_PROBLEM, add_output_argument, emit, iso_date, note


def _operator(args: argparse.Namespace) -> str:
    return args.actor or f"operator:{getpass.getuser()}"


def _ledger(args: argparse.Namespace):
    from docpost.ledger import Ledger

    return Ledger(args.db_url) if args.db_url else Ledger.from_settings()


def _common(parser: argparse.ArgumentParser, *, output: bool = True) -> None:
    parser.add_argument("--db-url", help="ledger database URL (default: DOCPOST_DB_URL or the Airflow connection)")
    if output:
        add_output_argument(parser)


def _days(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be zero or more days")
    return value


#: what of a message ``status --output json`` shows: what its timeline shows, nothing more
#: (never the recipient's keyed hash, the title or the file listing)
MESSAGE_FIELDS = (
    "message_uuid", "transaction_id", "source_system", "submission_date", "submission_id", "state",
    "channel", "attempts", "recipient_id_type", "recipient_masked", "case_number", "document_number",
    "document_type", "reply_type", "reply_postkasse_id", "reply_emne_id", "reason_code", "reason_text",
    "receipt_status", "claimed_by", "claim_expires_at", "s3_prefix", "purged_at", "generation",
)


def message_json(message, history, earlier=()) -> dict:
    data = {name: getattr(message, name) for name in MESSAGE_FIELDS}
    data["earlier_generations"] = [
        {"generation": g.generation, "message_uuid": g.message_uuid, "transaction_id": g.transaction_id,
         "ended_at": g.ended_at, "ended_state": g.ended_state, "failed_from": g.failed_from,
         "reason_code": g.reason_code, "ended_by": g.ended_by}
        for g in earlier
    ]
    data["history"] = [{"at": e.at, "from": e.from_state, "to": e.to_state, "actor": e.actor, "detail": e.detail}
                       for e in history]
    return data


def _generations_text(earlier) -> str:
    """The earlier generations of a requeued message, for its timeline."""
    if not earlier:
        return ""
    lines = ["", "earlier generations (requeued; receipts and lookups by these ids still find the message):"]
    lines += [f"  {g.generation}  messageUUID {g.message_uuid}  transaction id {g.transaction_id}  "
              f"{g.ended_state} (from {g.failed_from or '?'}, {g.reason_code or 'no reason'}), "
              f"requeued {g.ended_at.isoformat(timespec='seconds')} by {g.ended_by}" for g in earlier]
    return "\n".join(lines)


def db_upgrade(args: argparse.Namespace) -> int:
    with _ledger(args) as ledger:
        ledger.upgrade(args.revision)
        data = {"revision": ledger.revision(), "ledger": repr(ledger)}
    emit(args, data, text=f"ledger at revision {data['revision']} ({data['ledger']})")
    return EXIT_OK


def status(args: argparse.Namespace) -> int:
    from docpost.ledger.views import timeline

    with _ledger(args) as ledger:
        found = [(m, ledger.history(m.id), ledger.generations(m.id)) for m in ledger.find(args.query)]
    emit(args, {"query": args.query, "messages": [message_json(m, h, g) for m, h, g in found]},
         text="\n\n".join(timeline(m, h) + _generations_text(g) for m, h, g in found))
    if not found:
        note(f"no message matches {args.query!r} (message UUID, submission id or case number)")
        return EXIT_PROBLEM
    return EXIT_OK


def report(args: argparse.Namespace) -> int:
    from docpost.ledger.views import report_text

    with _ledger(args) as ledger:
        result = ledger.report(args.date, overdue_hours=args.overdue_hours)
    emit(args, result.to_dict(), text=report_text(result))
    return EXIT_OK


def purge(args: argparse.Namespace) -> int:
    from docpost.replies.store import ReplyStore

    with _ledger(args) as ledger:
        n = ledger.purge(args.older_than, _operator(args))
        replies = ReplyStore(ledger).purge(args.older_than)
    emit(args, {"older_than_days": args.older_than, "messages": n, "replies": replies}, text="\n".join([
        f"removed personal data of {n} settled message(s) older than {args.older_than:g} days",
        f"removed personal data of {replies} mailed inbound message(s) (replies) older than "
        f"{args.older_than:g} days"]))
    return EXIT_OK


def cancel(args: argparse.Namespace) -> int:
    with _ledger(args) as ledger:
        ids = ledger.ids_for(args.message_uuid)
        result = ledger.cancel(ids, _operator(args), args.reason)
        by_id = {m.id: m for m in ledger.messages(ids)}
    emit(args, {"cancelled": [by_id[i].message_uuid for i in result.moved],
                "already_cancelled": [by_id[i].message_uuid for i in result.unchanged]},
         text=f"cancelled {len(result.moved)} message(s); already cancelled: {len(result.unchanged)}")
    return EXIT_OK


def requeue(args: argparse.Namespace) -> int:
    with _ledger(args) as ledger:
        ids = ledger.ids_for(args.message_uuid)
        given = dict(zip(ids, (u.strip().lower() for u in args.message_uuid)))
        ledger.requeue(ids, _operator(args), args.reason)
        rows = [{"message_uuid": m.message_uuid, "state": m.state.value, "generation": m.generation,
                 "transaction_id": m.transaction_id, "requeued_as": given[m.id]} for m in ledger.messages(ids)]
    emit(args, {"requeued": rows},
         text="\n".join(f"requeued {r['requeued_as']}: now {r['state']}, generation {r['generation']} "
                         f"(messageUUID {r['message_uuid']}, transaction id {r['transaction_id']})" for r in rows))
    return EXIT_OK


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
    rp.add_argument("--date", required=True, type=iso_date, metavar="YYYY-MM-DD",
                    help="submission date, YYYY-MM-DD")
    rp.add_argument("--overdue-hours", type=float, default=24, help="receipt overdue after this many hours")
    _common(rp, output=False)
    add_output_argument(rp, json_alias=True)
    rp.set_defaults(func=report)

    pg = subparsers.add_parser("purge", help="remove personal data of settled messages and mailed replies (keeps history)")
    pg.add_argument("--older-than", type=_days, required=True, metavar="DAYS")
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
