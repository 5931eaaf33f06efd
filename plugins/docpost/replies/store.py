"""Reply routing's records in the ledger database: inbound messages, decisions, mails.

Every write is one transaction. State changes are conditional (``WHERE state = ...``), so two
workers never both route or both mail one message; what a killed worker left behind is picked up
by the next pass (a mail claim expires after ``DOCPOST_CLAIM_LEASE_SECONDS``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from sqlalchemy import func, or_, select, update

from docpost.ledger import Ledger
from docpost.ledger.engine import WRITE
from docpost.ledger.identity import recipient_hash
from docpost.privacy import scrub
from docpost.replies.errors import UnknownInbound
from docpost.replies.routing import Decision, Routing
from docpost.replies.schema import decisions, inbound, mails

RECEIVED, ROUTED, MANUAL, MAILED = "RECEIVED", "ROUTED", "MANUAL", "MAILED"
REFUSED = "REFUSED"  # refused at the PostModtag endpoint (unreadable or hostile): kept for the record only
SENDING, SENT = "sending", "sent"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class InboundRecord:
    """A stored inbound message (no clear personal data)."""

    id: int
    inbound_id: str
    state: str
    kind: str | None
    message_uuid: str | None
    sender_id_type: str | None
    sender_masked: str | None
    label: str | None
    contact_point_id: str | None
    reply_to_uuid: str | None
    original_message_uuid: str | None
    original_case_number: str | None
    emne_id: int | None
    mailbox: str | None
    rule: str | None
    reason_code: str | None
    reason_text: str | None
    assigned_by: str | None
    received_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class DecisionRecord:
    at: dt.datetime
    actor: str
    rule: str
    outcome: str
    reason_code: str | None
    emne_id: int | None
    mailbox: str | None
    detail: str | None


@dataclass(frozen=True)
class MailRecord:
    id: int
    inbound_row_id: int
    message_id: str
    mailbox: str
    address: str
    state: str
    attempts: int
    sent_at: dt.datetime | None
    created_at: dt.datetime  # first claimed: the mail's fixed Date (its submit time) on every send


_RECORD_COLUMNS = [inbound.c[f] for f in InboundRecord.__dataclass_fields__]


class ReplyStore:
    """The reply tables on the ledger's engine."""

    def __init__(self, ledger: Ledger) -> None:
        from docpost.config import settings

        self.ledger = ledger
        self.engine = ledger.engine
        self._key = settings().pseudonym_key
        self._fernet = None

    # -- plumbing -----------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator:
        with self.engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
            yield conn

    @contextmanager
    def _read(self) -> Iterator:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def _insert(self, table):
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table).on_conflict_do_nothing()

    def _cipher(self):
        if self._fernet is None:
            from cryptography.fernet import Fernet

            key = hashlib.sha256(b"docpost:replies:payload:1\x00" + self._key).digest()
            self._fernet = Fernet(base64.urlsafe_b64encode(key))
        return self._fernet

    # -- inbound messages ---------------------------------------------------------------------

    def receive(self, inbound_id: str, memo: bytes, *, keep_payload: bool = True) -> tuple[InboundRecord, bool]:
        """Record a pulled message once (``RECEIVED``); returns (record, newly recorded)."""
        now = _now()
        row = {
            "inbound_id": inbound_id, "state": RECEIVED,
            "payload": self._cipher().encrypt(memo) if keep_payload else None,
            "payload_sha256": hashlib.sha256(memo).hexdigest(), "size": len(memo),
            "received_at": now, "updated_at": now,
        }
        with self._write() as conn:
            # RETURNING: a row only when this insert made it (rowcount is -1 under psycopg here)
            created = conn.execute(self._insert(inbound).values(**row).returning(inbound.c.id)).first() is not None
        return self.get(inbound_id), created

    def seal(self, memo: bytes) -> bytes:
        """``memo`` encrypted as the store keeps it (the copy under S3 ``inbound/`` too)."""
        return self._cipher().encrypt(memo)

    def unseal(self, blob: bytes) -> bytes:
        return self._cipher().decrypt(bytes(blob))

    def find(self, inbound_id: str) -> InboundRecord | None:
        """The record of ``inbound_id``, or None."""
        try:
            return self.get(inbound_id)
        except UnknownInbound:
            return None

    def refuse(self, inbound_id: str, memo: bytes, code: str, text: str, actor: str) -> tuple[InboundRecord, bool]:
        """Record once that a message was refused on receipt (``REFUSED``; its content is not kept,
        only its digest and size, the reason and one decision). Returns (record, newly recorded)."""
        now = _now()
        row = {"inbound_id": inbound_id, "state": REFUSED, "kind": "unreadable", "payload": None,
               "payload_sha256": hashlib.sha256(memo).hexdigest(), "size": len(memo),
               "rule": "postmodtag", "reason_code": code[:64], "reason_text": scrub(text)[:2000],
               "received_at": now, "updated_at": now}
        with self._write() as conn:
            made = conn.execute(self._insert(inbound).values(**row).returning(inbound.c.id)).first()
            if made is not None:
                conn.execute(decisions.insert(), [{"inbound_row_id": made[0], "at": now, "actor": actor[:200],
                                                   "rule": "postmodtag", "outcome": "refused",
                                                   "reason_code": code[:64], "emne_id": None, "mailbox": None,
                                                   "detail": scrub(text)}])
        return self.get(inbound_id), made is not None

    def payload(self, record: InboundRecord) -> bytes | None:
        """The decrypted MeMo of a stored message (None if it was not kept)."""
        with self._read() as conn:
            blob = conn.execute(select(inbound.c.payload).where(inbound.c.id == record.id)).scalar()
        return self._cipher().decrypt(bytes(blob)) if blob is not None else None

    def get(self, inbound_id: str) -> InboundRecord:
        with self._read() as conn:
            row = conn.execute(select(*_RECORD_COLUMNS).where(inbound.c.inbound_id == inbound_id)).first()
        if row is None:
            raise UnknownInbound(f"no inbound message {inbound_id!r}")
        return InboundRecord(*row)

    def records(self, *, states: tuple[str, ...] | None = None, limit: int | None = None) -> list[InboundRecord]:
        stmt = select(*_RECORD_COLUMNS).order_by(inbound.c.id)
        if states:
            stmt = stmt.where(inbound.c.state.in_(states))
        if limit:
            stmt = stmt.limit(limit)
        with self._read() as conn:
            return [InboundRecord(*r) for r in conn.execute(stmt)]

    def decide(self, record: InboundRecord, routing: Routing | None, actor: str, *,
               facts: dict | None = None, rejected: tuple[str, str] | None = None,
               expect_states: tuple[str, ...] = (RECEIVED,), assigned_by: str | None = None,
               extra: tuple[Decision, ...] = (), rule: str = "parse") -> bool:
        """Store a routing (or a rejection) with its decisions; False if another worker was first."""
        now = _now()
        values: dict = {"updated_at": now, **(facts or {})}
        found = list(extra)
        if rejected is not None:
            code, text = rejected
            values.update(state=MANUAL, reason_code=code[:64], reason_text=scrub(text)[:2000], rule=rule[:32])
            found.append(Decision(rule, "manual", code, detail=text))
        else:
            assert routing is not None
            found.extend(routing.decisions)
            if routing.original is not None:
                values.update(original_message_uuid=routing.original.message_uuid,
                              original_case_number=routing.original.case_number)
            if routing.routed:
                values.update(state=ROUTED, emne_id=routing.emne.id, mailbox=routing.emne.mailbox,
                              rule=routing.rule, reason_code=None, reason_text=None)
            else:
                why = next((d.detail for d in routing.decisions if d.reason == routing.reason), "")
                values.update(state=MANUAL, reason_code=routing.reason, reason_text=scrub(why),
                              rule=next((d.rule for d in routing.decisions if d.reason == routing.reason), None))
        if assigned_by is not None:
            values["assigned_by"] = assigned_by
        with self._write() as conn:
            done = conn.execute(update(inbound).where(inbound.c.id == record.id,
                                                      inbound.c.state.in_(expect_states)).values(**values))
            if done.rowcount != 1:
                return False
            conn.execute(decisions.insert(), [
                {"inbound_row_id": record.id, "at": now, "actor": actor[:200], "rule": d.rule[:32],
                 "outcome": d.outcome, "reason_code": d.reason and d.reason[:64], "emne_id": d.emne_id,
                 "mailbox": d.mailbox, "detail": scrub(d.detail)} for d in found])
        return True

    def facts_of(self, message) -> dict:  # noqa: ANN001 - parsing.InboundMessage
        """The storable facts of a parsed message: sender masked and keyed-hashed, texts scrubbed."""
        id_type = message.sender_id_type or "CPR"
        return {
            "kind": "reply" if message.is_reply else "message",
            "message_uuid": message.message_uuid[:36] or None,
            "sender_id_type": id_type,
            "sender_masked": message.sender_masked[:16],
            "sender_hash": recipient_hash(id_type, message.sender_id, self._key),
            "label": scrub(message.label)[:512],
            "contact_point_id": (message.contact_point_id or None) and message.contact_point_id[:256],
            "reply_to_uuid": message.reply_to[:36] if message.reply_to else None,
        }

    def history(self, record: InboundRecord) -> list[DecisionRecord]:
        with self._read() as conn:
            rows = conn.execute(
                select(decisions.c.at, decisions.c.actor, decisions.c.rule, decisions.c.outcome,
                       decisions.c.reason_code, decisions.c.emne_id, decisions.c.mailbox,
                       decisions.c.detail)
                .where(decisions.c.inbound_row_id == record.id).order_by(decisions.c.id))
            return [DecisionRecord(*r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._read() as conn:
            return {s: n for s, n in conn.execute(select(inbound.c.state, func.count()).group_by(inbound.c.state))}

    def purge(self, older_than_days: float, *, now: dt.datetime | None = None) -> int:
        """Remove the personal data of messages mailed more than ``older_than_days`` ago: the
        encrypted MeMo, the sender's mask and keyed hash, the label. The routing decisions, the
        thread link and the mail record stay ("why did it land there?" keeps its answer).
        Messages still waiting (routed, manual) keep theirs. Returns how many were purged."""
        now = now or _now()
        due = (inbound.c.state == MAILED, inbound.c.updated_at < now - dt.timedelta(days=older_than_days),
               or_(inbound.c.payload.is_not(None), inbound.c.sender_masked.is_not(None),
                   inbound.c.sender_hash.is_not(None), inbound.c.label.is_not(None)))
        with self._write() as conn:
            return conn.execute(update(inbound).where(*due).values(
                payload=None, sender_masked=None, sender_hash=None, label=None, updated_at=now)).rowcount

    # -- mails --------------------------------------------------------------------------------

    def mail(self, record: InboundRecord) -> MailRecord | None:
        with self._read() as conn:
            row = conn.execute(select(mails.c.id, mails.c.inbound_row_id, mails.c.message_id,
                                      mails.c.mailbox, mails.c.address, mails.c.state,
                                      mails.c.attempts, mails.c.sent_at, mails.c.created_at)
                               .where(mails.c.inbound_row_id == record.id)).first()
        return MailRecord(*row) if row else None

    def claim_mail(self, record: InboundRecord, message_id: str, address: str,
                   lease_seconds: float) -> tuple[MailRecord | None, str]:
        """Record ``sending`` (once) and claim the send: (mail, "claimed" | "sent" | "busy")."""
        now = _now()
        with self._write() as conn:
            conn.execute(self._insert(mails).values(
                inbound_row_id=record.id, message_id=message_id, mailbox=record.mailbox,
                address=address, state=SENDING, attempts=0, created_at=now, updated_at=now))
            claimed = conn.execute(
                update(mails).where(mails.c.inbound_row_id == record.id, mails.c.state == SENDING,
                                    or_(mails.c.claimed_until.is_(None), mails.c.claimed_until < now))
                .values(attempts=mails.c.attempts + 1, updated_at=now,
                        claimed_until=now + dt.timedelta(seconds=lease_seconds))).rowcount == 1
        mail = self.mail(record)
        if mail is not None and mail.state == SENT:
            return mail, "sent"
        return mail, "claimed" if claimed else "busy"

    def mail_sent(self, record: InboundRecord, mail: MailRecord) -> None:
        now = _now()
        with self._write() as conn:
            conn.execute(update(mails).where(mails.c.id == mail.id)
                         .values(state=SENT, sent_at=now, updated_at=now, claimed_until=None,
                                 error_code=None))
            conn.execute(update(inbound).where(inbound.c.id == record.id, inbound.c.state == ROUTED)
                         .values(state=MAILED, updated_at=now))

    def mail_failed(self, mail: MailRecord, code: str) -> None:
        with self._write() as conn:
            conn.execute(update(mails).where(mails.c.id == mail.id, mails.c.state == SENDING)
                         .values(claimed_until=None, error_code=code[:64], updated_at=_now()))

    def drop_mail(self, mail: MailRecord) -> None:
        """Forget an unsent mail (the server refused it; the message is assigned anew)."""
        with self._write() as conn:
            conn.execute(mails.delete().where(mails.c.id == mail.id, mails.c.state == SENDING))

    def unmailed(self, limit: int) -> list[InboundRecord]:
        """Routed messages whose mail is not recorded as sent (oldest first)."""
        stmt = (select(*_RECORD_COLUMNS).select_from(inbound.outerjoin(mails, mails.c.inbound_row_id == inbound.c.id))
                .where(inbound.c.state == ROUTED, or_(mails.c.id.is_(None), mails.c.state == SENDING))
                .order_by(inbound.c.id).limit(limit))
        with self._read() as conn:
            return [InboundRecord(*r) for r in conn.execute(stmt)]

    def mails(self) -> list[MailRecord]:
        with self._read() as conn:
            rows = conn.execute(select(mails.c.id, mails.c.inbound_row_id, mails.c.message_id,
                                       mails.c.mailbox, mails.c.address, mails.c.state,
                                       mails.c.attempts, mails.c.sent_at, mails.c.created_at).order_by(mails.c.id))
            return [MailRecord(*r) for r in rows]


__all__ = ["InboundRecord", "DecisionRecord", "MailRecord", "ReplyStore", "RECEIVED", "ROUTED",
           "MANUAL", "MAILED", "REFUSED", "SENDING", "SENT"]
