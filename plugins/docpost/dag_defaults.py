"""What every docpost DAG shares: its timezone, start, retry policy and honest run state (light:
no heavy imports)."""

from __future__ import annotations

import datetime as dt

import pendulum

TIMEZONE = "Europe/Copenhagen"
START_DATE = pendulum.datetime(2026, 1, 1, tz=TIMEZONE)
WATCHER = "watcher"
WATCHER_FAILURE = "a task of this run failed after its retries: the run is failed"


def night_of(night: str | None, start: dt.datetime | None) -> dt.date | None:
    """The night a ``docpost_nightly`` run handles: its ``night`` param, else its data interval's
    start (or logical date) as a date in Copenhagen; None for a run with neither."""
    if night:
        return dt.date.fromisoformat(str(night))
    return pendulum.instance(start).in_timezone(TIMEZONE).date() if start else None


def run_night(context) -> str:
    """The night of the running task's DAG run (ISO date), by :func:`night_of`. A run triggered
    without a logical date has no ``data_interval_start`` or ``logical_date`` in its context at
    all: it must name its night."""
    params = context.get("params") or {}
    start = context.get("data_interval_start") or context.get("logical_date")
    night = night_of(params.get("night"), start)
    if night is None:
        raise ValueError("this run has no logical date: trigger it with the 'night' param (YYYY-MM-DD)")
    return night.isoformat()


def task_retries() -> int:
    """Retries per task: ``DOCPOST_TASK_RETRIES`` (default 3; the failure tests set 0)."""
    from docpost.settings import settings

    return settings().task_retries


def default_args(retry_delay_seconds: int = 20, max_retry_minutes: int = 15) -> dict:
    """Retries with exponential backoff, as every docpost task is an idempotent transaction."""
    return {
        "owner": "docpost",
        "retries": task_retries(),
        "retry_delay": dt.timedelta(seconds=retry_delay_seconds),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": dt.timedelta(minutes=max_retry_minutes),
    }


def fail_run_on_task_failure(dag) -> None:
    """Add a ``watcher`` downstream of every task of ``dag`` that fails when one of them failed.

    Airflow derives a run's state from its leaf tasks only, and a leaf with trigger rule
    ``all_done`` (the nightly summary) succeeds after its upstream failed. The watcher runs
    once any task is ``failed`` or ``upstream_failed`` (after its retries) and fails itself, so
    the run ends failed once every other task is done; otherwise it is skipped.
    """
    from airflow.sdk import TriggerRule, task
    from airflow.sdk.exceptions import AirflowFailException

    @task(task_id=WATCHER, trigger_rule=TriggerRule.ONE_FAILED, retries=0)
    def watcher():
        raise AirflowFailException(WATCHER_FAILURE)

    tasks = list(dag.tasks)
    with dag:
        watcher().operator.set_upstream(tasks)
