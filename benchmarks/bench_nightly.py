"""docpost_nightly at night scale: chunked mapped tasks against one mapped task per letter.

    .venv/bin/python benchmarks/bench_nightly.py [--count 20000] [--naive-count 200]
        [--chunk-size 500] [--db-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
        [--keep] [--skip-naive]

Starts the embedded stack (moto S3 server subprocess, SF1601 simulator subprocess with mutual TLS
and a throwaway CA, Airflow in a temporary home with SQLite metadata), drops ``--count``
generated submissions (5 % broken) for one night into S3 (timed on its own), and runs
``docpost_nightly`` for that night through ``airflow dags test`` (dag.test) in a child process.

Per-stage figures come from two places:
- Airflow's task instances (the home's metadata database): summed task seconds per stage, so
  letters/s = messages the stage handled / those seconds (one worker: dag.test runs tasks one
  at a time);
- the ledger's event history: per stage the span from the first to the last event leaving the
  stage's input state (events are stamped per chunk, so the first chunk's work is not in it).

Then the naive design on ``--naive-count`` letters: a temporary DAG (in a temporary dags folder)
maps ONE task per message id, each calling validate -> stamp -> render -> deliver with a
one-message chunk, on a fresh night, bucket, ledger and Airflow home. Airflow's
``max_map_length`` (1,024 by default) caps that design at 1,024 letters per run; the script
raises it for larger ``--naive-count``.

Ledger: a SQLite file per design by default. With ``--db-url`` (a PostgreSQL server URL; its
database is only used to connect) the script creates a scratch database per design and drops
it afterwards. Every process it started is stopped in ``finally``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from docpost_testbench import stack

NIGHT = dt.date(2026, 11, 2)
NAIVE_NIGHT = dt.date(2026, 11, 3)
BROKEN_SHARE = 0.05
STAGES = ("collect", "validate", "stamp", "render", "deliver")
# the ledger state each stage moves messages out of (collect: none, it creates them)
STAGE_FROM = {"validate": ("RECEIVED",), "stamp": ("VALIDATED",), "render": ("STAMPED",),
              "deliver": ("RENDERED", "RETRYING")}
FINAL = ("REJECTED", "SUBMITTED", "FAILED", "DELIVERED_DIGITAL", "DELIVERED_PHYSICAL")
# moto's access log colours some lines: '"\x1b[35m\x1b[1mGET /bucket/key HTTP/1.1...'
REQUEST_LINE = re.compile(r'"(?:\x1b\[[0-9;]*m)*(GET|PUT|POST|HEAD|DELETE) ')

NAIVE_DAG = '''\
"""Benchmark only: the naive design, one mapped task per letter (not part of docpost)."""
import pendulum
from airflow.sdk import dag, task

NIGHT = "{night}"


def _actor(context):
    return f"dag:{{context['dag'].dag_id}}/{{context['run_id']}}"


@dag(dag_id="docpost_naive", schedule=None, catchup=False,
     start_date=pendulum.datetime(2026, 1, 1, tz="Europe/Copenhagen"))
def docpost_naive():
    @task
    def collect(**context):
        from docpost import pipeline

        return pipeline.collect(NIGHT, actor=_actor(context))

    @task
    def message_ids(collected, **context):
        from docpost import pipeline
        from docpost.ledger import MessageState

        return pipeline.ledger().message_ids(states=[MessageState.RECEIVED])

    @task(pool="docpost_sf1601")
    def letter(message_id, **context):
        from docpost import pipeline

        chunk = pipeline.Chunk(NIGHT, message_id, 1, message_id, message_id)
        actor = _actor(context)
        counts = {{}}
        for stage in (pipeline.validate_chunk, pipeline.stamp_chunk, pipeline.render_chunk,
                      pipeline.deliver_chunk):
            counts.update(stage(chunk, actor=actor))
        return {{k: v for k, v in counts.items() if isinstance(v, int)}}

    @task(trigger_rule="all_done")
    def summary(results, **context):
        from docpost import pipeline

        return pipeline.summarize(NIGHT, actor=_actor(context))

    summary(letter.expand(message_id=message_ids(collect())))


docpost_naive()
'''


# --------------------------------------------------------------------------- stack


@dataclass
class Shared:
    """What both designs share: the temp dir, moto, the test PKI, and the things to stop."""

    root: Path
    moto: object
    pki: object
    db_admin: str | None
    stoppers: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        for stop in reversed(self.stoppers):
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - stop what can be stopped, say what could not
                print(f"  (cleanup: {type(exc).__name__}: {exc})", file=sys.stderr)
        self.stoppers.clear()


@dataclass
class Design:
    """One design's run: its bucket, ledger, Airflow home, simulator and measured figures."""

    name: str
    night: dt.date
    bucket: str
    home: Path
    env: dict[str, str] = field(default_factory=dict)
    db_url: str = ""
    figures: dict = field(default_factory=dict)


