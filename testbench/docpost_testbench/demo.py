"""The embedded demo: the whole nightly job on this machine, with nothing configured.

Starts a moto S3 server, the SF1601 simulator (mutual TLS with a throwaway CA), a loopback SMTP
server standing in for the functional mailboxes, and Airflow in a temporary home (SQLite
metadata, SQLite ledger), drops a generated night into S3, runs ``docpost_nightly`` and then
``docpost_receipts`` for it, and prints the night's summary. Then the simulated citizens answer
some of the letters (and write new messages, some of them awkward) and ``docpost_replies`` routes
them: where they landed is printed. After each ``airflow dags test`` the run's state is read from
Airflow's metadata database, not from the command's exit code: a failed run is reported with its
failed tasks, their errors and the log, the stack is stopped and the demo exits non-zero. With
``ui=True`` it starts ``airflow standalone`` on the same stack instead and leaves it running for an
operator (URL and login printed), e.g. to start a backfill from the UI.

Ctrl-C, SIGTERM and SIGHUP (a closed terminal) stop the whole stack the same way, whatever the
demo is doing; the exit code is then 130, 143 or 129 (``stack.stop_on_signals``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from docpost import config
from docpost_testbench import stack
from docpost.dag_defaults import WATCHER, WATCHER_FAILURE

NIGHTLY = "docpost_nightly"
RECEIPTS = "docpost_receipts"
REPLIES = "docpost_replies"
# what the simulated citizens send back: routable answers and new messages, and awkward ones
INBOUND = {"reply": 12, "new": 4, "legacy": 2, "closed_contact_point": 1, "unknown_contact_point": 1,
           "unknown_original": 1, "reply_not_possible": 1, "malformed": 1, "hostile": 1}
POOL = "docpost_sf1601"
POOL_SLOTS = 4


@dataclass
class DemoStack:
    """The running parts of the embedded stack and the environment Airflow runs in."""

    home: Path
    env: dict[str, str]
    moto: object
    simulator: object
    mailsink: object = None
    endpoint: object = None  # the PostModtag endpoint (docpost_testbench.endpoint.Endpoint)
    stoppers: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        """Stop every part, last started first. A Ctrl-C or signal arriving meanwhile (outside
        ``stack.stop_on_signals``, which ignores it) does not leave the others running: the
        interrupted part is stopped once more, the rest too, then the interrupt is re-raised."""
        interrupted: BaseException | None = None
        for stop in reversed(self.stoppers):
            for _ in range(2):
                try:
                    stop()
                except KeyboardInterrupt as exc:
                    interrupted = interrupted or exc
                    continue
                except Exception:  # noqa: BLE001 - stop what can be stopped
                    pass
                break
        if interrupted is not None:
            raise interrupted


def default_night() -> dt.date:
    """Last night, as the 01:00 schedule sees it."""
    return dt.date.today() - dt.timedelta(days=1)


def logical_date_for(night: dt.date) -> str:
    """A logical date whose manual data interval starts at ``night`` 01:00 Copenhagen."""
    return f"{(night + dt.timedelta(days=1)).isoformat()}T02:00:00+01:00"


def _airflow(env: dict[str, str], *args: str, log: Path, timeout: float = 1800) -> subprocess.CompletedProcess:
    """``airflow ARGS`` in a session of its own; interrupted, its whole session is stopped
    (``airflow dags test`` runs task processes below it)."""
    cmd = [stack._bin("airflow"), *args]
    return subprocess.CompletedProcess(cmd, stack.run_command(cmd, env, log, timeout))


@dataclass
class RunOutcome:
    """How a DAG run ended, as Airflow's metadata database records it."""

    dag_id: str
    run_id: str | None
    state: str | None
    failed: list[tuple[str, int, int]]  # (task_id, map_index, try_number) of each failed task
    not_run: int  # task instances left upstream_failed

    @property
    def ok(self) -> bool:
        return self.state == "success"


