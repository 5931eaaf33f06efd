"""docpost_nightly on the production topology: Airflow's api-server, scheduler, dag-processor,
triggerer and two Celery workers as separate processes, PostgreSQL metadata and ledger, Redis as
the broker (``docpost_testbench.topology``), set up by the compose file's init step.

One topology for the module, started once: a night triggered over REST runs on the Celery workers;
a second night loses one worker to SIGKILL mid-delivery and completes on the other, nothing lost
and nothing sent twice (the simulator's count); a backfill over two more nights processes each
once. SF1601 is the simulator over mutual TLS, reached through the ``docpost_sf1601`` connection
the init step created (no ``DOCPOST_SF1601_*`` variable is set).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from docpost.ledger import Ledger, MessageState as S
from docpost.storage import ObjectStore, S3Sink
from docpost_testbench import stack, topology
from docpost_testbench.generate import generate_night

pytestmark = [pytest.mark.slow, pytest.mark.airflow, pytest.mark.integration, pytest.mark.timeout(1500)]

DAG = "docpost_nightly"
NIGHT, KILLED_NIGHT = dt.date(2026, 4, 6), dt.date(2026, 4, 7)
BACKFILL_NIGHTS = [dt.date(2026, 4, 8), dt.date(2026, 4, 9)]
SENT = (S.SUBMITTED, S.FAILED, S.DELIVERED_DIGITAL, S.DELIVERED_PHYSICAL)


@pytest.fixture(scope="module")
def topo(tmp_path_factory):
    """moto, the simulator (mutual TLS) and the topology, shared by the module's tests."""
    from docpost_testbench.pki import create_test_pki
    from docpost_testbench.simulator.runner import start_simulator

    tmp = tmp_path_factory.mktemp("topology")
    moto = stack.start_moto()
    stoppers = [moto.stop]
    try:
        store = ObjectStore("docpost-topology", endpoint_url=moto.url, backend="boto3")
        store.ensure_bucket()
        pki = create_test_pki(tmp / "pki")
        register = tmp / "recipients.json"
        register.write_text("{}")
        sim = start_simulator(tmp / "sim", register, {}, tls_cert=pki.server_cert, tls_key=pki.server_key,
                              client_ca=pki.ca_cert, client_cert=(pki.client_cert, pki.client_key))
        stoppers.append(sim.stop)
        running = topology.start(tmp / "airflow", bucket=store.bucket, s3_endpoint_url=moto.url, workers=2,
                                 extra_env={"SF1601_URL": sim.url, "SF1601_CERT_FILE": str(pki.client_cert),
                                            "SF1601_KEY_FILE": str(pki.client_key),
                                            "SF1601_CA_FILE": str(pki.ca_cert),
                                            "DOCPOST_SF1601_CONCURRENCY": "2"})
        stoppers.append(running.stop)
        api = running.api()
        stoppers.append(api.close)
        api.wait_for_dag(DAG, timeout=300)
        api.unpause(DAG)  # (also schedules the latest night once: an empty inbox)
        yield running, api, sim, store, Ledger(running.ledger_url)
    finally:
        for stop in reversed(stoppers):
            stop()


def drop(store: ObjectStore, night: dt.date, count: int, seed: int) -> dict[str, list[str]]:
    with S3Sink(store) as sink:
        generate_night(count, night, sink=sink, broken_share=0.1, seed=seed)
    return json.loads(store.get_bytes("expected.json"))


def check_night(led: Ledger, sim, night: dt.date, expected: dict[str, list[str]]) -> None:
    """Every READY drop registered once, in its expected state; every sent letter delivered once."""
    msgs = led.messages(led.message_ids(night))
    by_name = {f"{m.source_system}/{night.isoformat()}/{m.submission_id}": m for m in msgs}
    assert len(by_name) == len(msgs)
    assert set(by_name) == {k for k, v in expected.items() if "submission.not-ready" not in v}
    for name, m in by_name.items():
        if expected[name]:
            assert m.state == S.REJECTED and m.reason_code in expected[name], (name, m.state, m.reason_code)
        else:
            assert m.state in SENT, (name, m.state, m.reason_code)
    deliveries = sim.stats()["deliveries"]
    submitted = [m.message_uuid for m in msgs if m.state == S.SUBMITTED]
    assert submitted and all(deliveries.get(uuid) == 1 for uuid in submitted)


def run_night(topo_, api, night: dt.date, chunk_size: int) -> tuple[str, list[dict]]:
    run_id = api.trigger(DAG, conf={"night": night.isoformat(), "chunk_size": chunk_size})
    state = api.wait_for_run(DAG, run_id, timeout=900, poll=2.0)
    tis = api.task_instances(DAG, run_id)
    assert state == "success", ([(t["task_id"], t["map_index"], t["state"]) for t in tis], topo_.log_tail())
    return run_id, tis


def received(topo_) -> list[int]:
    """Tasks each Celery worker received (its log, at INFO)."""
    return [w.log_path.read_text(errors="replace").count("execute_workload") for w in topo_.workers]


