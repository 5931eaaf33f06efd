"""The PostModtag endpoint (SF1606) under the simulator's push, end to end: moto S3, PostgreSQL,
mutual TLS, the endpoint as a ``docpost postmodtag serve`` subprocess (docpost_testbench.endpoint) (SIGKILLed mid-stream and
restarted), then the replies DAG's library call routing what was stored to a loopback SMTP sink."""

from __future__ import annotations

import base64
import datetime as dt
import time
import uuid

import pytest
from pg_support import fresh_schema

from docpost_testbench.endpoint import Endpoint
from poison.inbound import push_state as pushed
from poison.inbound import wait_pushed as wait_answered

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NIGHT = dt.date(2026, 11, 26)
TODAY = dt.date(2026, 11, 27)
ROUTABLE = ("reply", "new", "legacy")
REFUSED = {"malformed": "inbound.malformed", "hostile": "inbound.hostile"}
MANUAL_REASON = {
    "closed_contact_point": "route.closed-contact-point",
    "unknown_contact_point": "route.unknown-contact-point",
    "unknown_original": "route.unknown-original",
    "reply_not_possible": "route.reply-not-possible",
}


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from docpost_testbench.pki import create_test_pki

    return create_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def delivered(tmp_path_factory, s3_endpoint, pg_url, pki):
    """A night delivered to the simulator (so citizens have letters to answer); env for docpost."""
    import boto3

    from docpost import pipeline
    from docpost.ledger import ledger_at
    from docpost.storage import ObjectStore, S3Sink
    from docpost_testbench.generate import generate_night
    from docpost_testbench.simulator.runner import start_simulator

    tmp = tmp_path_factory.mktemp("postmodtag")
    mp = pytest.MonkeyPatch()
    bucket = f"docpost-{uuid.uuid4().hex[:12]}"
    env = {"DOCPOST_BUCKET": bucket, "DOCPOST_S3_ENDPOINT_URL": s3_endpoint,
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "eu-west-1", "DOCPOST_DB_URL": pg_url}
    for k, v in env.items():
        mp.setenv(k, v)
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="eu-west-1").create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    fresh_schema(pg_url)
    ledger_at.cache_clear()
    pipeline._client_for.cache_clear()
    store = ObjectStore()
    with S3Sink(store) as sink:
        generate_night(30, NIGHT, sink=sink, broken_share=0.1, seed=31)
    register = tmp / "recipients.json"
    register.write_bytes(store.get_bytes("recipients.json"))
    sim = start_simulator(tmp / "sim", register, {}, tls_cert=pki.server_cert, tls_key=pki.server_key,
                          client_ca=pki.ca_cert, client_cert=(pki.client_cert, pki.client_key),
                          config={"receipt_delay": 0})
    sim_env = {"DOCPOST_SF1601_URL": sim.url, "DOCPOST_SF1601_CERT": str(pki.client_cert),
               "DOCPOST_SF1601_KEY": str(pki.client_key), "DOCPOST_SF1601_CA": str(pki.ca_cert)}
    for k, v in sim_env.items():
        mp.setenv(k, v)
    pipeline.collect(NIGHT, actor="t")
    for chunk in pipeline.plan_chunks(NIGHT, chunk_size=25):
        for stage in (pipeline.validate_chunk, pipeline.stamp_chunk, pipeline.render_chunk):
            chunk = stage(chunk, actor="t")
        pipeline.deliver_chunk(chunk, actor="t")
    yield sim, {**env, **sim_env}, bucket
    pusher = getattr(sim.app.state.simulator, "inbound_pusher", None)
    if pusher is not None:
        pusher.stop()
    sim.stop()
    mp.undo()


@pytest.fixture()
def world(delivered, pki, tmp_path, monkeypatch):
    """Empty reply tables, the endpoint running, the simulator pushing to it, a fresh SMTP sink."""
    from conftest import free_port
    from sqlalchemy import text

    from docpost.replies.service import default_ledger
    from docpost_testbench.mailsink import start_mailsink

    sim, env, bucket = delivered
    led = default_ledger()
    with led.engine.begin() as conn:
        conn.execute(text("TRUNCATE reply_mails, reply_decisions, reply_inbound RESTART IDENTITY"))
    sink = start_mailsink(tmp_path / "mail")
    monkeypatch.setenv("DOCPOST_SMTP_HOST", sink.host)
    monkeypatch.setenv("DOCPOST_SMTP_PORT", str(sink.port))
    endpoint = Endpoint(env, pki, free_port()).start()
    with sim.http() as client:  # the Postkomponent's side: push with the client certificate
        client.post("/sim/inbound/push", json={"url": endpoint.url, "cert": str(pki.client_cert),
                                               "key": str(pki.client_key), "ca": str(pki.ca_cert)}
                    ).raise_for_status()
    yield sim, endpoint, sink, led, bucket
    with sim.http() as client:
        client.post("/sim/inbound/push", json={"url": None}).raise_for_status()
    endpoint.stop()
    sink.stop()


