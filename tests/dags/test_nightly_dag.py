"""docpost_nightly through Airflow's own ``dag.test()`` (``airflow dags test``), end to end.

Real parts: the moto S3 server over HTTP, PostgreSQL on 127.0.0.1:5432 (the ledger), the SF1601
simulator over HTTPS with mutual TLS, and Airflow in a temporary home with its SQLite metadata
database. Airflow runs in a child process (its own AIRFLOW_HOME), so the test can kill it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from docpost_testbench import stack
from docpost_testbench.demo import logical_date_for as logical_date
from docpost_testbench.generate import generate_night
from docpost.ledger import Ledger, MessageState
from docpost.storage import ObjectStore, S3Sink
from pg_support import fresh_schema

pytestmark = [pytest.mark.integration, pytest.mark.airflow, pytest.mark.slow]

NIGHT = dt.date(2026, 11, 20)
S = MessageState


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from docpost_testbench.pki import create_test_pki

    return create_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture()
def airflow_stack(tmp_path, s3_bucket, s3_endpoint, pg_url, pki):
    """Airflow home + env pointing at moto, a fresh ledger schema on PostgreSQL, the simulator."""
    from docpost_testbench.simulator.runner import start_simulator

    fresh_schema(pg_url)
    register = tmp_path / "recipients.json"
    register.write_text("{}")
    sim = start_simulator(tmp_path / "sim", register, {}, tls_cert=pki.server_cert, tls_key=pki.server_key,
                          client_ca=pki.ca_cert, client_cert=(pki.client_cert, pki.client_key),
                          config={"receipt_delay": 0})
    env = stack.airflow_env(tmp_path / "airflow", s3_endpoint_url=s3_endpoint, bucket=s3_bucket)
    env.update({
        "DOCPOST_DB_URL": pg_url,
        "DOCPOST_SF1601_URL": sim.url,
        "DOCPOST_SF1601_CERT": str(pki.client_cert),
        "DOCPOST_SF1601_KEY": str(pki.client_key),
        "DOCPOST_SF1601_CA": str(pki.ca_cert),
        "DOCPOST_CLAIM_LEASE_SECONDS": "3",
    })
    stack.install_metadata_db(env)
    yield env, sim, Ledger(pg_url)
    sim.stop()


def drop_night(night: dt.date, count: int, seed: int) -> dict:
    with S3Sink(ObjectStore()) as sink:
        generate_night(count, night, sink=sink, broken_share=0.1, seed=seed)
    return json.loads(ObjectStore().get_bytes("expected.json"))


def dags_test(env, night: dt.date, conf: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    args = [str(Path(sys.executable).parent / "airflow"), "dags", "test", "docpost_nightly", logical_date(night)]
    if conf:
        args += ["--conf", json.dumps(conf)]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)


def snapshot(led: Ledger) -> list[tuple]:
    ids = led.message_ids()
    return [(m.id, m.state, m.attempts, m.pdf_sha256, len(led.history(m.id))) for m in led.messages(ids)]


def s3_state(prefix: str = "") -> dict[str, str]:
    store = ObjectStore()
    out = {}
    for page in store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket, Prefix=prefix):
        for obj in page.get("Contents", ()):
            out[obj["Key"]] = obj["ETag"]
    return out


def sim_deliveries(sim) -> dict[str, int]:
    return sim.stats()["deliveries"]


def test_nightly_end_to_end_then_rerun_changes_nothing(airflow_stack):
    env, sim, led = airflow_stack
    expected = drop_night(NIGHT, 40, seed=5)
    run = dags_test(env, NIGHT, {"chunk_size": 15})
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    msgs = led.messages(led.message_ids())
    ready = {k for k, v in expected.items() if "submission.not-ready" not in v}
    assert len(msgs) == len(ready)
    for m in msgs:
        name = f"{m.source_system}/{m.submission_date.isoformat()}/{m.submission_id}"
        if expected[name]:
            assert m.state == S.REJECTED
        else:
            assert m.state in (S.SUBMITTED, S.FAILED, S.DELIVERED_DIGITAL, S.DELIVERED_PHYSICAL), m.state
            assert m.reply_type and m.pdf_sha256
    assert ObjectStore().exists(f"reports/{NIGHT.isoformat()}/summary.json")
    assert sim_deliveries(sim) and max(sim_deliveries(sim).values()) == 1

    before, objects, deliveries = snapshot(led), s3_state(), sim_deliveries(sim)
    again = dags_test(env, NIGHT, {"chunk_size": 15})
    assert again.returncode == 0, again.stdout[-4000:]
    assert snapshot(led) == before  # not one state, attempt or event more
    assert s3_state() == objects  # not one object written differently
    assert sim_deliveries(sim) == deliveries

    # docpost_receipts settles what was submitted, twice over changes nothing more
    receipts = [str(Path(sys.executable).parent / "airflow"), "dags", "test", "docpost_receipts"]
    for _ in range(2):
        time.sleep(1)
        done = subprocess.run(receipts, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-4000:]
    settled = led.messages(led.message_ids())
    assert not [m for m in settled if m.state == S.SUBMITTED]
    assert all(m.channel for m in settled if m.state in (S.DELIVERED_DIGITAL, S.DELIVERED_PHYSICAL))
    assert sim_deliveries(sim) == deliveries


def test_dry_run_sends_nothing(airflow_stack):
    env, sim, led = airflow_stack
    drop_night(NIGHT, 12, seed=6)
    run = dags_test(env, NIGHT, {"dry_run": True})
    assert run.returncode == 0, run.stdout[-4000:]
    states = {m.state for m in led.messages(led.message_ids())}
    assert S.SUBMITTED not in states and S.RENDERED in states
    assert sim_deliveries(sim) == {}


def test_killed_run_then_rerun_loses_nothing_and_sends_nothing_twice(airflow_stack):
    env, sim, led = airflow_stack
    expected = drop_night(NIGHT, 60, seed=7)
    args = [str(Path(sys.executable).parent / "airflow"), "dags", "test", "docpost_nightly", logical_date(NIGHT),
            "--conf", json.dumps({"chunk_size": 10})]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    # kill the whole process group (no exception, no cleanup) once some letters are sent
    deadline = time.monotonic() + 300
    killed_at = None
    while time.monotonic() < deadline and proc.poll() is None:
        if sim_deliveries(sim):
            os.killpg(proc.pid, signal.SIGKILL)
            killed_at = {m.id: m.state for m in led.messages(led.message_ids())}
            break
        time.sleep(0.2)
    proc.wait(timeout=30)
    assert killed_at is not None, "the run finished before it could be killed"
    assert any(s not in (S.SUBMITTED, S.REJECTED, S.FAILED) for s in killed_at.values()), "killed too late"
    time.sleep(4)  # the killed run's claims expire (lease 3 s in this test)
    rerun = dags_test(env, NIGHT, {"chunk_size": 10})
    assert rerun.returncode == 0, rerun.stdout[-4000:]
    ready = {k for k, v in expected.items() if "submission.not-ready" not in v}
    msgs = led.messages(led.message_ids())
    assert len(msgs) == len(ready)  # nothing lost, nothing registered twice
    for m in msgs:
        name = f"{m.source_system}/{m.submission_date.isoformat()}/{m.submission_id}"
        assert m.state in ((S.REJECTED,) if expected[name] else (S.SUBMITTED, S.FAILED, S.DELIVERED_DIGITAL,
                                                                 S.DELIVERED_PHYSICAL)), (name, m.state)
    deliveries = sim_deliveries(sim)
    sent = [m for m in msgs if m.state != S.REJECTED and m.reason_code != "sf1601.unknown-recipient"]
    assert deliveries and max(deliveries.values()) == 1  # each letter delivered exactly once
    assert len(deliveries) >= len([m for m in sent if m.state == S.SUBMITTED])


def test_three_nights_each_processed_exactly_once(airflow_stack):
    """A backfill's worth of nights, one run per logical date, then the middle one again."""
    env, sim, led = airflow_stack
    nights = [NIGHT + dt.timedelta(days=n) for n in range(3)]
    expected = {}
    for n, night in enumerate(nights):
        expected.update(drop_night(night, 10, seed=20 + n))
    for night in nights:  # the run for each night takes its data interval's night: no conf
        run = dags_test(env, night)
        assert run.returncode == 0, run.stdout[-4000:]
    before = snapshot(led)
    assert dags_test(env, nights[1]).returncode == 0
    assert snapshot(led) == before
    for night in nights:
        msgs = led.messages(led.message_ids(night))
        names = {f"{m.source_system}/{night.isoformat()}/{m.submission_id}" for m in msgs}
        ready = {k for k, v in expected.items() if k.split("/")[1] == night.isoformat()
                 and "submission.not-ready" not in v}
        assert names == ready
        assert all(m.state != S.RECEIVED for m in msgs)
        events = [e for m in msgs for e in led.history(m.id) if e.to_state == S.VALIDATED]
        assert len(events) == len([m for m in msgs if m.state != S.REJECTED])  # validated once each
        assert ObjectStore().exists(f"reports/{night.isoformat()}/summary.json")
    assert max(sim_deliveries(sim).values()) == 1