#: The local AMQP broker standing in for the Beskedfordeler (RabbitMQ runs there on these machines).
LOCAL_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def _amqp_queue(url: str) -> str | None:
    """A queue of this demo's own on the broker at ``url``, or None when no broker answers there."""
    import uuid

    import pika

    try:
        connection = pika.BlockingConnection(pika.URLParameters(url + "?connection_attempts=1&socket_timeout=2"))
    except Exception:  # noqa: BLE001 - no broker: the demo takes receipts from the simulator's feed
        return None
    connection.close()
    return f"docpost.demo.{uuid.uuid4().hex[:8]}"


def receipts_line(parts: DemoStack) -> str | None:
    """How the receipts came: published by the simulator to the demo's AMQP queue, and what is left
    in it after docpost_receipts drained it (None without a broker)."""
    import pika

    queue = parts.env.get("DOCPOST_AMQP_QUEUE")
    if not queue:
        return None
    published = parts.simulator.get("/sim/stats").get("amqp", {}).get("published_cursor", 0)
    connection = pika.BlockingConnection(pika.URLParameters(LOCAL_AMQP_URL + "?connection_attempts=1&socket_timeout=2"))
    try:
        left = connection.channel().queue_declare(queue, passive=True).method.message_count
        try:  # declared by the consumer on its first drain
            quarantined = connection.channel().queue_declare(f"{queue}.quarantine", passive=True).method.message_count
        except pika.exceptions.ChannelClosedByBroker:
            quarantined = 0
    finally:
        connection.close()
    return (f"receipts            {published} Beskedfordeler envelopes published to {queue}; "
            f"docpost_receipts drained it ({left} left, {quarantined} quarantined)")


