"""Reply routing end to end: a night of letters delivered through the pipeline (moto S3,
PostgreSQL, the SF1601 simulator over mutual TLS), the simulator's citizens answer, and
``process_inbound`` brings each answer to its functional mailbox on a real loopback SMTP server
exactly once, or to the manual-distribution queue with its specific reason."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter

import pytest
from pg_support import fresh_schema
from replies_support import process_inbound

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NIGHT = dt.date(2026, 11, 26)
TODAY = dt.date(2026, 11, 27)
COUNTS = {"reply": 14, "new": 6, "legacy": 2, "closed_contact_point": 2, "unknown_contact_point": 2,
          "unknown_original": 2, "reply_not_possible": 2, "malformed": 2, "hostile": 2}
ROUTABLE = ("reply", "new", "legacy")
MANUAL_REASON = {
    "closed_contact_point": "route.closed-contact-point",
    "unknown_contact_point": "route.unknown-contact-point",
    "unknown_original": "route.unknown-original",
    "reply_not_possible": "route.reply-not-possible",
    "malformed": "inbound.malformed",
    "hostile": "inbound.hostile",
}


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from docpost_testbench.pki import create_test_pki

    return create_test_pki(tmp_path_factory.mktemp("pki"))


def run_night(day=NIGHT, actor="test-run", chunk_size=25):
    """The nightly stages, as the pipeline test runs them."""
    from docpost import pipeline

    pipeline.collect(day, actor=actor)
    for chunk in pipeline.plan_chunks(day, chunk_size=chunk_size):
        for stage in (pipeline.validate_chunk, pipeline.stamp_chunk, pipeline.render_chunk):
            chunk = stage(chunk, actor=actor)
        pipeline.deliver_chunk(chunk, actor=actor)


@pytest.fixture(scope="module")
def delivered(tmp_path_factory, s3_endpoint, pg_url, pki):
    """A generated night delivered to the simulator once for the module; env set for docpost."""
    import boto3
    from docpost import pipeline
    from docpost_testbench.generate import generate_night
    from docpost.ledger import ledger_at
    from docpost_testbench.simulator.runner import start_simulator
    from docpost.storage import ObjectStore, S3Sink

    tmp = tmp_path_factory.mktemp("replies")
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
        generate_night(40, NIGHT, sink=sink, broken_share=0.1, seed=23)
    register = tmp / "recipients.json"
    register.write_bytes(store.get_bytes("recipients.json"))
    sim = start_simulator(tmp / "sim", register, {}, tls_cert=pki.server_cert, tls_key=pki.server_key,
                          client_ca=pki.ca_cert, client_cert=(pki.client_cert, pki.client_key),
                          config={"receipt_delay": 0})
    sim_env = {"DOCPOST_SF1601_URL": sim.url, "DOCPOST_SF1601_CERT": str(pki.client_cert),
               "DOCPOST_SF1601_KEY": str(pki.client_key), "DOCPOST_SF1601_CA": str(pki.ca_cert)}
    for k, v in sim_env.items():
        mp.setenv(k, v)
    run_night()
    yield sim, {**env, **sim_env}, json.loads(register.read_text())
    sim.stop()
    mp.undo()


@pytest.fixture()
def world(delivered, tmp_path, monkeypatch):
    """Empty reply tables, a fresh loopback SMTP sink, SMTP settings pointing at it."""
    from sqlalchemy import text

    from docpost_testbench.mailsink import start_mailsink
    from docpost.replies.service import default_ledger

    sim, env, register = delivered
    led = default_ledger()
    with led.engine.begin() as conn:
        conn.execute(text("TRUNCATE reply_mails, reply_decisions, reply_inbound RESTART IDENTITY"))
    sink = start_mailsink(tmp_path / "mail")
    monkeypatch.setenv("DOCPOST_SMTP_HOST", sink.host)
    monkeypatch.setenv("DOCPOST_SMTP_PORT", str(sink.port))
    yield sim, sink, led, {**env, "DOCPOST_SMTP_HOST": sink.host, "DOCPOST_SMTP_PORT": str(sink.port)}, register
    sink.stop()


def generate(sim, counts, seed):
    with sim.http() as client:
        response = client.post("/sim/inbound/generate",
                               json={"seed": seed, "counts": counts, "created": f"{TODAY}T08:00:00Z"})
        response.raise_for_status()
        return response.json()


def by_inbound_id(sink):
    out: dict[str, list] = {}
    for mail in sink.messages():
        out.setdefault(str(mail.message["X-Docpost-Inbound-Id"]), []).append(mail)
    return out


def expected_emne(item, led, hierarchy):
    """Where a routable generated message must land, from the hierarchy and the ledger."""
    if item["kind"] == "reply":
        original = led.get(item["reply_to"])
        assert original is not None and original.reply_contact_point_id == item["contact_point_id"]
        return hierarchy.by_contact_point(item["contact_point_id"])
    return hierarchy.emne(item["emne_id"])


# ----------------------------------------------------------------------------- tests


def test_replies_reach_their_mailbox_once_and_awkward_ones_wait_with_their_reason(world):
    from sqlalchemy import text

    from docpost.hierarchy import load_hierarchy
    from docpost.replies import manual_queue
    from docpost.replies.mail import mail_address

    sim, sink, led, _, register = world
    generated = generate(sim, COUNTS, seed=5)
    assert not generated["missing"], generated["missing"]
    items = generated["generated"]
    assert Counter(i["kind"] for i in items) == Counter({k: v for k, v in COUNTS.items() if v})

    result = process_inbound("test:replies", today=TODAY)
    assert result["pulled"] == len(items) and result["acked"] == len(items)
    assert result["mailed"] == sum(COUNTS[k] for k in ROUTABLE)
    assert sim.get("/sim/inbound/stats")["pending"] == 0

    hierarchy = load_hierarchy()
    mails = by_inbound_id(sink)
    for item in items:
        got = mails.get(item["id"], [])
        if item["kind"] not in ROUTABLE:
            assert got == [], item
            continue
        assert len(got) == 1, (item, len(got))
        mail = got[0]
        emne = expected_emne(item, led, hierarchy)
        assert mail.rcpt_tos == (mail_address(emne.mailbox),), item
        assert emne.label in mail.message["Subject"]
        body = mail.message.get_body(preferencelist=("plain",)).get_content()
        names = [a.get_filename() for a in mail.message.iter_attachments()]
        assert any(n.startswith("bilag-") for n in names) and "memo.xml" in names
        if item["kind"] == "reply":  # linked to its original letter and its case
            original = led.get(item["reply_to"])
            assert mail.message["X-Docpost-Original-Message-UUID"] == original.message_uuid
            assert original.message_uuid in body
            if original.case_number:
                assert original.case_number in mail.message["Subject"]
        else:
            assert mail.message["X-Docpost-Original-Message-UUID"] is None

    queue = {r.inbound_id: r for r in manual_queue()}
    awkward = [i for i in items if i["kind"] not in ROUTABLE]
    assert set(queue) == {i["id"] for i in awkward}
    for item in awkward:
        assert queue[item["id"]].reason_code == MANUAL_REASON[item["kind"]], item

    # no clear CPR/CVR of any citizen in the reply tables
    with led.engine.connect() as conn:
        dump = " ".join(str(row) for table in ("reply_inbound", "reply_decisions", "reply_mails")
                        for row in conn.execute(text(f"SELECT * FROM {table}")))
    assert not [n for n in register if n in dump]

    # a second pass finds nothing new and mails nothing again
    again = process_inbound("test:replies-again", today=TODAY)
    assert again["pulled"] == 0 and not again.get("mailed")
    assert len(sink.messages()) == sum(COUNTS[k] for k in ROUTABLE)
    assert not sink.duplicates()


def test_redelivered_messages_are_mailed_once(world):
    """The service delivers unacknowledged messages again: a pass that could not acknowledge
    (acks refused) and a second pass route and mail each message once."""
    from docpost.channels.inbound import InboundClient, InboundProtocolError

    sim, sink, _, _, _ = world
    items = generate(sim, {"reply": 4, "new": 2}, seed=11)["generated"]

    class NoAck(InboundClient):
        def ack(self, inbound_id):
            raise InboundProtocolError("ack refused (test)")

    client = NoAck(**_client_args())
    with pytest.raises(InboundProtocolError):
        process_inbound("test:no-ack", today=TODAY, client=client)
    client.close()
    assert sim.get("/sim/inbound/stats")["pending"] == len(items)
    process_inbound("test:second", today=TODAY)
    assert sim.get("/sim/inbound/stats")["pending"] == 0
    counts = Counter(m.message_id for m in sink.messages())
    assert len(counts) == len(items) and max(counts.values()) == 1
    assert not sink.duplicates()  # no process died: not one SMTP transaction was repeated


def _client_args() -> dict:
    return {"base_url": os.environ["DOCPOST_SF1601_URL"],
            "cert": (os.environ["DOCPOST_SF1601_CERT"], os.environ["DOCPOST_SF1601_KEY"]),
            "ca": os.environ["DOCPOST_SF1601_CA"]}


KILL_SCRIPT = """
import datetime as dt, json, sys
from docpost.channels.inbound import InboundClient
from docpost.replies import process_inbound
with InboundClient.from_settings() as client:
    print(json.dumps(process_inbound("test:killed", batch_size=5, today=dt.date(2026, 11, 27), client=client)))
