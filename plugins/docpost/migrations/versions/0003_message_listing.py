"""The file listing (names, sizes, ETags) each message was registered with.

Later stages read exactly those versions of the files (``If-Match``) and need no listing of
their own.

Revision ID: 0003_message_listing
Revises: 0002_replies
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_message_listing"
down_revision = "0002_replies"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_messages") as batch:
        batch.add_column(sa.Column("listing", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("ledger_messages") as batch:
        batch.drop_column("listing")
