"""docpost_testbench.stack without Airflow: process-tree shutdown and the embedded environment."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from docpost_testbench import stack

# A leader that starts a child which leaves for a process group of its own (as Airflow's task
# runners do) and a grandchild; all of them sleep. The leader prints the pids it started.
TREE = textwrap.dedent(
    """
    import os, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c",
        "import os, subprocess, sys, time; os.setpgid(0, 0);"
        "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']);"
        "print(g.pid, flush=True); time.sleep(600)"], stdout=subprocess.PIPE, text=True)
    grandchild = child.stdout.readline().strip()
    print(child.pid, grandchild, flush=True)
    time.sleep(600)
    """
)

STUBBORN = textwrap.dedent(
    """
    import signal, time
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ready", flush=True)
    time.sleep(600)
    """
)


def _spawn_and_wait(tmp_path: Path, code: str, stop_signal=signal.SIGTERM, lines: int = 1):
    log = tmp_path / "out.log"
    handle = stack._spawn([sys.executable, "-c", code], None, log, stop_signal)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(log.read_text().splitlines()) < lines:
        time.sleep(0.05)
    return handle, log.read_text().split()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_stop_ends_the_whole_session_even_processes_in_other_groups(tmp_path):
    handle, pids = _spawn_and_wait(tmp_path, TREE)
    child, grandchild = int(pids[0]), int(pids[1])
    assert os.getpgid(child) == child != handle.pid  # the child left the leader's group
    assert set(handle.members()) == {handle.pid, child, grandchild}
    handle.stop(timeout=5)
    assert handle.members() == []
    assert not _alive(child) and not _alive(grandchild)
    handle.stop()  # idempotent


def test_stop_escalates_to_sigkill(tmp_path):
    handle, out = _spawn_and_wait(tmp_path, STUBBORN, stop_signal=signal.SIGINT)
    assert out == ["ready"]
    started = time.monotonic()
    handle.stop(timeout=1)
    assert handle.members() == []
    assert handle.process.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 15


def test_airflow_env_is_isolated_and_complete(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")  # from some other installation
    monkeypatch.setenv("AIRFLOW_CONN_SOMETHING", "x")
    monkeypatch.delenv("DOCPOST_DB_URL", raising=False)
    env = stack.airflow_env(tmp_path / "home", tmp_path / "dags", {"DOCPOST_CHUNK_SIZE": "50"},
                            s3_endpoint_url="http://127.0.0.1:5999", bucket="night")
    home = (tmp_path / "home").resolve()
    assert env["AIRFLOW_HOME"] == str(home)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert "AIRFLOW_CONN_SOMETHING" not in env
    assert env["AIRFLOW__CORE__PARALLELISM"] == "4"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str((tmp_path / "dags").resolve())
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{home / 'airflow.db'}"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == env["AIRFLOW__API__BASE_URL"] + "/execution/"
    assert env["AIRFLOW__API__BASE_URL"].endswith(":" + env["AIRFLOW__API__PORT"])
    ports = {env[k] for k in ("AIRFLOW__API__PORT", "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
                              "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT")}
    assert len(ports) == 3 and not ports & {"8080", "8793", "8794"}
    conn = json.loads(env["AIRFLOW_CONN_DOCPOST_S3"])
    assert conn["conn_type"] == "aws" and conn["extra"]["endpoint_url"] == "http://127.0.0.1:5999"
    assert env["DOCPOST_BUCKET"] == "night" and env["DOCPOST_S3_ENDPOINT_URL"] == "http://127.0.0.1:5999"
    assert env["DOCPOST_DB_URL"] == f"sqlite:///{home / 'docpost' / 'ledger.db'}"
    assert env["DOCPOST_CHUNK_SIZE"] == "50"
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert (home / "plugins").is_dir()
    # two stacks never share a port or a secret
    other = stack.airflow_env(tmp_path / "home2")
    assert other["AIRFLOW__API__PORT"] != env["AIRFLOW__API__PORT"]
    assert other["AIRFLOW__API_AUTH__JWT_SECRET"] != env["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert other["AIRFLOW__CORE__DAGS_FOLDER"].endswith("/dags")
    assert "AIRFLOW_CONN_DOCPOST_S3" not in other  # no endpoint given: no connection invented


def test_start_standalone_refuses_an_env_for_another_home(tmp_path):
    env = stack.airflow_env(tmp_path / "a")
    with pytest.raises(stack.StackStartError) as refused:
        stack.start_standalone(tmp_path / "b", env, db_template=False)
    assert refused.value.code == "stack.start_failed"


def test_install_metadata_db_copies_the_template_once(tmp_path):
    template = tmp_path / "template.db"
    template.write_bytes(b"SQLite format 3\0" + b"x" * 100)
    env = stack.airflow_env(tmp_path / "home")
    assert stack.install_metadata_db(env, template) is True
    assert (tmp_path / "home" / "airflow.db").read_bytes() == template.read_bytes()
    template.write_bytes(b"changed")
    assert stack.install_metadata_db(env, template) is False  # an existing database is kept
    other = dict(env, AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql://x/y")
    other["AIRFLOW_HOME"] = str(tmp_path / "pg-home")
    assert stack.install_metadata_db(other, template) is False
    assert not (tmp_path / "pg-home" / "airflow.db").exists()


def test_backfill_is_retried_while_sqlite_is_locked(monkeypatch):
    import httpx

    answers = iter([(503, {"detail": "Database is locked. Backfill creation is not supported on SQLite"}),
                    (503, {"detail": "Database is locked."}), (200, {"id": 7, "dag_id": "d"})])
    posts = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/token":
            return httpx.Response(201, json={"access_token": "t"})
        posts.append(json.loads(request.content))
        status, body = next(answers)
        return httpx.Response(status, json=body)

    monkeypatch.setattr(stack.time, "sleep", lambda seconds: None)
    api = stack.AirflowAPI("http://airflow.test", "admin", "pw")
    api._http = httpx.Client(base_url=api.url, transport=httpx.MockTransport(handler))
    assert api.backfill("d", "2026-03-01", "2026-03-02") == {"id": 7, "dag_id": "d"}
    assert len(posts) == 3 and posts[0] == posts[2]
    api._http = httpx.Client(base_url=api.url, transport=httpx.MockTransport(
        lambda r: httpx.Response(201, json={"access_token": "t"}) if r.url.path == "/auth/token"
        else httpx.Response(409, json={"detail": "already running"})))
    with pytest.raises(stack.AirflowAPIError) as refused:  # anything but a lock is not retried
        api.backfill("d", "2026-03-01", "2026-03-02")
    assert refused.value.status == 409