def moto_requests(shared: Shared) -> Counter:
    """S3 requests moto has answered so far, by HTTP method (from its access log)."""
    counts: Counter = Counter()
    log = shared.moto.handle.log_path
    if log and log.exists():
        with open(log, errors="replace") as fh:
            for line in fh:
                m = REQUEST_LINE.search(line)
                if m:
                    counts[m.group(1)] += 1
    return counts


def scratch_db(shared: Shared, name: str) -> str:
    """A fresh PostgreSQL database on the --db-url server, dropped when the benchmark ends."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    db = f"docpost_bench_{os.getpid()}_{name}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(shared.db_admin, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{db}"'))
    admin.dispose()

    def drop() -> None:
        eng = create_engine(shared.db_admin, isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        eng.dispose()

    shared.stoppers.append(drop)
    return make_url(shared.db_admin).set(database=db).render_as_string(hide_password=False)


def prepare(shared: Shared, design: Design, count: int, dags_folder: Path | None, seed: int) -> None:
    """Drop the night into the design's bucket (timed), start its simulator, prepare its Airflow home."""
    from docpost_testbench.generate import generate_night
    from docpost_testbench.simulator.runner import start_simulator
    from docpost.storage import ObjectStore, S3Sink

    design.home.mkdir(parents=True)
    store = ObjectStore(design.bucket, endpoint_url=shared.moto.url, backend="boto3")
    store.ensure_bucket()
    before = sum(moto_requests(shared).values())
    t = time.perf_counter()
    with S3Sink(store) as sink:
        generate_night(count, design.night, sink=sink, broken_share=BROKEN_SHARE, seed=seed)
    drop_s = time.perf_counter() - t
    design.figures["drop_s"] = drop_s
    design.figures["drop_requests"] = sum(moto_requests(shared).values()) - before
    print(f"[{design.name}] dropped {count} submissions for {design.night} into s3://{design.bucket}/inbox/ "
          f"in {drop_s:.1f} s ({count / drop_s:.1f} submissions/s, {design.figures['drop_requests']} S3 requests)",
          flush=True)

    register = design.home / "recipients.json"
    register.write_bytes(store.get_bytes("recipients.json"))
    pki = shared.pki
    sim = start_simulator(design.home / "simulator", register, {}, tls_cert=pki.server_cert,
                          tls_key=pki.server_key, client_ca=pki.ca_cert,
                          client_cert=(pki.client_cert, pki.client_key), subprocess_mode=True)
    shared.stoppers.append(sim.stop)
    design.db_url = (scratch_db(shared, design.name) if shared.db_admin
                     else f"sqlite:///{design.home / 'docpost' / 'ledger.db'}")
    (design.home / "docpost").mkdir(parents=True, exist_ok=True)
    env = stack.airflow_env(design.home / "airflow", dags_folder, s3_endpoint_url=shared.moto.url,
                            bucket=design.bucket, docpost_home=design.home / "docpost")
    env.update({
        "DOCPOST_DB_URL": design.db_url,
        "DOCPOST_SF1601_URL": sim.url,
        "DOCPOST_SF1601_CERT": str(pki.client_cert),
        "DOCPOST_SF1601_KEY": str(pki.client_key),
        "DOCPOST_SF1601_CA": str(pki.ca_cert),
    })
    if count > 1024:  # Airflow's max_map_length (default 1,024) would fail the naive expand
        env["AIRFLOW__CORE__MAX_MAP_LENGTH"] = str(count + 10)
    stack.install_metadata_db(env)
    airflow(env, "pools", "set", "docpost_sf1601", "4", "Bounds concurrent SF1601 delivery",
            log=design.home / "setup.log", timeout=300)
    design.env = env


