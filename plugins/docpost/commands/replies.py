"""Reply commands: ``replies manual``, ``replies assign``, ``replies why``, ``replies process``."""

from __future__ import annotations

import argparse
import getpass

from docpost.commands._output import EXIT_OK, add_output_argument, emit, note, table_text


def _actor(args: argparse.Namespace) -> str:
    return args.actor or f"operator:{getpass.getuser()}"


def _ledger(args: argparse.Namespace):
    from docpost.replies.service import default_ledger

    if args.db_url:
        from docpost.ledger import Ledger

        led = Ledger(args.db_url)
        led.upgrade()
        return led
    return default_ledger()


def _when(value) -> str:  # noqa: ANN001
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def manual(args: argparse.Namespace) -> int:
    from docpost.replies.service import manual_queue

    rows = [{"inbound_id": r.inbound_id, "received_at": r.received_at, "reason_code": r.reason_code,
             "sender_masked": r.sender_masked, "reply_to_uuid": r.reply_to_uuid, "label": r.label}
            for r in manual_queue(ledger=_ledger(args))]
    if args.output == "json":
        emit(args, {"queue": rows})
        return EXIT_OK
    if not rows:
        print("the manual-distribution queue is empty")
        return EXIT_OK
    print(f"{len(rows)} inbound message(s) wait for manual distribution:")
    emit(args, [{"inbound id": r["inbound_id"], "received": _when(r["received_at"]),
                 "reason": r["reason_code"], "sender": r["sender_masked"],
                 "reply to / label": r["reply_to_uuid"] or (r["label"] or "")[:40]} for r in rows])
    note("assign one: docpost replies assign <inbound-id> <emne-id>")
    return EXIT_OK


def assign(args: argparse.Namespace) -> int:
    from docpost.replies.service import assign as assign_one

    record = assign_one(args.inbound_id, args.emne_id, _actor(args), ledger=_ledger(args))
    state = "mailed" if record.state == "MAILED" else f"routed (mail pending: {record.state})"
    emit(args, {"inbound_id": record.inbound_id, "emne_id": record.emne_id, "mailbox": record.mailbox,
                "assigned_by": record.assigned_by, "state": record.state},
         text=f"{record.inbound_id}: assigned to Emne {record.emne_id} ({record.mailbox}) by "
              f"{record.assigned_by}; {state}")
    return EXIT_OK


#: what of an inbound message ``why --output json`` shows: what its text shows
INBOUND_FIELDS = ("inbound_id", "state", "emne_id", "mailbox", "rule", "reason_code", "received_at",
                  "sender_masked", "kind", "contact_point_id", "original_message_uuid",
                  "original_case_number", "reply_to_uuid", "assigned_by")


def _why_text(record, decisions, mail) -> str:  # noqa: ANN001
    lines = [
        f"inbound {record.inbound_id}: {record.state}"
        f"{' to Emne ' + str(record.emne_id) + ' (' + record.mailbox + ')' if record.emne_id and record.state != 'MANUAL' else ''}"
        f"{' reason ' + record.reason_code if record.reason_code else ''}",
        f"  received {_when(record.received_at)}, sender {record.sender_masked or '-'}, "
        f"kind {record.kind or '-'}, contactPointID {record.contact_point_id or '-'}",
    ]
    if record.original_message_uuid:
        lines.append(f"  reply to letter {record.original_message_uuid} (case {record.original_case_number or '-'})")
    elif record.reply_to_uuid:
        lines.append(f"  reply to {record.reply_to_uuid} (not a docpost letter)")
    lines.append("decisions:")
    for d in decisions:
        target = f" -> Emne {d.emne_id}" if d.emne_id else ""
        reason = f" [{d.reason_code}]" if d.reason_code else ""
        lines.append(f"  {_when(d.at)}  {d.rule:<16} {d.outcome:<10}{target}{reason}  {d.detail or ''}  ({d.actor})")
    if mail is not None:
        lines.append(f"mail: {mail.state} to {mail.address}, Message-ID {mail.message_id}, "
                     f"attempts {mail.attempts}, sent {_when(mail.sent_at)}")
    return "\n".join(lines)


def why(args: argparse.Namespace) -> int:
    from docpost.replies.service import why as why_of

    record, decisions, mail = why_of(args.inbound_id, ledger=_ledger(args))
    data = {
        "inbound": {name: getattr(record, name) for name in INBOUND_FIELDS},
        "decisions": [{"at": d.at, "rule": d.rule, "outcome": d.outcome, "emne_id": d.emne_id,
                       "reason_code": d.reason_code, "detail": d.detail, "actor": d.actor} for d in decisions],
        "mail": None if mail is None else {"state": mail.state, "address": mail.address,
                                           "message_id": mail.message_id, "attempts": mail.attempts,
                                           "sent_at": mail.sent_at},
    }
    emit(args, data, text=_why_text(record, decisions, mail))
    return EXIT_OK


def process(args: argparse.Namespace) -> int:
    from docpost.replies.service import process_inbound

    counts = process_inbound(_actor(args), ledger=_ledger(args))
    emit(args, counts, text=lambda c: table_text([{"count": k, "n": v} for k, v in sorted(c.items())],
                                                 right=("n",)))
    return EXIT_OK


def register(subparsers) -> None:  # noqa: ANN001
    parser = subparsers.add_parser("replies", help="route citizens' replies; the manual-distribution queue")
    sub = parser.add_subparsers(dest="replies_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--db-url", help="ledger database URL (default: DOCPOST_DB_URL or the Airflow connection)")
        add_output_argument(p)
        return p

    common(sub.add_parser("manual", help="list the manual-distribution queue (masked)")).set_defaults(func=manual)
    a = common(sub.add_parser("assign", help="route one inbound message by hand to an Emne and mail it"))
    a.add_argument("inbound_id")
    a.add_argument("emne_id", type=int)
    a.add_argument("--actor", help="who assigns (default operator:<login>)")
    a.set_defaults(func=assign)
    w = common(sub.add_parser("why", help="the routing decisions of one inbound message"))
    w.add_argument("inbound_id")
    w.set_defaults(func=why)
    p = common(sub.add_parser("process", help="one routing pass now (what the docpost_replies DAG runs)"))
    p.add_argument("--actor", help="actor recorded with the decisions")
    p.set_defaults(func=process)
