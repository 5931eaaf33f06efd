"""docpost_replies through Airflow's own ``dag.test()`` (``airflow dags test``), with the mail
server taken from Airflow's ``smtp_default`` connection (the SMTP seam under Airflow).

Real parts: moto S3, PostgreSQL (the ledger), the SF1601 simulator over mutual TLS (it pushes the
citizens' messages to the PostModtag endpoint, a child process, as the Postkomponent does), the
loopback SMTP sink, and Airflow in a temporary home (child process).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from docpost_testbench import stack
from docpost_testbench.endpoint import Endpoint
from pg_support import fresh_schema

pytestmark = [pytest.mark.integration, pytest.mark.airflow, pytest.mark.slow]

NIGHT = dt.date(2026, 11, 21)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from docpost_testbench.pki import create_test_pki

    return create_test_pki(tmp_path_factory.mktemp("pki"))


def test_replies_dag_routes_and_mails_through_the_airflow_smtp_connection(
        tmp_path, s3_bucket, s3_endpoint, pg_url, pki, monkeypatch):
    from docpost import pipeline
    from docpost.ledger import ledger_at
    from docpost_testbench.generate import generate_night
    from docpost_testbench.mailsink import start_mailsink
    from docpost.replies.mail import mail_address
    from docpost_testbench.simulator.runner import start_simulator
    from docpost.storage import ObjectStore, S3Sink

    fresh_schema(pg_url)
    monkeypatch.setenv("DOCPOST_DB_URL", pg_url)
    ledger_at.cache_clear()
    pipeline._client_for.cache_clear()
    with S3Sink(ObjectStore()) as sink:
        generate_night(12, NIGHT, sink=sink, seed=3)
    register = tmp_path / "recipients.json"
    register.write_bytes(ObjectStore().get_bytes("recipients.json"))
    sim = start_simulator(tmp_path / "sim", register, {}, tls_cert=pki.server_cert, tls_key=pki.server_key,
                          client_ca=pki.ca_cert, client_cert=(pki.client_cert, pki.client_key),
                          config={"receipt_delay": 0})
    mails = start_mailsink(tmp_path / "mail")
    endpoint = Endpoint({"DOCPOST_DB_URL": pg_url}, pki)
    try:
        sf1601 = {"DOCPOST_SF1601_URL": sim.url, "DOCPOST_SF1601_CERT": str(pki.client_cert),
                  "DOCPOST_SF1601_KEY": str(pki.client_key), "DOCPOST_SF1601_CA": str(pki.ca_cert)}
        for k, v in sf1601.items():
            monkeypatch.setenv(k, v)
        pipeline.collect(NIGHT, actor="test")
        for chunk in pipeline.plan_chunks(NIGHT, chunk_size=20):
            for stage in (pipeline.validate_chunk, pipeline.stamp_chunk, pipeline.render_chunk,
                          pipeline.deliver_chunk):
                chunk = stage(chunk, actor="test")
        with sim.http() as client:
            answer = client.post("/sim/inbound/generate", json={
                "seed": 2, "counts": {"reply": 4, "new": 2, "unknown_contact_point": 1}}).json()
        items = answer["generated"]
        assert len(items) == 7, answer
        endpoint.start()  # the simulator pushes them to the PostModtag endpoint, which stores them
        with sim.http() as client:
            client.post("/sim/inbound/push", json=endpoint.push_settings()).raise_for_status()
        deadline = time.monotonic() + 60
        while sim.get("/sim/inbound/stats")["pending"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sim.get("/sim/inbound/stats")["pending"] == 0

        env = stack.airflow_env(tmp_path / "airflow", s3_endpoint_url=s3_endpoint, bucket=s3_bucket)
        env.update({"DOCPOST_DB_URL": pg_url, **sf1601})
        env.pop("DOCPOST_SMTP_HOST", None)
        env["AIRFLOW_CONN_SMTP_DEFAULT"] = json.dumps({
            "conn_type": "smtp", "host": mails.host, "port": mails.port,
            "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "svar@soeby.dk"}})
        stack.install_metadata_db(env)
        run = subprocess.run([str(Path(sys.executable).parent / "airflow"), "dags", "test", "docpost_replies",
                              "2026-11-22T10:00:00+01:00"], env=env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]

        got = mails.messages()
        routable = [i for i in items if i["kind"] in ("reply", "new")]
        # the endpoint stores each message under its messageUUID, and the mail names it
        assert Counter(str(m.message["X-Docpost-Inbound-Id"]) for m in got) == Counter(i["message_uuid"] for i in routable)
        assert {m.mail_from for m in got} == {"svar@soeby.dk"}  # the connection's from_email
        from docpost.hierarchy import load_hierarchy

        h = load_hierarchy()
        for item, mail in ((i, m) for i in routable for m in got if m.message["X-Docpost-Inbound-Id"] == i["message_uuid"]):
            cp = item["contact_point_id"] if item["kind"] == "reply" else h.emne(item["emne_id"]).contact_point_id
            assert mail.rcpt_tos == (mail_address(h.by_contact_point(cp).mailbox),)
        assert sim.get("/sim/inbound/stats")["pending"] == 0
    finally:
        endpoint.stop()
        mails.stop()
        sim.stop()