def airflow(env: dict[str, str], *args: str, log: Path, timeout: float,
            progress: Callable[[float], None] | None = None, every: float = 60.0) -> int:
    """Run ``airflow ARGS`` in its own session; on timeout or interruption its whole group is ended."""
    with open(log, "ab") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    t = time.monotonic()
    try:
        while True:
            try:
                return proc.wait(timeout=every)
            except subprocess.TimeoutExpired:
                if time.monotonic() - t > timeout:
                    raise
                if progress:
                    progress(time.monotonic() - t)
    finally:
        if proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
                try:
                    os.killpg(proc.pid, sig)
                    proc.wait(timeout=wait)
                    break
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue


def logical_date_for(night: dt.date) -> str:
    """A logical date whose data interval starts at ``night`` 01:00 Copenhagen."""
    return f"{(night + dt.timedelta(days=1)).isoformat()}T02:00:00+01:00"


def run_dag(shared: Shared, design: Design, dag_id: str, conf: dict | None, timeout: float) -> None:
    """``airflow dags test`` in a child process; wall time, S3 requests and exit code into figures."""
    args = ["dags", "test", dag_id, logical_date_for(design.night)]
    if conf:
        args += ["--conf", json.dumps(conf)]
    log = design.home / f"{dag_id}.log"
    before = moto_requests(shared)
    print(f"[{design.name}] airflow dags test {dag_id} {design.night} (log {log}) ...", flush=True)
    t = time.perf_counter()

    def progress(elapsed: float) -> None:
        try:
            states, _ = ledger_figures(design)
        except Exception as exc:  # noqa: BLE001 - the ledger may not exist yet
            states = {"(ledger not readable)": type(exc).__name__}
        print(f"  [{design.name}] {elapsed:6.0f} s: {dict(sorted(states.items()))}", flush=True)

    code = airflow(design.env, *args, log=log, timeout=timeout, progress=progress)
    design.figures["wall_s"] = time.perf_counter() - t
    design.figures["exit"] = code
    design.figures["dag_requests"] = moto_requests(shared) - before
    print(f"[{design.name}] finished in {design.figures['wall_s']:.1f} s, exit {code}", flush=True)
    if code:
        print(log.read_text(errors="replace")[-3000:])


# --------------------------------------------------------------------------- measuring


def _ts(value) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value
    text = str(value).replace(" ", "T")
    parsed = dt.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def task_times(design: Design, dag_id: str) -> dict[str, dict]:
    """Per task (mapped instances together): count, summed seconds, first start, last end."""
    db = Path(design.env["AIRFLOW_HOME"]) / "airflow.db"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT task_id, state, start_date, end_date FROM task_instance WHERE dag_id = ?",
                            (dag_id,)).fetchall()
    out: dict[str, dict] = {}
    for task_id, state, start, end in rows:
        name = task_id.rsplit(".", 1)[-1]
        entry = out.setdefault(name, {"tasks": 0, "seconds": 0.0, "first": None, "last": None, "states": Counter()})
        entry["tasks"] += 1
        entry["states"][state] += 1
        s, e = _ts(start), _ts(end)
        if s and e:
            entry["seconds"] += (e - s).total_seconds()
            entry["first"] = min(filter(None, (entry["first"], s)))
            entry["last"] = max(filter(None, (entry["last"], e)))
    return out


def ledger_figures(design: Design) -> tuple[Counter, dict[str, dict]]:
    """Final state counts, and per stage: messages moved and the first-to-last event span."""
    from sqlalchemy import create_engine, func, select

    from docpost.ledger.schema import events, messages

    engine = create_engine(design.db_url)
    try:
        with engine.connect() as conn:
            states = Counter(dict(conn.execute(
                select(messages.c.state, func.count()).group_by(messages.c.state)).all()))
            rows = conn.execute(select(events.c.from_state, events.c.to_state, func.count(),
                                       func.min(events.c.at), func.max(events.c.at))
                                .group_by(events.c.from_state, events.c.to_state)).all()
    finally:
        engine.dispose()
    spans: dict[str, dict] = {}
    for from_state, to_state, n, first, last in rows:
        if from_state is None:
            stage = "collect"
        else:
            stage = next((s for s, src in STAGE_FROM.items() if from_state in src), None)
        if stage is None:
            continue
        entry = spans.setdefault(stage, {"moved": 0, "first": None, "last": None, "to": Counter()})
        entry["moved"] += n
        entry["to"][to_state] += n
        first, last = _ts(first), _ts(last)
        entry["first"] = min(filter(None, (entry["first"], first)))
        entry["last"] = max(filter(None, (entry["last"], last)))
    return states, spans


