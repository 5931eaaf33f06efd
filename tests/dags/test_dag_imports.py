"""Every DAG file imports cleanly, fast, and touches neither a database nor the network at parse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))

# Parse each file in a fresh interpreter, after Airflow itself is imported, with sockets and
# database drivers booby-trapped: any connection attempt at parse time fails the import.
PROBE = r"""
import json, socket, sys, time, importlib.util
import airflow.sdk  # the cost of Airflow itself is not the DAG's
def _refuse(*a, **k):
    raise RuntimeError("network or database access at DAG parse time")
socket.socket.connect = _refuse
socket.create_connection = _refuse
import sqlite3; sqlite3.connect = _refuse
path = sys.argv[1]
before = set(sys.modules)
t = time.perf_counter()
spec = importlib.util.spec_from_file_location("dagfile", path)
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
elapsed = time.perf_counter() - t
from airflow.sdk import DAG
dags = [v for v in vars(mod).values() if isinstance(v, DAG)]
new = set(sys.modules) - before
heavy = sorted(m for m in ("lxml", "reportlab", "boto3", "botocore", "docpost.pipeline", "docpost.ledger", "pypdf", "fastapi") if m in new)
print(json.dumps({"seconds": elapsed, "dags": [d.dag_id for d in dags],
                  "tasks": {d.dag_id: [t.task_id for t in d.tasks] for d in dags}, "heavy": heavy}))
"""


def parse(path: Path) -> dict:
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True,
                         timeout=120, env=env, cwd=ROOT / "dags")
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_dag_file_parses_fast_without_io(path):
    result = parse(path)
    assert result["dags"], f"{path.name} defines no DAG"
    assert result["seconds"] < 1.0, f"{path.name} took {result['seconds']:.2f}s to parse"
    assert result["heavy"] == [], f"{path.name} imports heavy libraries at parse time: {result['heavy']}"


def test_nightly_shape():
    result = parse(ROOT / "dags" / "docpost_nightly.py")
    tasks = result["tasks"]["docpost_nightly"]
    assert tasks[:2] == ["collect", "plan"]
    assert {"process.prepare", "process.deliver", "summary"} <= set(tasks)
    # no task id carries anything from a letter: ids are fixed names, letters live in chunks
    assert all(t.replace("process.", "").isidentifier() for t in tasks)


def load(path: Path):
    """The DAG a file defines, imported in this process."""
    import importlib.util

    from airflow.sdk import DAG

    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (dag,) = [v for v in vars(mod).values() if isinstance(v, DAG)]
    return dag


def test_nightly_schedule_and_defaults():
    dag = load(ROOT / "dags" / "docpost_nightly.py")
    assert dag.catchup is False and dag.max_active_runs == 1
    assert dag.timetable.summary.startswith("0 1 * * *")
    assert str(dag.timetable._timezone.name) == "Europe/Copenhagen"
    args = dag.default_args
    assert args["retries"] >= 1 and args["retry_exponential_backoff"]
    assert dag.get_task("process.deliver").pool == "docpost_sf1601"
    assert set(dag.params.keys()) >= {"night", "source_systems", "dry_run", "chunk_size"}


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_a_failed_task_fails_the_run(path):
    """The watcher is the only leaf and downstream of every task: Airflow derives the run's state
    from the leaves, so a failed (or upstream_failed) task fails the run, all_done tasks or not."""
    from docpost.dag_defaults import WATCHER

    dag = load(path)
    watcher = dag.get_task(WATCHER)
    assert watcher.trigger_rule == "one_failed" and watcher.retries == 0
    assert watcher.upstream_task_ids == {t.task_id for t in dag.tasks} - {WATCHER}
    assert [t.task_id for t in dag.leaves] == [WATCHER]


def test_nightly_summary_runs_whatever_its_upstream_did():
    assert load(ROOT / "dags" / "docpost_nightly.py").get_task("summary").trigger_rule == "all_done"


def test_task_retries_come_from_the_environment(monkeypatch):
    from docpost.dag_defaults import default_args

    monkeypatch.delenv("DOCPOST_TASK_RETRIES", raising=False)
    assert default_args()["retries"] == 3
    monkeypatch.setenv("DOCPOST_TASK_RETRIES", "0")
    assert default_args()["retries"] == 0


def test_audit_shape_and_schedule():
    """The weekly audit: one library call (``pipeline.audit``), then the watcher."""
    result = parse(ROOT / "dags" / "docpost_audit.py")
    assert result["tasks"]["docpost_audit"] == ["audit", "watcher"]
    dag = load(ROOT / "dags" / "docpost_audit.py")
    assert dag.catchup is False and dag.max_active_runs == 1
    assert dag.timetable.summary.startswith("0 6 * * 1")
    assert str(dag.timetable._timezone.name) == "Europe/Copenhagen"
    assert dag.default_args["retries"] >= 1


def test_now_shape_and_asset_schedule():
    """Send now: started by the submit API's asset event, one run at a time (events raised meanwhile
    start one next run), the nightly's stages per chunk, deliveries in the same pool."""
    from docpost.sendnow import ASSET_NAME

    result = parse(ROOT / "dags" / "docpost_now.py")
    assert result["tasks"]["docpost_now"] == ["plan", "process.prepare", "process.deliver", "watcher"]
    dag = load(ROOT / "dags" / "docpost_now.py")
    assert dag.catchup is False and dag.max_active_runs == 1
    assert [(a.name, a.uri) for a in dag.timetable.asset_condition.objects] == [(ASSET_NAME, ASSET_NAME)]
    assert dag.get_task("process.deliver").pool == "docpost_sf1601"
    assert dag.default_args["retries"] >= 1 and dag.default_args["retry_exponential_backoff"]
