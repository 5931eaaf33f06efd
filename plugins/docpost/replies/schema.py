"""The reply-routing tables (in the ledger database; created by migration ``0002_replies``).

- ``reply_inbound``: one row per inbound message (the service's id is unique). The sender is
  stored masked and keyed-hashed; the MeMo itself only encrypted (``payload``, Fernet with a key
  derived from ``DOCPOST_PSEUDONYM_KEY``), and not at all when it was hostile.
- ``reply_decisions``: append-only, every routing decision with its rule, time and actor.
- ``reply_mails``: one row per mail to a functional mailbox (unique per inbound message), with
  its deterministic Message-ID; ``sending`` is recorded before the SMTP send, ``sent`` after.

The tables join the ledger's MetaData (they live in its database and its migrations); the
migration environment imports this module so the schema comparison sees them.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, LargeBinary, String, Table, Text

from docpost.ledger.schema import Key, UtcDateTime, metadata  # one database, one MetaData

inbound = Table(
    "reply_inbound",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column("inbound_id", String(100), nullable=False, unique=True),
    Column("state", String(12), nullable=False),  # RECEIVED | ROUTED | MANUAL | MAILED
    Column("kind", String(10)),  # reply | message | unreadable
    Column("message_uuid", String(36)),
    Column("sender_id_type", String(3)),
    Column("sender_masked", String(16)),
    Column("sender_hash", String(64)),
    Column("label", String(512)),
    Column("contact_point_id", String(256)),
    Column("reply_to_uuid", String(36)),
    Column("original_message_uuid", String(36)),  # thread link (found in the ledger)
    Column("original_case_number", String(100)),
    Column("emne_id", Integer),
    Column("mailbox", String(512)),
    Column("rule", String(32)),
    Column("reason_code", String(64)),
    Column("reason_text", Text),
    Column("payload", LargeBinary),
    Column("payload_sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("assigned_by", String(200)),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_reply_inbound_state", "state", "id"),
    Index("ix_reply_inbound_original", "original_message_uuid"),
)

decisions = Table(
    "reply_decisions",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column("inbound_row_id", Key, ForeignKey("reply_inbound.id"), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("rule", String(32), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("reason_code", String(64)),
    Column("emne_id", Integer),
    Column("mailbox", String(512)),
    Column("detail", Text),
    Index("ix_reply_decisions_inbound", "inbound_row_id", "id"),
)

mails = Table(
    "reply_mails",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column("inbound_row_id", Key, ForeignKey("reply_inbound.id"), nullable=False, unique=True),
    Column("message_id", String(200), nullable=False, unique=True),
    Column("mailbox", String(512), nullable=False),
    Column("address", String(320), nullable=False),
    Column("state", String(8), nullable=False),  # sending | sent
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("claimed_until", UtcDateTime()),
    Column("error_code", String(64)),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime()),
)

ALL_TABLES = (inbound, decisions, mails)
