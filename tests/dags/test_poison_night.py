"""A poisoned night through the three DAGs, on the real parts: the issue's acceptance.

A generated night of good letters (10 % broken on purpose) with the poison corpus mixed in
(tests/poison/submissions.py: submissions that pass ``docpost validate`` and break a later stage
or the collection itself), then odd receipts (tests/poison/receipts.py) on the SF1601 feed and
odd inbound messages (tests/poison/inbound.py) from citizens, pushed by the simulator to the
PostModtag endpoint as the Postkomponent does. Each DAG runs through
``airflow dags test`` in its own Airflow home (SQLite metadata) against moto S3 over HTTP, the
ledger on PostgreSQL, the SF1601 simulator over mutual TLS and the loopback SMTP sink.

Asserted: every DAG run *succeeded* as Airflow's database records it (no chunk or night blocked;
the exit code of ``airflow dags test`` is not looked at), every good letter SUBMITTED and then
delivered by its receipt, every poison in its final or waiting state with its code, every odd
receipt set aside with its code, every odd inbound message refused at the PostModtag endpoint's
door or stored, then mailed safely or queued with its code, and no letter text or CPR number in
any task log.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from docpost_testbench import demo, stack
from docpost_testbench.endpoint import Endpoint
from docpost.ledger import Ledger, MessageState
from docpost.storage import ObjectStore, S3Sink
from pg_support import fresh_schema

pytestmark = [pytest.mark.integration, pytest.mark.airflow, pytest.mark.slow]

NIGHT = dt.date(2026, 11, 18)
GOOD = 30
S = MessageState


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from docpost_testbench.pki import create_test_pki

    return create_test_pki(tmp_path_factory.mktemp("pki"))


def dags_test(env: dict, dag_id: str, logical_date: str, home: Path, conf: dict | None = None):
    """Run a DAG through ``airflow dags test``; return how the run ended in Airflow's database."""
    args = [str(Path(sys.executable).parent / "airflow"), "dags", "test", dag_id, logical_date]
    if conf:
        args += ["--conf", json.dumps(conf)]
    log = home / f"{dag_id}.log"
    with log.open("a") as out:
        subprocess.run(args, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=900)
    return demo.run_outcome(SimpleNamespace(env=env), dag_id), log.read_text(errors="replace")


