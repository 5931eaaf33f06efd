"""Alembic environment of the ledger: uses the connection handed over by docpost.migrations."""

from __future__ import annotations

from alembic import context

import docpost.replies.schema  # noqa: F401 - adds the reply tables to the ledger's MetaData
from docpost.ledger.schema import metadata
from docpost.migrations import VERSION_TABLE


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    if context.is_offline_mode():
        from docpost.ledger.engine import normalise_url, resolve_url

        context.configure(
            url=normalise_url(resolve_url()), target_metadata=metadata, version_table=VERSION_TABLE,
            literal_binds=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    from docpost.ledger.engine import create_ledger_engine, resolve_url

    engine = create_ledger_engine(resolve_url())
    with engine.connect() as conn:
        _configure(conn)
    engine.dispose()


run()
