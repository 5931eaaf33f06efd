"""The one seam to Airflow: the ledger URL from the ``docpost_ledger`` Airflow connection.

Imported only when asked (``Ledger.from_settings(airflow=True)``) or when the environment
defines ``AIRFLOW_CONN_DOCPOST_LEDGER``; the rest of the ledger never imports Airflow.
"""

from __future__ import annotations

CONN_ID = "docpost_ledger"
ENV_VAR = "AIRFLOW_CONN_DOCPOST_LEDGER"


def ledger_url(conn_id: str = CONN_ID) -> str | None:
    """The SQLAlchemy URL of the ledger connection, or None if Airflow has no such connection."""
    from sqlalchemy.engine import URL

    try:
        from airflow.sdk import Connection
    except ImportError:  # pragma: no cover - Airflow 2 layout
        from airflow.models import Connection  # type: ignore[no-redef]

    try:
        conn = Connection.get(conn_id) if hasattr(Connection, "get") else Connection.get_connection_from_secrets(conn_id)
    except Exception:  # noqa: BLE001 - Airflow raises its own "not found" types
        return None
    kind = (conn.conn_type or "").lower()
    if kind in ("postgres", "postgresql"):
        return URL.create(
            "postgresql+psycopg", username=conn.login or None, password=conn.password or None,
            host=conn.host or None, port=conn.port or None, database=conn.schema or None,
        ).render_as_string(hide_password=False)
    if kind == "sqlite":
        return f"sqlite:///{conn.host}"
    return conn.get_uri()
