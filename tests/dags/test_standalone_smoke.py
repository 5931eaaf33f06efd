"""A real Airflow (``airflow standalone`` on SQLite) driven through its REST API.

The stack comes from ``docpost_testbench.stack``: a moto S3 server subprocess and Airflow in a temporary
AIRFLOW_HOME, with a temporary dags folder holding a tiny DAG written here. Its task writes to
S3 through docpost.storage, so the run also proves the Airflow connection (S3Hook) path inside
a real task process. ``run_dag_through_rest`` is the harness the docpost_nightly test reuses.
"""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import boto3
import pytest

from docpost_testbench import stack
from docpost.storage import ObjectStore

pytestmark = [pytest.mark.slow, pytest.mark.airflow, pytest.mark.integration]

SMOKE_DAG = textwrap.dedent(
    '''
    """A two-task DAG for the embedded-stack smoke test."""
    import pendulum
    from airflow.sdk import dag, task


    @dag(dag_id="docpost_smoke", schedule=None, catchup=False,
         start_date=pendulum.datetime(2026, 1, 1, tz="Europe/Copenhagen"), tags=["test"])
    def docpost_smoke():
        @task
        def write(logical_date=None):
            from docpost.storage import ObjectStore

            store = ObjectStore()
            store.put_json("smoke/run.json", {"date": logical_date.date().isoformat(), "backend": None})
            return {"backend": store.backend_used, "calls": store.calls}

        @task
        def check(result):
            assert result["backend"] == "hook", result
            return result["calls"]

        check(write())


    docpost_smoke()
    '''
)


DAILY_DAG = textwrap.dedent(
    '''
    """A nightly-shaped DAG (01:00 Copenhagen, no catch-up) for the backfill check."""
    import pendulum
    from airflow.sdk import dag, task


    @dag(dag_id="docpost_smoke_daily", schedule="0 1 * * *", catchup=False, max_active_runs=1,
         start_date=pendulum.datetime(2026, 1, 1, tz="Europe/Copenhagen"), tags=["test"])
    def docpost_smoke_daily():
        @task
        def mark(ds=None):
            from docpost.storage import ObjectStore

            ObjectStore().put_text(f"smoke/backfill/{ds}", ds)

        mark()


    docpost_smoke_daily()
    '''
)


def run_dag_through_rest(api: stack.AirflowAPI, dag_id: str, *, logical_date=None, conf=None,
                         timeout: float = 300) -> tuple[str, str, dict[str, float]]:
    """Wait for the DAG to be parsed, unpause it, trigger it and poll; returns (run_id, state, timings)."""
    t0 = time.monotonic()
    api.wait_for_dag(dag_id, timeout=120)
    t_parsed = time.monotonic()
    api.unpause(dag_id)
    run_id = api.trigger(dag_id, logical_date=logical_date, conf=conf)
    state = api.wait_for_run(dag_id, run_id, timeout=timeout, poll=0.5)
    t_done = time.monotonic()
    return run_id, state, {"parse_s": t_parsed - t0, "run_s": t_done - t_parsed}


@pytest.fixture()
def moto():
    handle = stack.start_moto()
    yield handle
    handle.stop()


def test_standalone_runs_a_dag_triggered_over_rest(tmp_path: Path, moto):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "docpost_smoke.py").write_text(SMOKE_DAG)
    (dags / "docpost_smoke_daily.py").write_text(DAILY_DAG)
    bucket = "docpost-smoke"
    ObjectStore(bucket, endpoint_url=moto.url, backend="boto3").ensure_bucket()

    home = tmp_path / "airflow"
    env = stack.airflow_env(home, dags, s3_endpoint_url=moto.url, bucket=bucket)
    assert json.loads(env["AIRFLOW_CONN_DOCPOST_S3"])["extra"]["endpoint_url"] == moto.url
    t0 = time.monotonic()
    airflow = stack.start_standalone(home, env)
    startup = time.monotonic() - t0
    session = airflow.handle.pid
    try:
        assert airflow.handle.members(), "standalone is not running"
        with stack.AirflowAPI(airflow.url, airflow.username, "not-the-password") as intruder:
            with pytest.raises(stack.AirflowAPIError) as refused:
                intruder.token()
            assert refused.value.status == 401
        with airflow.api() as api:
            run_id, state, timings = run_dag_through_rest(api, "docpost_smoke", logical_date="2026-03-02T00:00:00Z")
            tis = api.task_instances("docpost_smoke", run_id)
            run = api.run("docpost_smoke", run_id)
            # A backfill over three nights through POST /api/v2/backfills. Backfill runs wait
            # while the DAG is paused (wait_for_backfill says so), so it is unpaused first.
            api.wait_for_dag("docpost_smoke_daily")
            t_backfill = time.monotonic()
            backfill = api.backfill("docpost_smoke_daily", "2026-03-01T00:00:00+01:00", "2026-03-03T23:00:00+01:00")
            with pytest.raises(stack.AirflowAPIError, match="paused"):
                api.wait_for_backfill(backfill["id"], timeout=30)
            api.unpause("docpost_smoke_daily")
            api.wait_for_backfill(backfill["id"], timeout=400)
            timings["backfill_s"] = time.monotonic() - t_backfill
            backfill_runs = api.backfill_runs("docpost_smoke_daily")
    finally:
        airflow.stop()
    print(f"\nstandalone up in {startup:.1f} s; DAG parsed after {timings['parse_s']:.1f} s; "
          f"trivial 2-task run took {timings['run_s']:.1f} s; 3-night backfill {timings['backfill_s']:.1f} s")

    assert state == "success", (airflow.handle.log_tail(), tis)
    assert run["logical_date"].startswith("2026-03-02")
    assert {ti["task_id"]: ti["state"] for ti in tis} == {"write": "success", "check": "success"}
    raw = boto3.client("s3", endpoint_url=moto.url, region_name="eu-west-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    written = json.loads(raw.get_object(Bucket=bucket, Key="smoke/run.json")["Body"].read())
    assert written["date"] == "2026-03-02"
    assert (home / "standalone.log").stat().st_size > 0
    # 01:00 Copenhagen (CET) is 00:00Z: one run per night in the range, each exactly once.
    assert sorted((r["logical_date"], r["state"]) for r in backfill_runs) == [
        ("2026-03-01T00:00:00Z", "success"), ("2026-03-02T00:00:00Z", "success"),
        ("2026-03-03T00:00:00Z", "success")]
    marks = {o["Key"].rsplit("/", 1)[1] for o in
             raw.list_objects_v2(Bucket=bucket, Prefix="smoke/backfill/")["Contents"]}
    assert {"2026-03-01", "2026-03-02", "2026-03-03"} <= marks  # (+ the latest night, scheduled on unpause)
    # stop() leaves nothing behind: no process of the session, and nothing using this home.
    assert stack.session_members(session) == []
    assert _processes_with_env("AIRFLOW_HOME", str(home.resolve())) == []


def _processes_with_env(name: str, value: str) -> list[int]:
    """Live processes whose environment has ``name=value`` (read from /proc)."""
    needle = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found