def test_a_poisoned_night_through_the_dags(tmp_path, s3_bucket, s3_endpoint, pg_url, pki, monkeypatch):
    from docpost_testbench.generate import generate_night
    from docpost.ledger import ledger_at
    from docpost_testbench.mailsink import start_mailsink
    from docpost.receipts import SET_ASIDE_PREFIX
    from docpost_testbench.simulator.runner import start_simulator
    from poison import inbound, receipts, submissions

    fresh_schema(pg_url)
    monkeypatch.setenv("DOCPOST_DB_URL", pg_url)
    ledger_at.cache_clear()
    store = ObjectStore()
    poisons = submissions.corpus(NIGHT)
    with S3Sink(store) as sink:
        generate_night(GOOD, NIGHT, sink=sink, broken_share=0.1, seed=41)
    submissions.drop(store, poisons)
    expected = json.loads(store.get_bytes("expected.json"))
    register = {**json.loads(store.get_bytes("recipients.json")), **submissions.recipients(poisons)}
    (tmp_path / "recipients.json").write_text(json.dumps(register))
    sim = start_simulator(tmp_path / "sim", tmp_path / "recipients.json", {}, tls_cert=pki.server_cert,
                          tls_key=pki.server_key, client_ca=pki.ca_cert,
                          client_cert=(pki.client_cert, pki.client_key), config={"receipt_delay": 0})
    mails = start_mailsink(tmp_path / "mail")
    endpoint = Endpoint({"DOCPOST_DB_URL": pg_url}, pki)
    try:
        env = stack.airflow_env(tmp_path / "airflow", s3_endpoint_url=s3_endpoint, bucket=s3_bucket)
        env.update({
            "DOCPOST_DB_URL": pg_url, "DOCPOST_SF1601_URL": sim.url,
            "DOCPOST_SF1601_CERT": str(pki.client_cert), "DOCPOST_SF1601_KEY": str(pki.client_key),
            "DOCPOST_SF1601_CA": str(pki.ca_cert), "DOCPOST_MAX_FAULTS": "3",
            "DOCPOST_SMTP_HOST": mails.host, "DOCPOST_SMTP_PORT": str(mails.port),
        })
        stack.install_metadata_db(env)
        led = Ledger(pg_url)

        # -- the night: every chunk mixes good letters and poisons ----------------------------------
        night, log = dags_test(env, "docpost_nightly", demo.logical_date_for(NIGHT), tmp_path, {"chunk_size": 12})
        assert night.state == "success" and night.failed == [], (night, log[-3000:])
        rows = {(m.source_system, m.submission_id): m for m in led.messages(led.message_ids())}
        poison_keys = {(p.source_system, p.submission_id) for p in poisons}
        good = {k: m for k, m in rows.items() if k not in poison_keys}
        broken = {name for name, codes in expected.items() if codes}
        ready = {name for name, codes in expected.items() if "submission.not-ready" not in codes}
        assert {f"{sys_}/{NIGHT.isoformat()}/{sid}" for sys_, sid in good} == ready
        for (system, sub_id), m in good.items():
            name = f"{system}/{NIGHT.isoformat()}/{sub_id}"
            assert m.state == (S.REJECTED if name in broken else S.SUBMITTED), (name, m.state, m.reason_code)
        for p in poisons:
            m = rows.get((p.source_system, p.submission_id))
            if p.refused_folder:  # refused alone at collect, with its report, never registered
                assert m is None, p.name
                report = json.loads(store.get_bytes(p.rejection_key))
                assert report["errors"][0]["code"] == p.code, p.name
                continue
            assert m is not None and m.state in p.states, (p.name, m and m.state, m and m.reason_code)
            if p.code:
                assert m.reason_code == p.code, (p.name, m.reason_code)
            if p.quarantined:  # waiting: kept in its state, tried again by later nights
                assert m.faults == 1 and "tried again" in m.reason_text, p.name
        summary = json.loads(store.get_bytes(f"reports/{NIGHT.isoformat()}/summary.json"))
        assert summary["total"] == len(rows)
        held = Counter(p.code for p in poisons if p.quarantined)
        assert held and summary["held"] == dict(held)  # the operator sees what waits, and why
        text_report = store.get_bytes(f"reports/{NIGHT.isoformat()}/summary.txt").decode()
        assert f"held after unexpected failures, tried again by the next runs: {sum(held.values())}" in text_report

        # -- receipts: the good ones settle, the odd ones are set aside, the feed goes on -----------
        submitted = sorted(m.message_uuid for m in led.messages(led.message_ids()) if m.state == S.SUBMITTED)
        rejected = [m.message_uuid for m in rows.values() if m.state == S.REJECTED][:2]
        odd = receipts.odd_receipts(known_uuid=submitted[0], not_sent=rejected, seed="dag-night")
        injected = receipts.inject(sim, odd)
        fetched, log = dags_test(env, "docpost_receipts", "2026-11-19T10:00:00+01:00", tmp_path)
        assert fetched.state == "success" and fetched.failed == [], (fetched, log[-3000:])
        after = {(m.source_system, m.submission_id): m for m in led.messages(led.message_ids())}
        for p in poisons:
            if p.receipt_code:  # accepted by SF1601, failed by its receipt
                m = after[(p.source_system, p.submission_id)]
                assert m.state == S.FAILED and m.reason_code == p.receipt_code, (p.name, m.state, m.reason_code)
        receipt_failed = {(p.source_system, p.submission_id) for p in poisons if p.receipt_code}
        settled = Counter()
        for key, m in after.items():
            if rows[key].state == S.SUBMITTED and key not in receipt_failed:
                # delivered, or failed by the service for a recipient the generator made unknown to it
                assert m.state in (S.DELIVERED_DIGITAL, S.DELIVERED_PHYSICAL) or (
                    m.state == S.FAILED and m.reason_code.startswith("recipient.")), (key, m.state, m.reason_code)
                settled[m.state] += 1
        assert settled[S.DELIVERED_DIGITAL] + settled[S.DELIVERED_PHYSICAL] >= 0.7 * sum(settled.values()), settled
        aside = Counter()
        for key in store.list_objects(SET_ASIDE_PREFIX):
            aside[json.loads(store.get_bytes(key))["code"]] += 1
        assert aside == receipts.expected_set_aside(injected.values())

        # -- replies: odd messages from citizens are refused, or stored and mailed safely or queued --
        endpoint.start()
        with sim.http() as client:
            client.post("/sim/inbound/push", json=endpoint.push_settings()).raise_for_status()
        sent_in = inbound.inject(sim, large=False)
        pushed = inbound.wait_pushed(sim, sent_in)
        routed, log = dags_test(env, "docpost_replies", "2026-11-19T11:00:00+01:00", tmp_path)
        assert routed.state == "success" and routed.failed == [], (routed, log[-3000:])
        problems = inbound.check_pushed(sent_in, pushed, mails=mails.messages(), ledger=led)
        problems += inbound.raw_mail_problems(mails.directory)
        assert problems == []

        # -- nothing personal in what Airflow logged ------------------------------------------------
        logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("docpost_*.log"))
        for secret in (inbound.CPR, receipts.CPR, "Bodil Margrethe", "W" * 60, "Præstegårdsvej"):
            assert secret not in logs, secret
    finally:
        endpoint.stop()
        mails.stop()
        sim.stop()