def rate(n: float, seconds: float) -> str:
    return f"{n / seconds:9.1f}" if seconds >= 1 else "        -"


def report_chunked(design: Design, count: int) -> None:
    times = task_times(design, "docpost_nightly")
    states, spans = ledger_figures(design)
    f = design.figures
    f.update(states=states, times=times, spans=spans)
    messages = sum(states.values())
    print()
    print(f"chunked design: {count} submissions, {messages} registered, night {design.night}")
    print(f"  {'stage':9} {'tasks':>5} {'task s':>8} {'letters':>7} {'letters/s':>9}   "
          f"{'event span s':>12} {'letters/s':>9}")
    for stage in STAGES:
        t = times.get(stage, {"tasks": 0, "seconds": 0.0})
        moved = spans.get(stage, {}).get("moved", 0)
        sp = spans.get(stage)
        span = (sp["last"] - sp["first"]).total_seconds() if sp and sp["first"] else 0.0
        f.setdefault("stage_rates", {})[stage] = moved / t["seconds"] if t["seconds"] else 0.0
        print(f"  {stage:9} {t['tasks']:5d} {t['seconds']:8.1f} {moved:7d} {rate(moved, t['seconds'])}   "
              f"{span:12.1f} {rate(moved, span)}")
    for other in ("plan", "summary"):
        if other in times:
            print(f"  {other:9} {times[other]['tasks']:5d} {times[other]['seconds']:8.1f}")
    task_total = sum(t["seconds"] for t in times.values())
    f["task_s"] = task_total
    req = f["dag_requests"]
    print(f"  wall time (airflow dags test, incl. process start and parsing) {f['wall_s']:.1f} s; "
          f"summed task time {task_total:.1f} s")
    print(f"  overall {messages / f['wall_s']:.1f} letters/s (wall), {f['wall_s'] / messages * 1000:.1f} ms per letter")
    print(f"  S3 requests during the run: {sum(req.values())} ({dict(req)}), "
          f"{sum(req.values()) / max(messages, 1):.1f} per letter")
    print(f"  final states: {dict(sorted(states.items()))}")


def report_naive(design: Design, count: int) -> None:
    times = task_times(design, "docpost_naive")
    states, _spans = ledger_figures(design)
    f = design.figures
    f.update(states=states, times=times)
    messages = sum(states.values())
    letter = times.get("letter", {"tasks": 0, "seconds": 0.0, "states": Counter()})
    f["task_s"] = sum(t["seconds"] for t in times.values())
    f["letter_task_s"] = letter["seconds"]
    req = f["dag_requests"]
    print()
    print(f"naive design: {count} submissions, {messages} registered, night {design.night}")
    print(f"  mapped letter tasks {letter['tasks']} ({dict(letter['states'])}), summed {letter['seconds']:.1f} s, "
          f"{letter['seconds'] / max(letter['tasks'], 1):.2f} s per task")
    print(f"  wall time {f['wall_s']:.1f} s, {f['wall_s'] / max(messages, 1):.2f} s per letter")
    print(f"  S3 requests during the run: {sum(req.values())}, {sum(req.values()) / max(messages, 1):.1f} per letter")
    print(f"  final states: {dict(sorted(states.items()))}")


