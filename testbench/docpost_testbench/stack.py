"""The embedded stack for the demo and the tests: a moto S3 server and ``airflow standalone``.

Both run as subprocesses in their own session (and process group) on loopback, on free ports,
so several stacks can run side by side; ``stop()`` ends the whole session (``airflow standalone``
spawns a scheduler, a dag-processor, an api-server, a triggerer, log servers and task processes).

Nothing outlives the process that started the stack:

* ``stop_on_signals()`` (main thread only) turns SIGTERM and SIGHUP into the same orderly
  shutdown as Ctrl-C: a ``StackInterrupted`` (a ``KeyboardInterrupt``) unwinds through the
  ``finally`` blocks that stop each part; ``exit_code()`` is 128 + the signal's number.
* every session started here is registered with a watchdog: a small process of its own that
  holds the read end of a pipe only this process writes to. When this process ends in any way
  (SIGKILL and crashes included) the pipe reaches end-of-file and the watchdog ends every
  session still registered: SIGTERM to each member, then SIGKILL after a grace period.

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
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

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


class StackInterrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C so every ``finally`` stops its part."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def exit_code(exc: BaseException) -> int:
    """The shell's code for a stop by signal: 128 + its number (143 TERM, 129 HUP), 130 Ctrl-C."""
    return 128 + exc.signum if isinstance(exc, StackInterrupted) else 128 + signal.SIGINT


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextmanager
def stop_on_signals(signals: tuple[int, ...] = STOP_SIGNALS) -> Iterator[None]:
    """For the duration, SIGTERM and SIGHUP raise ``StackInterrupted`` in the main thread (as
    SIGINT raises ``KeyboardInterrupt``), so the stack stops whole as on Ctrl-C.

    Only the first of these signals (SIGINT included) interrupts: one that arrives while the
    shutdown runs is ignored, so a second Ctrl-C or a supervisor's repeated SIGTERM cannot cut
    the shutdown short and orphan a part (it is bounded: each ``stop()`` escalates to SIGKILL).
    Outside the main thread Python cannot install handlers: then this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if stopping:
            return
        stopping.append(signum)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise StackInterrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (*signals, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class AirflowAPIError(StackError):
    code = "stack.api_error"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


#: The bench's pseudonym key: the demo, the benchmarks and the tests use it. The product has no
#: built-in key (docpost.settings refuses to look a recipient up without DOCPOST_PSEUDONYM_KEY).
BENCH_PSEUDONYM_KEY = "docpost-test-bench-key-never-for-production"


def use_bench_key() -> bool:
    """Give this process (and what it starts) the bench's pseudonym key unless one is set.

    Returns True when it did, so the caller can say so.
    """
    if os.environ.get("DOCPOST_PSEUDONYM_KEY"):
        return False
    os.environ["DOCPOST_PSEUDONYM_KEY"] = BENCH_PSEUDONYM_KEY
    return True


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
        if not self.members():
            _watchdog.forget(sid)


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


# The watchdog: reads "+SID" / "-SID" lines until end-of-file (its owner is gone, however it
# ended), then ends every session still registered: SIGTERM to each member, SIGKILL after the
# grace period. Meanwhile it drops, once a second, sessions that ended on their own, and any
# whose leader's pid now belongs to a newer process (pids are reused: pid_max can be 32768), so
# it never ends an unrelated session that happens to get a registered id. Standard library
# only, no site packages: it starts in milliseconds and depends on nothing the stack may break.
WATCHDOG_CODE = r"""
import os, select, signal, sys, time
for s in (signal.SIGINT, signal.SIGHUP):  # meant for the owner's terminal, not for us
    signal.signal(s, signal.SIG_IGN)
grace = float(sys.argv[1])
sessions = {}  # session id -> its leader's start time (clock ticks after boot)

def processes():
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] not in "ZX":
                found[int(name)] = (int(fields[3]), fields[19])  # session, start time
    return found

def prune():
    procs = processes()
    for sid, start in list(sessions.items()):
        leader = procs.get(sid)
        if leader is not None and leader[1] != start:
            del sessions[sid]  # the id was reused: so the session had ended
        elif not any(session == sid for session, _ in procs.values()):
            del sessions[sid]  # ended

def members():
    prune()
    return [pid for pid, (session, _) in processes().items() if session in sessions]

