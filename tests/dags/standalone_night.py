"""One slow scenario shared by the tests that need a real Airflow with a night run: ``airflow
standalone`` (scheduler, API server, dag-processor, triggerer, and docpost's UI plugin) on SQLite
in a temporary AIRFLOW_HOME, a moto S3 server, the SF1601 simulator over mutual TLS, and the
embedded ledger (a SQLite file).

:func:`standalone_night` runs it once per test session: two generated nights dropped into S3 (the
generator's recipient register given to the simulator: some recipients are unknown or exempt, so
their letters fail by receipt), night 1 triggered over REST, then an Airflow backfill over both
nights. What the nightly test asserts on is captured right after (``first``, ``after``,
``deliveries``...), before any other test acts on the ledger; the stack stays up for the browser
test and stops when the session ends.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from docpost_testbench import stack

NIGHTS = [dt.date(2026, 3, 2), dt.date(2026, 3, 3)]
BUCKET = "docpost-standalone"


@dataclass
class Night:
    """The scenario's parts and what it observed."""

    airflow: stack.AirflowHandle
    sim: Any
    store: Any
    ledger_url: str
    expected: dict[str, list[str]]
    recipients: dict[str, str]  # the simulator's register: every recipient's clear CPR/CVR
    run_id: str  # night 1, triggered over REST
    state: str
    tis: list[dict]
    first: dict[int, tuple]  # night 1's (state, attempts) by message id after the REST run
    sends_after_first: dict[str, int]
    backfill_runs: list[dict]
    messages: dict[dt.date, list] = field(default_factory=dict)  # each night's rows after the backfill
    deliveries: dict[str, int] = field(default_factory=dict)  # the simulator's after the backfill


_night: Night | None = None


def standalone_night(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Night:
    """The session's one standalone night (started by the first test that asks)."""
    global _night
    if _night is None:
        stoppers: list = []
        request.config.add_cleanup(lambda: [stop() for stop in reversed(stoppers)])
        _night = _run(tmp_path_factory.mktemp("standalone"), stoppers)
    return _night


def _run(tmp_path: Path, stoppers: list) -> Night:
    from docpost_testbench.generate import generate_night
    from docpost_testbench.pki import create_test_pki
    from docpost_testbench.simulator.runner import start_simulator

    from docpost.ledger import Ledger
    from docpost.storage import ObjectStore, S3Sink

    moto = stack.start_moto()
    stoppers.append(moto.stop)
    store = ObjectStore(BUCKET, endpoint_url=moto.url, backend="boto3")
    store.ensure_bucket()
    expected: dict[str, list[str]] = {}
    recipients: dict[str, str] = {}
    for n, night in enumerate(NIGHTS):
        with S3Sink(store) as sink:
            generate_night(16, night, sink=sink, broken_share=0.1, seed=40 + n)
        expected.update(json.loads(store.get_bytes("expected.json")))
        recipients.update(json.loads(store.get_bytes("recipients.json")))
    pki = create_test_pki(tmp_path / "pki")
    register = tmp_path / "recipients.json"
    register.write_text(json.dumps(recipients))
    sim = start_simulator(tmp_path / "sim", register, {}, tls_cert=pki.server_cert, tls_key=pki.server_key,
                          client_ca=pki.ca_cert, client_cert=(pki.client_cert, pki.client_key))
    stoppers.append(sim.stop)
    home = tmp_path / "airflow"
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    env = stack.airflow_env(home, s3_endpoint_url=moto.url, bucket=BUCKET, extra_env={
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
        led = Ledger(ledger_url)
        first = {m.id: (m.state, m.attempts) for m in led.messages(led.message_ids(NIGHTS[0]))}
        sends_after_first = dict(sim.stats()["deliveries"])
        backfill = api.backfill("docpost_nightly", f"{NIGHTS[0]}T00:30:00+01:00", f"{NIGHTS[-1]}T23:00:00+01:00",
                                reprocess_behavior="completed", conf={"chunk_size": 50})
        api.wait_for_backfill(backfill["id"], timeout=1200)
        runs = api.backfill_runs("docpost_nightly")
    result = Night(airflow, sim, store, ledger_url, expected, recipients, run_id, state, tis, first, sends_after_first, runs)
    result.messages = {night: led.messages(led.message_ids(night)) for night in NIGHTS}
    result.deliveries = dict(sim.stats()["deliveries"])
    led.close()
    return result
