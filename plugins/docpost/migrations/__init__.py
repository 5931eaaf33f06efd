"""Alembic migrations of the ledger, run programmatically (no alembic.ini needed).

``docpost db upgrade`` and :meth:`docpost.ledger.Ledger.upgrade` call :func:`upgrade`. The
version table is ``ledger_alembic_version`` so the ledger can share a database with Airflow's
own metadata (which uses ``alembic_version``).
"""

from __future__ import annotations

from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parent
VERSION_TABLE = "ledger_alembic_version"


def alembic_config(connection=None):
    """An Alembic ``Config`` for these migrations, optionally bound to an open connection."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(MIGRATIONS_DIR / "versions"))
    cfg.attributes["connection"] = connection
    return cfg


def _run(engine, action: str, revision: str) -> None:
    from alembic import command

    from docpost.ledger.engine import WRITE

    with engine.connect().execution_options(**{WRITE: True}) as conn:
        with conn.begin():
            getattr(command, action)(alembic_config(conn), revision)


def upgrade(engine, revision: str = "head") -> None:
    """Migrate the ledger schema up to ``revision``."""
    _run(engine, "upgrade", revision)


def downgrade(engine, revision: str) -> None:
    """Migrate the ledger schema down to ``revision`` (``base`` drops every ledger table)."""
    _run(engine, "downgrade", revision)


def current_revision(engine) -> str | None:
    """The revision the ledger database is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def head_revision() -> str:
    """The newest revision these migrations define."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
