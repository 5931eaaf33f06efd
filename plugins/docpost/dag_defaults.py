"""What every docpost DAG shares: its timezone, start, and retry policy (light: no heavy imports)."""

from __future__ import annotations

import datetime as dt

import pendulum

TIMEZONE = "Europe/Copenhagen"
START_DATE = pendulum.datetime(2026, 1, 1, tz=TIMEZONE)


def default_args(retry_delay_seconds: int = 20, max_retry_minutes: int = 15) -> dict:
    """Retries with exponential backoff, as every docpost task is an idempotent transaction."""
    return {
        "owner": "docpost",
        "retries": 3,
        "retry_delay": dt.timedelta(seconds=retry_delay_seconds),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": dt.timedelta(minutes=max_retry_minutes),
    }
