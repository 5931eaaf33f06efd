"""docpost_now: the letters waiting, now, through the nightly's stages (send now).

Started by the ``docpost_send_now`` asset event that the submit API (``docpost sendnow serve``)
raises after it registered a letter, and triggerable by hand. One run at a time: events raised
while a run works start a single next run, so a burst of submissions is a handful of runs, each
splitting every outstanding letter into chunks (``chunk_size``; ``DOCPOST_SENDNOW_CHUNK_SIZE``)
and running prepare -> deliver per chunk (delivery in the SF1601 pool), exactly as the nightly
does. A run first lets a burst end (``DOCPOST_SENDNOW_SETTLE_SECONDS`` without a new letter, at
most ``DOCPOST_SENDNOW_SETTLE_MAX_SECONDS``), so that the submit API keeps the CPU while letters
arrive and the run takes them all at once. Claims fence the letters, so this DAG and a nightly run never work on the same
letter at once. XCom carries chunk descriptors and counts only.
"""

from __future__ import annotations

from airflow.sdk import Asset, Param, dag, task, task_group

from docpost.dag_defaults import START_DATE, default_args, fail_run_on_task_failure
from docpost.sendnow import ASSET_NAME, DAG_ID

DELIVERY_POOL = "docpost_sf1601"


def _actor(context) -> str:
    return f"dag:{context['dag'].dag_id}/{context['run_id']}"


@dag(
    dag_id=DAG_ID,
    description="Send now: validate, stamp, render and deliver the letters waiting, when the submit API says so",
    schedule=[Asset(name=ASSET_NAME)],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["docpost"],
    default_args=default_args(retry_delay_seconds=10, max_retry_minutes=5),
    params={
        "chunk_size": Param(None, type=["null", "integer"], minimum=1, maximum=5000,
                            description="Letters per chunk (empty: DOCPOST_SENDNOW_CHUNK_SIZE)"),
    },
    doc_md=__doc__,
)
def docpost_now():
    @task
    def plan(**context) -> list[dict]:
        from docpost.sendnow.settle import settled_chunks

        return settled_chunks(context["params"]["chunk_size"])

    # -- the chunk's stages, as the nightly's: prepare (read once: validate, stamp, render, build
    # the delivery request), then deliver in the delivery pool
    @task
    def prepare(chunk: dict, **context) -> dict:
        from docpost import pipeline

        return pipeline.prepare_chunk(chunk, actor=_actor(context))

    @task(pool=DELIVERY_POOL)
    def deliver(chunk: dict, **context) -> dict:
        from docpost import pipeline

        return pipeline.deliver_chunk(chunk, actor=_actor(context))

    @task_group
    def process(chunk: dict):
        return deliver(prepare(chunk))

    process.expand(chunk=plan())


docpost_now_dag = docpost_now()
fail_run_on_task_failure(docpost_now_dag)
