"""One routing pass (pull -> record -> route -> mail -> ack), manual assignment, and the queue.

Nothing is lost and nothing is mailed twice when a pass dies anywhere:

- a pulled message is acknowledged only after it is recorded, routed and (if routed) mailed;
  until then the service delivers it again and the pass finds it already recorded;
- a mail is recorded ``sending`` (with its deterministic Message-ID) before the SMTP send and
  ``sent`` after; the next pass sends what is still ``sending`` again with the same Message-ID
  and Date (only a death between the server's ``250`` and the record can repeat a mail, RFC
  1047; the repeat is the same mail, which the mailbox store drops as a duplicate delivery:
  see docs/reply-routing.md).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from functools import lru_cache

from docpost import config
from docpost.ledger import Ledger, MessageState, ledger_at
from docpost.ledger.engine import resolve_url
from docpost.replies.errors import (AssignRefused, InboundHostile, InboundRejected, MailError,
                                    MailUnavailable)
from docpost.replies.parsing import InboundMessage, parse_inbound
from docpost.replies.routing import ROUTED as OUTCOME_ROUTED
from docpost.replies.routing import RULE_MANUAL, Decision, Original, Routing, route
from docpost.replies.store import MAILED, MANUAL, RECEIVED, ROUTED, SENT, InboundRecord, ReplyStore

log = logging.getLogger(__name__)

BATCH_SIZE = 50  # messages per pull
MAX_BATCHES = 200  # pulls per pass (a pass is bounded; the next one continues)


# --------------------------------------------------------------------------- plumbing


@lru_cache(maxsize=4)
def _migrated(url: str) -> None:
    ledger_at(url).upgrade()


def default_ledger() -> Ledger:
    """The shared ledger of the current settings (``shared_ledger``), migrated once per process."""
    url = resolve_url()
    _migrated(url)
    return ledger_at(url)


def _today() -> dt.date:
    """Today in the municipality's time zone (closing dates are local dates)."""
    from zoneinfo import ZoneInfo

    return dt.datetime.now(ZoneInfo("Europe/Copenhagen")).date()


def find_original(led: Ledger):  # noqa: ANN201
    """A lookup of original letters in the ledger, as routing needs it."""

    def lookup(message_uuid: str) -> Original | None:
        m = led.get(message_uuid)
        if m is None or m.state in (MessageState.REJECTED, MessageState.RECEIVED):
            return None
        return Original(m.message_uuid, m.case_number, m.reply_type, m.reply_emne_id,
                        m.reply_contact_point_id)

    return lookup


class _Context:
    """What one pass or one assignment works with."""

    def __init__(self, led: Ledger | None, hierarchy, transport, today: dt.date | None) -> None:
        from docpost.hierarchy import load_hierarchy

        self.ledger = led or default_ledger()
        self.store = ReplyStore(self.ledger)
        self.hierarchy = hierarchy or load_hierarchy()
        self._transport = transport
        self._own_transport = transport is None
        self.today = today or _today()
        self.lease = config.settings().claim_lease_seconds
        self.mail_down = False

    @property
    def transport(self):  # noqa: ANN201
        if self._transport is None:
            from docpost.replies.mail import SmtpTransport

            self._transport = SmtpTransport()
        return self._transport

    def close(self) -> None:
        if self._own_transport and self._transport is not None:
            self._transport.close()


# --------------------------------------------------------------------------- one message


def _record_and_route(ctx: _Context, inbound_id: str, memo: bytes, actor: str, counts: Counter) -> InboundRecord:
    """Record a pulled message (once) and route it (once)."""
    message: InboundMessage | None = None
    rejected: InboundRejected | None = None
    try:
        message = parse_inbound(memo)
    except InboundRejected as exc:
        rejected = exc
    record, created = ctx.store.receive(inbound_id, memo, keep_payload=not isinstance(rejected, InboundHostile))
    counts["received" if created else "redelivered"] += 1
    if record.state != RECEIVED:
        return record
    if rejected is not None:
        done = ctx.store.decide(record, None, actor, rejected=(rejected.code, rejected.message),
                                facts={"kind": "unreadable"})
    else:
        routing = route(message, ctx.hierarchy, find_original(ctx.ledger), ctx.today)
        done = ctx.store.decide(record, routing, actor, facts=ctx.store.facts_of(message))
    record = ctx.store.get(inbound_id)
    if done:
        counts["routed" if record.state == ROUTED else "manual"] += 1
        if record.state == MANUAL:
            counts[f"manual:{record.reason_code}"] += 1
    return record


