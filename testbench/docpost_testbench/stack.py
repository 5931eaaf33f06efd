"""The embedded stack for the demo and the tests: a moto S3 server and ``airflow standalone``.

Both run as subprocesses in their own process group on loopback, on free ports, so several
stacks can run side by side; ``stop()`` ends the whole group (``airflow standalone`` spawns a
scheduler, a dag-processor, an api-server, a triggerer and task processes).

``AirflowAPI`` is a small client for the Airflow 3 REST API (``/api/v2``) over httpx: token,
wait for a DAG to be parsed, unpause, trigger, poll a run, list task instances, backfill.
Nothing here imports Airflow: it is driven from the outside, like an operator would.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from docpost import config

AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
PASSWORD_FILE = "simple_auth_manager_passwords.json.generated"
ADMIN_USER = "admin"
FINAL_RUN_STATES = frozenset({"success", "failed"})


class StackError(Exception):
    """Root of embedded-stack failures; ``code`` is stable, the message plain language."""

    code = "stack.error"

    def __init__(self, message: str, *, log_tail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.log_tail = log_tail

    def __str__(self) -> str:
        tail = f"\n--- log tail ---\n{self.log_tail}" if self.log_tail else ""
        return f"[{self.code}] {self.message}{tail}"


class StackStartError(StackError):
    code = "stack.start_failed"


class StackTimeout(StackError):
    code = "stack.timeout"


class AirflowAPIError(StackError):
    code = "stack.api_error"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bin(name: str) -> str:
    """A console script of this virtualenv (next to the interpreter), else from PATH."""
    local = Path(sys.executable).with_name(name)
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise StackStartError(f"{name!r} is not installed (looked next to {sys.executable} and on PATH)")
    return found


@dataclass
class ProcessHandle:
    """A subprocess started as a new session (its pid is the session and group id)."""

    process: subprocess.Popen
    log_path: Path | None = None
    stop_signal: int = signal.SIGTERM

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def members(self) -> list[int]:
        """Live processes of the session: the leader and every descendant, even those that
        moved to a process group of their own (Airflow's task runners do)."""
        return session_members(self.process.pid)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        """``stop_signal`` to the process group (like Ctrl-C in a terminal), then SIGTERM and
        finally SIGKILL to every process left in the session. Idempotent."""
        sid = self.process.pid
        _signal_group(sid, self.stop_signal)
        for sig, wait in ((None, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if sig is not None:
                for pid in self.members():
                    _signal_pid(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                self.process.poll()  # reap the leader
                if not self.members():
                    break
                time.sleep(0.1)
            else:
                continue
            break
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_pid(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes whose session id is ``sid``, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp session ...: comm may hold spaces, split after the last ")"
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _spawn(cmd: list[str], env: dict[str, str] | None, log_path: Path | None,
           stop_signal: int = signal.SIGTERM) -> ProcessHandle:
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out: Any = open(log_path, "ab")
    else:
        out = subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=str(log_path.parent) if log_path else None,
        )
    finally:
        if log_path is not None:
            out.close()
    return ProcessHandle(proc, log_path, stop_signal)


def _wait_http(url: str, handle: ProcessHandle, timeout: float, what: str,
               ok: Callable[[Any], bool] = lambda r: True) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not handle.alive():
            raise StackStartError(f"{what} exited with code {handle.process.returncode}",
                                  log_tail=handle.log_tail())
        try:
            if ok(httpx.get(url, timeout=2.0)):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise StackTimeout(f"{what} did not answer at {url} within {timeout:.0f} s", log_tail=handle.log_tail())


# -- moto ------------------------------------------------------------------------------------


@dataclass
class MotoHandle:
    """A moto S3 server subprocess on loopback."""

    url: str
    port: int
    handle: ProcessHandle

    def stop(self) -> None:
        self.handle.stop(timeout=5)


def start_moto(port: int | None = None, *, log_path: Path | None = None, timeout: float = 30.0) -> MotoHandle:
    """Start ``moto_server -H 127.0.0.1 -p PORT`` and wait until it answers."""
    attempts = 1 if port else 3  # a free port can be taken between probing and binding
    for attempt in range(attempts):
        chosen = port or free_port()
        handle = _spawn([_bin("moto_server"), "-H", "127.0.0.1", "-p", str(chosen)], None, log_path)
        url = f"http://127.0.0.1:{chosen}"
        try:
            _wait_http(f"{url}/moto-api/", handle, timeout, "moto_server")
            return MotoHandle(url, chosen, handle)
        except StackStartError:
            handle.stop(timeout=2)
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


# -- Airflow ---------------------------------------------------------------------------------


def airflow_env(
    home: Path,
    dags_folder: Path | None = None,
    extra_env: dict[str, str] | None = None,
    *,
    s3_endpoint_url: str | None = None,
    bucket: str | None = None,
    api_port: int | None = None,
    docpost_home: Path | None = None,
) -> dict[str, str]:
    """The environment for an embedded Airflow in ``home`` (SQLite, LocalExecutor, loopback).

    Inherited ``AIRFLOW*`` variables are dropped so the stack cannot pick up another
    installation's settings; ``extra_env`` is applied last.
    """
    home = Path(home).resolve()
    s = config.settings()
    api_port = api_port or free_port()
    dags_folder = Path(dags_folder or config.PROJECT_ROOT / "dags").resolve()
    docpost_home = Path(docpost_home or home / "docpost").resolve()
    plugins = home / "plugins"  # empty: docpost is an installed package, not an Airflow plugin
    plugins.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    base = f"http://127.0.0.1:{api_port}"
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",  # SQLite + LocalExecutor: more locks the database
        "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Europe/Copenhagen",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__EXPOSE_CONFIG": "False",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),  # per stack; silences the short-key warning
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",  # new DAG files are seen within seconds
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "0",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
        "NO_COLOR": "1",
        # standalone runs its components as `airflow <command>` found on PATH: this venv's first
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "NO_PROXY": ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1,localhost"])),
        "DOCPOST_HOME": str(docpost_home),
        "DOCPOST_AWS_CONN_ID": s.aws_conn_id,
        "DOCPOST_BUCKET": bucket or s.bucket,
    })
    if "DOCPOST_DB_URL" not in os.environ:
        env["DOCPOST_DB_URL"] = f"sqlite:///{docpost_home / 'ledger.db'}"
    if s3_endpoint_url:
        env.update({
            "DOCPOST_S3_ENDPOINT_URL": s3_endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "eu-west-1",
            f"AIRFLOW_CONN_{s.aws_conn_id.upper()}": s3_connection_json(s3_endpoint_url),
        })
    env.update(extra_env or {})
    return env


def s3_connection_json(endpoint_url: str | None, access_key: str = "testing", secret_key: str = "testing",
                       region: str = "eu-west-1") -> str:
    """An Airflow ``aws`` connection as JSON (for ``AIRFLOW_CONN_<ID>``), S3Hook-ready."""
    extra: dict[str, Any] = {"region_name": region}
    if endpoint_url:
        extra["endpoint_url"] = endpoint_url
    return json.dumps({"conn_type": "aws", "login": access_key, "password": secret_key, "extra": extra})


@dataclass
class AirflowHandle:
    """A running ``airflow standalone``: where it answers, the login, and how to stop it."""

    url: str
    username: str
    password: str
    home: Path
    handle: ProcessHandle
    env: dict[str, str] = field(repr=False, default_factory=dict)

    @property
    def log_path(self) -> Path | None:
        return self.handle.log_path

    def api(self) -> AirflowAPI:
        return AirflowAPI(self.url, self.username, self.password)

    def stop(self) -> None:
        self.handle.stop(timeout=30)


def metadata_db_template(cache_dir: Path | None = None, timeout: float = 600) -> Path:
    """A migrated, empty SQLite Airflow metadata database, built once per Airflow version.

    Copying it into a fresh home spares ``airflow standalone`` its schema creation (about half
    of its start-up on a busy machine). Built under a file lock, replaced atomically.
    """
    import fcntl
    from importlib.metadata import version

    cache_dir = Path(cache_dir or config.settings().home / "cache").resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    template = cache_dir / f"airflow-{version('apache-airflow')}-metadata.db"
    with open(cache_dir / ".airflow-template.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not template.exists():
            build = Path(tempfile.mkdtemp(prefix="airflow-template-", dir=cache_dir))
            try:
                migrate_db(airflow_env(build, build / "dags"), timeout=timeout)
                os.replace(build / "airflow.db", template)
            finally:
                shutil.rmtree(build, ignore_errors=True)
    return template


def install_metadata_db(env: dict[str, str], template: Path | None = None) -> bool:
    """Copy a migrated metadata database into the stack's home unless it has one already.

    For ``dag.test()`` as well as standalone. Returns whether it copied; only for the SQLite
    file ``airflow_env`` configures (another database is left to ``migrate_db``).
    """
    db_file = Path(env["AIRFLOW_HOME"]) / "airflow.db"
    if db_file.exists() or env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") != f"sqlite:///{db_file}":
        return False
    db_file.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template or metadata_db_template(), db_file)
    return True


def migrate_db(env: dict[str, str], timeout: float = 300) -> None:
    """``airflow db migrate`` in the stack's environment (what ``dag.test()`` needs first)."""
    log = Path(env["AIRFLOW_HOME"]) / "migrate.log"
    with open(log, "ab") as out:
        done = subprocess.run([_bin("airflow"), "db", "migrate"], env=env, stdout=out, stderr=subprocess.STDOUT,
                              timeout=timeout, start_new_session=True)
    if done.returncode:
        raise StackStartError("airflow db migrate failed", log_tail=log.read_text(errors="replace")[-4000:])


def start_standalone(home: Path, env: dict[str, str] | None = None, *, timeout: float = 300.0,
                     db_template: Path | None | bool = True) -> AirflowHandle:
    """Start ``airflow standalone`` in ``home`` and wait until its API answers.

    A home without a metadata database gets a copy of :func:`metadata_db_template`
    (``db_template=True``, the default), of the given file, or none (``False``: standalone
    creates it). The admin password is chosen here and written where the simple auth manager
    keeps it (``$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated``); output goes to
    ``$AIRFLOW_HOME/standalone.log``.
    """
    home = Path(home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = dict(env or airflow_env(home))
    if Path(env["AIRFLOW_HOME"]).resolve() != home:
        raise StackStartError(f"env AIRFLOW_HOME {env['AIRFLOW_HOME']} is not {home}")
    if db_template:
        install_metadata_db(env, None if db_template is True else Path(db_template))
    Path(env.get("DOCPOST_HOME", home / "docpost")).mkdir(parents=True, exist_ok=True)
    password_file = home / PASSWORD_FILE
    if not password_file.exists():
        password_file.write_text(json.dumps({ADMIN_USER: secrets.token_urlsafe(12)}) + "\n")
        password_file.chmod(0o600)
    password = json.loads(password_file.read_text())[ADMIN_USER]
    url = env["AIRFLOW__API__BASE_URL"]
    # SIGINT first: standalone shuts its components down on KeyboardInterrupt.
    handle = _spawn([_bin("airflow"), "standalone"], env, home / "standalone.log", signal.SIGINT)
    try:
        _wait_http(f"{url}/api/v2/monitor/health", handle, timeout, "airflow standalone",
                   ok=lambda r: r.status_code == 200)
    except BaseException:
        handle.stop()
        raise
    return AirflowHandle(url, ADMIN_USER, password, home, handle, env)


# -- REST ------------------------------------------------------------------------------------


class AirflowAPI:
    """A small client for Airflow 3's REST API (``/api/v2``), authenticated with a JWT."""

    def __init__(self, url: str, username: str, password: str, *, timeout: float = 120.0) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.username = username
        self._password = password
        self._token: str | None = None
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AirflowAPI:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def token(self) -> str:
        """A fresh access token from ``POST /auth/token``."""
        resp = self._http.post("/auth/token", json={"username": self.username, "password": self._password})
        if resp.status_code not in (200, 201):
            raise AirflowAPIError(f"login as {self.username!r} failed: HTTP {resp.status_code}",
                                  status=resp.status_code)
        self._token = resp.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        """One API call (``path`` below ``/api/v2``); re-logs in once when the token expired."""
        for attempt in (1, 2):
            if self._token is None:
                self.token()
            resp = self._http.request(method, f"/api/v2{path}",
                                      headers={"Authorization": f"Bearer {self._token}"}, **kwargs)
            if resp.status_code == 401 and attempt == 1:
                self._token = None
                continue
            break
        if resp.status_code not in ok:
            raise AirflowAPIError(f"{method} {path}: HTTP {resp.status_code}: {resp.text[:500]}",
                                  status=resp.status_code)
        return resp.json() if resp.content else None

    def dag(self, dag_id: str) -> dict:
        return self.request("GET", f"/dags/{dag_id}")

    def import_errors(self) -> list[dict]:
        return self.request("GET", "/importErrors")["import_errors"]

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0) -> dict:
        """Until the dag-processor has parsed ``dag_id``; fails early on an import error."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return self.dag(dag_id)
            except AirflowAPIError as exc:
                if exc.status != 404:
                    raise
            errors = [e for e in self.import_errors() if dag_id in (e.get("filename") or "")]
            if errors:
                trace = errors[0].get("stack_trace", "")[-2000:]
                raise AirflowAPIError(f"DAG {dag_id!r} failed to import: {trace}")
            time.sleep(1.0)
        raise StackTimeout(f"DAG {dag_id!r} was not parsed within {timeout:.0f} s")

    def unpause(self, dag_id: str) -> dict:
        return self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def pause(self, dag_id: str) -> dict:
        return self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": True})

    def trigger(self, dag_id: str, logical_date: dt.datetime | dt.date | str | None = None,
                conf: dict | None = None, run_id: str | None = None) -> str:
        """Create a manual run; returns its run id. ``logical_date`` None means "now"."""
        body: dict[str, Any] = {"logical_date": _iso(logical_date) if logical_date is not None else None,
                                "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        return self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300.0, poll: float = 1.0) -> str:
        """Poll until the run is ``success`` or ``failed``; returns that state."""
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.run(dag_id, run_id)["state"]
            if state in FINAL_RUN_STATES:
                return state
            time.sleep(poll)
        raise StackTimeout(f"run {run_id!r} of {dag_id!r} still {state!r} after {timeout:.0f} s")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        """Every task instance of a run (mapped ones one per map index)."""
        out: list[dict] = []
        while True:
            page = self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                                params={"limit": 100, "offset": len(out)})
            out.extend(page["task_instances"])
            if not page["task_instances"] or len(out) >= page["total_entries"]:
                return out

    def runs(self, dag_id: str) -> list[dict]:
        return self.request("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def backfill(self, dag_id: str, from_date: dt.datetime | dt.date | str, to_date: dt.datetime | dt.date | str,
                 *, reprocess_behavior: str = "none", max_active_runs: int = 1, conf: dict | None = None,
                 run_backwards: bool = False, locked_timeout: float = 60.0) -> dict:
        """``POST /api/v2/backfills``: runs for every schedule date in [from_date, to_date].

        ``reprocess_behavior``: ``none`` (skip dates that have a run), ``failed``, ``completed``.
        The runs stay queued while the DAG is paused: unpause it first (with ``catchup=False``
        unpausing also schedules the latest interval once). On SQLite, Airflow answers 503 when
        the scheduler holds the database lock (and removes the partial backfill): that is retried
        for up to ``locked_timeout`` seconds.
        """
        body = {"dag_id": dag_id, "from_date": _iso(from_date), "to_date": _iso(to_date),
                "reprocess_behavior": reprocess_behavior, "max_active_runs": max_active_runs,
                "run_backwards": run_backwards, "dag_run_conf": conf or {}}
        deadline = time.monotonic() + locked_timeout
        while True:
            try:
                return self.request("POST", "/backfills", json=body)
            except AirflowAPIError as exc:
                if exc.status != 503 or time.monotonic() >= deadline:
                    raise
            time.sleep(1.0)

    def backfill_runs(self, dag_id: str) -> list[dict]:
        """The runs backfills created for ``dag_id``."""
        return [r for r in self.runs(dag_id) if r.get("run_type") == "backfill"]

    def wait_for_backfill(self, backfill_id: int, timeout: float = 600.0, poll: float = 2.0) -> dict:
        """Poll ``GET /backfills/<id>`` until the scheduler marks it completed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            backfill = self.request("GET", f"/backfills/{backfill_id}")
            if backfill.get("completed_at"):
                return backfill
            if self.dag(backfill["dag_id"]).get("is_paused"):
                raise AirflowAPIError(f"DAG {backfill['dag_id']!r} is paused: its backfill runs stay queued")
            time.sleep(poll)
        raise StackTimeout(f"backfill {backfill_id} not completed after {timeout:.0f} s")


def _iso(value: dt.datetime | dt.date | str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.isoformat()
    return dt.datetime.combine(value, dt.time(), tzinfo=dt.timezone.utc).isoformat()
