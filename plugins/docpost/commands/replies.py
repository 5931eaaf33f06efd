"""Reply commands: ``replies manual``, ``replies assign``, ``replies why``, ``replies process``."""

from __future__ import annotations

import argparse
import getpass


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


def _errors(func):
    """Reply and ledger errors become a message on stderr and exit code 2."""

    def run(args: argparse.Namespace) -> int:
        import sys

        from docpost.ledger import LedgerError
        from docpost.replies.errors import ReplyError

        try:
            return func(args)
        except (ReplyError, LedgerError) as exc:
            print(f"docpost: {exc}", file=sys.stderr)
            return 2

    return run


def _when(value) -> str:  # noqa: ANN001
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


@_errors
def manual(args: argparse.Namespace) -> int:
    from docpost.replies.service import manual_queue

    queue = manual_queue(ledger=_ledger(args))
    if not queue:
        print("the manual-distribution queue is empty")
        return 0
    print(f"{len(queue)} inbound message(s) wait for manual distribution:")
    print(f"{'inbound id':<42} {'received':<21} {'reason':<30} {'sender':<13} reply to / label")
    for r in queue:
        about = r.reply_to_uuid or (r.label or "")[:40]
        print(f"{r.inbound_id:<42} {_when(r.received_at):<21} {r.reason_code or '-':<30} "
              f"{r.sender_masked or '-':<13} {about}")
    print("assign one: docpost replies assign <inbound-id> <emne-id>")
    return 0


@_errors
def assign(args: argparse.Namespace) -> int:
    from docpost.replies.service import assign as assign_one

    record = assign_one(args.inbound_id, args.emne_id, _actor(args), ledger=_ledger(args))
    state = "mailed" if record.state == "MAILED" else f"routed (mail pending: {record.state})"
    print(f"{record.inbound_id}: assigned to Emne {record.emne_id} ({record.mailbox}) by "
          f"{record.assigned_by}; {state}")
    return 0


@_errors
def why(args: argparse.Namespace) -> int:
    from docpost.replies.service import why as why_of

    record, decisions, mail = why_of(args.inbound_id, ledger=_ledger(args))
    print(f"inbound {record.inbound_id}: {record.state}"
          f"{' to Emne ' + str(record.emne_id) + ' (' + record.mailbox + ')' if record.emne_id and record.state != 'MANUAL' else ''}"
          f"{' reason ' + record.reason_code if record.reason_code else ''}")
    print(f"  received {_when(record.received_at)}, sender {record.sender_masked or '-'}, "
          f"kind {record.kind or '-'}, contactPointID {record.contact_point_id or '-'}")
    if record.original_message_uuid:
        print(f"  reply to letter {record.original_message_uuid} (case {record.original_case_number or '-'})")
    elif record.reply_to_uuid:
        print(f"  reply to {record.reply_to_uuid} (not a docpost letter)")
    print("decisions:")
    for d in decisions:
        target = f" -> Emne {d.emne_id}" if d.emne_id else ""
        reason = f" [{d.reason_code}]" if d.reason_code else ""
        print(f"  {_when(d.at)}  {d.rule:<16} {d.outcome:<10}{target}{reason}  {d.detail or ''}  ({d.actor})")
    if mail is not None:
        print(f"mail: {mail.state} to {mail.address}, Message-ID {mail.message_id}, "
              f"attempts {mail.attempts}, sent {_when(mail.sent_at)}")
    return 0


@_errors
def process(args: argparse.Namespace) -> int:
    import json

    from docpost.replies.service import process_inbound

    print(json.dumps(process_inbound(_actor(args), ledger=_ledger(args)), sort_keys=True))
    return 0


def register(subparsers) -> None:  # noqa: ANN001
    parser = subparsers.add_parser("replies", help="route citizens' replies; the manual-distribution queue")
    sub = parser.add_subparsers(dest="replies_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--db-url", help="ledger database URL (default: DOCPOST_DB_URL or the Airflow connection)")
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
