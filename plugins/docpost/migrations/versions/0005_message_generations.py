"""Message generations: a requeue sends a message again as a new SF1601 transaction.

A requeued FAILED message starts generation n+1 (``ledger_messages.generation``) with a new
transaction id and messageUUID; the ids of the earlier generations, when and how each ended,
are kept in ``ledger_generations`` so that a lookup or a receipt by an earlier id still finds
the message. Existing messages are generation 0 (their ids are unchanged).

Revision ID: 0005_message_generations
Revises: 0004_message_faults
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_message_generations"
down_revision = "0004_message_faults"
branch_labels = None
depends_on = None

KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("ledger_messages") as batch:
        batch.add_column(sa.Column("generation", sa.Integer(), nullable=False, server_default="0"))

    op.create_table(
        "ledger_generations",
        sa.Column("id", KEY, primary_key=True, autoincrement=True),
        sa.Column("message_id", KEY, nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("message_uuid", sa.String(36), nullable=False),
        sa.Column("transaction_id", sa.String(36), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_state", sa.String(20), nullable=False),
        sa.Column("failed_from", sa.String(20)),
        sa.Column("reason_code", sa.String(64)),
        sa.Column("ended_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_generations"),
        sa.ForeignKeyConstraint(
            ["message_id"], ["ledger_messages.id"], name="fk_ledger_generations_message_id_ledger_messages"
        ),
        sa.UniqueConstraint("message_uuid", name="uq_ledger_generations_message_uuid"),
        sa.UniqueConstraint("transaction_id", name="uq_ledger_generations_transaction_id"),
        sa.UniqueConstraint("message_id", "generation", name="uq_ledger_generations_message_generation"),
    )


def downgrade() -> None:
    op.drop_table("ledger_generations")
    with op.batch_alter_table("ledger_messages") as batch:
        batch.drop_column("generation")