def _original_of(record: InboundRecord) -> Original | None:
    if not record.original_message_uuid:
        return None
    return Original(record.original_message_uuid, record.original_case_number, None, None, None)


def _mail(ctx: _Context, record: InboundRecord, actor: str, counts: Counter, memo: bytes | None = None) -> None:
    """Mail a routed message to its functional mailbox, at most once (see module docstring)."""
    from docpost.replies.mail import compose, mail_address, message_id_for

    if record.state != ROUTED or ctx.mail_down:
        return
    address = mail_address(record.mailbox)
    mail, status = ctx.store.claim_mail(record, message_id_for(record.inbound_id), address, ctx.lease)
    if status == "sent":
        counts["mail_already_sent"] += 1
        return
    if status == "busy":
        counts["mail_busy"] += 1
        return
    memo = memo if memo is not None else ctx.store.payload(record)
    message = parse_inbound(memo)
    emne = ctx.hierarchy.emne(record.emne_id)
    postkasse = ctx.hierarchy.postkasse(emne.postkasse_id) if emne else None
    if emne is None:  # the Emne left the hierarchy after routing: mail with what was recorded
        from docpost.hierarchy import Emne

        emne = Emne(record.emne_id or 0, 0, f"Emne {record.emne_id}", record.mailbox, "")
    email = compose(inbound_id=record.inbound_id, message=message, emne=emne,
                    postkasse_label=postkasse.label if postkasse else None,
                    original=_original_of(record), rule=record.rule, assigned_by=record.assigned_by,
                    memo=memo, sender=ctx.transport.settings.sender, address=address,
                    mailbox=record.mailbox, date=mail.created_at)
    try:
        ctx.transport.send(email, [address])
    except MailError as exc:
        ctx.store.mail_failed(mail, exc.code)
        counts["mail_failed"] += 1
        log.warning("mail for inbound %s not sent: %s", record.inbound_id, exc)
        if isinstance(exc, MailUnavailable):
            ctx.mail_down = True  # no point trying the rest now; the next pass retries
        else:
            ctx.store.decide(record, None, actor, rejected=(exc.code, exc.message),
                             expect_states=(ROUTED,), rule="mail")
            counts[f"manual:{exc.code}"] += 1
        return
    ctx.store.mail_sent(record, mail)
    counts["mailed"] += 1


# --------------------------------------------------------------------------- the pass


def process_inbound(actor: str, *, batch_size: int = BATCH_SIZE, max_batches: int = MAX_BATCHES,
                    client=None, transport=None, ledger: Ledger | None = None,  # noqa: ANN001
                    hierarchy=None, today: dt.date | None = None) -> dict:  # noqa: ANN001
    """One pass: mail what an earlier pass left unsent, then pull until empty (bounded).

    Returns counts (``received``, ``redelivered``, ``routed``, ``manual``, ``manual:<reason>``,
    ``mailed``, ``mail_failed``, ``acked``, ...): small enough for XCom.
    """
    from docpost.channels.inbound import InboundClient

    ctx = _Context(ledger, hierarchy, transport, today)
    own_client = client is None
    client = client or InboundClient.from_settings()
    counts: Counter = Counter()
    try:
        for record in ctx.store.unmailed(limit=batch_size * max_batches):
            _mail(ctx, record, actor, counts)
        seen: set[str] = set()
        for _ in range(max_batches):
            items = client.pull(batch_size)
            fresh = [i for i in items if i.id not in seen]
            if not fresh:
                break  # empty, or only messages whose ack failed: the next pass retries them
            counts["pulled"] += len(fresh)
            for item in fresh:
                seen.add(item.id)
                record = _record_and_route(ctx, item.id, item.memo, actor, counts)
                _mail(ctx, record, actor, counts, memo=item.memo)
                record = ctx.store.get(item.id)
                if record.state == ROUTED and ctx.mail_down:
                    continue  # recorded; mailed and acknowledged by a later pass
                client.ack(item.id)
                counts["acked"] += 1
    finally:
        ctx.close()
        if own_client:
            client.close()
    result = dict(counts)
    result.setdefault("pulled", 0)
    log.info("reply routing pass: %s", result)
    return result


