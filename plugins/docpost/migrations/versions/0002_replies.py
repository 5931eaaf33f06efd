"""Reply routing: inbound messages, routing decisions, mails to functional mailboxes.

Revision ID: 0002_replies
Revises: 0001_ledger
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_replies"
down_revision = "0001_ledger"
branch_labels = None
depends_on = None

KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "reply_inbound",
        sa.Column("id", KEY, primary_key=True, autoincrement=True),
        sa.Column("inbound_id", sa.String(100), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("kind", sa.String(10)),
        sa.Column("message_uuid", sa.String(36)),
        sa.Column("sender_id_type", sa.String(3)),
        sa.Column("sender_masked", sa.String(16)),
        sa.Column("sender_hash", sa.String(64)),
        sa.Column("label", sa.String(512)),
        sa.Column("contact_point_id", sa.String(256)),
        sa.Column("reply_to_uuid", sa.String(36)),
        sa.Column("original_message_uuid", sa.String(36)),
        sa.Column("original_case_number", sa.String(100)),
        sa.Column("emne_id", sa.Integer()),
        sa.Column("mailbox", sa.String(512)),
        sa.Column("rule", sa.String(32)),
        sa.Column("reason_code", sa.String(64)),
        sa.Column("reason_text", sa.Text()),
        sa.Column("payload", sa.LargeBinary()),
        sa.Column("payload_sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("assigned_by", sa.String(200)),
        _ts("received_at", False),
        _ts("updated_at", False),
        sa.UniqueConstraint("inbound_id", name="uq_reply_inbound_inbound_id"),
    )
    op.create_index("ix_reply_inbound_state", "reply_inbound", ["state", "id"])
    op.create_index("ix_reply_inbound_original", "reply_inbound", ["original_message_uuid"])
    op.create_table(
        "reply_decisions",
        sa.Column("id", KEY, primary_key=True, autoincrement=True),
        sa.Column("inbound_row_id", KEY, sa.ForeignKey("reply_inbound.id",
                  name="fk_reply_decisions_inbound_row_id_reply_inbound"), nullable=False),
        _ts("at", False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason_code", sa.String(64)),
        sa.Column("emne_id", sa.Integer()),
        sa.Column("mailbox", sa.String(512)),
        sa.Column("detail", sa.Text()),
    )
    op.create_index("ix_reply_decisions_inbound", "reply_decisions", ["inbound_row_id", "id"])
    op.create_table(
        "reply_mails",
        sa.Column("id", KEY, primary_key=True, autoincrement=True),
        sa.Column("inbound_row_id", KEY, sa.ForeignKey("reply_inbound.id",
                  name="fk_reply_mails_inbound_row_id_reply_inbound"), nullable=False),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("mailbox", sa.String(512), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        _ts("claimed_until"),
        sa.Column("error_code", sa.String(64)),
        _ts("created_at", False),
        _ts("updated_at", False),
        _ts("sent_at"),
        sa.UniqueConstraint("inbound_row_id", name="uq_reply_mails_inbound_row_id"),
        sa.UniqueConstraint("message_id", name="uq_reply_mails_message_id"),
    )


def downgrade() -> None:
    op.drop_table("reply_mails")
    op.drop_table("reply_decisions")
    op.drop_index("ix_reply_inbound_original", table_name="reply_inbound")
    op.drop_index("ix_reply_inbound_state", table_name="reply_inbound")
    op.drop_table("reply_inbound")