def _delete_queues(url: str, queue: str) -> None:
    """Remove the demo's receipt queue and its quarantine queue from the broker."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url + "?connection_attempts=1&socket_timeout=2"))
    try:
        channel = connection.channel()
        for name in (queue, f"{queue}.quarantine"):
            channel.queue_delete(name)
    finally:
        connection.close()


def start(home: Path, *, count: int, night: dt.date, seed: int, broken_share: float,
          say: Callable[[str], None], dag_s3_endpoint_url: str | None = None) -> DemoStack:
    """Start moto, the simulator and a prepared Airflow home; generate the night into S3.

    ``dag_s3_endpoint_url`` (tests) points the DAGs at another S3 endpoint than the moto server.
    """
    from docpost_testbench.generate import generate_night
    from docpost_testbench.simulator.runner import start_simulator
    from docpost.storage import ObjectStore, S3Sink
    from docpost_testbench.pki import create_test_pki

    if stack.use_bench_key():
        say("pseudonym key       the test bench's own (DOCPOST_PSEUDONYM_KEY is unset): never for production")
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    moto = stack.start_moto(log_path=home / "moto.log")
    parts = DemoStack(home, {}, moto, None, stoppers=[moto.stop])
    try:
        say(f"moto S3 server      {moto.url}")
        os.environ.update({"DOCPOST_S3_ENDPOINT_URL": moto.url, "AWS_ACCESS_KEY_ID": "testing",
                           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1"})
        store = ObjectStore(endpoint_url=moto.url, backend="boto3")
        store.ensure_bucket()
        t = time.perf_counter()
        with S3Sink(store) as sink:
            generate_night(count, night, sink=sink, broken_share=broken_share, seed=seed)
        say(f"generated night     {night} ({count} submissions, {broken_share:.0%} broken) "
            f"into s3://{config.settings().bucket}/inbox/ in {time.perf_counter() - t:.1f}s")
        pki = create_test_pki(home / "pki")
        register = home / "recipients.json"
        register.write_bytes(store.get_bytes("recipients.json"))
        queue = _amqp_queue(LOCAL_AMQP_URL)
        amqp = {"amqp_url": LOCAL_AMQP_URL, "amqp_queue": queue} if queue else {}
        if queue:
            parts.stoppers.append(lambda: _delete_queues(LOCAL_AMQP_URL, queue))
        sim = start_simulator(home / "simulator", register, {}, tls_cert=pki.server_cert, tls_key=pki.server_key,
                              client_ca=pki.ca_cert, client_cert=(pki.client_cert, pki.client_key),
                              subprocess_mode=True, config=amqp)
        parts.simulator = sim
        parts.stoppers.append(sim.stop)
        say(f"SF1601 simulator    {sim.url} (mutual TLS)")
        if queue:
            say(f"Beskedfordeler      receipts published to AMQP queue {queue} on 127.0.0.1:5672")
        else:
            say("Beskedfordeler      no AMQP broker on 127.0.0.1:5672: receipts come from the simulator's feed")
        from docpost_testbench.mailsink import start_mailsink

        parts.mailsink = start_mailsink(home / "mailboxes")
        parts.stoppers.append(parts.mailsink.stop)
        say(f"mail server (SMTP)  {parts.mailsink.host}:{parts.mailsink.port}, functional mailboxes in {home / 'mailboxes'}")
        airflow_home = home / "airflow"
        env = stack.airflow_env(airflow_home, s3_endpoint_url=dag_s3_endpoint_url or moto.url,
                                docpost_home=home / "docpost")
        env.update({
            "DOCPOST_DB_URL": os.environ.get("DOCPOST_DB_URL") or f"sqlite:///{home / 'docpost' / 'ledger.db'}",
            "DOCPOST_SF1601_URL": sim.url,
            "DOCPOST_SF1601_CERT": str(pki.client_cert),
            "DOCPOST_SF1601_KEY": str(pki.client_key),
            "DOCPOST_SF1601_CA": str(pki.ca_cert),
            "DOCPOST_SMTP_HOST": parts.mailsink.host,
            "DOCPOST_SMTP_PORT": str(parts.mailsink.port),
        })
        if queue:
            env.update({"DOCPOST_AMQP_URL": LOCAL_AMQP_URL, "DOCPOST_AMQP_QUEUE": queue})
        from docpost_testbench.endpoint import Endpoint

        parts.endpoint = Endpoint({"DOCPOST_DB_URL": env["DOCPOST_DB_URL"]}, pki)
        parts.stoppers.append(parts.endpoint.stop)
        parts.endpoint.start()
        with sim.http() as client:  # the Postkomponent's side: push citizens' messages there
            client.post("/sim/inbound/push", json=parts.endpoint.push_settings()).raise_for_status()
        say(f"PostModtag endpoint {parts.endpoint.url} (mutual TLS; the simulator pushes citizens' messages)")
        (home / "docpost").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(stack.metadata_db_template(), airflow_home / "airflow.db")
        _airflow(env, "pools", "set", POOL, str(POOL_SLOTS), "Bounds concurrent SF1601 delivery",
                 log=airflow_home / "setup.log", timeout=300)
        parts.env = env
        return parts
    except BaseException:
        parts.stop()
        raise


def run_dag(parts: DemoStack, dag_id: str, night: dt.date, conf: dict | None = None) -> RunOutcome:
    """``airflow dags test`` for ``night`` in the stack's Airflow home; returns how the run ended,
    as the metadata database records it (not the command's exit code)."""
    args = ["dags", "test", dag_id, logical_date_for(night)]
    if conf:
        args += ["--conf", json.dumps(conf)]
    _airflow(parts.env, *args, log=parts.home / f"{dag_id}.log")
    return run_outcome(parts, dag_id)


def run_outcome(parts: DemoStack, dag_id: str) -> RunOutcome:
    """The latest run of ``dag_id`` in the stack's SQLite metadata database, and its failed tasks."""
    db = Path(parts.env["AIRFLOW_HOME"]) / "airflow.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        run = conn.execute("SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1",
                           (dag_id,)).fetchone()
        if run is None:
            return RunOutcome(dag_id, None, None, [], 0)
        tis = conn.execute("SELECT task_id, map_index, try_number, state FROM task_instance "
                           "WHERE dag_id = ? AND run_id = ? AND state IN ('failed', 'upstream_failed') "
                           "ORDER BY task_id, map_index", (dag_id, run[0])).fetchall()
    failed = [(task_id, map_index, tries) for task_id, map_index, tries, state in tis
              if state == "failed" and task_id != WATCHER]
    return RunOutcome(dag_id, run[0], run[1], failed, sum(state == "upstream_failed" for *_, state in tis))


