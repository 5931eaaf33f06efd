"""docpost_replies: bring citizens' replies and new messages to the right functional mailbox.

Every 5 minutes (and when triggered): route what the PostModtag endpoint (SF1606, ``docpost
postmodtag serve``) stored (contactPointID -> Emne, the original letter, legacy numbers) and mail
the routed ones to their functional mailbox over SMTP. Unroutable ones wait in the
manual-distribution queue (``docpost replies manual``). One pass is bounded; what is left
is taken by the next run. A failed mail server fails the task, so Airflow retries it.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, task

from docpost.dag_defaults import START_DATE, default_args, fail_run_on_task_failure


@dag(
    dag_id="docpost_replies",
    description="Route inbound replies to functional mailboxes; unroutable ones to manual distribution",
    schedule=dt.timedelta(minutes=5),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["docpost"],
    default_args=default_args(retry_delay_seconds=30, max_retry_minutes=5),
    params={
        "batch_size": Param(50, type="integer", minimum=1, maximum=1000, description="Messages per batch"),
        "max_batches": Param(200, type="integer", minimum=1, description="Batches per run (batch_size x max_batches messages)"),
    },
    doc_md=__doc__,
)
def docpost_replies():
    @task
    def route_and_mail(**context) -> dict:
        from docpost.replies import process_inbound

        counts = process_inbound(f"dag:docpost_replies/{context['run_id']}",
                                 batch_size=context["params"]["batch_size"],
                                 max_batches=context["params"]["max_batches"])
        if counts.get("mail_failed"):
            raise RuntimeError(f"{counts['mail_failed']} mail(s) to functional mailboxes failed; "
                               "they are retried (counts: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) + ")")
        return counts

    route_and_mail()


docpost_replies_dag = docpost_replies()
fail_run_on_task_failure(docpost_replies_dag)