# --------------------------------------------------------------------------- manual distribution


def manual_queue(*, ledger: Ledger | None = None) -> list[InboundRecord]:
    """Inbound messages waiting for manual distribution, oldest first."""
    return ReplyStore(ledger or default_ledger()).records(states=(MANUAL,))


def assign(inbound_id: str, emne_id: int, actor: str, *, transport=None,  # noqa: ANN001
           ledger: Ledger | None = None, hierarchy=None, today: dt.date | None = None) -> InboundRecord:
    """Route one message by hand to an Emne, record who did it, and mail it."""
    ctx = _Context(ledger, hierarchy, transport, today)
    try:
        record = ctx.store.get(inbound_id)
        mail = ctx.store.mail(record)
        if record.state == MAILED or (mail is not None and mail.state == SENT):
            raise AssignRefused(f"inbound message {inbound_id} was already mailed to {record.mailbox}")
        emne = ctx.hierarchy.emne(emne_id)
        if emne is None:
            raise AssignRefused(f"Emne {emne_id} is not in the contact hierarchy")
        if ctx.hierarchy.is_closed(emne, ctx.today):
            raise AssignRefused(f"Emne {emne_id} {emne.label!r} is closed since {ctx.hierarchy.closed_on(emne)}")
        memo = ctx.store.payload(record)
        if memo is None:
            raise AssignRefused(f"inbound message {inbound_id} was refused as hostile; its content was not kept")
        try:
            message = parse_inbound(memo)
        except InboundRejected as exc:
            raise AssignRefused(f"inbound message {inbound_id} cannot be read ({exc.code}); "
                                "ask the sender to write again") from None
        if mail is not None and record.state == MANUAL:
            ctx.store.drop_mail(mail)  # refused by the server earlier: a new address now
        elif mail is not None:
            raise AssignRefused(f"a mail for inbound message {inbound_id} is being sent; try again later")
        decision = Decision(RULE_MANUAL, OUTCOME_ROUTED, None, emne.id, emne.mailbox,
                            f"assigned by {actor} to Emne {emne.id} {emne.label!r}")
        routing = Routing((decision,), emne, None, None)
        facts = ctx.store.facts_of(message) if record.kind == "unreadable" else None
        if not ctx.store.decide(record, routing, actor, expect_states=(MANUAL, RECEIVED),
                                assigned_by=actor[:200], facts=facts):
            raise AssignRefused(f"inbound message {inbound_id} is not in the manual queue "
                                f"(state {record.state})")
        record = ctx.store.get(inbound_id)
        counts: Counter = Counter()
        _mail(ctx, record, actor, counts, memo=memo)
        if counts["mail_failed"]:
            log.warning("inbound %s assigned; its mail is retried by the next pass", inbound_id)
        return ctx.store.get(inbound_id)
    finally:
        ctx.close()


def why(inbound_id: str, *, ledger: Ledger | None = None):  # noqa: ANN201
    """(record, decisions, mail) for one inbound message: why it landed where it did."""
    store = ReplyStore(ledger or default_ledger())
    record = store.get(inbound_id)
    return record, store.history(record), store.mail(record)


__all__ = ["assign", "default_ledger", "find_original", "manual_queue", "process_inbound", "why"]
