"""The production topology, natively: Airflow's distributed engine on PostgreSQL and Redis.

``start()`` runs what docker-compose.yaml runs, as separate processes on loopback: the api-server,
the scheduler, the dag-processor, the triggerer and Celery workers (``airflow celery worker``),
with Airflow's metadata and the ledger in scratch PostgreSQL databases, Redis as the Celery broker
and the Celery result backend in the metadata database. Before the components start it runs
``docker/airflow-init.sh``, the compose file's init step, with the same environment and the
connections file ``docker/connections.json``: both migrations, the pool ``docpost_sf1601`` and
the connections. Every component shares one ``[api] secret_key`` and one JWT secret.

S3 (moto) and SF1601 (the simulator) are the caller's: pass the S3 endpoint, and the simulator's
URL and client certificate as ``SF1601_URL``, ``SF1601_CERT_FILE``, ``SF1601_KEY_FILE`` and
``SF1601_CA_FILE`` in ``extra_env`` (they fill the ``docpost_sf1601`` connection, as in the
compose file). ``docpost topology`` starts all of it and leaves it running.

With ``executor="LocalExecutor"`` there is no broker and no worker: the scheduler runs the tasks.
Several topologies can run side by side (other engineers' too): each has its own databases, its
own Redis database number and Celery queue, and free ports.
"""

from __future__ import annotations

import secrets
import signal
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Callable

from docpost import config
from docpost_testbench import stack

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379"
INIT_SCRIPT = config.PROJECT_ROOT / "docker" / "airflow-init.sh"
CONNECTIONS_FILE = config.PROJECT_ROOT / "docker" / "connections.json"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
#: a killed worker's task is found dead after this many seconds without a heartbeat (Airflow: 300)
HEARTBEAT_TIMEOUT = 30


@dataclass
class Topology:
    """A running topology: its environment, its processes and its scratch databases."""

    home: Path
    env: dict[str, str] = field(repr=False)
    url: str
    username: str
    password: str = field(repr=False)
    ledger_url: str
    metadata_url: str
    components: dict[str, stack.ProcessHandle] = field(repr=False)
    workers: list[stack.ProcessHandle] = field(repr=False)
    databases: list[str] = field(repr=False)
    admin_url: str = field(repr=False)
    queue: str = ""

    def api(self) -> stack.AirflowAPI:
        """A REST client of the api-server, logged in as the admin."""
        api = stack.AirflowAPI(self.url, self.username, self.password)
        api.token()
        return api

    def kill_worker(self, index: int) -> None:
        """SIGKILL every process of Celery worker ``index``: the worker, its pool processes and the
        task processes they supervise (which run in process groups of their own)."""
        handle = self.workers[index]
        for pid in handle.members():
            stack._signal_pid(pid, signal.SIGKILL)
        handle.stop(timeout=5)  # reaps it; anything left in its session is killed too

    def log_tail(self, lines: int = 30) -> str:
        """The end of every component's log, for a failed assertion's message."""
        parts = [*self.components.items(), *((f"worker-{i}", w) for i, w in enumerate(self.workers))]
        return "\n".join(f"--- {name} ---\n{h.log_tail(lines)}" for name, h in parts)

    def stop(self) -> None:
        """Stops the workers, then the components, then drops the scratch databases. Idempotent."""
        for handle in [*self.workers, *reversed(self.components.values())]:
            handle.stop(timeout=20)
        drop_databases(self.admin_url, self.databases)
        if self.queue:
            _drop_queue(self.env["AIRFLOW__CELERY__BROKER_URL"], self.queue)


