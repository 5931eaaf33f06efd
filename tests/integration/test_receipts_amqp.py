"""Receipts from the Beskedfordeler over AMQP, on the real RabbitMQ (127.0.0.1:5672, guest/guest),
PostgreSQL and moto S3: a night's receipts with duplicates, out of order and an unreadable one;
a consumer killed between the ledger's commit and its ack; the broker down; and the simulator
publishing receipts end to end. Each test uses queues of its own and deletes them after."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pika
import pytest
from ledger_support import KEY, S, advance, postgresql_ledger, registration, wipe  # noqa: F401
from pydantic import SecretStr

from docpost import receipts as rc
from docpost.channels import beskedfordeler as bf
from docpost.errors import Unavailable
from docpost.ledger import Ledger
from docpost.settings import read_env
from docpost.storage import ObjectStore

pytestmark = pytest.mark.integration

BROKER = "amqp://guest:guest@127.0.0.1:5672/%2F"
ACTOR = "test:receipts-amqp"
AT = dt.datetime(2026, 11, 27, 8, 0, tzinfo=dt.timezone.utc)
ROOT = Path(__file__).resolve().parents[2]


def _broker_up() -> bool:
    try:
        pika.BlockingConnection(pika.URLParameters(BROKER + "?connection_attempts=1&socket_timeout=2")).close()
        return True
    except Exception:  # noqa: BLE001
        return False


if not _broker_up():  # pragma: no cover - the bench has RabbitMQ; say so instead of failing obscurely
    pytest.skip("RabbitMQ is not running on 127.0.0.1:5672", allow_module_level=True)


@pytest.fixture()
def queue():
    """A unique receipts queue; it and its quarantine queue are deleted after the test."""
    name = f"docpost.test.receipts.{uuid.uuid4().hex[:10]}"
    yield name
    conn = pika.BlockingConnection(pika.URLParameters(BROKER))
    ch = conn.channel()
    for q in (name, name + bf.QUARANTINE_SUFFIX):
        ch.queue_delete(q)
    conn.close()


@pytest.fixture()
def amqp_env(queue, monkeypatch):
    monkeypatch.setenv("DOCPOST_AMQP_URL", BROKER)
    monkeypatch.setenv("DOCPOST_AMQP_QUEUE", queue)
    monkeypatch.setenv("DOCPOST_AMQP_BATCH", "7")
    return read_env()


@pytest.fixture()
def led(postgresql_ledger):
    wipe(postgresql_ledger)
    return postgresql_ledger


def publish(queue: str, bodies: list[bytes]) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(BROKER))
    ch = conn.channel()
    ch.queue_declare(queue, durable=True)
    ch.confirm_delivery()
    for body in bodies:
        ch.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))
    conn.close()


def take_all(queue: str) -> list[tuple[dict, bytes]]:
    conn = pika.BlockingConnection(pika.URLParameters(BROKER))
    ch = conn.channel()
    out = []
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            break
        out.append((props.headers or {}, body))
    conn.close()
    return out


def depth(queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(BROKER))
    n = conn.channel().queue_declare(queue, passive=True).method.message_count
    conn.close()
    return n


def envelope(message_uuid: str, code: str, *, channel: str = rc.CHANNEL_DIGITAL, at: dt.datetime = AT,
             event: str | None = None) -> bytes:
    tid = str(uuid.uuid5(uuid.NAMESPACE_URL, message_uuid))
    xml = rc.build_post_status(transmission_id=tid, message_uuid=message_uuid, status_code=code, channel=channel,
                               transaction_time=at, correlation_id=tid)
    return rc.wrap_in_envelope(xml, event_id=event or str(uuid.uuid4()), sender_cvr="29189846", created=at)


def submitted(led: Ledger, n: int) -> list:
    ids = led.register([registration(i) for i in range(n)], actor="t").ids
    advance(led, ids, S.SUBMITTED)
    return led.messages(ids)


def moves(led: Ledger, message_id: int) -> list:
    """The events of a message that changed its state (what must happen once per receipt)."""
    return [e for e in led.history(message_id) if e.from_state != e.to_state]


def test_a_night_of_receipts_with_duplicates_out_of_order_and_garbage(amqp_env, queue, led, s3_bucket):
    letters = submitted(led, 20)
    bodies: list[bytes] = []
    for i, m in enumerate(letters):
        physical = i % 4 == 0
        if physical:  # a print stage before the final receipt
            bodies.append(envelope(m.message_uuid, rc.PRINT_STAGE_STATUSES[0], channel=rc.CHANNEL_PHYSICAL,
                                   at=AT - dt.timedelta(minutes=5)))
        final = envelope(m.message_uuid, rc.STATUS_DELIVERED_PHYSICAL if physical else rc.STATUS_DELIVERED_DIGITAL,
                         channel=rc.CHANNEL_PHYSICAL if physical else rc.CHANNEL_DIGITAL)
        bodies.append(final)
        if i % 3 == 0:
            bodies.append(final)  # the same receipt again
        if i % 5 == 1:  # out of order: the intermediate after the final one
            bodies.append(envelope(m.message_uuid, rc.STATUS_RECEIVED, at=AT - dt.timedelta(minutes=30)))
    bodies.insert(11, b"\x00\xffnot xml at all " + b"0101011234")  # garbage, with a CPR-like number
    publish(queue, bodies)

    counts = bf.drain(led, ObjectStore(), actor=ACTOR, settings=amqp_env)

    assert counts["received"] == len(bodies)
    assert counts["applied"] == 20 and counts["quarantined"] == counts["set_aside"] == 1
    assert counts["set_aside_by_code"] == {"receipt.xml-invalid": 1}
    assert counts["batches"] == -(-len(bodies) // 7) and counts["drained"]
    assert depth(queue) == 0  # everything acknowledged
    for i, m in enumerate(led.messages([m.id for m in letters])):
        assert m.state == (S.DELIVERED_PHYSICAL if i % 4 == 0 else S.DELIVERED_DIGITAL)
        assert [e.to_state for e in moves(led, m.id)][-1] == m.state
        assert sum(e.to_state == m.state for e in moves(led, m.id)) == 1  # settled once
        notes = [e.detail for e in led.history(m.id) if e.from_state == e.to_state]
        if i % 4 == 0:
            assert any(rc.PRINT_STAGE_STATUSES[0] in d for d in notes)  # the print stage is on its history
        if i % 5 == 1:
            assert any(rc.STATUS_RECEIVED in d for d in notes)
    quarantined = take_all(queue + bf.QUARANTINE_SUFFIX)
    assert len(quarantined) == 1
    headers, body = quarantined[0]
    assert body == bodies[11]
    assert headers[bf.HEADER_CODE] == "receipt.xml-invalid"
    assert "0101011234" not in json.dumps(headers, default=str)
    assert ObjectStore().exists(headers["x-docpost-set-aside-key"])

    again = bf.drain(led, ObjectStore(), actor=ACTOR, settings=amqp_env)  # nothing left
    assert again["received"] == 0 and again["drained"]


CHILD = textwrap.dedent("""
    import os, sys
    sys.path[:0] = [{plugins!r}]
    from docpost.channels import beskedfordeler as bf
    from docpost.ledger import Ledger
    from docpost.settings import read_env

    def die(self, channel, tag):  # killed right after the ledger committed, before the ack
        os.kill(os.getpid(), 9)

    bf.Consumer._ack = die
    led = Ledger({url!r}, pseudonym_key={key!r})
    bf.drain(led, None, actor="test:killed", settings=read_env())
