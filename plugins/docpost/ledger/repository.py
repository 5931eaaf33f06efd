"""The ledger: one authoritative record per message, from drop to receipt.

Every write runs in one transaction (a transition and its events commit together or not at all)
and works in bulk: thousands of rows per statement (``IN`` lists of up to :data:`CHUNK` ids,
``INSERT ... SELECT`` for events, multi-row ``VALUES`` for per-message rows).

Concurrency: on PostgreSQL, rows are locked (``FOR UPDATE``, in id order) before they are
checked and moved, and :meth:`Ledger.claim` uses ``FOR UPDATE SKIP LOCKED``. On SQLite every
write transaction starts with ``BEGIN IMMEDIATE`` (one writer at a time, WAL for readers), so
check-then-move and claim are atomic there too. A claim is a lease stored on the row
(``claimed_by``, ``claim_token``, ``claim_expires_at``): no other worker gets the message until
it is released or the lease expires (:meth:`Ledger.renew` extends it while the worker works). The
token is a fence: a write made with ``fence=token`` moves only rows still holding it, so a worker
whose claim was lost (expired and taken over) can no longer write; operators' commands and
receipts write unfenced.

Receipts (PKO_PostStatus) are stored first, then settled: applied when the message is SUBMITTED or
RETRYING, ``duplicate`` when it already has that outcome, ``stale`` when it settled otherwise. A
receipt for an unknown or not yet submitted message stays pending (``disposition`` NULL) and is
applied when that message enters SUBMITTED, or on any later :meth:`Ledger.apply_receipts`. A
DELIVERED receipt also settles a FAILED message that may have reached SF1601 (the letter arrived
after all). Generations: :meth:`Ledger.requeue` sends a message again under new ids (a new
generation); a receipt for an earlier generation's messageUUID is still matched (through
``ledger_generations``): see ``docpost.ledger.states.RECEIPT_MOVES`` for what it does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Connection,
    Text,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.engine import URL

from docpost.ledger import identity
from docpost.ledger.engine import WRITE, create_ledger_engine, normalise_url, resolve_url
from docpost.ledger.errors import (
    ClaimedMessage, IllegalTransition, InvalidField, UnexpectedState, UnknownMessage,
)
from docpost.ledger.records import (
    Conflict,
    Event,
    Generation,
    Message,
    MessageRef,
    Move,
    Receipt,
    ReceiptResult,
    RegisteredMessage,
    Registration,
    RegisterResult,
    Report,
    TransitionResult,
)
from docpost.ledger.schema import UtcDateTime, conflicts, events, generations, messages, receipts
from docpost.ledger.states import (
    RECEIPT_OUTCOMES,
    SETTLED,
    MessageState,
    is_legal,
    receipt_move,
    requeue_target,
)
from docpost.model import Channel, IdType, Recipient
from docpost.privacy import scrub
from docpost.settings import settings

log = logging.getLogger(__name__)

#: Ids per statement (IN lists, row locks). Well below SQLite's and PostgreSQL's parameter limits.
CHUNK = 5000
#: The PostgreSQL advisory lock that serialises migrations of the ledger (with the database's name
#: hashed as its second key: ledgers in other databases of the server do not wait for each other).
MIGRATION_LOCK_KEY = 0x646F6370  # "docp"

S = MessageState

#: Moves sharing their column values with at least this many others are updated by one IN-list.
_SHARED_MIN = 8

#: Columns a transition may set (``**fields``), besides the special field ``recipient``.
SETTABLE = frozenset(
    {
        "channel", "reason_code", "reason_text", "reply_type", "reply_postkasse_id", "reply_emne_id",
        "reply_contact_point_id", "pdf_sha256", "attempts", "receipt_status", "title", "document_type",
        "case_number", "case_uuid", "document_number", "document_uuid",
    }
)
_FREE_TEXT = frozenset({"reason_text", "title"})
_REF_COLUMNS = (
    messages.c.id, messages.c.message_uuid, messages.c.transaction_id, messages.c.source_system,
    messages.c.submission_id, messages.c.submission_date, messages.c.s3_prefix, messages.c.state,
    messages.c.attempts, messages.c.faults,
)
_CHANNEL_OF = {S.DELIVERED_DIGITAL: Channel.DIGITAL.value, S.DELIVERED_PHYSICAL: Channel.PHYSICAL.value}


def channel_value(value: Any) -> str | None:
    """``digital`` / ``physical`` from a Channel, its value, or a KanalKode ("Digital Post", "Fysisk Post")."""
    if value is None:
        return None
    text = str(getattr(value, "value", value)).strip().lower()
    if "digital" in text:
        return Channel.DIGITAL.value
    if "fysisk" in text or "physical" in text:
        return Channel.PHYSICAL.value
    raise InvalidField(f"unknown channel {value!r}")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _ref(row) -> MessageRef:
    m = row._mapping
    return MessageRef(
        m["id"], m["message_uuid"], m["transaction_id"], m["source_system"], m["submission_id"],
        m["submission_date"], m["s3_prefix"], MessageState(m["state"]), m["attempts"], m["faults"],
    )


def _message(row) -> Message:
    values = dict(row._mapping)
    values["state"] = MessageState(values["state"])
    if values.get("listing"):
        values["listing"] = {name: (int(size), etag) for name, (size, etag) in json.loads(values["listing"]).items()}
    return Message(**values)


def _conflict(row) -> Conflict:
    return Conflict(**{k: v for k, v in row._mapping.items()})


class Ledger:
    """The message ledger on one database (SQLite file or PostgreSQL).

    >>> ledger = Ledger("sqlite:///ledger.db"); ledger.upgrade()
    """

    def __init__(self, url: str | URL | None = None, *, pseudonym_key: bytes | None = None) -> None:
        self.url = normalise_url(url if url is not None else resolve_url())
        self.engine = create_ledger_engine(self.url)
        self._given_key = pseudonym_key
        self.chunk_size = CHUNK  # ids per statement

    @property
    def _key(self) -> bytes:
        """The pseudonym key, asked for only where a recipient is hashed (registering, looking one
        up): without DOCPOST_PSEUDONYM_KEY those refuse, while a lookup by message UUID works."""
        if self._given_key is None:  # read once: registering calls this for every recipient
            self._given_key = settings().pseudonym_key
        return self._given_key

    @classmethod
    def from_settings(cls, *, airflow: bool | None = None) -> Ledger:
        """The ledger configured by ``DOCPOST_DB_URL`` or the ``docpost_ledger`` Airflow connection."""
        return cls(resolve_url(airflow))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def __repr__(self) -> str:
        return f"Ledger({self.url.render_as_string(hide_password=True)})"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- schema -------------------------------------------------------------------------------

    def upgrade(self, revision: str = "head") -> None:
        """Apply the Alembic migrations (idempotent). On PostgreSQL under an advisory lock, so that
        concurrent first uses (tasks on several workers, the init step) migrate once, in turn."""
        from docpost import migrations

        if self.dialect != "postgresql":
            migrations.upgrade(self.engine, revision)
            return
        with self.engine.connect() as lock:
            lock.execute(text("SELECT pg_advisory_lock(:key, hashtext(current_database()))"),
                         {"key": MIGRATION_LOCK_KEY})
            try:
                migrations.upgrade(self.engine, revision)
            finally:
                lock.execute(text("SELECT pg_advisory_unlock(:key, hashtext(current_database()))"),
                             {"key": MIGRATION_LOCK_KEY})
                lock.commit()

    def revision(self) -> str | None:
        """The schema revision of this database (None: not migrated)."""
        from docpost import migrations

        return migrations.current_revision(self.engine)

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def _insert(self, table):
        """``INSERT ... ON CONFLICT DO NOTHING`` for this dialect."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        return dialect_insert(table).on_conflict_do_nothing()

    # -- registration -------------------------------------------------------------------------

    def register(self, registrations: Iterable[Registration], actor: str) -> RegisterResult:
        """Register submissions as RECEIVED messages, idempotently.

        The same identity (source system, submission id, content hash) again returns the existing
        message. The same submission id with another content hash is recorded in
        ``ledger_conflicts`` (reported by ``docpost report``) and not registered, unless it is the
        same listing as registered under a hash made another way (see :meth:`_same_content`).
        """
        regs = list(registrations)
        now = _now()
        out: list[RegisteredMessage] = []
        found: list[Conflict] = []
        made: set[int] = set()
        with self._write() as conn:
            for chunk in _chunks(regs, self.chunk_size):
                rows: dict[tuple[str, str], dict[str, Any]] = {}
                for reg in chunk:
                    key = (reg.source_system, reg.submission_id)
                    if key not in rows:
                        rows[key] = self._row_for(reg, now)
                conn.execute(self._insert(messages), list(rows.values()))
                stored = {
                    (r.source_system, r.submission_id): r
                    for r in conn.execute(
                        select(
                            messages.c.id, messages.c.message_uuid, messages.c.transaction_id,
                            messages.c.source_system, messages.c.submission_id, messages.c.content_hash,
                            messages.c.state, messages.c.s3_prefix, messages.c.created_at, messages.c.listing,
                        ).where(messages.c.submission_id.in_(sorted({sid for _src, sid in rows})))
                    )
                    if (r.source_system, r.submission_id) in rows
                }
                # rows stamped with this call's instant are the ones this call inserted
                created_ids = {r.id for r in stored.values() if r.created_at == now} - made
                made |= created_ids
                if created_ids:
                    conn.execute(insert(events), [
                        {"message_id": r.id, "from_state": None, "to_state": S.RECEIVED.value, "at": now,
                         "actor": actor, "detail": f"registered from {r.s3_prefix}"}
                        for r in sorted(stored.values(), key=lambda r: r.id) if r.id in created_ids
                    ])
                clashes = []
                for reg in chunk:
                    row = stored[(reg.source_system, reg.submission_id)]
                    if row.content_hash == reg.content_hash.lower() or self._same_content(row, reg):
                        created = row.id in created_ids
                        created_ids.discard(row.id)  # a repeat inside the batch is "existing"
                        out.append(RegisteredMessage(
                            row.id, row.message_uuid, row.transaction_id, row.source_system,
                            row.submission_id, MessageState(row.state), created,
                        ))
                    else:
                        clashes.append({
                            "message_id": row.id, "source_system": reg.source_system,
                            "submission_id": reg.submission_id, "submission_date": reg.submission_date,
                            "existing_content_hash": row.content_hash,
                            "conflicting_content_hash": reg.content_hash.lower(), "s3_prefix": reg.s3_prefix,
                            "detected_at": now, "actor": actor,
                        })
                if clashes:
                    conn.execute(self._insert(conflicts), clashes)
                    keys = {(c["source_system"], c["submission_id"], c["conflicting_content_hash"]) for c in clashes}
                    found.extend(
                        _conflict(r) for r in conn.execute(
                            select(conflicts).where(
                                tuple_(conflicts.c.source_system, conflicts.c.submission_id,
                                       conflicts.c.conflicting_content_hash).in_(list(keys))
                            ).order_by(conflicts.c.id)
                        )
                    )
        if found:
            log.warning("ledger: %d submission(s) arrived again with different content (conflicts)", len(found))
        return RegisterResult(out, found)

    @staticmethod
    def _same_content(row, reg: Registration) -> bool:
        """Whether a registration whose hash differs from the stored one is still the submission
        registered before, its hash made another way (before the identity took in the ETags: names
        and sizes only). Decided on the listing register keeps, name -> (size, ETag), ``_READY``
        aside: the same listing with ETags is the same content; a stored listing without ETags (or
        none, registered before listings were kept) is compared by the old names-and-sizes hash."""
        if not reg.listing:
            return False

        def files(listing) -> dict[str, tuple[int, str]]:
            return {n: (int(size), (etag or "").strip().strip('"').lower())
                    for n, (size, etag) in listing.items() if n != "_READY"}

        given = files(reg.listing)
        if row.listing:
            kept = files(json.loads(row.listing))
            if kept and all(etag for _size, etag in kept.values()):
                return kept == given
        old = hashlib.sha256()
        for name in sorted(given):
            old.update(f"{name}\0{given[name][0]}\n".encode())
        return row.content_hash == old.hexdigest()

    def _row_for(self, reg: Registration, now: dt.datetime) -> dict[str, Any]:
        content_hash = reg.content_hash.lower()
        row: dict[str, Any] = {
            # generation 0: the ids docpost has always derived (a requeue starts the next generation)
            "message_uuid": identity.message_uuid(reg.source_system, reg.submission_id, content_hash, generation=0),
            "transaction_id": identity.transaction_id(reg.source_system, reg.submission_id, content_hash, generation=0),
            "generation": 0,
            "source_system": reg.source_system, "submission_id": reg.submission_id,
            "submission_date": reg.submission_date, "content_hash": content_hash, "s3_prefix": reg.s3_prefix,
            "state": S.RECEIVED.value, "attempts": 0, "case_number": reg.case_number,
            "case_uuid": reg.case_uuid, "document_number": reg.document_number,
            "document_uuid": reg.document_uuid, "document_type": reg.document_type,
            "title": scrub(reg.title), "created_at": now, "updated_at": now, "state_changed_at": now,
            "recipient_id_type": None, "recipient_masked": None, "recipient_hash": None,
            "listing": json.dumps({n: list(v) for n, v in sorted(reg.listing.items())}) if reg.listing else None,
        }
        if reg.recipient_identifier:
            row.update(self._recipient_columns(reg.recipient_id_type or IdType.CPR, reg.recipient_identifier))
        return row

    def _recipient_columns(self, id_type: IdType | str, identifier: str) -> dict[str, Any]:
        kind = IdType(str(id_type).upper())
        masked, hashed = identity.pseudonymise(kind.value, identifier, self._key)
        return {"recipient_id_type": kind.value, "recipient_masked": masked, "recipient_hash": hashed}

    # -- transitions --------------------------------------------------------------------------

    def _field_values(self, fields: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, value in fields.items():
            if name == "recipient":
                if isinstance(value, Recipient):
                    values.update(self._recipient_columns(value.id_type, value.identifier))
                else:
                    id_type, identifier = value
                    values.update(self._recipient_columns(id_type, identifier))
                continue
            if name not in SETTABLE:
                raise InvalidField(f"a transition cannot set {name!r}; settable: {', '.join(sorted(SETTABLE))}")
            if name == "channel":
                value = channel_value(value)
            elif hasattr(value, "value"):  # enums (ReplyType, ...)
                value = value.value
            if name in _FREE_TEXT:
                value = scrub(value)
            values[name] = value
        return values

    @staticmethod
    def _state_values(to: MessageState, now: dt.datetime, count_attempt: bool) -> dict[str, Any]:
        values: dict[str, Any] = {"state": to.value, "updated_at": now, "state_changed_at": now}
        if count_attempt:
            values["attempts"] = messages.c.attempts + 1
        if to is S.FAILED:
            values["failed_from"] = case(
                (messages.c.state == S.FAILED.value, messages.c.failed_from), else_=messages.c.state
            )
        if to is S.SUBMITTED:
            values["submitted_at"] = now
        return values

    def _lock(self, conn: Connection, ids: Sequence[int], *extra) -> dict[int, Any]:
        """Current state (and ``extra`` columns) of ``ids``, row-locked on PostgreSQL."""
        rows = conn.execute(
            select(messages.c.id, messages.c.state, messages.c.message_uuid, *extra)
            .where(messages.c.id.in_(ids)).order_by(messages.c.id).with_for_update()
        ).all()
        found = {r.id: r for r in rows}
        missing = [i for i in ids if i not in found]
        if missing:
            raise UnknownMessage(f"{len(missing)} message id(s) not in the ledger, e.g. {missing[0]}")
        return found

    @staticmethod
    def _check(
        current: dict[int, Any], to: MessageState, expected: frozenset[MessageState] | None, count_attempt: bool
    ) -> tuple[list[int], list[int]]:
        """Split ids into (to move, unchanged); raise for an unexpected or illegal move."""
        move, same = [], []
        unexpected: dict[str, list[str]] = defaultdict(list)
        illegal: dict[str, list[str]] = defaultdict(list)
        for mid, row in current.items():
            state = MessageState(row.state)
            if state is to:
                (move if count_attempt else same).append(mid)
            elif expected is not None and state not in expected:
                unexpected[state].append(row.message_uuid)
            elif not is_legal(state, to):
                illegal[state].append(row.message_uuid)
            else:
                move.append(mid)
        if unexpected:
            state, uuids = next(iter(unexpected.items()))
            total = sum(len(v) for v in unexpected.values())
            raise UnexpectedState(state, to, uuids[0], total,
                                  why=f"expected it in {', '.join(sorted(expected or ()))}")
        if illegal:
            state, uuids = next(iter(illegal.items()))
            raise IllegalTransition(state, to, uuids[0], sum(len(v) for v in illegal.values()))
        return move, same

    @staticmethod
    def _check_fenced(
        current: dict[int, Any], to: MessageState, expected: frozenset[MessageState] | None, count_attempt: bool,
        fence: str,
    ) -> tuple[list[int], list[int], list[int], list[int]]:
        """Split ids of a fenced write into (to move, unchanged, lost, settled); never raises.

        ``lost``: the row no longer holds the claim token ``fence`` (the lease expired and another
        worker claimed it, or an operator's requeue cleared it): not this worker's to write.
        ``settled``: the row still holds the claim but someone without one (a receipt, an
        operator) moved it meanwhile to a state this move does not apply to: a no-op for it.
        """
        move, same, lost, settled = [], [], [], []
        for mid, row in current.items():
            state = MessageState(row.state)
            if row.claim_token != fence:
                lost.append(mid)
            elif state is to:
                (move if count_attempt else same).append(mid)
            elif (expected is not None and state not in expected) or not is_legal(state, to):
                settled.append(mid)
            else:
                move.append(mid)
        return move, same, lost, settled

    def _checked(
        self, conn: Connection, chunk: Sequence[int], to: MessageState, expected: frozenset[MessageState] | None,
        count_attempt: bool, fence: str | None, refuse_claimed: bool = False,
    ) -> tuple[dict[int, Any], list[int], list[int], list[int], list[int]]:
        """Lock ``chunk`` and split it: (rows, to move, unchanged, lost, settled). Unfenced (``fence``
        None): raises for an unexpected or illegal move as :meth:`_check`; fenced: see
        :meth:`_check_fenced`. ``refuse_claimed``: raise :class:`ClaimedMessage` for a row under
        an unexpired claim (an operator's command must not race a worker)."""
        claim_columns = (messages.c.claim_token, messages.c.claimed_by, messages.c.claim_expires_at)
        current = self._lock(conn, chunk, *claim_columns) if fence is not None or refuse_claimed else \
            self._lock(conn, chunk)
        if refuse_claimed:
            now = _now()
            held = [r for r in current.values()
                    if r.claim_expires_at is not None and r.claim_expires_at > now and MessageState(r.state) is not to]
            if held:
                raise ClaimedMessage(held[0].message_uuid, held[0].claimed_by, len(held))
        if fence is None:
            move, same = self._check(current, to, expected, count_attempt)
            return current, move, same, [], []
        move, same, lost, settled = self._check_fenced(current, to, expected, count_attempt, fence)
        if lost:
            log.warning("ledger: %d message(s) not moved to %s: this worker's claim was lost (lease expired and "
                        "taken over, or cleared), e.g. message %s", len(lost), to.value, current[lost[0]].message_uuid)
        if settled:
            log.info("ledger: %d message(s) not moved to %s: settled meanwhile (e.g. message %s now %s)",
                     len(settled), to.value, current[settled[0]].message_uuid, current[settled[0]].state)
        return current, move, same, lost, settled

    @staticmethod
    def _expected(expected_from) -> frozenset[MessageState] | None:
        if expected_from is None:
            return None
        if isinstance(expected_from, str):
            expected_from = [expected_from]
        return frozenset(MessageState(s) for s in expected_from)

    def transition(
        self,
        message_ids: Iterable[int],
        to_state: MessageState | str,
        actor: str,
        detail: str | None = None,
        expected_from: MessageState | str | Iterable[MessageState | str] | None = None,
        count_attempt: bool = False,
        *,
        fence: str | None = None,
        refuse_claimed: bool = False,
        **fields: Any,
    ) -> TransitionResult:
        """Move messages to ``to_state`` in bulk, with one event each, in one transaction.

        Messages already in ``to_state`` are left alone (``unchanged``), unless ``count_attempt``
        (then the attempt is counted and an event written, e.g. another RETRYING). Raises
        :class:`IllegalTransition` (nothing moves) if any move is illegal, or
        :class:`UnexpectedState` if ``expected_from`` is given and a message is elsewhere.
        ``fields`` set columns on the moved messages: see :data:`SETTABLE`, plus ``recipient``
        (a ``model.Recipient`` or ``(id_type, identifier)``: stored masked and hashed).

        ``fence``: the claim token of the worker writing (see :meth:`claim`). Only rows that still
        hold it move (checked under the row lock, in the same transaction); the others are skipped
        and reported, never raised: ``lost`` (the claim is gone) and ``settled`` (moved meanwhile
        by a receipt or an operator to a state this move does not apply to). Without a fence
        (operators, receipts) the call behaves as described above. ``refuse_claimed``: raise
        :class:`ClaimedMessage` (nothing moves) if a message is under an unexpired claim.
        """
        to = MessageState(to_state)
        values = self._field_values(fields)
        ids = list(dict.fromkeys(message_ids))
        expected = self._expected(expected_from)
        detail = scrub(detail)
        moved, unchanged, lost, settled = [], [], [], []
        with self._write() as conn:
            now = _now()
            for chunk in _chunks(ids, self.chunk_size):
                _rows, move, same, gone, done = self._checked(conn, chunk, to, expected, count_attempt, fence,
                                                              refuse_claimed)
                unchanged.extend(same)
                lost.extend(gone)
                settled.extend(done)
                if not move:
                    continue
                conn.execute(
                    insert(events).from_select(
                        ["message_id", "from_state", "to_state", "at", "actor", "detail"],
                        select(
                            messages.c.id, messages.c.state, literal(to.value), literal(now, UtcDateTime()),
                            literal(actor), literal(detail, Text()),
                        ).where(messages.c.id.in_(move)),
                    )
                )
                conn.execute(
                    update(messages).where(messages.c.id.in_(move))
                    .values({**self._state_values(to, now, count_attempt), **values})
                )
                moved.extend(move)
            if to is S.SUBMITTED and moved:
                self._settle_receipts(conn, now, "receipts", moved)
        return TransitionResult(moved, unchanged, lost, settled)

    def transition_each(
        self,
        moves: Iterable[Move],
        to_state: MessageState | str,
        actor: str,
        expected_from: MessageState | str | Iterable[MessageState | str] | None = None,
        count_attempt: bool = False,
        *,
        fence: str | None = None,
    ) -> TransitionResult:
        """Like :meth:`transition`, with a detail and column values per message (bulk); ``fence``
        as there."""
        to = MessageState(to_state)
        by_id: dict[int, Move] = {}
        for m in moves:
            by_id[m.message_id] = m
        prepared = {mid: self._field_values(m.fields) for mid, m in by_id.items()}
        expected = self._expected(expected_from)
        moved, unchanged, lost, settled = [], [], [], []
        with self._write() as conn:
            now = _now()
            for chunk in _chunks(list(by_id), self.chunk_size):
                current, move, same, gone, done = self._checked(conn, chunk, to, expected, count_attempt, fence)
                unchanged.extend(same)
                lost.extend(gone)
                settled.extend(done)
                self._write_moves(conn, to, [
                    (mid, current[mid].state, scrub(by_id[mid].detail), prepared[mid], None) for mid in move
                ], actor, now, count_attempt)
                moved.extend(move)
            if to is S.SUBMITTED and moved:
                self._settle_receipts(conn, now, "receipts", moved)
        return TransitionResult(moved, unchanged, lost, settled)

    def _write_moves(
        self, conn: Connection, to: MessageState,
        moves: list[tuple[int, str, str | None, dict[str, Any], dt.datetime | None]],
        actor: str, now: dt.datetime, count_attempt: bool = False,
    ) -> None:
        """Events and updates for moves of (id, from state, detail, column values, event time)."""
        if not moves:
            return
        conn.execute(insert(events), [
            {"message_id": mid, "from_state": src, "to_state": to.value, "at": at or now, "actor": actor,
             "detail": detail}
            for mid, src, detail, _values, at in moves
        ])
        base = self._state_values(to, now, count_attempt)
        # Messages sharing the same column values move with one UPDATE ... WHERE id IN (...);
        # the rest (values unique to a message) go as one executemany per column set.
        alike: dict[tuple, list[int]] = defaultdict(list)
        for mid, _src, _detail, values, _at in moves:
            alike[tuple(sorted(values.items()))].append(mid)
        singles: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for items, mids in alike.items():
            if len(mids) >= _SHARED_MIN:
                for chunk in _chunks(mids, self.chunk_size):
                    conn.execute(update(messages).where(messages.c.id.in_(chunk)).values({**base, **dict(items)}))
            else:
                for mid in mids:
                    singles[tuple(k for k, _v in items)].append({"m_id": mid, **{f"v_{k}": v for k, v in items}})
        for keys, params in singles.items():
            stmt = (
                update(messages).where(messages.c.id == bindparam("m_id"))
                .values({**base, **{k: bindparam(f"v_{k}") for k in keys}})
            )
            conn.execute(stmt, params)

    def reject(
        self, message_id: int, code: str, text: str, actor: str, *, fence: str | None = None
    ) -> TransitionResult:
        """Reject one message with a reason code and plain-language text (``fence``: see :meth:`transition`)."""
        return self.reject_many([(message_id, code, text)], actor, fence=fence)

    def reject_many(
        self, rejections: Iterable[tuple[int, str, str]], actor: str, *, fence: str | None = None
    ) -> TransitionResult:
        """Reject messages in bulk, each with its own ``(message id, code, text)`` (``fence``: see
        :meth:`transition`)."""
        return self.transition_each(
            [Move(mid, f"{code}: {text}", {"reason_code": code, "reason_text": text}) for mid, code, text in rejections],
            S.REJECTED, actor, fence=fence,
        )

    def hold(self, faults: Iterable[tuple[int, str, str]], actor: str, *, fence: str | None = None) -> list[int]:
        """Keep messages in their state after an unexpected failure, each ``(id, code, text)``.

        Counts the fault (``faults``), records the code and an event (from and to the same state),
        so that a later run tries the message again; returns the ids held. Final messages are left
        alone; with ``fence`` (a claim token, see :meth:`transition`) so are messages that no
        longer hold it.
        """
        items = {mid: (code, scrub(text)) for mid, code, text in faults}
        held: list[int] = []
        with self._write() as conn:
            now = _now()
            for chunk in _chunks(list(items), self.chunk_size):
                current = self._lock(conn, chunk, messages.c.claim_token)
                ids = [mid for mid, row in current.items() if MessageState(row.state) not in SETTLED
                       and (fence is None or row.claim_token == fence)]
                if fence is not None and len(ids) < len(current):
                    lost = [mid for mid, row in current.items() if row.claim_token != fence]
                    if lost:
                        log.warning("ledger: %d message(s) not held: this worker's claim was lost, e.g. message %s",
                                    len(lost), current[lost[0]].message_uuid)
                if not ids:
                    continue
                conn.execute(insert(events), [
                    {"message_id": mid, "from_state": current[mid].state, "to_state": current[mid].state,
                     "at": now, "actor": actor, "detail": f"{items[mid][0]}: {items[mid][1]}"}
                    for mid in ids
                ])
                conn.execute(
                    update(messages).where(messages.c.id == bindparam("m_id"))
                    .values(faults=messages.c.faults + 1, reason_code=bindparam("v_code"),
                            reason_text=bindparam("v_text"), updated_at=now),
                    [{"m_id": mid, "v_code": items[mid][0], "v_text": items[mid][1]} for mid in ids],
                )
                held.extend(ids)
        return held

    # -- claims -------------------------------------------------------------------------------

    def claim(
        self,
        states: Iterable[MessageState | str],
        limit: int,
        worker: str,
        lease_seconds: float = 900,
        *,
        message_ids: Sequence[int] | None = None,
        submission_date: dt.date | None = None,
        token: str | None = None,
    ) -> list[MessageRef]:
        """Claim up to ``limit`` unclaimed messages in ``states`` for ``worker`` (lowest ids first).

        No other worker gets them until :meth:`release` or the lease expires (:meth:`renew`
        extends it). PostgreSQL: ``FOR UPDATE SKIP LOCKED``; SQLite: one atomic ``UPDATE ...
        RETURNING`` under the write lock.

        Each claim has a token (``token``, else a new UUID), handed out on every returned ref
        (``MessageRef.claim_token``): the fence. Writes made with ``fence=token`` (see
        :meth:`transition`) apply only while the row still holds it, so a worker whose lease
        expired and was taken over can no longer write.
        """
        now = _now()
        token = token or str(uuid.uuid4())
        inner = messages.alias("candidate")
        pick = (
            select(inner.c.id)
            .where(
                inner.c.state.in_([MessageState(s).value for s in states]),
                or_(inner.c.claim_expires_at.is_(None), inner.c.claim_expires_at < now),
            )
            .order_by(inner.c.id).limit(limit).with_for_update(skip_locked=True)
        )
        if message_ids is not None:
            if len(message_ids) > self.chunk_size:
                raise InvalidField(f"claim within at most {self.chunk_size} message ids at a time")
            pick = pick.where(inner.c.id.in_(list(message_ids)))
        if submission_date is not None:
            pick = pick.where(inner.c.submission_date == submission_date)
        stmt = (
            update(messages).where(messages.c.id.in_(pick.scalar_subquery()))
            .values(claimed_by=worker, claim_token=token,
                    claim_expires_at=now + dt.timedelta(seconds=lease_seconds))
            .returning(*_REF_COLUMNS)
        )
        with self._write() as conn:
            rows = conn.execute(stmt).all()
        return sorted((replace(_ref(r), claim_token=token) for r in rows), key=lambda r: r.id)

    def renew(self, message_ids: Iterable[int], worker: str, token: str, lease_seconds: float) -> list[int]:
        """Extend ``worker``'s claims (token ``token``) on these messages to ``lease_seconds`` from
        now; returns the ids renewed. An id missing from the answer is a lost claim: its lease
        expired and another worker claimed it, or it was released or cleared (requeue).

        A claim whose lease ran out but that nobody took over still holds the token and is renewed.
        Rows are locked in id order (like transitions), so renewing beside a write never deadlocks.
        """
        ids = sorted(set(message_ids))
        renewed: list[int] = []
        with self._write() as conn:
            until = _now() + dt.timedelta(seconds=lease_seconds)
            for chunk in _chunks(ids, self.chunk_size):
                held = list(conn.execute(
                    select(messages.c.id).where(
                        messages.c.id.in_(chunk), messages.c.claim_token == token, messages.c.claimed_by == worker,
                    ).order_by(messages.c.id).with_for_update()
                ).scalars())
                if held:
                    conn.execute(update(messages).where(messages.c.id.in_(held)).values(claim_expires_at=until))
                renewed.extend(held)
        return renewed

    def release(self, message_ids: Iterable[int], worker: str, token: str | None = None) -> int:
        """Give back ``worker``'s claims on these messages; returns how many were released.

        With ``token``, only the claims that still hold it (a claim lost and taken over by
        another worker, even one of the same name, stays with it)."""
        ids = list(message_ids)
        released = 0
        where = [messages.c.claimed_by == worker]
        if token is not None:
            where.append(messages.c.claim_token == token)
        with self._write() as conn:
            for chunk in _chunks(ids, self.chunk_size):
                released += conn.execute(
                    update(messages).where(messages.c.id.in_(chunk), *where)
                    .values(claimed_by=None, claim_token=None, claim_expires_at=None)
                ).rowcount
        return released

    # -- queries ------------------------------------------------------------------------------

    def message_ids(
        self,
        submission_date: dt.date | None = None,
        states: Iterable[MessageState | str] | None = None,
        source_system: str | None = None,
        *,
        first_id: int | None = None,
        last_id: int | None = None,
    ) -> list[int]:
        """Ids of messages (of a submission date, or of any date when None; in states; with ids in
        ``[first_id, last_id]``), in stable id order (oldest first) for chunking."""
        stmt = select(messages.c.id).order_by(messages.c.id)
        if submission_date is not None:
            stmt = stmt.where(messages.c.submission_date == submission_date)
        if states is not None:
            stmt = stmt.where(messages.c.state.in_([MessageState(s).value for s in states]))
        if source_system is not None:
            stmt = stmt.where(messages.c.source_system == source_system)
        if first_id is not None:
            stmt = stmt.where(messages.c.id >= first_id)
        if last_id is not None:
            stmt = stmt.where(messages.c.id <= last_id)
        with self._read() as conn:
            return list(conn.execute(stmt).scalars())

    def stale_messages(
        self, older_than_hours: float, states: Iterable[MessageState | str], *,
        now: dt.datetime | None = None, limit: int | None = None,
    ) -> tuple[int, list[dict[str, Any]]]:
        """Messages in ``states`` registered more than ``older_than_hours`` ago, whatever their
        submission date: ``(how many, the oldest up to limit)``, each as message UUID, state,
        reason code, submission date and registration time (no personal data)."""
        now = now or _now()
        where = (messages.c.state.in_([MessageState(s).value for s in states]),
                 messages.c.created_at < now - dt.timedelta(hours=older_than_hours))
        with self._read() as conn:
            total = conn.execute(select(func.count()).select_from(messages).where(*where)).scalar_one()
            rows = conn.execute(
                select(messages.c.message_uuid, messages.c.state, messages.c.reason_code,
                       messages.c.submission_date, messages.c.created_at)
                .where(*where).order_by(messages.c.id).limit(limit)
            ).all()
        return total, [dict(r._mapping) for r in rows]

    def last_registered(self, submission_date: dt.date) -> dt.datetime | None:
        """When the latest message of ``submission_date`` was registered (None: none yet)."""
        with self._read() as conn:
            return conn.execute(select(func.max(messages.c.created_at))
                                .where(messages.c.submission_date == submission_date)).scalar_one()

    def known_submissions(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (source system, submission id) the ledger holds (one query per chunk)."""
        wanted = set(keys)
        found: set[tuple[str, str]] = set()
        with self._read() as conn:
            for chunk in _chunks(sorted({sid for _src, sid in wanted}), self.chunk_size):
                found.update(
                    k for k in conn.execute(select(messages.c.source_system, messages.c.submission_id)
                                            .where(messages.c.submission_id.in_(chunk))).tuples()
                    if k in wanted)
        return found

    def messages(self, message_ids: Iterable[int]) -> list[Message]:
        """Full rows of these messages, in id order."""
        ids = list(message_ids)
        out: list[Message] = []
        with self._read() as conn:
            for chunk in _chunks(ids, self.chunk_size):
                out.extend(_message(r) for r in conn.execute(
                    select(messages).where(messages.c.id.in_(chunk)).order_by(messages.c.id)))
        return sorted(out, key=lambda m: m.id)

    def refs(self, message_ids: Iterable[int]) -> list[MessageRef]:
        """The keys of these messages, in id order."""
        ids = list(message_ids)
        out: list[MessageRef] = []
        with self._read() as conn:
            for chunk in _chunks(ids, self.chunk_size):
                out.extend(_ref(r) for r in conn.execute(select(*_REF_COLUMNS).where(messages.c.id.in_(chunk))))
        return sorted(out, key=lambda r: r.id)

    def _select_messages(self, *where) -> list[Message]:
        with self._read() as conn:
            return [_message(r) for r in conn.execute(select(messages).where(*where).order_by(messages.c.id))]

    def get(self, message_uuid: str) -> Message | None:
        """The message with this MeMo messageUUID (or SF1601 transaction id), of its current
        generation or an earlier one (a requeued message is found by its earlier ids too)."""
        key = message_uuid.strip().lower()
        earlier = select(generations.c.message_id).where(
            or_(generations.c.message_uuid == key, generations.c.transaction_id == key))
        found = self._select_messages(or_(
            messages.c.message_uuid == key, messages.c.transaction_id == key, messages.c.id.in_(earlier)))
        return found[0] if found else None

    def generation_of(self, message_uuid: str) -> tuple[int, int] | None:
        """``(message id, generation)`` of a MeMo messageUUID (not a transaction id), current or
        earlier; None if no message has it."""
        key = message_uuid.strip().lower()
        with self._read() as conn:
            row = conn.execute(select(messages.c.id, messages.c.generation).where(messages.c.message_uuid == key)).first()
            if row is None:
                row = conn.execute(select(generations.c.message_id, generations.c.generation)
                                   .where(generations.c.message_uuid == key)).first()
        return (row[0], row[1]) if row is not None else None

    def generations(self, message_id: int) -> list[Generation]:
        """The earlier generations of a requeued message, oldest first (none: never requeued)."""
        with self._read() as conn:
            return [
                Generation(r.message_id, r.generation, r.message_uuid, r.transaction_id, r.ended_at,
                           MessageState(r.ended_state), r.failed_from, r.reason_code, r.ended_by)
                for r in conn.execute(select(generations).where(generations.c.message_id == message_id)
                                      .order_by(generations.c.generation))
            ]

    def by_submission_id(self, submission_id: str, source_system: str | None = None) -> list[Message]:
        where = [messages.c.submission_id == submission_id]
        if source_system is not None:
            where.append(messages.c.source_system == source_system)
        return self._select_messages(*where)

    def by_case_number(self, case_number: str) -> list[Message]:
        return self._select_messages(messages.c.case_number == case_number)

    def by_recipient(self, id_type: IdType | str, identifier: str) -> list[Message]:
        """Messages to one recipient, found by the keyed hash (the clear number is not stored)."""
        hashed = self._recipient_columns(id_type, identifier)["recipient_hash"]
        return self._select_messages(messages.c.recipient_hash == hashed)

    def find(self, query: str) -> list[Message]:
        """Messages matching a message UUID / transaction id, a submission id or a case number."""
        query = query.strip()
        try:
            uuid.UUID(query)
        except ValueError:
            pass
        else:
            found = self.get(query)
            if found:
                return [found]
        return self._select_messages(or_(messages.c.submission_id == query, messages.c.case_number == query))

    def history(self, message_id: int) -> list[Event]:
        """A message's events, oldest first."""
        with self._read() as conn:
            return [
                Event(r.id, r.message_id, MessageState(r.from_state) if r.from_state else None,
                      MessageState(r.to_state), r.at, r.actor, r.detail)
                for r in conn.execute(
                    select(events).where(events.c.message_id == message_id).order_by(events.c.id))
            ]

    def conflicts(self, submission_date: dt.date | None = None) -> list[Conflict]:
        stmt = select(conflicts).order_by(conflicts.c.id)
        if submission_date is not None:
            stmt = stmt.where(conflicts.c.submission_date == submission_date)
        with self._read() as conn:
            return [_conflict(r) for r in conn.execute(stmt)]

    def awaiting_receipt(
        self, older_than_hours: float, *, now: dt.datetime | None = None, limit: int | None = None
    ) -> list[MessageRef]:
        """Messages SUBMITTED more than ``older_than_hours`` ago with no receipt yet (reconciliation)."""
        cutoff = (now or _now()) - dt.timedelta(hours=older_than_hours)
        stmt = (
            select(*_REF_COLUMNS)
            .where(messages.c.state == S.SUBMITTED.value, messages.c.submitted_at < cutoff)
            .order_by(messages.c.id).limit(limit)
        )
        with self._read() as conn:
            return [_ref(r) for r in conn.execute(stmt)]

    def report(self, submission_date: dt.date, *, overdue_hours: float = 24, now: dt.datetime | None = None) -> Report:
        """Counts by state, channel and source system for one submission date."""
        on_date = messages.c.submission_date == submission_date
        cutoff = (now or _now()) - dt.timedelta(hours=overdue_hours)
        with self._read() as conn:
            by_state = dict.fromkeys((s.value for s in MessageState), 0)
            for state, n in conn.execute(
                    select(messages.c.state, func.count()).where(on_date).group_by(messages.c.state)):
                by_state[state] = n
            by_channel = {"digital": 0, "physical": 0, "none": 0}
            for channel, n in conn.execute(
                    select(messages.c.channel, func.count()).where(on_date).group_by(messages.c.channel)):
                by_channel[channel or "none"] = n
            by_source: dict[str, dict[str, int]] = {}
            for source, state, n in conn.execute(
                select(messages.c.source_system, messages.c.state, func.count())
                .where(on_date).group_by(messages.c.source_system, messages.c.state)
                .order_by(messages.c.source_system)
            ):
                by_source.setdefault(source, {})[state] = n
            found = [_conflict(r) for r in conn.execute(
                select(conflicts).where(conflicts.c.submission_date == submission_date).order_by(conflicts.c.id))]
            pending = conn.execute(
                select(func.count()).select_from(receipts).where(receipts.c.disposition.is_(None))).scalar_one()
            overdue = conn.execute(
                select(func.count()).select_from(messages).where(
                    on_date, messages.c.state == S.SUBMITTED.value, messages.c.submitted_at < cutoff)
            ).scalar_one()
            held = dict(conn.execute(
                select(messages.c.reason_code, func.count()).where(
                    on_date, messages.c.faults > 0, messages.c.state.notin_([s.value for s in SETTLED]))
                .group_by(messages.c.reason_code).order_by(messages.c.reason_code)).all())
        return Report(submission_date, sum(by_state.values()), by_state, by_channel, by_source, found, pending, overdue,
                      held)

    # -- the operator view (docpost.ui) ------------------------------------------------------------

    def counts(self, first_date: dt.date, last_date: dt.date) -> list[tuple[str, str | None, str, str | None, int]]:
        """Messages of the submission dates ``first_date`` .. ``last_date`` counted by
        ``(source system, document type, state, channel)``: what the operator view's night and
        per-department statistics are made of (one grouped query)."""
        key = (messages.c.source_system, messages.c.document_type, messages.c.state, messages.c.channel)
        with self._read() as conn:
            return [tuple(r) for r in conn.execute(
                select(*key, func.count())
                .where(messages.c.submission_date >= first_date, messages.c.submission_date <= last_date)
                .group_by(*key).order_by(*key))]

    def receipts_of(self, message_id: int) -> list[dict[str, Any]]:
        """The receipts recorded for a message, of every generation, oldest first: outcome,
        channel, status and error code, when, and what became of each (``disposition``)."""
        uuids = select(generations.c.message_uuid).where(generations.c.message_id == message_id).union(
            select(messages.c.message_uuid).where(messages.c.id == message_id))
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(receipts.c.message_uuid, receipts.c.outcome, receipts.c.channel, receipts.c.status_code,
                       receipts.c.error_code, receipts.c.at, receipts.c.received_at, receipts.c.disposition)
                .where(or_(receipts.c.message_id == message_id, receipts.c.message_uuid.in_(uuids)))
                .order_by(receipts.c.id))]

    # -- receipts -----------------------------------------------------------------------------

    @staticmethod
    def _receipt_key(r: Receipt, state: MessageState) -> str:
        parts = (r.message_uuid.strip().lower(), state.value, r.channel or "", r.status_code or "",
                 r.error_code or "", r.at.astimezone(dt.UTC).isoformat() if r.at else "")
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    def apply_receipts(self, items: Iterable[Receipt | tuple], actor: str = "receipts", *,
                       progress: Iterable[tuple[str, str, str | None, dt.datetime | None]] = ()) -> ReceiptResult:
        """Store delivery receipts and apply them; safe to call again with the same receipts.

        Returns counts for the receipts settled by this call (new ones and earlier pending ones);
        ``pending`` is the number of receipts in the ledger still waiting for their message.
        A receipt may carry the messageUUID of the message's current generation or of an earlier
        one (before a requeue); see :meth:`_settle_receipts` for what each does.

        ``progress``: intermediate receipts ``(messageUUID, status code, channel, time)``
        (``Modtaget``, a print stage ...), written in the same transaction as events on their
        message's history with its state kept; each once (given again, it adds nothing); one for
        no known message is skipped.
        """
        now = _now()
        rows: dict[str, dict[str, Any]] = {}
        given = 0
        for item in items:
            given += 1
            r = item if isinstance(item, Receipt) else Receipt(*item)
            state = MessageState(r.state)
            if state not in RECEIPT_OUTCOMES:
                raise InvalidField(f"a receipt cannot move a message to {state}")
            channel = channel_value(r.channel)
            key = self._receipt_key(Receipt(r.message_uuid, state, channel, r.status_code, r.error_code,
                                            r.error_text, r.at), state)
            rows.setdefault(key, {
                "receipt_key": key, "message_uuid": r.message_uuid.strip().lower(), "outcome": state.value,
                "channel": channel, "status_code": r.status_code, "error_code": r.error_code,
                "error_text": scrub(r.error_text), "at": r.at, "received_at": now,
            })
        with self._write() as conn:
            batch = list(rows.values())
            known = 0
            for chunk in _chunks(batch, self.chunk_size):
                keys = [r["receipt_key"] for r in chunk]
                known += conn.execute(
                    select(func.count()).select_from(receipts).where(receipts.c.receipt_key.in_(keys))).scalar_one()
                conn.execute(self._insert(receipts), list(chunk))
            inserted = len(batch) - known
            applied, duplicates, stale = self._settle_receipts(conn, now, actor)
            self._record_progress(conn, progress, actor, now)
            pending = conn.execute(
                select(func.count()).select_from(receipts).where(receipts.c.disposition.is_(None))).scalar_one()
        return ReceiptResult(applied, duplicates + (given - inserted), stale, pending)

    def _record_progress(self, conn: Connection, items: Iterable[tuple], actor: str, now: dt.datetime) -> None:
        """Intermediate receipts as events (state kept) on their messages, once each: see apply_receipts."""
        wanted: dict[tuple[str, str], None] = {}
        for message_uuid, status_code, channel, at in items:
            when = f", {at.astimezone(dt.UTC).isoformat()}" if at else ""
            wanted[(message_uuid.strip().lower(),
                    f"receipt: {status_code} (intermediate{', ' + channel if channel else ''}{when}); state kept")] = None
        uuids = sorted({u for u, _ in wanted})
        found: dict[str, tuple[int, str]] = {}
        for chunk in _chunks(uuids, self.chunk_size):
            for r in conn.execute(select(messages.c.message_uuid, messages.c.id, messages.c.state)
                                  .where(messages.c.message_uuid.in_(chunk))):
                found[r.message_uuid] = (r.id, r.state)
            for r in conn.execute(select(generations.c.message_uuid, messages.c.id, messages.c.state)
                                  .join(messages, messages.c.id == generations.c.message_id)
                                  .where(generations.c.message_uuid.in_(chunk))):
                found.setdefault(r.message_uuid, (r.id, r.state))
        rows = {(found[u][0], detail): found[u][1] for u, detail in wanted if u in found}
        ids = sorted({mid for mid, _ in rows})
        for chunk in _chunks(ids, self.chunk_size):
            for r in conn.execute(select(events.c.message_id, events.c.detail).where(
                    events.c.message_id.in_(chunk), events.c.detail.in_({d for _, d in rows}))):
                rows.pop((r.message_id, r.detail), None)
        if rows:
            conn.execute(insert(events), [{"message_id": mid, "from_state": state, "to_state": state, "at": now,
                                           "actor": actor, "detail": detail} for (mid, detail), state in rows.items()])

    def _settle_receipts(
        self, conn: Connection, now: dt.datetime, actor: str, message_ids: Sequence[int] | None = None
    ) -> tuple[int, int, int]:
        """Apply pending receipts whose message is known; returns (applied, duplicate, stale).

        A receipt is matched by the message's current messageUUID or, through
        ``ledger_generations``, an earlier generation's. What it does follows
        :data:`docpost.ledger.states.RECEIPT_MOVES` (:func:`~docpost.ledger.states.receipt_move`):
        besides the ordinary receipt (SUBMITTED / RETRYING), a DELIVERED receipt settles a FAILED
        message that may have reached SF1601, and an earlier generation's DELIVERED receipt
        settles a message whose resend has not left docpost (the letter did arrive). An earlier
        generation's receipt that moves nothing is recorded (``stale``) with an event saying so.
        """
        earlier = generations.alias("earlier")
        stmt = (
            select(receipts, messages.c.id.label("mid"), messages.c.state.label("mstate"),
                   messages.c.failed_from.label("mfailed_from"), messages.c.generation.label("mgen"),
                   messages.c.reason_code.label("mreason"), earlier.c.generation.label("rgen"))
            .select_from(
                receipts.outerjoin(earlier, earlier.c.message_uuid == receipts.c.message_uuid).join(
                    messages, or_(messages.c.message_uuid == receipts.c.message_uuid,
                                  messages.c.id == earlier.c.message_id)))
            .where(receipts.c.disposition.is_(None))
            .order_by(messages.c.id, receipts.c.id)  # lock in id order, like transitions
        )
        if self.dialect == "postgresql":
            stmt = stmt.with_for_update(of=messages)
        chunks = _chunks(list(message_ids), self.chunk_size) if message_ids is not None else [None]
        applied = duplicates = stale = 0
        for chunk in chunks:
            q = stmt if chunk is None else stmt.where(messages.c.id.in_(chunk))
            pending = conn.execute(q).all()
            if not pending:
                continue
            state_now = {r.mid: MessageState(r.mstate) for r in pending}
            failed_from = {r.mid: r.mfailed_from for r in pending}
            reason_now = {r.mid: r.mreason for r in pending}
            # a message may move twice in one batch (FAILED, then DELIVERED): its second move goes in
            # the next wave, so that the moves are written in the order the receipts came
            waves: list[dict[MessageState, list]] = []
            moves_of: dict[int, int] = defaultdict(int)
            recorded: list[dict[str, Any]] = []
            settled: list[dict[str, Any]] = []
            for r in pending:
                outcome, current = MessageState(r.outcome), state_now[r.mid]
                is_earlier = r.rgen is not None
                disposition, to = receipt_move(current, outcome, earlier=is_earlier, failed_from=failed_from[r.mid])
                said = " / ".join(p for p in (r.status_code, r.error_code, r.error_text) if p)
                whose = f"receipt for generation {r.rgen} (messageUUID {r.message_uuid})" if is_earlier else "receipt"
                if disposition == "applied":
                    values: dict[str, Any] = {"receipt_status": r.status_code}
                    channel = r.channel or _CHANNEL_OF.get(outcome)
                    if channel:
                        values["channel"] = channel
                    if outcome is S.FAILED:
                        values["reason_code"] = r.error_code or "receipt.delivery-failed"
                        values["reason_text"] = r.error_text
                    detail = f"{whose}: {said}" if said else whose
                    if current is S.FAILED:  # delivered after all: the receipt overrides the FAILED
                        values.update(reason_code=None, reason_text=None, failed_from=None)
                        detail += (f"; delivered after all: overrides FAILED ({reason_now[r.mid] or 'no reason'}, "
                                   f"failed from {failed_from[r.mid] or '?'})")
                    elif is_earlier:
                        detail += f"; the letter arrived: the resend (generation {r.mgen}) is not needed"
                    wave = moves_of[r.mid]
                    moves_of[r.mid] += 1
                    if len(waves) <= wave:
                        waves.append(defaultdict(list))
                    waves[wave][to].append((r.mid, current.value, detail, values, r.at))
                    if to is S.FAILED:
                        failed_from[r.mid], reason_now[r.mid] = current.value, values["reason_code"]
                    state_now[r.mid] = to
                elif disposition == "stale" and is_earlier:
                    recorded.append({
                        "message_id": r.mid, "from_state": current.value, "to_state": current.value,
                        "at": now, "actor": actor,
                        "detail": f"{whose}: {said or outcome.value}; recorded, state kept "
                                  f"(generation {r.mgen} is {current.value})",
                    })
                settled.append({"r_id": r.id, "r_mid": r.mid, "r_disp": disposition,
                                "r_at": now if disposition else None})
                applied += disposition == "applied"
                duplicates += disposition == "duplicate"
                stale += disposition == "stale"
            for wave in waves:
                for outcome, group in wave.items():
                    self._write_moves(conn, outcome, group, actor, now)
            if recorded:
                conn.execute(insert(events), recorded)
            by_disposition: dict[str | None, list[int]] = defaultdict(list)
            for item in settled:
                by_disposition[item["r_disp"]].append(item["r_id"])
            linked = func.coalesce(
                select(messages.c.id).where(messages.c.message_uuid == receipts.c.message_uuid).scalar_subquery(),
                select(generations.c.message_id).where(generations.c.message_uuid == receipts.c.message_uuid)
                .scalar_subquery(),
            )
            for disposition, rids in by_disposition.items():
                for part in _chunks(rids, self.chunk_size):
                    conn.execute(update(receipts).where(receipts.c.id.in_(part)).values(
                        message_id=linked, disposition=disposition, settled_at=now if disposition else None))
        return applied, duplicates, stale

    # -- operators ----------------------------------------------------------------------------

    def ids_for(self, message_uuids: Iterable[str]) -> list[int]:
        """Message ids for MeMo message UUIDs (of the current generation or an earlier one: see
        :meth:`requeue`); raises :class:`UnknownMessage` for any unknown one."""
        keys = [u.strip().lower() for u in message_uuids]
        found: dict[str, int] = {}
        with self._read() as conn:
            for chunk in _chunks(keys, self.chunk_size):
                found.update(conn.execute(
                    select(messages.c.message_uuid, messages.c.id).where(messages.c.message_uuid.in_(chunk))).all())
            for chunk in _chunks([k for k in keys if k not in found], self.chunk_size):
                found.update(conn.execute(
                    select(generations.c.message_uuid, generations.c.message_id)
                    .where(generations.c.message_uuid.in_(chunk))).all())
        missing = [k for k in keys if k not in found]
        if missing:
            raise UnknownMessage(f"no message {missing[0]} in the ledger")
        return [found[k] for k in keys]

    def cancel(self, message_ids: Iterable[int], actor: str, reason: str) -> TransitionResult:
        """Cancel messages not yet submitted (RECEIVED, VALIDATED, STAMPED, RENDERED).

        Refuses (:class:`ClaimedMessage`, nothing moves) while a worker holds an unexpired claim
        on one of them: a stage is working on it (it may be on its way to SF1601 this instant);
        try again when the stage is done with it."""
        try:
            return self.transition(message_ids, S.CANCELLED, actor, detail=reason, refuse_claimed=True,
                                   reason_code="cancelled", reason_text=reason)
        except IllegalTransition as exc:
            raise IllegalTransition(exc.from_state, exc.to_state, exc.message_uuid, exc.count,
                                    why="only a message not yet submitted can be cancelled") from None

    def requeue(self, message_ids: Iterable[int], actor: str, reason: str | None = None) -> TransitionResult:
        """Send FAILED messages back to where they can be resent from (see ``requeue_target``),
        as a new generation.

        Each requeued message starts generation n+1: a new SF1601 transaction id and MeMo
        messageUUID, derived from its identity and the generation (``identity.transaction_id``),
        so that SF1601 takes the resend as a new transaction instead of answering with the stored
        answer to the earlier one. The earlier ids, when and how that generation ended, are kept
        in ``ledger_generations`` (a lookup or a receipt by them still finds the message: see
        :meth:`get`, :meth:`apply_receipts`), and the event says so. The attempt count, failure
        reason and any claim are reset; the history keeps them.
        """
        ids = list(dict.fromkeys(message_ids))
        moved: list[int] = []
        why = scrub(reason) or "requeued"
        with self._write() as conn:
            now = _now()
            for chunk in _chunks(ids, self.chunk_size):
                current = self._lock(conn, chunk, messages.c.failed_from, messages.c.generation,
                                     messages.c.transaction_id, messages.c.source_system, messages.c.submission_id,
                                     messages.c.content_hash, messages.c.reason_code)
                wrong = [r for r in current.values() if r.state != S.FAILED.value]
                if wrong:
                    raise IllegalTransition(wrong[0].state, "requeue", wrong[0].message_uuid, len(wrong),
                                            why="only a FAILED message can be requeued")
                earlier, moves, changes = [], [], []
                for r in current.values():
                    target, following = requeue_target(r.failed_from), r.generation + 1
                    new_uuid = identity.message_uuid(r.source_system, r.submission_id, r.content_hash, following)
                    new_tid = identity.transaction_id(r.source_system, r.submission_id, r.content_hash, following)
                    earlier.append({
                        "message_id": r.id, "generation": r.generation, "message_uuid": r.message_uuid,
                        "transaction_id": r.transaction_id, "ended_at": now, "ended_state": r.state,
                        "failed_from": r.failed_from, "reason_code": r.reason_code, "ended_by": actor,
                    })
                    moves.append({
                        "message_id": r.id, "from_state": r.state, "to_state": target.value, "at": now,
                        "actor": actor,
                        "detail": f"{why}; generation {following}: transaction id {new_tid}, messageUUID "
                                  f"{new_uuid} (generation {r.generation}: transaction id {r.transaction_id}, "
                                  f"messageUUID {r.message_uuid})",
                    })
                    changes.append({"m_id": r.id, "v_state": target.value, "v_generation": following,
                                    "v_uuid": new_uuid, "v_tid": new_tid})
                if not changes:
                    continue
                conn.execute(insert(generations), earlier)
                conn.execute(insert(events), moves)
                conn.execute(
                    update(messages).where(messages.c.id == bindparam("m_id")).values(
                        state=bindparam("v_state"), generation=bindparam("v_generation"),
                        message_uuid=bindparam("v_uuid"), transaction_id=bindparam("v_tid"),
                        updated_at=now, state_changed_at=now, attempts=0, faults=0, failed_from=None,
                        reason_code=None, reason_text=None, receipt_status=None, submitted_at=None,
                        claimed_by=None, claim_token=None, claim_expires_at=None,
                    ),
                    changes,
                )
                moved.extend(c["m_id"] for c in changes)
        return TransitionResult(moved, [])

    # -- retention ----------------------------------------------------------------------------

    def purge(self, older_than_days: float, actor: str, *, now: dt.datetime | None = None) -> int:
        """Remove personal data of messages settled more than ``older_than_days`` ago.

        Clears the masked recipient, its keyed hash, the title, the reason text, the file listing and receipt error
        texts; keeps the state, identifiers and the whole event history (plus one event noting the
        purge). Settled: REJECTED, DELIVERED_*, CANCELLED, and FAILED. Returns the number purged.
        """
        now = now or _now()
        cutoff = now - dt.timedelta(days=older_than_days)
        due = and_(
            messages.c.state.in_([s.value for s in SETTLED]),
            messages.c.state_changed_at < cutoff,
            messages.c.purged_at.is_(None),
        )
        detail = f"personal data removed (retention {older_than_days:g} days)"
        with self._write() as conn:
            conn.execute(insert(events).from_select(
                ["message_id", "from_state", "to_state", "at", "actor", "detail"],
                select(messages.c.id, messages.c.state, messages.c.state, literal(now, UtcDateTime()),
                       literal(actor), literal(detail, Text())).where(due),
            ))
            purged = conn.execute(update(messages).where(due).values(
                recipient_masked=None, recipient_hash=None, title=None, reason_text=None, listing=None, purged_at=now,
                updated_at=now,
            )).rowcount
            conn.execute(
                update(receipts).where(
                    receipts.c.error_text.is_not(None),
                    receipts.c.message_id.in_(select(messages.c.id).where(messages.c.purged_at.is_not(None))),
                ).values(error_text=None)
            )
        return purged


@lru_cache(maxsize=4)
def ledger_at(url: str) -> Ledger:
    """This process's ledger for ``url``: one engine and connection pool per process and URL."""
    return Ledger(url)


def shared_ledger() -> Ledger:
    """This process's ledger of the current settings: ``DOCPOST_DB_URL``, else the
    ``docpost_ledger`` Airflow connection, else the default (see ``resolve_url``)."""
    return ledger_at(resolve_url())
