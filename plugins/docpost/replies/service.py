"""One routing pass (stored -> route -> mail), manual assignment, and the queue.

The PostModtag endpoint (:mod:`docpost.postmodtag`) stores each message the Postkomponent
delivers (``RECEIVED``) before accepting it; a pass routes and mails what is stored. The test
bench's older pull path (:mod:`docpost.channels.inbound`, pull -> record -> route -> mail -> ack)
runs only when a pass is given a client.

Nothing is lost and nothing is mailed twice when a pass dies anywhere:

- a pulled message is acknowledged only once it is *handled*: mailed (``MAILED``) or in the
  manual queue (``MANUAL``). Recorded or routed is not enough; until then the service delivers it
  again and the pass finds it already recorded;
- a mail is recorded ``sending`` (with its deterministic Message-ID) before the SMTP send and
  ``sent`` after; the next pass sends what is still ``sending`` again with the same Message-ID
  and Date (only a death between the server's ``250`` and the record can repeat a mail, RFC
  1047; the repeat is the same mail, which the mailbox store drops as a duplicate delivery:
  see docs/reply-routing.md).

One message's trouble stays its own (fault isolation):

- infrastructure trouble (:class:`~docpost.errors.Unavailable`: the mail server, the inbound
  service; a configuration error; any database error) is nobody's message's fault: the pass stops
  at once, acknowledges nothing more, makes no message final, and raises, so that the task fails
  and Airflow retries it;
- anything else that goes wrong with one message (it cannot be read, routed or composed: a
  :class:`~docpost.errors.DocpostError` with its code, or any other exception as
  ``internal.<ExceptionType>``) puts that message in the manual queue with the code, and the pass
  goes on with the others. Of a non-docpost exception only its type is logged or stored
  (:func:`docpost.errors.describe`), never its text: it may quote the citizen's message.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import re
from collections import Counter
from functools import lru_cache

from docpost import config
from docpost.errors import DocpostError, describe, internal_code
from docpost.errors import is_infrastructure as _is_infrastructure
from docpost.ledger import Ledger, MessageState, ledger_at
from docpost.ledger.engine import resolve_url
from docpost.replies.errors import (AssignRefused, InboundHostile, InboundRejected, MailError,
                                    MailUnavailable, ReplyError, UnknownInbound)
from docpost.replies.parsing import InboundMessage, parse_inbound
from docpost.replies.routing import ROUTED as OUTCOME_ROUTED
from docpost.replies.routing import RULE_MANUAL, Decision, Original, Routing, route
from docpost.replies.store import (MAILED, MANUAL, RECEIVED, ROUTED, SENT, InboundRecord,
                                   ReplyStore)

log = logging.getLogger(__name__)

BATCH_SIZE = 50  # messages per pull
MAX_BATCHES = 200  # pulls per pass (a pass is bounded; the next one continues)
HANDLED = (MAILED, MANUAL)  # the only states in which a message is acknowledged
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,49}$")  # short enough for one header line


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


def is_infrastructure(exc: BaseException) -> bool:
    """Trouble that is not one message's: stop the pass, acknowledge nothing more, retry later.

    :func:`docpost.errors.is_infrastructure` (mail server, inbound service, settings, a lost
    connection), and here *any* database error, one row's values included: a message that cannot
    be recorded cannot be queued either, so it must not be acknowledged.
    """
    from sqlalchemy.exc import SQLAlchemyError

    return _is_infrastructure(exc) or isinstance(exc, SQLAlchemyError)


def _code_of(exc: BaseException) -> str:
    return exc.code if isinstance(exc, DocpostError) else internal_code(exc)


def inbound_key(service_id: str) -> str:
    """The id a pulled message is recorded under: the service's own when it is a plain token of
    at most 50 characters (a UUID, ``in-<uuid>``), else ``sha256:`` and 40 hex digits of its
    digest (an odd id never breaks a record, a header or the ``replies`` commands)."""
    if _SAFE_ID.match(service_id):
        return service_id
    return "sha256:" + hashlib.sha256(service_id.encode("utf-8", "surrogatepass")).hexdigest()[:40]


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


def _parse(memo: bytes, inbound_id: str) -> tuple[InboundMessage | None, tuple[str, str] | None, bool]:
    """(message, rejected (code, text), keep the payload) of one MeMo; infrastructure raises."""
    try:
        return parse_inbound(memo), None, True
    except Exception as exc:  # noqa: BLE001 - one message's trouble stays its own
        if is_infrastructure(exc):
            raise
        if isinstance(exc, InboundRejected):
            return None, (exc.code, exc.message), not isinstance(exc, InboundHostile)
        log.warning("inbound %s could not be read: %s", inbound_id, describe(exc))
        return None, (internal_code(exc), f"the message could not be read ({describe(exc)})"), True


def _record_and_route(ctx: _Context, inbound_id: str, memo: bytes, actor: str, counts: Counter) -> InboundRecord:
    """Record a pulled message (once) and route it (once); what cannot be read or routed goes to
    the manual queue with its code."""
    message, rejected, keep = _parse(memo, inbound_id)
    record, created = ctx.store.receive(inbound_id, memo, keep_payload=keep)
    counts["received" if created else "redelivered"] += 1
    if record.state != RECEIVED:
        return record
    return _route_record(ctx, record, message, rejected, actor, counts)


def _route_stored(ctx: _Context, record: InboundRecord, actor: str, counts: Counter) -> tuple[InboundRecord, bytes | None]:
    """Route a message the PostModtag endpoint stored (``RECEIVED``); (record, its MeMo)."""
    memo = ctx.store.payload(record)
    if memo is None:
        rejected: tuple[str, str] | None = ("mail.no-content", "the content of the message was not kept")
        message = None
    else:
        message, rejected, _ = _parse(memo, record.inbound_id)
    return _route_record(ctx, record, message, rejected, actor, counts), memo


def _route_record(ctx: _Context, record: InboundRecord, message: InboundMessage | None,
                  rejected: tuple[str, str] | None, actor: str, counts: Counter) -> InboundRecord:
    """Route one recorded (``RECEIVED``) message once; a rejected one goes to the manual queue."""
    inbound_id = record.inbound_id
    if rejected is not None:
        done = ctx.store.decide(record, None, actor, rejected=rejected, facts={"kind": "unreadable"})
    else:
        try:
            facts = ctx.store.facts_of(message)
        except Exception as exc:  # noqa: BLE001
            if is_infrastructure(exc):
                raise
            facts = {"kind": "unreadable"}  # an assignment takes the facts anew
        try:
            routing = route(message, ctx.hierarchy, find_original(ctx.ledger), ctx.today)
        except Exception as exc:  # noqa: BLE001
            if is_infrastructure(exc):
                raise
            log.warning("inbound %s could not be routed: %s", inbound_id, describe(exc))
            done = ctx.store.decide(record, None, actor, rule="route", facts=facts,
                                    rejected=(internal_code(exc), f"routing failed ({describe(exc)})"))
        else:
            done = ctx.store.decide(record, routing, actor, facts=facts)
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


def _compose(ctx: _Context, record: InboundRecord, mail, address: str, memo: bytes | None):  # noqa: ANN001, ANN202
    from docpost.replies.mail import compose

    memo = memo if memo is not None else ctx.store.payload(record)
    if memo is None:
        raise ReplyError(f"the content of inbound message {record.inbound_id} was not kept",
                         code="mail.no-content")
    message = parse_inbound(memo)
    emne = ctx.hierarchy.emne(record.emne_id)
    postkasse = ctx.hierarchy.postkasse(emne.postkasse_id) if emne else None
    if emne is None:  # the Emne left the hierarchy after routing: mail with what was recorded
        from docpost.hierarchy import Emne

        emne = Emne(record.emne_id or 0, 0, f"Emne {record.emne_id}", record.mailbox, "")
    return compose(inbound_id=record.inbound_id, message=message, emne=emne,
                   postkasse_label=postkasse.label if postkasse else None,
                   original=_original_of(record), rule=record.rule, assigned_by=record.assigned_by,
                   memo=memo, sender=ctx.transport.settings.sender, address=address,
                   mailbox=record.mailbox, date=mail.created_at)


def _to_manual(ctx: _Context, record: InboundRecord, mail, actor: str, counts: Counter,  # noqa: ANN001
               code: str, text: str, rule: str) -> None:
    """A routed message that cannot be mailed: its mail is not sent, the message waits in the
    manual queue with ``code`` (``assign`` mails it anew)."""
    if mail is not None:
        ctx.store.mail_failed(mail, code)
    if ctx.store.decide(record, None, actor, rejected=(code, text), expect_states=(ROUTED,), rule=rule):
        counts[f"manual:{code}"] += 1


def _mail(ctx: _Context, record: InboundRecord, actor: str, counts: Counter, memo: bytes | None = None) -> None:
    """Mail a routed message to its functional mailbox, at most once (see module docstring).

    A mail that cannot be composed (any exception: the message's own trouble) or that the server
    refuses for good sends the message to the manual queue; :class:`MailUnavailable` (and any
    other infrastructure error) is raised, the message staying routed for a later pass.
    """
    from docpost.replies.mail import mail_address, message_id_for

    if record.state != ROUTED:
        return
    address = mail_address(record.mailbox or "")
    mail, status = ctx.store.claim_mail(record, message_id_for(record.inbound_id), address, ctx.lease)
    if status == "sent":
        counts["mail_already_sent"] += 1
        return
    if status == "busy":
        counts["mail_busy"] += 1
        return
    try:
        email = _compose(ctx, record, mail, address, memo)
    except Exception as exc:  # noqa: BLE001 - one message's trouble stays its own
        if is_infrastructure(exc):
            with contextlib.suppress(Exception):  # free the claim if the database still answers
                ctx.store.mail_failed(mail, _code_of(exc))
            raise
        code = _code_of(exc)
        log.warning("mail for inbound %s not composed: %s", record.inbound_id, describe(exc))
        counts["compose_failed"] += 1
        text = exc.message if isinstance(exc, DocpostError) else f"the mail could not be composed ({describe(exc)})"
        _to_manual(ctx, record, mail, actor, counts, code, text, "mail")
        return
    try:
        ctx.transport.send(email, [address])
    except MailError as exc:
        ctx.store.mail_failed(mail, exc.code)
        log.warning("mail for inbound %s not sent: %s", record.inbound_id, exc)
        if isinstance(exc, MailUnavailable):
            counts["mail_failed"] += 1
            raise  # the next pass retries; the message stays routed and unacknowledged
        counts["mail_refused"] += 1  # the message's own: queued, the pass goes on
        ctx.store.decide(record, None, actor, rejected=(exc.code, exc.message),
                         expect_states=(ROUTED,), rule="mail")
        counts[f"manual:{exc.code}"] += 1
        return
    ctx.store.mail_sent(record, mail)
    counts["mailed"] += 1


def _after_bug(ctx: _Context, inbound_id: str, exc: BaseException, actor: str, counts: Counter) -> InboundRecord | None:
    """A message whose handling failed outside the guarded steps (a bug): put it in the manual
    queue with ``internal.<ExceptionType>`` if it was recorded and is not mailed; None if it was
    never recorded (then it is not acknowledged and comes again)."""
    try:
        record = ctx.store.get(inbound_id)
    except UnknownInbound:
        return None
    if record.state in (RECEIVED, ROUTED):
        mail = ctx.store.mail(record)
        if mail is not None and mail.state == SENT:
            return ctx.store.get(inbound_id)
        code = internal_code(exc)
        if mail is not None:
            ctx.store.mail_failed(mail, code)
        if ctx.store.decide(record, None, actor, rejected=(code, f"handling failed ({describe(exc)})"),
                            expect_states=(RECEIVED, ROUTED), rule="pass"):
            counts[f"manual:{code}"] += 1
    return ctx.store.get(inbound_id)


def _handle(ctx: _Context, inbound_id: str, memo: bytes | None, actor: str, counts: Counter,
            *, record: InboundRecord | None = None) -> InboundRecord | None:
    """Record (a pulled one), route (a ``RECEIVED`` one) and mail one message; its own trouble
    never escapes (infrastructure does)."""
    try:
        if record is None:
            record = _record_and_route(ctx, inbound_id, memo, actor, counts)
        elif record.state == RECEIVED:  # stored by the PostModtag endpoint
            record, memo = _route_stored(ctx, record, actor, counts)
        _mail(ctx, record, actor, counts, memo=memo)
        return ctx.store.get(inbound_id)
    except Exception as exc:  # noqa: BLE001
        if is_infrastructure(exc):
            raise
        counts["failed"] += 1
        log.warning("inbound %s: handling failed: %s", inbound_id, describe(exc))
        failure = exc
    try:
        return _after_bug(ctx, inbound_id, failure, actor, counts)
    except Exception as again:  # noqa: BLE001
        if is_infrastructure(again):
            raise
        log.warning("inbound %s left for a later pass: %s", inbound_id, describe(again))
        return None


# --------------------------------------------------------------------------- the pass


def process_inbound(actor: str, *, batch_size: int = BATCH_SIZE, max_batches: int = MAX_BATCHES,
                    client=None, transport=None, ledger: Ledger | None = None,  # noqa: ANN001
                    hierarchy=None, today: dt.date | None = None) -> dict:  # noqa: ANN001
    """One pass: mail what an earlier pass left unsent, then route and mail what the PostModtag
    endpoint stored (``RECEIVED``, oldest first, at most ``batch_size * max_batches``).

    ``client`` (a :class:`docpost.channels.inbound.InboundClient`): also pull the simulator's
    ``/sim/inbound`` feed (the test bench's older pull path, kept for its tests), acknowledging a
    message only when it is handled: mailed or in the manual queue.

    A message's own trouble puts it in the manual queue and the pass goes on; infrastructure
    trouble (:func:`is_infrastructure`) stops the pass at once and is raised (the task fails and
    is retried), making nothing more final. An acknowledgement the feed refuses (not unavailable)
    does not stop the others; the first such error is raised at the end.

    Returns counts (``stored`` (taken from the store), ``routed``, ``manual``,
    ``manual:<reason>``, ``mailed``, ``mail_refused``, ``compose_failed``, ``failed``; with a
    client ``pulled``, ``received``, ``redelivered``, ``acked``, ``unacked``, ...): small enough
    for XCom.
    """
    ctx = _Context(ledger, hierarchy, transport, today)
    counts: Counter = Counter()
    ack_error: Exception | None = None
    try:
        for record in ctx.store.unmailed(limit=batch_size * max_batches):
            _handle(ctx, record.inbound_id, None, actor, counts, record=record)
        for record in ctx.store.records(states=(RECEIVED,), limit=batch_size * max_batches):
            counts["stored"] += 1
            _handle(ctx, record.inbound_id, None, actor, counts, record=record)
        seen: set[str] = set()
        for _ in range(max_batches if client is not None else 0):
            items = client.pull(batch_size)
            fresh = [i for i in items if i.id not in seen]
            if not fresh:
                break  # empty, or only messages left for a later pass
            counts["pulled"] += len(fresh)
            for item in fresh:
                seen.add(item.id)
                record = _handle(ctx, inbound_key(item.id), item.memo, actor, counts)
                if record is None or record.state not in HANDLED:
                    counts["unacked"] += 1  # delivered again; a later pass finishes it
                    continue
                try:
                    client.ack(item.id)
                except DocpostError as exc:
                    if is_infrastructure(exc):
                        raise
                    counts["ack_failed"] += 1
                    ack_error = ack_error or exc
                    log.warning("inbound %s not acknowledged: %s", record.inbound_id, exc)
                    continue
                counts["acked"] += 1
    except Exception as exc:
        log.warning("reply routing pass stopped (%s), nothing more acknowledged: %s",
                    describe(exc), dict(counts))
        raise
    finally:
        ctx.close()
    result = dict(counts)
    result.setdefault("stored", 0)
    if client is not None:
        result.setdefault("pulled", 0)
    log.info("reply routing pass: %s", result)
    if ack_error is not None:
        raise ack_error
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
        except Exception as exc:  # noqa: BLE001
            if is_infrastructure(exc):
                raise
            raise AssignRefused(f"inbound message {inbound_id} cannot be read ({_code_of(exc)}); "
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
        try:
            _mail(ctx, record, actor, counts, memo=memo)
        except MailUnavailable as exc:
            log.warning("inbound %s assigned; its mail is retried by the next pass: %s", inbound_id, exc)
        record = ctx.store.get(inbound_id)
        if record.state == MANUAL:  # refused by the server, or the mail could not be composed
            raise AssignRefused(f"inbound message {inbound_id} was assigned to Emne {emne.id}, but its "
                                f"mail cannot be sent ({record.reason_code}); it waits in the manual queue")
        return record
    finally:
        ctx.close()


def why(inbound_id: str, *, ledger: Ledger | None = None):  # noqa: ANN201
    """(record, decisions, mail) for one inbound message: why it landed where it did."""
    store = ReplyStore(ledger or default_ledger())
    record = store.get(inbound_id)
    return record, store.history(record), store.mail(record)


__all__ = ["assign", "default_ledger", "find_original", "manual_queue", "process_inbound", "why"]