""")


def test_a_consumer_killed_between_commit_and_ack_loses_nothing_and_applies_nothing_twice(
        amqp_env, queue, led, pg_url):
    letters = submitted(led, 12)
    bodies = [envelope(m.message_uuid, rc.STATUS_DELIVERED_DIGITAL) for m in letters]
    bodies += [envelope(m.message_uuid, rc.STATUS_RECEIVED, at=AT - dt.timedelta(minutes=1)) for m in letters[:3]]
    publish(queue, bodies)

    script = CHILD.format(plugins=str(ROOT / "plugins"), url=pg_url, key=KEY)
    child = subprocess.run([sys.executable, "-c", script], env={**os.environ}, capture_output=True, text=True,
                           timeout=60)
    assert child.returncode == -9, child.stderr
    settled = [m for m in led.messages([m.id for m in letters]) if m.state == S.DELIVERED_DIGITAL]
    assert len(settled) == 7  # the first batch committed, then the consumer died
    assert depth(queue) == len(bodies)  # nothing was acknowledged: all of it comes again

    counts = bf.drain(led, None, actor=ACTOR, settings=amqp_env)  # restarted

    assert counts["received"] == len(bodies) and counts["redelivered"] == 7
    assert counts["applied"] == 5 and counts["duplicates"] == 7
    assert depth(queue) == 0
    for m in led.messages([m.id for m in letters]):
        assert m.state == S.DELIVERED_DIGITAL
        assert sum(e.to_state == S.DELIVERED_DIGITAL for e in moves(led, m.id)) == 1
        notes = [e for e in led.history(m.id) if e.from_state == e.to_state]
        assert len(notes) == (1 if m.id in [x.id for x in letters[:3]] else 0)


def test_broker_down_is_unavailable(led, monkeypatch):
    from conftest import free_port

    monkeypatch.setenv("DOCPOST_AMQP_URL", f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F")
    with pytest.raises(Unavailable) as caught:
        bf.drain(led, None, actor=ACTOR, settings=read_env())
    assert caught.value.code == "infrastructure.amqp"
    assert "guest" not in str(caught.value)  # never the URL's credentials


def test_wrong_password_is_unavailable_without_the_password(led, queue):
    s = read_env().model_copy(update={"amqp_url": SecretStr("amqp://guest:s3cret-pw@127.0.0.1:5672/%2F"),
                                      "amqp_queue": queue})
    with pytest.raises(Unavailable) as caught:
        bf.drain(led, None, actor=ACTOR, settings=s)
    assert caught.value.code == "infrastructure.amqp-auth" and "s3cret" not in str(caught.value)


def test_token_credentials_send_the_assertion_with_the_assumed_mechanism(tmp_path):
    import base64

    assertion = b'<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_x"/>'
    token = tmp_path / "token"
    token.write_bytes(base64.b64encode(assertion))  # as the STS issues it
    s = read_env().model_copy(update={"amqp_url": SecretStr("amqps://bf.example:5671/BF"),
                                      "amqp_token_file": str(token)})
    params = bf.connection_parameters(s)
    assert params.virtual_host == "BF" and params.port == 5671 and params.ssl_options is not None

    class Start:
        mechanisms = b"PLAIN AMQPLAIN EXTERNAL"

    assert params.credentials.response_for(Start()) == ("EXTERNAL", assertion)
    Start.mechanisms = b"PLAIN"
    assert params.credentials.response_for(Start()) == (None, None)
    assert "Assertion" not in repr(params.credentials)


def test_the_simulator_publishes_receipts_that_settle_the_pipeline(tmp_path, s3_bucket, pg_url, queue, monkeypatch):
    """Simulator with amqp_url -> pipeline delivers -> fetch_receipts drains the queue -> DELIVERED."""
    from pg_support import fresh_schema
    from test_pipeline import NIGHT, run_night

    from docpost import pipeline
    from docpost.ledger import ledger_at
    from docpost.storage import S3Sink
    from docpost_testbench.generate import generate_night
    from docpost_testbench.pki import create_test_pki
    from docpost_testbench.simulator.runner import start_simulator

    pki = create_test_pki(tmp_path / "pki")
    fresh_schema(pg_url)
    monkeypatch.setenv("DOCPOST_DB_URL", pg_url)
    ledger_at.cache_clear()
    pipeline._client_for.cache_clear()
    store = ObjectStore()
    with S3Sink(store) as sink:
        generate_night(12, NIGHT, sink=sink, broken_share=0.0, seed=5)
    register = tmp_path / "recipients.json"
    register.write_bytes(store.get_bytes("recipients.json"))
    sim = start_simulator(tmp_path / "sim", register, {"duplicate_receipts": 0.5, "out_of_order_receipts": 0.5},
                          tls_cert=pki.server_cert, tls_key=pki.server_key, client_ca=pki.ca_cert,
                          client_cert=(pki.client_cert, pki.client_key),
                          config={"receipt_delay": 0.05, "amqp_url": BROKER, "amqp_queue": queue})
    try:
        for name, value in (("SF1601_URL", sim.url), ("SF1601_CERT", pki.client_cert),
                            ("SF1601_KEY", pki.client_key), ("SF1601_CA", pki.ca_cert),
                            ("AMQP_URL", BROKER), ("AMQP_QUEUE", queue)):
            monkeypatch.setenv(f"DOCPOST_{name}", str(value))
        run_night()
        led = pipeline.ledger()
        sent = [m for m in led.messages(led.message_ids()) if m.state == S.SUBMITTED]
        assert sent
        import time

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            stats = sim.stats()
            if stats["receipts"]["pending"] == 0 and \
                    stats["amqp"]["published_cursor"] == stats["receipts"]["published"]:
                break
            time.sleep(0.1)
        counts = pipeline.fetch_receipts(actor="test-receipts")
        assert counts["source"] == "beskedfordeler" and counts["set_aside"] == 0
        assert counts["applied"] == len(sent) and counts["received"] == stats["receipts"]["published"]
        for m in led.messages([m.id for m in sent]):
            assert m.state in (S.DELIVERED_DIGITAL, S.DELIVERED_PHYSICAL)
    finally:
        sim.stop()