"""


def test_killed_pass_loses_nothing_and_mails_nothing_twice(world, tmp_path):
    from docpost_testbench.mailsink import start_mailsink
    from docpost.replies.store import ReplyStore

    sim, sink, led, env, _ = world
    sink.stop()
    # a slow mail server that stores each mail 1 s before it answers 250: the kill below lands
    # in that window (RFC 1047), the one a sender cannot close
    slow = start_mailsink(tmp_path / "slow-mail", delay=0.05, ack_delay=1.0)
    items = generate(sim, {"reply": 14, "new": 6, "unknown_original": 2, "hostile": 1}, seed=29)["generated"]
    routable = {i["id"] for i in items if i["kind"] in ROUTABLE}
    child_env = {**os.environ, **env, "DOCPOST_SMTP_HOST": slow.host, "DOCPOST_SMTP_PORT": str(slow.port),
                 "DOCPOST_CLAIM_LEASE_SECONDS": "0"}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT], env=child_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len(slow.messages()) < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    mailed_before = len(slow.messages())
    assert 4 <= mailed_before < len(routable), "the pass must die midway"
    assert sim.get("/sim/inbound/stats")["pending"] > 0

    os.environ["DOCPOST_CLAIM_LEASE_SECONDS"] = "0"
    os.environ["DOCPOST_SMTP_HOST"], os.environ["DOCPOST_SMTP_PORT"] = slow.host, str(slow.port)
    try:
        result = process_inbound("test:rerun", today=TODAY)
    finally:
        del os.environ["DOCPOST_CLAIM_LEASE_SECONDS"]
    assert sim.get("/sim/inbound/stats")["pending"] == 0
    assert result.get("redelivered", 0) >= 1  # what the killed pass had recorded came again

    mails = by_inbound_id(slow)
    assert set(mails) == routable  # none lost
    assert all(len(got) == 1 for got in mails.values()), "a mailbox holds a mail twice"
    store = ReplyStore(led)
    # Killed after the server stored the 4th mail and before docpost saw its 250, the rerun cannot
    # know it arrived and sends it again, with the same Message-ID and Date, so the mailbox store
    # keeps the repeat out: one resend for the one kill, of the mail that was in doubt.
    repeats = slow.duplicates()
    assert len(repeats) == 1, f"{len(repeats)} mails were sent again"
    for repeat in repeats:
        (first,) = mails[repeat.message["X-Docpost-Inbound-Id"]]
        assert (repeat.message_id, repeat.message["Date"]) == (first.message_id, first.message["Date"])
        assert store.mail(store.get(repeat.message["X-Docpost-Inbound-Id"])).attempts > 1
    assert all(store.get(i).state == "MAILED" for i in routable)
    slow.stop()


def test_manual_assignment_by_cli_mails_and_records_who(world, capsys):
    from docpost.cli import main
    from docpost.hierarchy import load_hierarchy
    from docpost.replies.mail import mail_address

    def run(*argv: str) -> int:  # through docpost.cli.main: its error path and exit codes
        return main(list(argv))

    sim, sink, led, _, register = world
    items = generate(sim, {"unknown_contact_point": 1, "unknown_original": 1, "hostile": 1}, seed=41)["generated"]
    process_inbound("test:assign", today=TODAY)
    assert run("replies", "manual") == 0
    out = capsys.readouterr().out
    for item in items:
        assert item["id"] in out
    assert "route.unknown-contact-point" in out and "inbound.hostile" in out
    assert not [n for n in register if n in out]  # masked
    assert run("replies", "manual", "--output", "json") == 0
    queue = json.loads(capsys.readouterr().out)["queue"]
    assert {row["inbound_id"] for row in queue} >= {item["id"] for item in items}
    assert not [n for n in register if n in json.dumps(queue)]  # masked

    target = next(i for i in items if i["kind"] == "unknown_contact_point")
    assert run("replies", "assign", target["id"], "1001", "--actor", "sagsbehandler:jane") == 0
    assert "sagsbehandler:jane" in capsys.readouterr().out
    emne = load_hierarchy().emne(1001)
    got = by_inbound_id(sink)[target["id"]]
    assert len(got) == 1 and got[0].rcpt_tos == (mail_address(emne.mailbox),)
    assert "sagsbehandler:jane" in got[0].message.get_body(preferencelist=("plain",)).get_content()

    assert run("replies", "why", target["id"]) == 0
    why = capsys.readouterr().out
    assert "route.unknown-contact-point" in why and "manual-assign" in why and "sagsbehandler:jane" in why
    assert "mail: sent" in why
    assert run("replies", "why", target["id"], "--output", "json") == 0
    why_json = json.loads(capsys.readouterr().out)
    assert why_json["inbound"]["assigned_by"] == "sagsbehandler:jane" and why_json["mail"]["state"] == "sent"
    assert "manual-assign" in [d["rule"] for d in why_json["decisions"]]

    # assigned twice: refused, not mailed again; a hostile message cannot be assigned
    assert run("replies", "assign", target["id"], "1002") == 1  # refused: exit 1, error on stderr
    hostile = next(i for i in items if i["kind"] == "hostile")
    assert run("replies", "assign", hostile["id"], "1001") == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "hostile" in captured.err
    assert all(line.startswith("docpost: error: ") for line in captured.err.splitlines())
    assert len(by_inbound_id(sink)[target["id"]]) == 1
    # a closed Emne is refused
    unknown = next(i for i in items if i["kind"] == "unknown_original")
    assert run("replies", "assign", unknown["id"], "1005") == 1

    # retention: the mailed ones lose their personal data, the decisions stay; waiting ones keep it
    from docpost.replies.store import ReplyStore

    store = ReplyStore(led)
    assert store.purge(1) == 0  # nothing mailed a day ago yet
    mailed = [r for r in store.records() if r.state == "MAILED"]
    assert store.purge(0) == len(mailed) > 0 and store.purge(0) == 0
    purged = store.get(target["id"])
    assert store.payload(purged) is None and purged.sender_masked is None and purged.label is None
    assert purged.state == "MAILED" and purged.mailbox and purged.rule == "manual-assign"
    assert run("replies", "why", target["id"]) == 0 and "manual-assign" in capsys.readouterr().out
    waiting = store.get(unknown["id"])
    assert waiting.state == "MANUAL" and store.payload(waiting) is not None


def test_mail_server_down_acknowledges_nothing_new_until_it_is_back(world, monkeypatch):
    """Infrastructure trouble stops the pass: nothing more is acknowledged, nothing made final;
    the pass fails (the task is retried) and a later pass does the rest."""
    from conftest import free_port

    from docpost.replies.errors import MailUnavailable
    from docpost.replies.store import ReplyStore

    sim, sink, led, _, _ = world
    items = generate(sim, {"new": 3, "unknown_original": 1}, seed=53)["generated"]
    news = [i["id"] for i in items if i["kind"] == "new"]
    monkeypatch.setenv("DOCPOST_SMTP_PORT", str(free_port()))  # nothing listens there
    with pytest.raises(MailUnavailable):
        process_inbound("test:smtp-down", today=TODAY)
    assert sim.get("/sim/inbound/stats")["pending"] == len(items)  # not one acknowledged
    store = ReplyStore(led)
    assert [(r.inbound_id, r.state) for r in store.records()] == [(news[0], "ROUTED")]  # nothing final
    assert store.mail(store.get(news[0])).state == "sending"

    monkeypatch.setenv("DOCPOST_SMTP_PORT", str(sink.port))
    up = process_inbound("test:smtp-up", today=TODAY)
    assert up["mailed"] == 3 and sim.get("/sim/inbound/stats")["pending"] == 0
    assert Counter(m.message_id for m in sink.messages()).most_common(1)[0][1] == 1
    assert {store.get(i).state for i in news} == {"MAILED"}
    assert up["received"] == 3 and up["redelivered"] == 1  # the routed one was recorded before


def test_poison_corpus_mixed_into_a_night_of_replies(world):
    """The odd inbound messages of tests/poison/inbound.py among the citizens' ordinary answers:
    each ends mailed safely or in the manual queue with its code, the ordinary ones are mailed,
    everything handled is acknowledged, and no stored mail carries an injected header."""
    from poison.inbound import acked_ids, check, inject, raw_mail_problems

    from docpost.replies import manual_queue

    sim, sink, led, _, _ = world
    generated = generate(sim, COUNTS, seed=61)["generated"]
    injected = inject(sim)
    result = process_inbound("test:poison-night", today=TODAY)
    assert result["pulled"] == result["acked"] == len(generated) + len(injected)
    assert check(injected, mails=sink.messages(), ledger=led) == []
    assert raw_mail_problems(sink.directory) == []
    assert all(acked_ids(sim, "").values()) and sim.get("/sim/inbound/stats")["pending"] == 0
    mails = by_inbound_id(sink)
    assert all(len(mails.get(i["id"], [])) == (i["kind"] in ROUTABLE) for i in generated)
    queue = {r.inbound_id: r.reason_code for r in manual_queue()}
    assert all(queue[i["id"]] == MANUAL_REASON[i["kind"]] for i in generated if i["kind"] not in ROUTABLE)
    assert not sink.duplicates()
