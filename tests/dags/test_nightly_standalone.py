"""docpost_nightly on a real Airflow: ``airflow standalone`` (scheduler, API server, dag-processor,
triggerer) on SQLite in a temporary AIRFLOW_HOME, triggered and backfilled through the REST API.

The ledger is the embedded default (a SQLite file), S3 a moto server subprocess, delivery the
SF1601 simulator over mutual TLS. One night is triggered over REST; then an Airflow backfill over
two nights (the one already run, and the next) processes each night's drops exactly once. (Three
nights through ``dag.test()`` are in test_nightly_dag.py: every task instance costs seconds here.)
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from docpost_testbench import stack
from docpost_testbench.generate import generate_night
from docpost.ledger import Ledger, MessageState
from docpost.storage import ObjectStore, S3Sink

pytestmark = [pytest.mark.slow, pytest.mark.airflow, pytest.mark.integration, pytest.mark.timeout(1800)]

NIGHTS = [dt.date(2026, 3, 2), dt.date(2026, 3, 3)]
DONE = {MessageState.REJECTED, MessageState.SUBMITTED, MessageState.FAILED,
        MessageState.DELIVERED_DIGITAL, MessageState.DELIVERED_PHYSICAL}


def test_nightly_on_standalone_airflow_rest_trigger_and_backfill(tmp_path: Path):
    from docpost_testbench.simulator.runner import start_simulator
    from docpost_testbench.pki import create_test_pki

    moto = stack.start_moto()
    stoppers = [moto.stop]
    try:
        bucket = "docpost-standalone"
        store = ObjectStore(bucket, endpoint_url=moto.url, backend="boto3")
        store.ensure_bucket()
        expected: dict[str, list[str]] = {}
        for n, night in enumerate(NIGHTS):
            with S3Sink(store) as sink:
                generate_night(16, night, sink=sink, broken_share=0.1, seed=40 + n)
            expected.update(json.loads(store.get_bytes("expected.json")))
        pki = create_test_pki(tmp_path / "pki")
        register = tmp_path / "recipients.json"
        register.write_text("{}")
        sim = start_simulator(tmp_path / "sim", register, {}, tls_cert=pki.server_cert, tls_key=pki.server_key,
                              client_ca=pki.ca_cert, client_cert=(pki.client_cert, pki.client_key))
        stoppers.append(sim.stop)
        home = tmp_path / "airflow"
        ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
        env = stack.airflow_env(home, s3_endpoint_url=moto.url, bucket=bucket, extra_env={
            "DOCPOST_DB_URL": ledger_url,
            "DOCPOST_SF1601_URL": sim.url,
            "DOCPOST_SF1601_CERT": str(pki.client_cert),
            "DOCPOST_SF1601_KEY": str(pki.client_key),
            "DOCPOST_SF1601_CA": str(pki.ca_cert),
        })
        stack.install_metadata_db(env)
        pool = subprocess.run([str(Path(sys.executable).parent / "airflow"), "pools", "set", "docpost_sf1601", "2",
                               "SF1601 delivery"], env=env, capture_output=True, text=True, timeout=300)
        assert pool.returncode == 0, pool.stderr[-2000:]
        airflow = stack.start_standalone(home, env)
        stoppers.append(airflow.stop)
        with airflow.api() as api:
            api.wait_for_dag("docpost_nightly", timeout=180)
            assert not api.import_errors()
            api.unpause("docpost_nightly")  # (also schedules the latest night: an empty inbox)
            run_id = api.trigger("docpost_nightly", conf={"night": NIGHTS[0].isoformat(), "chunk_size": 10})
            state = api.wait_for_run("docpost_nightly", run_id, timeout=600, poll=1.0)
            tis = api.task_instances("docpost_nightly", run_id)
            assert state == "success", (airflow.handle.log_tail(60), [(t["task_id"], t["state"]) for t in tis])
            mapped = [t for t in tis if t["task_id"] == "process.validate"]
            assert len(mapped) == 2  # 16 letters (less the one without _READY) in chunks of 10

            led = Ledger(ledger_url)
            first = {m.id: (m.state, m.attempts) for m in led.messages(led.message_ids(NIGHTS[0]))}
            sends_after_first = dict(sim.stats()["deliveries"])

            backfill = api.backfill("docpost_nightly", f"{NIGHTS[0]}T00:30:00+01:00",
                                    f"{NIGHTS[-1]}T23:00:00+01:00", reprocess_behavior="completed",
                                    conf={"chunk_size": 50})
            api.wait_for_backfill(backfill["id"], timeout=1200)
            runs = [r for r in api.backfill_runs("docpost_nightly")]
            assert len(runs) == len(NIGHTS) and all(r["state"] == "success" for r in runs), runs

        for night in NIGHTS:
            msgs = led.messages(led.message_ids(night))
            names = {f"{m.source_system}/{night.isoformat()}/{m.submission_id}": m for m in msgs}
            ready = {k for k, v in expected.items() if k.split("/")[1] == night.isoformat()
                     and "submission.not-ready" not in v}
            assert set(names) == ready, night  # each night's drops registered once
            assert all(m.state in DONE for m in msgs), {m.state for m in msgs}
            assert store.exists(f"reports/{night.isoformat()}/summary.json")
        # the night run twice (REST, then again inside the backfill) moved nothing the second time
        assert {m.id: (m.state, m.attempts) for m in led.messages(led.message_ids(NIGHTS[0]))} == first
        deliveries = sim.stats()["deliveries"]
        assert max(deliveries.values()) == 1
        assert {k: v for k, v in deliveries.items() if k in sends_after_first} == sends_after_first
    finally:
        for stop in reversed(stoppers):
            stop()