def log_errors(log: Path) -> list[str]:
    """The exceptions that ended tasks in a ``dags test`` log: each traceback's last line, once."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    errors = []
    # a chained exception's last line is followed by a blank line and "The above exception ..."
    for before, line, after in zip(lines, lines[1:], lines[2:] + ["(end)"]):
        if (before.startswith(" ") and re.match(r"[A-Za-z_][\w.]*: ", line) and after.strip()
                and WATCHER_FAILURE not in line and line not in errors):
            errors.append(line)
    return errors


def report_failure(parts: DemoStack, outcome: RunOutcome, say: Callable[[str], None]) -> None:
    """Say which tasks of a run that did not succeed failed, why, and where their log is."""
    log = parts.home / f"{outcome.dag_id}.log"
    say(f"FAILED              {outcome.dag_id} run {outcome.run_id or '(none recorded)'}: "
        f"state {outcome.state or '(none)'}; log (airflow dags test) {log}")
    for task_id, map_index, tries in outcome.failed:
        say(f"  failed task       {task_id}{f'[{map_index}]' if map_index >= 0 else ''} after {tries} attempt(s)")
    if outcome.not_run:
        say(f"  not run           {outcome.not_run} task(s) upstream_failed")
    for error in log_errors(log):
        say(f"  error             {error}")


@contextmanager
def _docpost_env(parts: DemoStack):
    """This process sees the stack's DOCPOST_*/AWS_* settings for the duration."""
    env_backup = dict(os.environ)
    try:
        os.environ.update({k: v for k, v in parts.env.items() if k.startswith(("DOCPOST_", "AWS_"))})
        yield
    finally:
        os.environ.clear()
        os.environ.update(env_backup)


def refresh_summary(parts: DemoStack, night: dt.date) -> str:
    """Rewrite the night's report now that receipts are in, and return its text."""
    from docpost import pipeline

    with _docpost_env(parts):
        pipeline.summarize(night, actor="demo")
        return pipeline.store().get_bytes(f"reports/{night.isoformat()}/summary.txt").decode()


def answer_letters(parts: DemoStack, seed: int, timeout: float = 60.0) -> dict:
    """The simulated citizens answer delivered letters (and write new messages), and the
    Postkomponent pushes them to the PostModtag endpoint; the push outcomes (accepted, refused)."""
    created = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    with parts.simulator.http() as client:
        response = client.post("/sim/inbound/generate", json={"seed": seed, "counts": INBOUND, "created": created})
        response.raise_for_status()
        deadline = time.monotonic() + timeout
        while (stats := client.get("/sim/inbound/stats").json())["pending"] and time.monotonic() < deadline:
            time.sleep(0.2)
    return stats["pushed"]


def replies_summary(parts: DemoStack) -> list[str]:
    """Where the replies went: mails per functional mailbox, and the manual queue by reason."""
    from docpost.replies import manual_queue

    by_mailbox = Counter(r for m in parts.mailsink.messages() for r in m.rcpt_tos)
    lines = [f"mailed              {sum(by_mailbox.values())} to {len(by_mailbox)} functional mailboxes"]
    lines += [f"                    {n:3d}  {box}" for box, n in sorted(by_mailbox.items())]
    with _docpost_env(parts):
        queue = manual_queue()
    reasons = Counter(r.reason_code or "?" for r in queue)
    lines.append(f"manual queue        {len(queue)} (docpost replies manual): "
                 + ", ".join(f"{code} {n}" for code, n in sorted(reasons.items())))
    return lines


def _say_quietly(say: Callable[[str], None], line: str) -> None:
    """``say`` when the terminal may be gone (SIGHUP): a write that fails must not replace the
    interrupt being handled; later output goes nowhere instead of failing the exit."""
    try:
        say(line)
    except OSError:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the rest of this process


