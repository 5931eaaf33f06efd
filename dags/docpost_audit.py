"""docpost_audit: no letter left behind. Weekly, the whole inbox against the ledger.

Thin by design: one call into ``docpost.pipeline.audit``. It lists every READY folder in the
inbox whatever its date (listing only), and finds the ones the ledger does not know that no
nightly run will collect any more (dated before the sweep window, ``DOCPOST_COLLECT_LOOKBACK_DAYS``:
a ``_READY`` written late), READY folders with a broken path never reported, and letters still
workable longer than ``DOCPOST_STALE_AFTER_HOURS``. The report goes to
``reports/audit/<date>/audit.{json,txt}``. When anything is found the run FAILS (red for an
operator, Airflow's failure alerts fire) after the report is written; it stays red every week
until the cause is handled (collect a missed folder by triggering ``docpost_nightly`` with
``night`` = its date; look into each stale letter with ``docpost status``).
"""

from __future__ import annotations

from airflow.sdk import dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from docpost.dag_defaults import START_DATE, TIMEZONE, default_args, fail_run_on_task_failure


@dag(
    dag_id="docpost_audit",
    description="Weekly: READY folders the ledger does not know, and stale letters; fails when any",
    schedule=CronDataIntervalTimetable("0 6 * * 1", timezone=TIMEZONE),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["docpost"],
    default_args=default_args(retry_delay_seconds=60, max_retry_minutes=30),
    doc_md=__doc__,
)
def docpost_audit():
    @task
    def audit(**context) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from docpost import pipeline

        found = pipeline.audit(actor=f"dag:docpost_audit/{context['run_id']}")
        if found["alert"]:  # the report is written: fail the run, without retries
            raise AirflowFailException(
                f"audit ALERT: {found['missed']} READY folder(s) never collected, {found['refused_missed']} "
                f"refused folder(s) never reported, {found['stale']} stale letter(s); see {found['report']}"
            )
        return found

    audit()


docpost_audit_dag = docpost_audit()
fail_run_on_task_failure(docpost_audit_dag)
