"""PostgreSQL for the tests that need an empty ledger on the session's scratch database."""

from __future__ import annotations


def fresh_schema(url: str) -> str:
    """Drop and recreate the ``public`` schema at ``url`` (every table gone) and forget the ledger
    cached for it, so that the next ledger migrates anew; returns ``url``."""
    from sqlalchemy import create_engine, text

    from docpost.ledger import ledger_at

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    ledger_at.cache_clear()
    return url