def final_table(chunked: Design, naive: Design | None, args) -> None:
    c = chunked.figures
    n_c = sum(c["states"].values())
    rows = [("submissions dropped", f"{args.count}", f"{args.naive_count}" if naive else "-"),
            ("S3 drop (s)", f"{c['drop_s']:.1f}", f"{naive.figures['drop_s']:.1f}" if naive else "-"),
            ("letters registered", f"{n_c}", f"{sum(naive.figures['states'].values())}" if naive else "-"),
            ("dags test wall (s)", f"{c['wall_s']:.1f}", f"{naive.figures['wall_s']:.1f}" if naive else "-"),
            ("summed task time (s)", f"{c['task_s']:.1f}", f"{naive.figures['task_s']:.1f}" if naive else "-")]
    per_c = c["wall_s"] / n_c
    rows.append(("s per letter (wall)", f"{per_c:.3f}", ""))
    rows.append(("letters/s (wall)", f"{n_c / c['wall_s']:.1f}", ""))
    if naive:
        n_n = sum(naive.figures["states"].values())
        per_n = naive.figures["wall_s"] / n_n
        rows[-2] = ("s per letter (wall)", f"{per_c:.3f}", f"{per_n:.3f}")
        rows[-1] = ("letters/s (wall)", f"{n_c / c['wall_s']:.1f}", f"{n_n / naive.figures['wall_s']:.2f}")
    req_c = sum(c["dag_requests"].values()) / n_c
    rows.append(("S3 requests per letter", f"{req_c:.1f}",
                 f"{sum(naive.figures['dag_requests'].values()) / sum(naive.figures['states'].values()):.1f}"
                 if naive else "-"))
    for stage in STAGES:
        rows.append((f"{stage} letters/s (task)", f"{c['stage_rates'][stage]:.1f}", ""))
    print()
    print("=" * 64)
    print(f"{'':28}{'chunked':>16}{'naive':>16}")
    for name, a, b in rows:
        print(f"{name:28}{a:>16}{b:>16}")
    if naive:
        ratio = (naive.figures["wall_s"] / sum(naive.figures["states"].values())) / per_c
        print(f"{'ratio naive/chunked (s per letter)':40}{ratio:>20.1f}x")
    print(f"chunk size {args.chunk_size}; ledger {'PostgreSQL' if args.db_url else 'SQLite'}; "
          f"final states (chunked) {dict(sorted(c['states'].items()))}")
    print("=" * 64)


# --------------------------------------------------------------------------- main


def _interrupted(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000, help="submissions for the chunked run")
    parser.add_argument("--naive-count", type=int, default=200, help="submissions for the naive run")
    parser.add_argument("--chunk-size", type=int, default=500)
    parser.add_argument("--db-url", help="PostgreSQL server URL; a scratch database per design is created and dropped")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds per dags test")
    args = parser.parse_args()
    # SIGTERM (e.g. kill PID) unwinds like Ctrl-C, so the finally below stops every process
    signal.signal(signal.SIGTERM, _interrupted)

    from docpost_testbench.pki import create_test_pki

    t0 = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="docpost-bench-nightly-"))
    print(f"temp dir {root}", flush=True)
    stack.metadata_db_template()
    moto = stack.start_moto(log_path=root / "moto.log")
    shared = Shared(root, moto, None, args.db_url, [moto.stop])
    chunked, naive = None, None
    try:
        os.environ.update({"DOCPOST_S3_ENDPOINT_URL": moto.url, "AWS_ACCESS_KEY_ID": "testing",
                           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1"})
        shared.pki = create_test_pki(root / "pki")
        print(f"moto S3 server {moto.url}", flush=True)

        chunked = Design("chunked", NIGHT, "bench-chunked", root / "chunked")
        prepare(shared, chunked, args.count, None, args.seed)
        run_dag(shared, chunked, "docpost_nightly", {"chunk_size": args.chunk_size}, args.timeout)
        report_chunked(chunked, args.count)

        if not args.skip_naive:
            dags = root / "naive-dags"
            dags.mkdir()
            (dags / "docpost_naive.py").write_text(NAIVE_DAG.format(night=NAIVE_NIGHT.isoformat()))
            naive = Design("naive", NAIVE_NIGHT, "bench-naive", root / "naive")
            prepare(shared, naive, args.naive_count, dags, args.seed + 1)
            run_dag(shared, naive, "docpost_naive", None, args.timeout)
            report_naive(naive, args.naive_count)

        final_table(chunked, naive, args)
        print(f"benchmark total {time.perf_counter() - t0:.0f} s")
        return int(bool(chunked.figures.get("exit") or (naive and naive.figures.get("exit"))))
    finally:
        shared.stop()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
