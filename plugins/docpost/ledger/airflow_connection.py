"""The one seam to Airflow for the ledger: its URL from the ``docpost_ledger`` Airflow connection.

Imported only when asked (``Ledger.from_settings(airflow=True)``) or when
:func:`docpost.settings.under_airflow` holds for the connection; the rest of the ledger never
imports Airflow. The lookup is Airflow's own (:func:`docpost.settings.airflow_connection`).
"""

from __future__ import annotations

from docpost.settings import LEDGER_CONN_ID as CONN_ID

ENV_VAR = f"AIRFLOW_CONN_{CONN_ID.upper()}"


def ledger_url(conn_id: str = CONN_ID) -> str | None:
    """The SQLAlchemy URL of the ledger connection, or None if Airflow has no such connection."""
    from sqlalchemy.engine import URL

    from docpost.settings import airflow_connection

    conn = airflow_connection(conn_id)
    if conn is None:
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
