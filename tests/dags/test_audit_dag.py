"""docpost_audit through ``airflow dags test``: a READY folder no night will collect fails the run
(red for an operator) after the report is written; an inbox the ledger fully knows passes.

Real parts: moto S3 over HTTP, PostgreSQL (the ledger), Airflow in a temporary home. Run states are
read back with Airflow's own CLI."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from zoneinfo import ZoneInfo

import pytest

from docpost_testbench import stack
from docpost_testbench.generate import generate_night
from docpost.storage import ObjectStore, S3Sink
from pg_support import fresh_schema

pytestmark = [pytest.mark.integration, pytest.mark.airflow, pytest.mark.slow]

TODAY = dt.datetime.now(ZoneInfo("Europe/Copenhagen")).date()
LOGICAL = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def airflow_json(env: dict[str, str], *args: str) -> list[dict]:
    done = subprocess.run([stack._bin("airflow"), *args, "-o", "json"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def audit_run(tmp_path, s3_bucket, s3_endpoint, pg_url) -> tuple[str, dict]:
    env = stack.airflow_env(tmp_path / "airflow", s3_endpoint_url=s3_endpoint, bucket=s3_bucket)
    env.update({"DOCPOST_DB_URL": pg_url, "DOCPOST_TASK_RETRIES": "0"})
    stack.install_metadata_db(env)
    subprocess.run([stack._bin("airflow"), "dags", "test", "docpost_audit", LOGICAL], env=env,
                   capture_output=True, timeout=600)
    (run,) = airflow_json(env, "dags", "list-runs", "docpost_audit")
    states: dict[str, list[str]] = {}
    for ti in airflow_json(env, "tasks", "states-for-dag-run", "docpost_audit", run["run_id"]):
        states.setdefault(ti["task_id"], []).append(ti["state"])
    return run["state"], states


def test_a_ready_written_ten_days_late_fails_the_audit_run(tmp_path, s3_bucket, s3_endpoint, pg_url, monkeypatch):
    from docpost import pipeline

    fresh_schema(pg_url)
    monkeypatch.setenv("DOCPOST_DB_URL", pg_url)
    with S3Sink(ObjectStore()) as sink:
        generate_night(2, TODAY - dt.timedelta(days=10), sink=sink, seed=31)
    state, tasks = audit_run(tmp_path / "red", s3_bucket, s3_endpoint, pg_url)
    assert state == "failed" and tasks["audit"] == ["failed"] and tasks["watcher"] == ["failed"], tasks
    report = json.loads(ObjectStore().get_bytes(f"reports/audit/{TODAY.isoformat()}/audit.json"))
    assert report["alert"] is True and report["missed"] == 2

    # collected by a run for its own night: the next audit is green
    pipeline.collect(TODAY - dt.timedelta(days=10), actor="operator")
    state, tasks = audit_run(tmp_path / "green", s3_bucket, s3_endpoint, pg_url)
    assert state == "success" and tasks["audit"] == ["success"] and tasks["watcher"] == ["skipped"], tasks
    assert json.loads(ObjectStore().get_bytes(f"reports/audit/{TODAY.isoformat()}/audit.json"))["alert"] is False
