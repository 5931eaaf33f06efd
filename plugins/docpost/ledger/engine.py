"""Ledger URL resolution and engine creation (SQLite with WAL and busy timeout; psycopg 3)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from docpost.ledger.errors import LedgerConfigError

#: SQLite waits this long for another writer before giving up (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Execution option that makes a SQLite transaction take the write lock up front.
WRITE = "docpost_write"


def normalise_url(url: str | URL) -> URL:
    """Parse a ledger URL; ``postgres://`` and ``postgresql://`` use psycopg (v3)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise LedgerConfigError(f"not a database URL: {exc}") from None
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise LedgerConfigError(f"unsupported ledger database {parsed.get_backend_name()!r}: use sqlite or postgresql")
    return parsed


def resolve_url(airflow: bool | None = None) -> str:
    """The ledger URL: ``DOCPOST_DB_URL`` if set, else under Airflow its connection, else the default.

    Under Airflow (``airflow`` True, or None and :func:`docpost.settings.under_airflow` holds)
    the connection ``docpost_ledger`` is looked up through Airflow's own lookup (environment,
    metadata database, secrets backend), and a missing one fails closed: a worker never falls
    back to a SQLite file of its own. Outside Airflow the default is the SQLite ledger in
    ``DOCPOST_HOME``. Airflow is imported only for the lookup.
    """
    from docpost.config import settings, under_airflow
    from docpost.ledger import airflow_connection

    s = settings()
    if s.db_url_configured:
        return s.db_url
    if airflow or (airflow is None and under_airflow(airflow_connection.CONN_ID)):
        url = airflow_connection.ledger_url()
        if not url:
            raise LedgerConfigError(
                f"under Airflow the ledger needs the Airflow connection {airflow_connection.CONN_ID} "
                "(or DOCPOST_DB_URL), and neither was found")
        return url
    return s.db_url


def create_ledger_engine(url: str | URL) -> Engine:
    """An engine for the ledger. On SQLite: WAL, busy timeout, foreign keys, explicit BEGINs.

    Bound parameters are hidden from SQLAlchemy's error messages and logs.
    """
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True, hide_parameters=True)
    database = parsed.database
    in_memory = database in (None, "", ":memory:")
    kwargs: dict = {
        "connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        "hide_parameters": True,  # bound values (titles, masked ids) stay out of error messages
    }
    if in_memory:
        kwargs["poolclass"] = StaticPool
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no branch
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        if not in_memory:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # A writer takes the lock at BEGIN, so its reads and writes form one atomic step;
        # readers use a deferred BEGIN and never block writers (WAL).
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")

    return engine
