"""docpost_testbench.stack without Airflow: process-tree shutdown and the embedded environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
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


# An owner that starts TREE as a stack session and waits; on a stop signal it stops the session
# (the demo's path) and exits with the shell's code for that signal. Prints the tree's pids.
OWNER = textwrap.dedent(
    """
    import sys, time
    from docpost_testbench import stack
    tree = {tree!r}
    with stack.stop_on_signals():
        import subprocess
        handle = stack.spawn_session([sys.executable, "-c", tree], stdout=subprocess.PIPE, text=True)
        try:
            print(handle.pid, handle.process.stdout.readline().strip(), stack._watchdog.pid, flush=True)
            time.sleep(600)
        except KeyboardInterrupt as exc:
            handle.stop(timeout=5)
            sys.exit(stack.exit_code(exc))
    """
)


def _start_owner(tmp_path: Path) -> tuple[subprocess.Popen, list[int]]:
    owner = subprocess.Popen([sys.executable, "-c", OWNER.format(tree=TREE)], stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
    pids = [int(p) for p in owner.stdout.readline().split()]
    assert len(pids) == 4, pids  # leader, child, grandchild, watchdog
    assert all(_alive(pid) for pid in pids)
    return owner, pids


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.1)
    return [pid for pid in pids if _alive(pid)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_stop_signals_stop_the_stack_like_ctrl_c(tmp_path, sig):
    owner, pids = _start_owner(tmp_path)
    try:
        owner.send_signal(sig)
        assert owner.wait(timeout=30) == 128 + sig  # 143, 129, 130
        assert _wait_gone(pids, 10) == []  # the session and, its owner gone, the watchdog
    finally:
        owner.kill()
        for pid in pids:
            stack._signal_pid(pid, signal.SIGKILL)


def test_the_watchdog_ends_the_sessions_of_an_owner_killed_outright(tmp_path):
    owner, pids = _start_owner(tmp_path)
    try:
        owner.kill()  # SIGKILL: no handler, no finally runs
        owner.wait(timeout=10)
        assert _wait_gone(pids, 20) == []
    finally:
        for pid in pids:
            stack._signal_pid(pid, signal.SIGKILL)


def test_stop_on_signals_is_inert_outside_the_main_thread():
    import threading

    before = signal.getsignal(signal.SIGTERM)
    seen = []

    def worker():
        with stack.stop_on_signals():
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [before]
    with stack.stop_on_signals():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before
    assert stack.exit_code(stack.StackInterrupted(signal.SIGHUP)) == 129
    assert stack.exit_code(KeyboardInterrupt()) == 130
