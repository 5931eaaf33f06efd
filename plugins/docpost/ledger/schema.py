"""The ledger's tables (SQLAlchemy Core). Alembic migrations in ``docpost/migrations`` create them.

- ``ledger_messages``: one row per message (identity, state, channel, masked recipient, ...).
- ``ledger_events``: append-only history, one row per transition (written with the transition).
- ``ledger_conflicts``: the same submission id seen with different content (never sent twice).
- ``ledger_receipts``: PKO_PostStatus receipts as received; ``disposition`` says what became of
  them (NULL = pending: the message is unknown or not yet submitted).
- ``ledger_generations``: the earlier generations of requeued messages (a requeue starts a new
  generation with a new transaction id and messageUUID; ``ledger_messages`` holds the current
  one): their ids, so that lookups and receipts by an earlier id still find the message, and
  when and how each ended. No personal data (ids, states, a reason code, the operator).

Personal data columns (purged by retention): ``recipient_masked``, ``recipient_hash``, ``title``,
``reason_text``; ``ledger_receipts.error_text``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

#: An auto-incrementing 64-bit key (INTEGER PRIMARY KEY on SQLite, which has no BIGSERIAL).
Key = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator):
    """A UTC instant: stored naive-UTC on SQLite, ``timestamptz`` on PostgreSQL; read back aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger; use timezone-aware UTC")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


messages = Table(
    "ledger_messages",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column("message_uuid", String(36), nullable=False, unique=True),
    Column("transaction_id", String(36), nullable=False, unique=True),
    Column("source_system", String(64), nullable=False),
    Column("submission_id", String(200), nullable=False),
    Column("submission_date", Date, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("s3_prefix", String(1024), nullable=False),
    Column("state", String(20), nullable=False),
    Column("channel", String(10)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("recipient_id_type", String(3)),
    Column("recipient_masked", String(16)),
    Column("recipient_hash", String(64)),
    Column("title", String(512)),
    Column("document_type", String(64)),
    Column("case_number", String(100)),
    Column("case_uuid", String(64)),
    Column("document_number", String(100)),
    Column("document_uuid", String(64)),
    Column("reason_code", String(64)),
    Column("reason_text", Text),
    Column("reply_type", String(16)),
    Column("reply_postkasse_id", Integer),
    Column("reply_emne_id", Integer),
    Column("reply_contact_point_id", String(64)),
    Column("pdf_sha256", String(64)),
    Column("receipt_status", String(100)),
    Column("failed_from", String(20)),
    Column("claimed_by", String(200)),
    Column("claim_token", String(36)),
    Column("claim_expires_at", UtcDateTime()),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("state_changed_at", UtcDateTime(), nullable=False),
    Column("submitted_at", UtcDateTime()),
    Column("purged_at", UtcDateTime()),
    Column("listing", Text),  # JSON {file name: [size, ETag]} as registered; read back pinned
    Column("faults", Integer, nullable=False, server_default="0"),  # unexpected failures (see hold)
    Column("generation", Integer, nullable=False, server_default="0"),  # requeues so far (see generations)
    UniqueConstraint("source_system", "submission_id", name="uq_ledger_messages_submission"),
    Index("ix_ledger_messages_date_state", "submission_date", "state"),
    Index("ix_ledger_messages_state_changed", "state", "state_changed_at"),
    Index("ix_ledger_messages_submission_id", "submission_id"),
    Index("ix_ledger_messages_case_number", "case_number"),
    Index("ix_ledger_messages_recipient_hash", "recipient_hash"),
)

events = Table(
    "ledger_events",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column("message_id", Key, ForeignKey("ledger_messages.id"), nullable=False),
    Column("from_state", String(20)),
    Column("to_state", String(20), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("detail", Text),
    Index("ix_ledger_events_message", "message_id", "id"),
)

conflicts = Table(
    "ledger_conflicts",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column("message_id", Key, ForeignKey("ledger_messages.id"), nullable=False),
    Column("source_system", String(64), nullable=False),
    Column("submission_id", String(200), nullable=False),
    Column("submission_date", Date, nullable=False),
    Column("existing_content_hash", String(64), nullable=False),
    Column("conflicting_content_hash", String(64), nullable=False),
    Column("s3_prefix", String(1024), nullable=False),
    Column("detected_at", UtcDateTime(), nullable=False),
    Column("actor", String(200), nullable=False),
    UniqueConstraint(
        "source_system", "submission_id", "conflicting_content_hash", name="uq_ledger_conflicts_identity"
    ),
    Index("ix_ledger_conflicts_date", "submission_date"),
)

receipts = Table(
    "ledger_receipts",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column("receipt_key", String(64), nullable=False, unique=True),
    Column("message_uuid", String(36), nullable=False),
    Column("message_id", Key, ForeignKey("ledger_messages.id")),
    Column("outcome", String(20), nullable=False),
    Column("channel", String(10)),
    Column("status_code", String(100)),
    Column("error_code", String(64)),
    Column("error_text", Text),
    Column("at", UtcDateTime()),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("disposition", String(12)),  # applied | duplicate | stale | NULL (pending)
    Column("settled_at", UtcDateTime()),
    Index("ix_ledger_receipts_message_uuid", "message_uuid"),
    Index("ix_ledger_receipts_disposition", "disposition"),
)

generations = Table(
    "ledger_generations",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column("message_id", Key, ForeignKey("ledger_messages.id"), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("message_uuid", String(36), nullable=False, unique=True),
    Column("transaction_id", String(36), nullable=False, unique=True),
    Column("ended_at", UtcDateTime(), nullable=False),
    Column("ended_state", String(20), nullable=False),  # FAILED (a requeue ends a generation)
    Column("failed_from", String(20)),
    Column("reason_code", String(64)),  # the code only: the reason text stays in the events
    Column("ended_by", String(200), nullable=False),  # who requeued
    UniqueConstraint("message_id", "generation", name="uq_ledger_generations_message_generation"),
)

ALL_TABLES = (messages, events, conflicts, receipts, generations)