def start(home: Path, *, executor: str = "CeleryExecutor", workers: int = 2, bucket: str,
          s3_endpoint_url: str, extra_env: dict[str, str] | None = None, dags_folder: Path | None = None,
          parallelism: int | None = None, worker_concurrency: int = 4, pg_admin_url: str = PG_ADMIN_URL,
          redis_url: str = REDIS_URL, timeout: float = 300.0) -> Topology:
    """Create the databases, run the init step, start every component; returns once the API
    answers and every worker is ready. ``extra_env`` is applied last (``DOCPOST_*``, ``AIRFLOW__*``
    and the connection variables of ``docker/connections.json``)."""
    if executor not in ("CeleryExecutor", "LocalExecutor"):
        raise ValueError(f"executor must be CeleryExecutor or LocalExecutor, not {executor!r}")
    celery = executor == "CeleryExecutor"
    home = Path(home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(4)
    metadata_db, ledger_db = f"docpost_topo_{token}_airflow", f"docpost_topo_{token}_ledger"
    create_database(pg_admin_url, metadata_db, template=metadata_template(pg_admin_url))
    databases = [metadata_db]
    try:
        create_database(pg_admin_url, ledger_db)
        databases.append(ledger_db)
        env = topology_env(home, executor=executor, bucket=bucket, s3_endpoint_url=s3_endpoint_url,
                           metadata_url=db_url(pg_admin_url, metadata_db, "psycopg2"),
                           ledger_url=db_url(pg_admin_url, ledger_db, "psycopg"),
                           dags_folder=dags_folder, parallelism=parallelism,
                           worker_concurrency=worker_concurrency, token=token,
                           redis_url=f"{redis_url}/{1 + int(token, 16) % 15}" if celery else None,
                           extra_env=extra_env)
    except BaseException:
        drop_databases(pg_admin_url, databases)
        raise
    topo = Topology(home, env, env["AIRFLOW__API__BASE_URL"], stack.ADMIN_USER, stack.admin_password(home),
                    env["DOCPOST_DB_URL"], env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], {}, [], databases,
                    pg_admin_url, env.get("AIRFLOW__OPERATORS__DEFAULT_QUEUE", "") if celery else "")
    try:
        init(env, home / "logs" / "init.log", timeout=timeout)
        for name in COMPONENTS:
            topo.components[name] = stack._spawn([stack._bin("airflow"), *name.split()], env,
                                                 home / "logs" / f"{name}.log")
        for i in range(workers if celery else 0):
            topo.workers.append(start_worker(env, home / "logs" / f"worker-{i}.log", f"w{i}-{token}"))
        stack._wait_http(f"{topo.url}/api/v2/monitor/health", topo.components["api-server"], timeout,
                         "airflow api-server", ok=lambda r: r.status_code == 200)
        for i, worker in enumerate(topo.workers):
            _wait_log(worker, " ready.", timeout, f"celery worker {i}")
    except BaseException:
        topo.stop()
        raise
    return topo


