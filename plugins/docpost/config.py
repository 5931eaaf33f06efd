"""The public entry to docpost's settings (kept for its many callers).

Everything lives in :mod:`docpost.settings`, the one module that reads the environment: the
``DOCPOST_*`` variables as typed fields (pydantic-settings), the Airflow connections that supply
credentials under Airflow (``docpost_s3``, ``docpost_ledger``, ``docpost_sf1601``,
``smtp_default``) and :func:`under_airflow`. ``settings()`` reads the environment anew each call.
"""

from __future__ import annotations

from docpost.settings import PROJECT_ROOT, WINDOW_POLICIES, Settings, settings, under_airflow

__all__ = ["PROJECT_ROOT", "WINDOW_POLICIES", "Settings", "settings", "under_airflow"]