def generate(sim, counts, seed):  # noqa: ANN001, ANN201
    with sim.http() as client:
        response = client.post("/sim/inbound/generate",
                               json={"seed": seed, "counts": counts, "created": f"{TODAY}T08:00:00Z"})
        response.raise_for_status()
        return response.json()


def s3_inbound(bucket):  # noqa: ANN001, ANN201
    from docpost.storage import ObjectStore

    return ObjectStore().list_objects("inbound/")


def by_inbound_id(sink) -> dict:  # noqa: ANN001
    out: dict[str, list] = {}
    for mail in sink.messages():
        out.setdefault(str(mail.message["X-Docpost-Inbound-Id"]), []).append(mail)
    return out


# ----------------------------------------------------------------------------- tests


def test_pushed_messages_stored_once_through_a_kill_then_routed_and_mailed_once(world):
    from docpost.replies import manual_queue, process_inbound
    from docpost.replies.store import ReplyStore

    sim, endpoint, sink, led, bucket = world
    counts = {"reply": 50, "new": 15, "legacy": 5, "closed_contact_point": 3, "unknown_contact_point": 3,
              "unknown_original": 3, "reply_not_possible": 3, "malformed": 3, "hostile": 3}
    items = generate(sim, counts, seed=7)["generated"]
    ids = {i["id"] for i in items}
    # kill the endpoint while the simulator pushes, then restart it on the same port
    deadline = time.monotonic() + 60
    while sum(1 for p in pushed(sim, ids).values() if p and p["result"]) < 10:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    endpoint.kill()
    answered_at_kill = sum(1 for p in pushed(sim, ids).values() if p and p["result"])
    assert answered_at_kill < len(items), "the endpoint must die mid-stream"
    time.sleep(1.0)  # the Postkomponent meets a closed port and backs off
    with sim.http() as client:
        assert client.get("/sim/inbound/push").json()["last_error"]
    endpoint.start()
    state = wait_answered(sim, ids)

    store = ReplyStore(led)
    records = {r.inbound_id: r for r in store.records()}
    for item in items:
        push = state[item["id"]]
        if item["kind"] in REFUSED:
            assert (push["result"], push["status"], push["reason_code"]) == ("refused", 422, REFUSED[item["kind"]]), item
            assert item["message_uuid"] not in records
        else:
            assert (push["result"], push["status"], push["message_uuid"]) == ("accepted", 200, item["message_uuid"]), item
            assert records[item["message_uuid"]].state == "RECEIVED"
    accepted = [i for i in items if i["kind"] not in REFUSED]
    # stored once: one row and one S3 object per accepted message, nothing else
    assert sorted(r for r in records if not r.startswith("sha256:")) == sorted(i["message_uuid"] for i in accepted)
    assert sorted(s3_inbound(bucket)) == sorted(f"inbound/{i['message_uuid']}.memo" for i in accepted)
    assert {records[r].state for r in records if r.startswith("sha256:")} <= {"REFUSED"}  # the refusals' record
    assert max(p["attempts"] for p in state.values()) >= 1

    result = process_inbound("test:postmodtag", today=TODAY)
    assert result["stored"] == len(accepted) and "pulled" not in result
    routable = {i["message_uuid"] for i in items if i["kind"] in ROUTABLE}
    assert result["mailed"] == len(routable)
    mails = by_inbound_id(sink)
    assert set(mails) == routable and all(len(m) == 1 for m in mails.values())
    queue = {r.inbound_id: r.reason_code for r in manual_queue()}
    assert queue == {i["message_uuid"]: MANUAL_REASON[i["kind"]] for i in items if i["kind"] in MANUAL_REASON}
    again = process_inbound("test:postmodtag-again", today=TODAY)
    assert again["stored"] == 0 and not again.get("mailed") and not sink.duplicates()


def test_a_repeated_message_uuid_gets_the_same_answer_and_is_stored_once(world):
    from docpost.replies.store import ReplyStore
    from docpost_testbench.simulator.inbound import HOSTILE_XXE

    sim, endpoint, sink, led, bucket = world
    item = generate(sim, {"new": 1}, seed=101)["generated"][0]
    first = wait_answered(sim, {item["id"]})[item["id"]]
    assert first["result"] == "accepted"
    memo = _memo_of(sim, item["id"])
    # the simulator pushes it again under another id (the Postkomponent retrying), and directly twice
    with sim.http() as client:
        client.post("/sim/inbound/inject", json={"messages": [
            {"id": "again-" + item["id"], "kind": "again", "memo": base64.b64encode(memo).decode()}]}).raise_for_status()
    again = wait_answered(sim, {"again-" + item["id"]})["again-" + item["id"]]
    assert (again["result"], again["message_uuid"]) == ("accepted", item["message_uuid"])
    with endpoint.http() as client:
        answers = [client.post("/PostModtag", content=memo, headers={"Content-Type": "application/xml"})
                   for _ in range(2)]
        hostile = HOSTILE_XXE % str(uuid.uuid4()).encode()
        refusals = [client.post("/PostModtag", content=hostile, headers={"Content-Type": "application/xml"})
                    for _ in range(2)]
    assert [(a.status_code, a.json()) for a in answers] == [
        (200, {"messageUUID": item["message_uuid"], "result": "accepted", "reasonCode": None, "reasonText": None})] * 2
    assert [r.status_code for r in refusals] == [422, 422] and refusals[0].json() == refusals[1].json()
    assert refusals[0].json()["reasonCode"] == "inbound.hostile"
    store = ReplyStore(led)
    rows = [r for r in store.records() if r.inbound_id == item["message_uuid"]]
    assert len(rows) == 1 and store.payload(rows[0]) == memo
    assert [k for k in s3_inbound(bucket) if item["message_uuid"] in k] == [f"inbound/{item['message_uuid']}.memo"]
    assert len([r for r in store.records() if r.state == "REFUSED" and r.reason_code == "inbound.hostile"]) == 1


