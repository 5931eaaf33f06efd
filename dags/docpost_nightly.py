"""docpost_nightly: collect the night's letters from S3 and carry them to Digital Post or print.

Thin by design: every task is one call into ``docpost.pipeline``; XCom carries chunk ids and
counts only. A run for night D (the data interval's start, Europe/Copenhagen) collects READY
submissions under ``inbox/*/D/*`` (and sweeps up late drops of the days before), splits the
outstanding messages into chunks and runs prepare -> deliver per chunk: prepare reads each
letter's files once and validates, stamps and renders it and builds its delivery request (the
ledger records VALIDATED, STAMPED and RENDERED as before); deliver reads that one object and sends.
The summary writes the night's report whatever the chunks did; a run in which any task failed
after its retries still ends failed (``watcher``).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task, task_group
from airflow.timetables.interval import CronDataIntervalTimetable

from docpost.dag_defaults import START_DATE, TIMEZONE, default_args, fail_run_on_task_failure, run_night

DELIVERY_POOL = "docpost_sf1601"


def _actor(context) -> str:
    return f"dag:{context['dag'].dag_id}/{context['run_id']}"


@dag(
    dag_id="docpost_nightly",
    description="Collect letters from S3, validate, stamp, render and deliver them",
    schedule=CronDataIntervalTimetable("0 1 * * *", timezone=TIMEZONE),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["docpost"],
    default_args=default_args(retry_delay_seconds=20, max_retry_minutes=15),
    params={
        "night": Param(
            None, type=["null", "string"], format="date",
            description="Night to process (YYYY-MM-DD); empty: the run's data interval",
        ),
        "source_systems": Param(
            [], type="array", items={"type": "string"},
            description="Only these source systems (empty: all)",
        ),
        "dry_run": Param(False, type="boolean", description="Validate, stamp and render; send nothing"),
        "chunk_size": Param(500, type="integer", minimum=1, maximum=5000, description="Letters per chunk"),
    },
    doc_md=__doc__,
)
def docpost_nightly():
    @task
    def collect(**context) -> dict:
        from docpost import pipeline

        params = context["params"]
        return pipeline.collect(
            run_night(context), source_systems=params["source_systems"] or None, actor=_actor(context)
        )

    @task
    def plan(collected: dict, **context) -> list[dict]:
        from docpost import pipeline

        return pipeline.plan_chunks(run_night(context), chunk_size=context["params"]["chunk_size"])

    @task
    def prepare(chunk: dict, **context) -> dict:
        from docpost import pipeline

        return pipeline.prepare_chunk(chunk, actor=_actor(context))

    @task(pool=DELIVERY_POOL)
    def deliver(chunk: dict, **context) -> dict:
        from docpost import pipeline

        return pipeline.deliver_chunk(
            chunk, actor=_actor(context), dry_run=context["params"]["dry_run"]
        )

    @task_group
    def process(chunk: dict):
        return deliver(prepare(chunk))

    @task(trigger_rule="all_done")
    def summary(results: list[dict], **context) -> dict:
        from docpost import pipeline

        return pipeline.summarize(run_night(context), actor=_actor(context))

    chunks = plan(collect())
    summary(process.expand(chunk=chunks))


docpost_nightly_dag = docpost_nightly()
fail_run_on_task_failure(docpost_nightly_dag)
