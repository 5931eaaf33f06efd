"""docpost_receipts: take PKO_PostStatus delivery receipts and settle the ledger.

Every 15 minutes: drain the Beskedfordeler's receipts queue over AMQP (``DOCPOST_AMQP_URL``;
batches of ``DOCPOST_AMQP_BATCH``, each acknowledged only after the ledger committed, at most
50 batches a run; an unreadable envelope goes to the quarantine queue and S3) or, with no broker
configured, page the simulator's receipt feed after the stored cursor; move messages to
DELIVERED_DIGITAL, DELIVERED_PHYSICAL or FAILED (duplicates are no-ops, receipts that arrive
before the send is recorded are kept until it is; intermediate and print-stage statuses are
recorded on the letter's history), then flag messages SUBMITTED for longer than the
reconciliation window without a receipt. A broker that cannot be reached fails the fetch task as
infrastructure trouble: it retries.

Why a schedule and not event-driven scheduling: Airflow 3's ``AssetWatcher`` with a
``MessageQueueTrigger`` needs apache-airflow-providers-common-messaging, which is not installed
here, and its queue providers (Amazon SQS, Apache Kafka, Redis pub/sub, Google Pub/Sub) include
no AMQP 0-9-1 / RabbitMQ one, nor any way to authenticate with the Beskedfordeler's SAML token.
Receipts are not urgent (a letter is settled within the quarter hour) and the queue keeps them
durably meanwhile, so a schedule loses nothing.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, task

from docpost.dag_defaults import START_DATE, default_args, fail_run_on_task_failure


@dag(
    dag_id="docpost_receipts",
    description="Drain SF1601 delivery receipts (Beskedfordeler AMQP) and settle the ledger",
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
