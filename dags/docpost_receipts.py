"""docpost_receipts: fetch PKO_PostStatus delivery receipts and settle the ledger.

Every 15 minutes: fetch receipts from SF1601 (or the simulator) after the stored cursor, move
messages to DELIVERED_DIGITAL, DELIVERED_PHYSICAL or FAILED (duplicates are no-ops, receipts that
arrive before the send is recorded are kept until it is), then flag messages SUBMITTED for longer
than the reconciliation window without a receipt.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, task

from docpost.dag_defaults import START_DATE, default_args, fail_run_on_task_failure


@dag(
    dag_id="docpost_receipts",
    description="Fetch SF1601 delivery receipts and settle the ledger",
    schedule=dt.timedelta(minutes=15),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["docpost"],
    default_args=default_args(retry_delay_seconds=20, max_retry_minutes=10),
    params={
        "overdue_hours": Param(24, type="integer", minimum=1, description="Flag SUBMITTED without receipt after"),
    },
    doc_md=__doc__,
)
def docpost_receipts():
    @task
    def fetch(**context) -> dict:
        from docpost import pipeline

        return pipeline.fetch_receipts(actor=f"dag:docpost_receipts/{context['run_id']}")

    @task
    def reconcile(fetched: dict, **context) -> dict:
        from docpost import pipeline

        return pipeline.reconcile(overdue_hours=context["params"]["overdue_hours"])

    reconcile(fetch())


docpost_receipts_dag = docpost_receipts()
fail_run_on_task_failure(docpost_receipts_dag)