def topology_env(home: Path, *, executor: str, bucket: str, s3_endpoint_url: str, metadata_url: str,
                 ledger_url: str, redis_url: str | None, token: str, dags_folder: Path | None = None,
                 parallelism: int | None = None, worker_concurrency: int = 4,
                 extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every component: ``stack.airflow_env`` turned into the compose file's
    shape (PostgreSQL, the executor, one secret key and JWT secret, the init step's inputs)."""
    env = stack.airflow_env(home, dags_folder, s3_endpoint_url=s3_endpoint_url, bucket=bucket)
    env.update({
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW__CORE__PARALLELISM": str(parallelism or 8),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),  # one for every component
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",  # a parse takes a second, a busy machine more
        "DOCPOST_DB_URL": ledger_url,
        # the init step's inputs (docker/airflow-init.sh, docker/connections.json)
        "DOCPOST_CONNECTIONS_FILE": str(CONNECTIONS_FILE),
        "DOCPOST_SF1601_POOL_SLOTS": "4",
        "SF1601_URL": "https://127.0.0.1:1",  # no SF1601 unless the caller gives one
        "SF1601_CERT_FILE": "", "SF1601_KEY_FILE": "", "SF1601_CA_FILE": "",
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": "25", "SMTP_DISABLE_TLS": "true",
        "MAIL_FROM": "docpost@soeby.dk",
    })
    if redis_url:
        env.update({
            "AIRFLOW__CELERY__BROKER_URL": redis_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata_url.replace("+psycopg2", ""),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(worker_concurrency),
            "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": f"docpost-{token}",  # this topology's workers only
        })
    env.update(extra_env or {})
    return env


def init(env: dict[str, str], log_path: Path, timeout: float = 300.0) -> None:
    """Run the compose file's init step (``docker/airflow-init.sh``) in ``env``."""
    if stack.run_command(["bash", str(INIT_SCRIPT)], env, log_path, timeout):
        raise stack.StackStartError("the init step (docker/airflow-init.sh) failed",
                                    log_tail=log_path.read_text(errors="replace")[-4000:])


def start_worker(env: dict[str, str], log_path: Path, name: str) -> stack.ProcessHandle:
    """One ``airflow celery worker`` on this topology's queue, serving its logs on a port of its own."""
    worker_env = dict(env, AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(stack.free_port()),
                      AIRFLOW__LOGGING__LOGGING_LEVEL="INFO")  # its "ready." is what start() waits for
    return stack._spawn([stack._bin("airflow"), "celery", "worker", "--celery-hostname", f"{name}@%h",
                         "--queues", env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]], worker_env, log_path)


def _wait_log(handle: stack.ProcessHandle, marker: str, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not handle.alive():
            raise stack.StackStartError(f"{what} exited with code {handle.process.returncode}",
                                        log_tail=handle.log_tail())
        if handle.log_path and handle.log_path.exists() and marker in handle.log_path.read_text(errors="replace"):
            return
        time.sleep(0.5)
    raise stack.StackTimeout(f"{what} not ready within {timeout:.0f} s", log_tail=handle.log_tail())


# -- PostgreSQL ------------------------------------------------------------------------------


def metadata_template(admin_url: str = PG_ADMIN_URL, timeout: float = 600.0) -> str:
    """A migrated, empty Airflow metadata database on the server, built once per Airflow version
    (under an advisory lock); new topologies are created as copies of it (``CREATE DATABASE ...
    TEMPLATE``), sparing ``airflow db migrate`` its minute. Returns its name."""
    from sqlalchemy import create_engine, text

    name = "docpost_airflow_template_" + version("apache-airflow").replace(".", "_")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(hashtext('docpost.topology.template'))"))
            try:
                if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
                    return name
                build = f"{name}_build_{secrets.token_hex(3)}"
                conn.execute(text(f'CREATE DATABASE "{build}"'))
                try:
                    with tempfile.TemporaryDirectory(prefix="airflow-template-") as home:
                        env = stack.airflow_env(Path(home))
                        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = db_url(admin_url, build, "psycopg2")
                        stack.migrate_db(env, timeout=timeout)
                    conn.execute(text(f'ALTER DATABASE "{build}" RENAME TO "{name}"'))
                except BaseException:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{build}" WITH (FORCE)'))
                    raise
                return name
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(hashtext('docpost.topology.template'))"))
    finally:
        admin.dispose()


def db_url(admin_url: str, database: str, driver: str) -> str:
    """The URL of ``database`` on the server of ``admin_url``, with the SQLAlchemy ``driver``."""
    from sqlalchemy.engine import make_url

    return make_url(admin_url).set(drivername=f"postgresql+{driver}", database=database).render_as_string(
        hide_password=False)


def create_database(admin_url: str, name: str, template: str | None = None) -> None:
    """``CREATE DATABASE name [TEMPLATE template]`` (retried while another copy of the template runs)."""
    from sqlalchemy import create_engine, text

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for attempt in range(20):  # a template is busy while another topology copies it
                try:
                    conn.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
                    return
                except Exception as exc:  # psycopg's ObjectInUse
                    if "being accessed by other users" not in str(exc) or attempt == 19:
                        raise
                    time.sleep(0.5)
    finally:
        admin.dispose()


def drop_databases(admin_url: str, names: list[str]) -> None:
    """Drop the databases (connections to them are ended) and empty ``names``."""
    from sqlalchemy import create_engine, text

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for name in names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
    names.clear()


def _drop_queue(broker_url: str, queue: str) -> None:
    """Remove what this topology's Celery queue still holds from Redis."""
    import redis

    client = redis.Redis.from_url(broker_url)
    try:
        client.delete(queue)
    finally:
        client.close()


# -- docpost topology ------------------------------------------------------------------------


def serve(home: Path, *, executor: str, workers: int, count: int, night, seed: int,
          say: Callable[[str], None], ready: Callable[[dict], None]) -> int:
    """``docpost topology``: moto, the simulator (mutual TLS), a mail sink and the topology; drops
    a generated night of ``count`` letters (none for 0), hands ``ready`` where everything answers
    and runs until Ctrl-C, SIGTERM or SIGHUP; then stops it all. Returns the exit code."""
    from docpost.storage import ObjectStore, S3Sink
    from docpost_testbench.generate import generate_night
    from docpost_testbench.mailsink import start_mailsink
    from docpost_testbench.pki import create_test_pki
    from docpost_testbench.simulator.runner import start_simulator

    home = Path(home).resolve()
    stoppers: list = []
    with stack.stop_on_signals():
        try:
            if stack.use_bench_key():
                say("pseudonym key   the test bench's own (DOCPOST_PSEUDONYM_KEY is unset): never for production")
            moto = stack.start_moto(log_path=home / "moto.log")
            stoppers.append(moto.stop)
            store = ObjectStore("docpost", endpoint_url=moto.url, backend="boto3")
            store.ensure_bucket()
            register = home / "recipients.json"
            register.write_text("{}")
            if count:
                with S3Sink(store) as sink:
                    generate_night(count, night, sink=sink, broken_share=0.1, seed=seed)
                register.write_bytes(store.get_bytes("recipients.json"))
            pki = create_test_pki(home / "pki")
            sim = start_simulator(home / "simulator", register, {}, tls_cert=pki.server_cert,
                                  tls_key=pki.server_key, client_ca=pki.ca_cert,
                                  client_cert=(pki.client_cert, pki.client_key), subprocess_mode=True)
            stoppers.append(sim.stop)
            sink = start_mailsink(home / "mailboxes")
            stoppers.append(sink.stop)
            say(f"starting {executor} topology in {home / 'airflow'} (a minute or two) ...")
            topo = start(home / "airflow", executor=executor, workers=workers, bucket=store.bucket,
                         s3_endpoint_url=moto.url, extra_env={
                             "SF1601_URL": sim.url, "SF1601_CERT_FILE": str(pki.client_cert),
                             "SF1601_KEY_FILE": str(pki.client_key), "SF1601_CA_FILE": str(pki.ca_cert),
                             "SMTP_HOST": sink.host, "SMTP_PORT": str(sink.port)})
            stoppers.append(topo.stop)
            ready({"airflow_url": topo.url, "username": topo.username, "password": topo.password,
                   "executor": executor, "workers": len(topo.workers), "ledger_url": topo.ledger_url,
                   "s3_endpoint_url": moto.url, "bucket": store.bucket,
                   "night": night.isoformat() if count else None, "letters": count,
                   "sf1601_url": sim.url, "smtp": f"{sink.host}:{sink.port}", "mailboxes": str(home / "mailboxes"),
                   "logs": str(home / "airflow" / "logs")})
            say("running: unpause docpost_nightly and trigger it from the UI; Ctrl-C stops everything")
            while all(h.alive() for h in topo.components.values()):
                time.sleep(1.0)
            say("a component exited: stopping (see its log)")
            return 1
        except KeyboardInterrupt as exc:
            return stack.exit_code(exc)
        finally:
            for stop in reversed(stoppers):
                stop()
