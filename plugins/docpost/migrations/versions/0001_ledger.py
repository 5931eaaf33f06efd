"""The message ledger: messages, events, conflicts, receipts.

Revision ID: 0001_ledger
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_ledger"
down_revision = None
branch_labels = None
depends_on = None

KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "ledger_messages",
        sa.Column("id", KEY, primary_key=True, autoincrement=True),
        sa.Column("message_uuid", sa.String(36), nullable=False),
        sa.Column("transaction_id", sa.String(36), nullable=False),
        sa.Column("source_system", sa.String(64), nullable=False),
        sa.Column("submission_id", sa.String(200), nullable=False),
        sa.Column("submission_date", sa.Date(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("s3_prefix", sa.String(1024), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("channel", sa.String(10)),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("recipient_id_type", sa.String(3)),
        sa.Column("recipient_masked", sa.String(16)),
        sa.Column("recipient_hash", sa.String(64)),
        sa.Column("title", sa.String(512)),
        sa.Column("document_type", sa.String(64)),
        sa.Column("case_number", sa.String(100)),
        sa.Column("case_uuid", sa.String(64)),
        sa.Column("document_number", sa.String(100)),
        sa.Column("document_uuid", sa.String(64)),
        sa.Column("reason_code", sa.String(64)),
        sa.Column("reason_text", sa.Text()),
        sa.Column("reply_type", sa.String(16)),
        sa.Column("reply_postkasse_id", sa.Integer()),
        sa.Column("reply_emne_id", sa.Integer()),
        sa.Column("reply_contact_point_id", sa.String(64)),
        sa.Column("pdf_sha256", sa.String(64)),
        sa.Column("receipt_status", sa.String(100)),
        sa.Column("failed_from", sa.String(20)),
        sa.Column("claimed_by", sa.String(200)),
        sa.Column("claim_token", sa.String(36)),
        _ts("claim_expires_at"),
        _ts("created_at", False),
        _ts("updated_at", False),
        _ts("state_changed_at", False),
        _ts("submitted_at"),
        _ts("purged_at"),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_messages"),
        sa.UniqueConstraint("message_uuid", name="uq_ledger_messages_message_uuid"),
        sa.UniqueConstraint("transaction_id", name="uq_ledger_messages_transaction_id"),
        sa.UniqueConstraint("source_system", "submission_id", name="uq_ledger_messages_submission"),
    )
    op.create_index("ix_ledger_messages_date_state", "ledger_messages", ["submission_date", "state"])
    op.create_index("ix_ledger_messages_state_changed", "ledger_messages", ["state", "state_changed_at"])
    op.create_index("ix_ledger_messages_submission_id", "ledger_messages", ["submission_id"])
    op.create_index("ix_ledger_messages_case_number", "ledger_messages", ["case_number"])
    op.create_index("ix_ledger_messages_recipient_hash", "ledger_messages", ["recipient_hash"])

    op.create_table(
        "ledger_events",
        sa.Column("id", KEY, primary_key=True, autoincrement=True),
        sa.Column("message_id", KEY, nullable=False),
        sa.Column("from_state", sa.String(20)),
        sa.Column("to_state", sa.String(20), nullable=False),
        _ts("at", False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("detail", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_events"),
        sa.ForeignKeyConstraint(
            ["message_id"], ["ledger_messages.id"], name="fk_ledger_events_message_id_ledger_messages"
        ),
    )
    op.create_index("ix_ledger_events_message", "ledger_events", ["message_id", "id"])

    op.create_table(
        "ledger_conflicts",
        sa.Column("id", KEY, primary_key=True, autoincrement=True),
        sa.Column("message_id", KEY, nullable=False),
        sa.Column("source_system", sa.String(64), nullable=False),
        sa.Column("submission_id", sa.String(200), nullable=False),
        sa.Column("submission_date", sa.Date(), nullable=False),
        sa.Column("existing_content_hash", sa.String(64), nullable=False),
        sa.Column("conflicting_content_hash", sa.String(64), nullable=False),
        sa.Column("s3_prefix", sa.String(1024), nullable=False),
        _ts("detected_at", False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_conflicts"),
        sa.ForeignKeyConstraint(
            ["message_id"], ["ledger_messages.id"], name="fk_ledger_conflicts_message_id_ledger_messages"
        ),
        sa.UniqueConstraint(
            "source_system", "submission_id", "conflicting_content_hash", name="uq_ledger_conflicts_identity"
        ),
    )
    op.create_index("ix_ledger_conflicts_date", "ledger_conflicts", ["submission_date"])

    op.create_table(
        "ledger_receipts",
        sa.Column("id", KEY, primary_key=True, autoincrement=True),
        sa.Column("receipt_key", sa.String(64), nullable=False),
        sa.Column("message_uuid", sa.String(36), nullable=False),
        sa.Column("message_id", KEY),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("channel", sa.String(10)),
        sa.Column("status_code", sa.String(100)),
        sa.Column("error_code", sa.String(64)),
        sa.Column("error_text", sa.Text()),
        _ts("at"),
        _ts("received_at", False),
        sa.Column("disposition", sa.String(12)),
        _ts("settled_at"),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_receipts"),
        sa.ForeignKeyConstraint(
            ["message_id"], ["ledger_messages.id"], name="fk_ledger_receipts_message_id_ledger_messages"
        ),
        sa.UniqueConstraint("receipt_key", name="uq_ledger_receipts_receipt_key"),
    )
    op.create_index("ix_ledger_receipts_message_uuid", "ledger_receipts", ["message_uuid"])
    op.create_index("ix_ledger_receipts_disposition", "ledger_receipts", ["disposition"])


def downgrade() -> None:
    op.drop_table("ledger_receipts")
    op.drop_table("ledger_conflicts")
    op.drop_table("ledger_events")
    op.drop_table("ledger_messages")