def test_init_step_created_the_pool_the_connections_and_both_schemas(topo):
    running, api, _, _, led = topo
    assert api.request("GET", "/pools/docpost_sf1601")["slots"] == 4
    conns = {c["connection_id"]: c for c in api.request("GET", "/connections", params={"limit": 100})["connections"]}
    assert conns["docpost_sf1601"]["conn_type"] == "http" and conns["smtp_default"]["conn_type"] == "smtp"
    from docpost import migrations

    assert led.revision() == migrations.head_revision()
    assert running.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert running.env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_night_over_rest_runs_on_the_celery_workers(topo):
    running, api, sim, store, led = topo
    expected = drop(store, NIGHT, 300, seed=61)
    before = sum(received(running))
    _, tis = run_night(running, api, NIGHT, chunk_size=100)
    assert len([t for t in tis if t["task_id"] == "process.deliver"]) == 3  # 297 READY letters
    assert {t["queue"] for t in tis} == {running.queue}  # this topology's Celery queue
    assert sum(received(running)) - before >= len(tis)  # every task instance went through a worker
    check_night(led, sim, NIGHT, expected)


def test_worker_killed_mid_chunk_the_other_completes_the_night(topo):
    running, api, sim, store, led = topo
    expected = drop(store, KILLED_NIGHT, 300, seed=62)
    sim.set_faults(slow=1.0, slow_seconds=0.4)  # deliveries take seconds: time to kill one
    sent_before = set(sim.stats()["deliveries"])
    run_id = api.trigger(DAG, conf={"night": KILLED_NIGHT.isoformat(), "chunk_size": 60})
    killed: list[int] = []
    deadline = time.monotonic() + 600
    while not killed and time.monotonic() < deadline:
        if set(sim.stats()["deliveries"]) - sent_before:  # a delivery chunk is sending
            for ti in api.task_instances(DAG, run_id):
                if ti["task_id"] == "process.deliver" and ti["state"] == "running" and ti.get("pid"):
                    owner = [i for i, w in enumerate(running.workers) if ti["pid"] in w.members()]
                    if owner:
                        running.kill_worker(owner[0])
                        killed.append(owner[0])
                        break
        time.sleep(0.5)
    assert killed, "no delivery chunk was caught running"
    threading.Timer(5.0, sim.set_faults, kwargs={"slow": 0.0}).start()
    assert not running.workers[killed[0]].alive() and running.workers[1 - killed[0]].alive()
    state = api.wait_for_run(DAG, run_id, timeout=900, poll=2.0)
    tis = api.task_instances(DAG, run_id)
    assert state == "success", ([(t["task_id"], t["map_index"], t["state"], t["try_number"]) for t in tis],
                                running.log_tail())
    assert any(t["task_id"] == "process.deliver" and t["try_number"] > 1 for t in tis)  # the killed one, retried
    check_night(led, sim, KILLED_NIGHT, expected)
    assert max(sim.stats()["deliveries"].values()) == 1


def test_backfill_over_two_nights_processes_each_once(topo):
    running, api, sim, store, led = topo
    expected = {}
    for n, night in enumerate(BACKFILL_NIGHTS):
        expected[night] = drop(store, night, 40, seed=70 + n)
    backfill = api.backfill(DAG, f"{BACKFILL_NIGHTS[0]}T00:30:00+02:00", f"{BACKFILL_NIGHTS[-1]}T23:00:00+02:00",
                            reprocess_behavior="completed", conf={"chunk_size": 50})
    api.wait_for_backfill(backfill["id"], timeout=900)
    runs = api.backfill_runs(DAG)
    assert len(runs) == len(BACKFILL_NIGHTS) and all(r["state"] == "success" for r in runs), runs
    for night in BACKFILL_NIGHTS:
        check_night(led, sim, night, expected[night])
        assert store.exists(f"reports/{night.isoformat()}/summary.json")
    assert max(sim.stats()["deliveries"].values()) == 1


def test_concurrent_first_ledger_migrations_wait_in_turn():
    """Four processes migrate one empty ledger at once (tasks on several workers on first use, the
    init step): the advisory lock in Ledger.upgrade lets each finish (without it three of four fail
    with a duplicate key on PostgreSQL's catalogue)."""
    from docpost import migrations

    name = f"docpost_topo_race_{secrets.token_hex(4)}"
    topology.create_database(topology.PG_ADMIN_URL, name)
    try:
        url = topology.db_url(topology.PG_ADMIN_URL, name, "psycopg")
        docpost = str(Path(sys.executable).with_name("docpost"))
        procs = [subprocess.Popen([docpost, "db", "upgrade", "--db-url", url], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
        outcomes = [(p.wait(timeout=300), p.stderr.read()[-2000:]) for p in procs]
        assert [code for code, _ in outcomes] == [0, 0, 0, 0], outcomes
        with Ledger(url) as led:
            assert led.revision() == migrations.head_revision()
    finally:
        topology.drop_databases(topology.PG_ADMIN_URL, [name])