def run(*, count: int = 200, night: dt.date | None = None, seed: int = 1, broken_share: float = 0.1,
        home: Path | None = None, ui: bool = False, say: Callable[[str], None] = print,
        dag_s3_endpoint_url: str | None = None) -> int:
    """The README's main command (``make demo``), or with ``ui`` the operator's stack (``make ui``).

    Returns 1 as soon as a DAG run failed (its failed tasks and logs said), else 0. Ctrl-C,
    SIGTERM or SIGHUP (when called in the main thread) stop the whole stack; the return value
    is then 130, 143 or 129, as a shell reports a process ended by that signal.
    """
    with stack.stop_on_signals():
        try:
            return _run(count=count, night=night, seed=seed, broken_share=broken_share, home=home, ui=ui,
                        say=say, dag_s3_endpoint_url=dag_s3_endpoint_url)
        except KeyboardInterrupt as exc:  # StackInterrupted included; the stack is stopped by now
            name = signal.Signals(getattr(exc, "signum", signal.SIGINT)).name
            _say_quietly(say, f"stopped by {name}; the stack is stopped")
            return stack.exit_code(exc)


def _run(*, count: int, night: dt.date | None, seed: int, broken_share: float, home: Path | None, ui: bool,
         say: Callable[[str], None], dag_s3_endpoint_url: str | None) -> int:
    night = night or default_night()
    home = (home or config.settings().home / "demo").resolve()
    t0 = time.perf_counter()
    parts = start(home, count=count, night=night, seed=seed, broken_share=broken_share, say=say,
                  dag_s3_endpoint_url=dag_s3_endpoint_url)
    try:
        if ui:
            return _serve_ui(parts, night, say)
        say(f"running             {NIGHTLY} for night {night} (airflow dags test; log {home / (NIGHTLY + '.log')})")
        t = time.perf_counter()
        outcome = run_dag(parts, NIGHTLY, night)
        say(f"                    finished in {time.perf_counter() - t:.1f}s, run {outcome.state}")
        if not outcome.ok:
            report_failure(parts, outcome, say)
            return 1
        time.sleep(1.5)  # the simulator publishes receipts shortly after delivery
        say(f"running             {RECEIPTS} (delivery receipts)")
        outcome = run_dag(parts, RECEIPTS, night)
        if not outcome.ok:
            report_failure(parts, outcome, say)
            return 1
        line = receipts_line(parts)
        if line:
            say(line)
        say("")
        say(refresh_summary(parts, night))
        pushed = answer_letters(parts, seed)
        say(f"citizens answer     {sum(pushed.values())} messages pushed to the PostModtag endpoint "
            f"({', '.join(f'{n} {result}' for result, n in sorted(pushed.items()))}); running {REPLIES}")
        outcome = run_dag(parts, REPLIES, night)
        if not outcome.ok:
            report_failure(parts, outcome, say)
            return 1
        for line in replies_summary(parts):
            say(line)
        bucket = parts.env.get("DOCPOST_BUCKET", "docpost")
        say(f"reports             s3://{bucket}/reports/{night}/summary.json and summary.txt")
        say(f"rejection reports   s3://{bucket}/rejected/<source-system>/{night}/<submission-id>/")
        say(f"ledger              {parts.env['DOCPOST_DB_URL']}  (docpost status / docpost report)")
        say(f"done in {time.perf_counter() - t0:.0f}s; the stack is stopped, its files stay in {home}")
        return 0
    finally:
        parts.stop()


def _serve_ui(parts: DemoStack, night: dt.date, say: Callable[[str], None]) -> int:
    airflow = stack.start_standalone(Path(parts.env["AIRFLOW_HOME"]), parts.env)
    parts.stoppers.append(airflow.stop)
    say("")
    say(f"Airflow UI          {airflow.url}")
    say(f"login               {airflow.username} / {airflow.password}")
    say(f"sample night        {night} is in S3; trigger {NIGHTLY} (or a backfill) from the UI")
    say("Ctrl-C (or SIGTERM, SIGHUP) stops the stack.")
    try:
        while airflow.handle.alive():
            time.sleep(2)
    except KeyboardInterrupt:
        _say_quietly(say, "stopping")
        raise  # run() stops the stack and answers 130 (Ctrl-C), 143 (SIGTERM) or 129 (SIGHUP)
    say(f"airflow standalone exited (code {airflow.handle.process.returncode}); log {airflow.log_path}")
    return 1