buffered = b""
while True:
    if select.select([0], [], [], 1.0)[0]:
        chunk = os.read(0, 4096)
        if not chunk:
            break
        *lines, buffered = (buffered + chunk).split(b"\n")
        for line in lines:
            sid = int(line[1:])
            if line[:1] == b"+":
                leader = processes().get(sid)
                sessions[sid] = leader[1] if leader else None
            else:
                sessions.pop(sid, None)
    else:
        prune()

for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
    pids = members()
    if not pids:
        break
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    deadline = time.monotonic() + wait
    while members() and time.monotonic() < deadline:
        time.sleep(0.1)
"""


class _Watchdog:
    """One watchdog process per stack-owning process, started on first use.

    Why not ``PR_SET_PDEATHSIG`` in a ``preexec_fn``: ``preexec_fn`` is unsafe once threads run
    (the demo has the mail server's and the simulator's), the death signal follows the *thread*
    that forked (a stack started from a worker thread would die with that thread), and it
    reaches only the direct child (``airflow standalone``), not the scheduler, api-server or the
    log servers below it. The watchdog needs neither: end-of-file on its pipe is certain however
    the owner ends, and it ends whole sessions by id, so grandchildren that moved to a process
    group of their own go too.
    """

    def __init__(self, grace: float = 10.0) -> None:
        self.grace = grace
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._owner: int | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._owner == os.getpid() else None

    def _send(self, line: str) -> None:
        with self._lock:
            if self._owner != os.getpid() or self._proc is None or self._proc.poll() is not None:
                # first use, after a fork, or the watchdog was killed: a new one
                self._proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", WATCHDOG_CODE, str(self.grace)],
                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True, text=True, bufsize=1,
                )
                self._owner = os.getpid()
            try:
                self._proc.stdin.write(line + "\n")
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass

    def watch(self, sid: int) -> None:
        self._send(f"+{sid}")

    def forget(self, sid: int) -> None:
        if self._owner == os.getpid() and self._proc is not None and self._proc.poll() is None:
            self._send(f"-{sid}")


_watchdog = _Watchdog()


def spawn_session(cmd: list[str], *, log_path: Path | None = None, stop_signal: int = signal.SIGTERM,
                  **popen: Any) -> ProcessHandle:
    """``Popen(cmd, start_new_session=True, **popen)`` registered with the watchdog.

    The child leads a new session (its pid is the session and group id), so a terminal's
    SIGINT/SIGHUP does not reach it directly: the owner stops it, and ``ProcessHandle.stop``
    ends every process of the session.
    """
    proc = subprocess.Popen(cmd, start_new_session=True, **popen)
    _watchdog.watch(proc.pid)
    return ProcessHandle(proc, log_path, stop_signal)


def _spawn(cmd: list[str], env: dict[str, str] | None, log_path: Path | None,
           stop_signal: int = signal.SIGTERM) -> ProcessHandle:
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out: Any = open(log_path, "ab")
    else:
        out = subprocess.DEVNULL
    try:
        return spawn_session(cmd, log_path=log_path, stop_signal=stop_signal, env=env, stdin=subprocess.DEVNULL,
                             stdout=out, stderr=subprocess.STDOUT, cwd=str(log_path.parent) if log_path else None)
    finally:
        if log_path is not None:
            out.close()


def run_command(cmd: list[str], env: dict[str, str] | None, log_path: Path, timeout: float) -> int:
    """Run ``cmd`` to its end in a session of its own (output appended to ``log_path``); its
    exit code. Interrupted (Ctrl-C, ``StackInterrupted``) or past ``timeout`` (then
    ``subprocess.TimeoutExpired``), the whole session is stopped, not just its leader."""
    handle = _spawn(cmd, env, log_path)
    try:
        return handle.process.wait(timeout=timeout)
    finally:
        handle.stop(timeout=10)


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
        except BaseException as exc:  # interrupted too: no moto left behind
            handle.stop(timeout=2)
            if not isinstance(exc, StackStartError) or attempt == attempts - 1:
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
    use_bench_key()
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
    if run_command([_bin("airflow"), "db", "migrate"], env, log, timeout):
        raise StackStartError("airflow db migrate failed", log_tail=log.read_text(errors="replace")[-4000:])


def admin_password(home: Path) -> str:
    """The admin's password in ``home``: chosen on first use and written where the simple auth
    manager keeps it (``$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated``, 0600)."""
    password_file = Path(home) / PASSWORD_FILE
    if not password_file.exists():
        password_file.write_text(json.dumps({ADMIN_USER: secrets.token_urlsafe(12)}) + "\n")
        password_file.chmod(0o600)
    return json.loads(password_file.read_text())[ADMIN_USER]


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
    password = admin_password(home)
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