def _memo_of(sim, inbound_id) -> bytes:  # noqa: ANN001
    """The MeMo the simulator holds for one of its messages (its pull feed lists unacked ones only)."""
    import sqlite3

    db = sqlite3.connect(sim.app.state.simulator.store.path)
    try:
        return bytes(db.execute("SELECT memo FROM inbound_messages WHERE id = ?", (inbound_id,)).fetchone()[0])
    finally:
        db.close()


def test_mutual_tls_refuses_a_client_without_a_certificate(world):
    import httpx

    sim, endpoint, sink, led, bucket = world
    with endpoint.http(cert=True) as client:
        assert client.get("/health").json() == {"status": "ok"}
        deep = client.get("/health", params={"deep": "true"})
        assert deep.status_code == 200 and deep.json()["database"] == deep.json()["s3"] == "ok"
    with endpoint.http(cert=False) as client, pytest.raises(httpx.TransportError):
        client.post("/PostModtag", content=b"<x/>", headers={"Content-Type": "application/xml"})
    with pytest.raises(httpx.TransportError):  # nor plain HTTP
        httpx.post(endpoint.url.replace("https", "http") + "/PostModtag", content=b"<x/>", timeout=5)
    assert ReplyStore_count(led) == 0


def ReplyStore_count(led) -> int:  # noqa: ANN001, N802
    from docpost.replies.store import ReplyStore

    return len(ReplyStore(led).records())


def test_the_hostile_corpus_is_refused_or_stored_and_routed_safely(world):
    from poison.inbound import check_pushed, corpus, inject, raw_mail_problems, service_id, wait_pushed

    from docpost.replies import process_inbound

    sim, endpoint, sink, led, bucket = world
    cases = {service_id(c): c for c in corpus(large=True)}
    inject(sim, cases.values())
    state = wait_pushed(sim, cases, timeout=180)
    process_inbound("test:postmodtag-poison", today=TODAY)
    assert check_pushed(cases, state, mails=sink.messages(), ledger=led) == []
    assert raw_mail_problems(sink.directory) == []


def test_storage_down_answers_503_and_stores_nothing(delivered, pg_url):
    """S3 or the database failing while storing: 503 (retried by the Postkomponent), never accepted."""
    from fastapi.testclient import TestClient
    from sqlalchemy import text

    from docpost.ledger import Ledger
    from docpost.postmodtag.app import create_app
    from docpost.replies.service import default_ledger
    from docpost.storage import ObjectStore, StorageUnavailable
    from docpost_testbench.simulator.inbound import build_inbound_memo

    led = default_ledger()
    with led.engine.begin() as conn:
        conn.execute(text("TRUNCATE reply_mails, reply_decisions, reply_inbound RESTART IDENTITY"))

    class S3Down(ObjectStore):
        def put_bytes(self, key, data, content_type=None):  # noqa: ANN001
            raise StorageUnavailable("S3 put_object failed (test)", key=key)

    message_uuid = str(uuid.uuid4())
    memo = build_inbound_memo(message_uuid=message_uuid, sender_id="2512489996", sender_id_type="CPR",
                              municipality_cvr="29189846", label="Hej", text="Hej",
                              created=dt.datetime(2026, 11, 27, tzinfo=dt.timezone.utc), contact_point_id=None)
    headers = {"Content-Type": "application/xml"}
    with TestClient(create_app(ledger=led, objects=S3Down())) as client:
        down = client.post("/PostModtag", content=memo, headers=headers)
    assert down.status_code == 503 and down.headers["Retry-After"] and down.json()["result"] == "refused"
    gone = Ledger("postgresql+psycopg://postgres@127.0.0.1:1/none")  # no database listens there
    with TestClient(create_app(ledger=gone, objects=ObjectStore())) as client:
        assert client.post("/PostModtag", content=memo, headers=headers).status_code == 503
        assert client.get("/health", params={"deep": "true"}).status_code == 503
    assert ReplyStore_count(led) == 0
    with TestClient(create_app(ledger=led)) as client:  # storage back: accepted, stored once
        up = client.post("/PostModtag", content=memo, headers=headers)
    assert up.status_code == 200 and up.json()["messageUUID"] == message_uuid
    assert ReplyStore_count(led) == 1
