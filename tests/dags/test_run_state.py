"""A run in which a task failed for real ends as a failed DAG run, and ``docpost demo`` says so.

Task retries are off (``DOCPOST_TASK_RETRIES=0``) so a failing task fails at once instead of after
minutes of backoff. The run states are read back with Airflow's own CLI, never from the exit
code of ``airflow dags test``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from docpost_testbench import stack
from docpost_testbench.demo import logical_date_for
from pg_support import fresh_schema

pytestmark = [pytest.mark.integration, pytest.mark.airflow, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
NIGHT = dt.date(2026, 11, 24)


def airflow_json(env: dict[str, str], *args: str) -> list[dict]:
    """An ``airflow ... -o json`` command's answer (its last stdout line; warnings come first)."""
    done = subprocess.run([stack._bin("airflow"), *args, "-o", "json"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_and_task_states(env: dict[str, str], dag_id: str) -> tuple[str, dict[str, list[str]]]:
    """The state of the DAG's only run in this Airflow home, and each task's states by task id."""
    (run,) = airflow_json(env, "dags", "list-runs", dag_id)
    states: dict[str, list[str]] = {}
    for ti in airflow_json(env, "tasks", "states-for-dag-run", dag_id, run["run_id"]):
        states.setdefault(ti["task_id"], []).append(ti["state"])
    return run["state"], states


def closed_port() -> int:
    """A loopback port nothing listens on."""
    port = stack.free_port()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    return port


def test_demo_with_s3_unreachable_fails_its_run_and_exits_nonzero(tmp_path):
    """The night goes into the demo's moto server, but the DAGs' S3 endpoint is a closed port."""
    home = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k != "DOCPOST_DB_URL"}  # the demo's own SQLite ledger
    env["DOCPOST_TASK_RETRIES"] = "0"
    dead = f"http://127.0.0.1:{closed_port()}"
    done = subprocess.run([str(Path(sys.executable).parent / "docpost"), "demo", "--count", "8", "--home", str(home),
                           "--dag-s3-endpoint-url", dead], env=env, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-4000:]  # the demo's own exit code
    log = home / "docpost_nightly.log"
    assert "FAILED              docpost_nightly run manual__" in out, out[-4000:]
    assert f"log (airflow dags test) {log}" in out
    assert "  failed task       collect after 1 attempt(s)" in out
    assert re.search(r"error +docpost\.storage\.StorageUnavailable: .*S3 listing of 'inbox/' failed: "
                     rf"Could not connect to the endpoint URL: \"{re.escape(dead)}/", out), out[-4000:]
    assert "docpost_receipts" not in out  # nothing runs after a failed night

    state, tasks = run_and_task_states(stack.airflow_env(home / "airflow"), "docpost_nightly")
    assert state == "failed"
    assert tasks["collect"] == ["failed"] and tasks["watcher"] == ["failed"]
    assert tasks["plan"] == ["upstream_failed"]
    # the stack is stopped: moto, the simulator and the mail server no longer answer
    servers = re.findall(r"^(?:moto S3 server|SF1601 simulator|mail server \(SMTP\)) +(?:\w+://)?([\d.]+):(\d+)",
                         out, re.M)
    assert len(servers) == 3, out[:2000]
    for host, port in servers:
        with socket.socket() as s:
            assert s.connect_ex((host, int(port))) != 0, f"{host}:{port} still answers"


def test_failed_delivery_chunk_fails_the_nightly_run_after_its_summary(tmp_path, s3_bucket, s3_endpoint, pg_url):
    """No SF1601 endpoint configured: every deliver task fails, the summary (all_done) still writes
    the night's report, and the run ends failed instead of successful."""
    from docpost_testbench.generate import generate_night
    from docpost.storage import ObjectStore, S3Sink

    fresh_schema(pg_url)
    with S3Sink(ObjectStore()) as sink:
        generate_night(8, NIGHT, sink=sink, broken_share=0.0, seed=9)
    env = stack.airflow_env(tmp_path / "airflow", s3_endpoint_url=s3_endpoint, bucket=s3_bucket)
    env = {k: v for k, v in env.items() if not k.startswith("DOCPOST_SF1601_")}
    env.update({"DOCPOST_DB_URL": pg_url, "DOCPOST_TASK_RETRIES": "0"})
    stack.install_metadata_db(env)
    subprocess.run([stack._bin("airflow"), "dags", "test", "docpost_nightly", logical_date_for(NIGHT),
                    "--conf", json.dumps({"chunk_size": 4})], env=env, capture_output=True, timeout=600)

    state, tasks = run_and_task_states(env, "docpost_nightly")
    assert tasks["process.deliver"] and set(tasks["process.deliver"]) == {"failed"}, tasks
    assert set(tasks["process.prepare"]) == {"success"}, tasks
    assert tasks["summary"] == ["success"] and tasks["watcher"] == ["failed"], tasks
    assert ObjectStore().exists(f"reports/{NIGHT.isoformat()}/summary.json")
    assert state == "failed"
