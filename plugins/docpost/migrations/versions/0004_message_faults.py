"""How often working on a message failed unexpectedly (a bug, a library's exception).

A stage that fails on one letter for a reason docpost did not foresee keeps the letter in its
state and counts the fault here; after ``settings().max_faults`` the letter is FAILED as
quarantined instead of being tried again every night.

Revision ID: 0004_message_faults
Revises: 0003_message_listing
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_message_faults"
down_revision = "0003_message_listing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_messages") as batch:
        batch.add_column(sa.Column("faults", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("ledger_messages") as batch:
        batch.drop_column("faults")
