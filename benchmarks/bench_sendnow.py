"""Send now under a burst: N submits spread over a minute through the submit API, with Airflow running.

    .venv/bin/python benchmarks/bench_sendnow.py [--count 1000] [--seconds 60] [--clients 16]
        [--chunk-size 100] [--settle SECONDS] [--db-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Starts moto S3, the SF1601 simulator (mutual TLS), ``airflow standalone`` and ``docpost sendnow
serve`` (its own process, raising the docpost_now asset event), the ledger on a scratch PostgreSQL
database (dropped after). Sends ``--count`` generated letters at an even pace over ``--seconds``
from ``--clients`` threads, then waits until every letter is SUBMITTED. Prints: accepted and
refused answers, the API's answer time (median, 99th percentile, max), the pace reached, the time
until the last letter was SUBMITTED, the docpost_now runs (count, states), the simulator's
deliveries (letters, and letters delivered more than once), and the CPU seconds of each part
during the burst and until the last letter was SUBMITTED: the submit API, docpost's task
processes, Airflow's own processes, moto, the simulator and the benchmark's clients.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from docpost_testbench import stack
from docpost_testbench.measure import CpuSampler
from docpost_testbench.generate import build_submission
from docpost.commands.submit import SubmitClient
from docpost.model import READY_MARKER
from docpost.sendnow import DAG_ID, READY_PREFIX
from docpost.sendnow.intake import today

TOKEN = "bench-sendnow-token-0123456789"


def scratch_db(admin_url: str) -> tuple[str, callable]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"docpost_bench_now_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), drop


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0, help="spread the submits over this long")
    parser.add_argument("--clients", type=int, default=16, help="concurrent client threads")
    parser.add_argument("--chunk-size", type=int, default=100, help="DOCPOST_SENDNOW_CHUNK_SIZE")
    parser.add_argument("--settle", type=float, default=None,
                        help="DOCPOST_SENDNOW_SETTLE_SECONDS (0: a run starts its work at once)")
    parser.add_argument("--pool", type=int, default=4, help="slots of the docpost_sf1601 pool")
    parser.add_argument("--db-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                        help="PostgreSQL server; a scratch database is created and dropped")
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up waiting for SUBMITTED after this")
    args = parser.parse_args()

    from docpost_testbench.pki import create_test_pki
    from docpost_testbench.simulator.runner import start_simulator

    from docpost.ledger import Ledger
    from docpost.storage import ObjectStore

    stack.use_bench_key()
    letters = []
    for i in range(args.count):
        _key, files, _d = build_submission(2019, today(), i)
        letters.append({n: d for n, d in files.items() if n != READY_MARKER})
    stoppers = []
    with tempfile.TemporaryDirectory(prefix="docpost-bench-now-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            db_url, drop = scratch_db(args.db_url)
            stoppers.append(drop)
            moto = stack.start_moto()
            stoppers.append(moto.stop)
            bucket = "docpost-bench-now"
            ObjectStore(bucket, endpoint_url=moto.url, backend="boto3").ensure_bucket()
            pki = create_test_pki(tmp / "pki")
            (tmp / "recipients.json").write_text("{}")
            sim = start_simulator(tmp / "sim", tmp / "recipients.json", {}, tls_cert=pki.server_cert,
                                  tls_key=pki.server_key, client_ca=pki.ca_cert,
                                  client_cert=(pki.client_cert, pki.client_key), subprocess_mode=True)
            stoppers.append(sim.stop)
            sf1601 = {"DOCPOST_SF1601_URL": sim.url, "DOCPOST_SF1601_CERT": str(pki.client_cert),
                      "DOCPOST_SF1601_KEY": str(pki.client_key), "DOCPOST_SF1601_CA": str(pki.ca_cert)}
            home = tmp / "airflow"
            env = stack.airflow_env(home, s3_endpoint_url=moto.url, bucket=bucket, extra_env={
                "DOCPOST_DB_URL": db_url, "DOCPOST_SENDNOW_CHUNK_SIZE": str(args.chunk_size), **sf1601,
                **({} if args.settle is None else {"DOCPOST_SENDNOW_SETTLE_SECONDS": str(args.settle)})})
            stack.install_metadata_db(env)
            subprocess.run([str(Path(sys.executable).parent / "airflow"), "pools", "set", "docpost_sf1601",
                            str(args.pool), "SF1601"], env=env, check=True, capture_output=True, timeout=300)
            t = time.perf_counter()
            airflow = stack.start_standalone(home, env)
            stoppers.append(airflow.stop)
            api = airflow.api()
            stoppers.append(api.close)
            api.wait_for_dag(DAG_ID, timeout=300)
            api.unpause(DAG_ID)
            print(f"stack up (airflow, moto, simulator)   {time.perf_counter() - t:8.1f} s")
            denv = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
            denv.update({"DOCPOST_DB_URL": db_url, "DOCPOST_BUCKET": bucket, "DOCPOST_S3_ENDPOINT_URL": moto.url,
                         "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                         "AWS_DEFAULT_REGION": "eu-west-1", "DOCPOST_SENDNOW_TOKENS": f"sbsys={TOKEN}",
                         "DOCPOST_AIRFLOW_API_URL": airflow.url, "DOCPOST_AIRFLOW_API_USER": airflow.username,
                         "DOCPOST_AIRFLOW_API_PASSWORD": airflow.password, **sf1601})
            log = (tmp / "sendnow.log").open("w")
            proc = subprocess.Popen([str(Path(sys.executable).parent / "docpost"), "sendnow", "serve", "--port", "0"],
                                    env=denv, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
            stoppers.append(lambda: (os.killpg(proc.pid, 15), proc.wait(30)))
            line = proc.stdout.readline()
            if not line.startswith(READY_PREFIX):
                raise SystemExit(f"the submit API did not start: {line!r}")
            url = line[len(READY_PREFIX):].strip()

            # -- the burst: an even pace over --seconds, answered times measured per request
            times: list[float] = []
            codes: dict[int, int] = {}
            guard = threading.Lock()
            sampler = CpuSampler({"submit API": [proc.pid], "Airflow": [airflow.handle.pid],
                                  "moto": [moto.handle.pid], "simulator": [sim.pid]}).start()
            client_cpu = time.process_time()
            start = time.perf_counter()

            def one(i: int) -> None:
                due = start + args.seconds * i / args.count
                time.sleep(max(0.0, due - time.perf_counter()))
                t0 = time.perf_counter()
                code, _answer = client.post(f"bench-{i:05d}", letters[i])
                took = time.perf_counter() - t0
                with guard:
                    times.append(took)
                    codes[code] = codes.get(code, 0) + 1

            with SubmitClient(url, TOKEN) as client, ThreadPoolExecutor(max_workers=args.clients) as pool:
                list(pool.map(one, range(args.count)))
            sent_for = time.perf_counter() - start
            burst_cpu = {**sampler.totals(), "bench clients": time.process_time() - client_cpu}
            print(f"submits                               {args.count:8d} in {sent_for:.1f} s "
                  f"({args.count / sent_for:.1f}/s)")
            print(f"answers by HTTP status                {dict(sorted(codes.items()))}")
            print(f"answer time median                    {statistics.median(times) * 1000:8.1f} ms")
            print(f"answer time p99                       {percentile(times, 0.99) * 1000:8.1f} ms")
            print(f"answer time max                       {max(times) * 1000:8.1f} ms")

            # -- until every letter is SUBMITTED
            led = Ledger(db_url)
            while True:
                counts = led.report(today()).by_state
                waiting = sum(v for k, v in counts.items() if k in ("RECEIVED", "VALIDATED", "STAMPED", "RENDERED",
                                                                    "RETRYING"))
                if not waiting or time.perf_counter() - start > args.timeout:
                    break
                time.sleep(2)
            until = time.perf_counter() - start
            print(f"last letter SUBMITTED after           {until:8.1f} s from the first "
                  f"submit (states: {dict(sorted(counts.items()))})")
            total_cpu = {**sampler.stop()["cpu"], "bench clients": time.process_time() - client_cpu}
            for label, window, cpu in (("during the burst", sent_for, burst_cpu), ("until SUBMITTED", until, total_cpu)):
                print(f"CPU seconds {label:<26}" + ", ".join(
                    f"{k} {v:.0f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]))
                    + f" (total {sum(cpu.values()):.0f} of {2 * window:.0f} on 2 cores)")
            runs = api.runs(DAG_ID)
            for run in runs:
                if run["state"] not in ("success", "failed"):
                    api.wait_for_run(DAG_ID, run["dag_run_id"], timeout=600)
            runs = api.runs(DAG_ID)
            states: dict[str, int] = {}
            for run in runs:
                states[run["state"]] = states.get(run["state"], 0) + 1
            print(f"docpost_now runs                      {len(runs):8d} {states}")
            deliveries = sim.stats()["deliveries"]
            print(f"simulator: letters delivered          {len(deliveries):8d}, more than once: "
                  f"{sum(1 for v in deliveries.values() if v > 1)}")
        finally:
            for stop in reversed(stoppers):
                try:
                    stop()
                except Exception as exc:  # noqa: BLE001 - stop the rest whatever happened
                    print(f"(stopping: {type(exc).__name__})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
