"""No letter left behind: planning by state (any date), the audit of the whole inbox, stale
letters in the summary, and the content identity from the bytes (ETags), upgrade included.

Real parts, as in test_pipeline.py: moto S3 over HTTP, PostgreSQL, the SF1601 simulator."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

from docpost import pipeline
from docpost.ledger import MessageState
from docpost.storage import ObjectStore, S3Sink
from docpost_testbench.generate import generate_night
from pg_support import fresh_schema

pytestmark = pytest.mark.integration

S = MessageState
TODAY = dt.datetime.now(ZoneInfo("Europe/Copenhagen")).date()
NIGHT = TODAY - dt.timedelta(days=1)  # tonight's run handles yesterday's night
OLD = NIGHT - dt.timedelta(days=10)  # outside the default 7-day sweep window


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from docpost_testbench.pki import create_test_pki

    return create_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture()
def bench(tmp_path, s3_bucket, pg_url, pki, monkeypatch):
    """A fresh ledger schema, an empty bucket, a simulator that knows every generated recipient
    (all digital); ``drop(day, count, seed)`` generates letters into the inbox."""
    from docpost.ledger import ledger_at
    from docpost_testbench.simulator.runner import start_simulator

    fresh_schema(pg_url)
    monkeypatch.setenv("DOCPOST_DB_URL", pg_url)
    ledger_at.cache_clear()
    pipeline._client_for.cache_clear()
    store = ObjectStore()
    recipients: dict[str, str] = {}

    def drop(day: dt.date, count: int, seed: int) -> None:
        with S3Sink(store) as sink:
            generate_night(count, day, sink=sink, broken_share=0.0, seed=seed)
        recipients.update(dict.fromkeys(json.loads(store.get_bytes("recipients.json")), "digital"))

    register = tmp_path / "recipients.json"
    started = []

    def simulator():
        register.write_text(json.dumps(recipients))
        sim = start_simulator(tmp_path / "sim", register, {}, tls_cert=pki.server_cert, tls_key=pki.server_key,
                              client_ca=pki.ca_cert, client_cert=(pki.client_cert, pki.client_key),
                              config={"receipt_delay": 0})
        started.append(sim)
        monkeypatch.setenv("DOCPOST_SF1601_URL", sim.url)
        monkeypatch.setenv("DOCPOST_SF1601_CERT", str(pki.client_cert))
        monkeypatch.setenv("DOCPOST_SF1601_KEY", str(pki.client_key))
        monkeypatch.setenv("DOCPOST_SF1601_CA", str(pki.ca_cert))
        return sim

    yield store, drop, simulator, pg_url
    for sim in started:
        sim.stop()


def stages(day: dt.date, actor: str, *, deliver: bool = True) -> None:
    for chunk in pipeline.plan_chunks(day, chunk_size=4):
        for stage in (pipeline.validate_chunk, pipeline.stamp_chunk, pipeline.render_chunk):
            chunk = stage(chunk, actor=actor)
        if deliver:
            pipeline.deliver_chunk(chunk, actor=actor)


def sql(url: str, statement: str, **params) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(statement), params)
    engine.dispose()


def legacy_hash(listing: dict) -> str:
    """The content hash collect made before the identity took in the ETags: names and sizes."""
    digest = hashlib.sha256()
    for name in sorted(listing):
        if name != "_READY":
            digest.update(f"{name}\0{listing[name][0]}\n".encode())
    return digest.hexdigest()


def test_letters_left_behind_days_ago_are_delivered_tonight(bench):
    store, drop, simulator, url = bench
    drop(OLD, 6, seed=21)
    drop(NIGHT, 3, seed=22)
    simulator()
    pipeline.collect(OLD, actor="old-night")
    stages(OLD, "old-night", deliver=False)
    led = pipeline.ledger()
    old = led.messages(led.message_ids(submission_date=OLD))
    assert [m.state for m in old] == [S.RENDERED] * 6, [(m.state, m.reason_code) for m in old]
    retrying, requeued, rendered = old[0], old[1], old[2]
    # one send failed transiently long ago; one failed and an operator requeued it; one rendered and left
    led.transition([retrying.id], S.RETRYING, "old-night", count_attempt=True,
                   reason_code="sf1601.unavailable", reason_text="service unavailable")
    led.transition([requeued.id], S.FAILED, "old-night", reason_code="x", reason_text="x")
    led.requeue([requeued.id], "operator")
    led.cancel([m.id for m in old[3:]], "operator", "not needed")
    sql(url, "UPDATE ledger_messages SET created_at = created_at - interval '10 days' WHERE submission_date = :d",
        d=OLD)
    assert led.messages([requeued.id])[0].state in pipeline.WORKABLE  # where the requeue put it back

    collected = pipeline.collect(NIGHT, actor="tonight")  # the old folder is outside the sweep: not seen
    assert collected["new"] == 3 and collected["late_found"] == 0
    chunks = pipeline.plan_chunks(NIGHT, chunk_size=4)
    planned = [i for c in chunks for i in led.message_ids(first_id=c["first_id"], last_id=c["last_id"],
                                                          states=pipeline.WORKABLE)]
    assert planned == sorted(planned) and len(planned) == 6  # oldest (lowest id) first
    assert planned[:3] == [retrying.id, requeued.id, rendered.id]
    stages(NIGHT, "tonight")
    after = {m.id: m for m in led.messages(led.message_ids())}
    assert {after[i].state for i in (retrying.id, requeued.id, rendered.id)} == {S.SUBMITTED}
    assert all(m.state is S.SUBMITTED for m in after.values() if m.submission_date == NIGHT)
    assert after[retrying.id].transaction_id == retrying.transaction_id  # the same transaction, resent
    assert pipeline.summarize(NIGHT, actor="tonight")["stale"] == 0


def test_stale_workable_letter_is_listed_in_the_summary_and_logged(bench, caplog):
    store, drop, _simulator, url = bench
    drop(NIGHT, 3, seed=23)
    pipeline.collect(NIGHT, actor="t")
    led = pipeline.ledger()
    first, second, third = led.messages(led.message_ids())
    sql(url, "UPDATE ledger_messages SET created_at = now() - interval '3 days' WHERE id IN (:a, :b)",
        a=first.id, b=second.id)
    for chunk in pipeline.plan_chunks(NIGHT):
        pipeline.validate_chunk(chunk, actor="t")
    led.cancel([second.id], "operator", "no longer wanted")  # settled: not stale
    first = led.messages([first.id])[0]
    assert first.state is S.VALIDATED and first.recipient_masked
    with caplog.at_level("WARNING", logger="docpost.pipeline"):
        summary = pipeline.summarize(NIGHT, actor="t")
    assert summary["stale"] == 1
    data = json.loads(store.get_bytes(f"reports/{NIGHT.isoformat()}/summary.json"))
    assert data["stale"] == 1 and data["stale_after_hours"] == 48
    [listed] = data["stale_messages"]
    assert listed["message_uuid"] == first.message_uuid and listed["state"] == "VALIDATED"
    assert 71 < listed["age_hours"] < 74
    assert set(listed) == {"message_uuid", "state", "reason_code", "submission_date", "age_hours"}
    report = store.get_bytes(f"reports/{NIGHT.isoformat()}/summary.txt").decode()
    assert first.message_uuid in report and third.message_uuid not in report
    assert first.recipient_masked not in report  # no personal data, not even masked
    assert first.message_uuid in caplog.text and "workable for more than 48 h" in caplog.text
    assert pipeline.reconcile()["stale"] == 1


def test_audit_lists_a_ready_written_ten_days_late_and_alerts(bench, monkeypatch):
    store, drop, _simulator, _url = bench
    drop(NIGHT, 2, seed=24)
    pipeline.collect(NIGHT, actor="t")
    stale_day = TODAY - dt.timedelta(days=10)
    # a folder of 10 days ago whose _READY came only now; today's (the next run takes it); one not READY
    with S3Sink(store) as sink:
        generate_night(1, stale_day, sink=sink, seed=25)
    [late] = [k for k in store.list_objects(f"inbox/") if k.endswith("/_READY") and f"/{stale_day.isoformat()}/" in k]
    with S3Sink(store) as sink:
        generate_night(1, TODAY, sink=sink, seed=26)
    store.put_bytes(f"inbox/sbsys/{stale_day.isoformat()}/HALF-1/manifest.xml", b"<x/>")
    store.put_bytes(f"inbox/bad_system/{stale_day.isoformat()}/X-1/_READY", b"")  # broken path, never reported
    assert pipeline.collect(NIGHT, actor="t")["new"] == 0  # the nightly never sees the late one

    store.reset_calls()
    calls: list[str] = []
    real_call = ObjectStore._call
    monkeypatch.setattr(ObjectStore, "_call", lambda self, op, key=None, **kw: (calls.append(op), real_call(self, op, key, **kw))[1])
    found = pipeline.audit(actor="test-audit")
    assert "get_object" not in calls and "head_object" not in calls  # listing only (and the report's PUTs)
    assert found["alert"] is True
    assert found["missed"] == 1 and found["awaiting_collect"] == 1 and found["refused_missed"] == 1
    assert found["stale"] == 0
    key = f"reports/audit/{TODAY.isoformat()}/audit"
    doc = json.loads(store.get_bytes(key + ".json"))
    assert [f["folder"] for f in doc["missed_folders"]] == [late[: -len("_READY")]]
    assert doc["pending_not_ready"] == 1 and doc["alert"] is True
    assert store.get_bytes(key + ".txt").decode().startswith(f"docpost audit {TODAY.isoformat()}: ALERT")

    # collected by a run for its own night, it is known: the audit is quiet again (but for the broken path)
    store.delete_prefix("inbox/bad_system/", originals_final=True)
    pipeline.collect(stale_day, actor="operator")
    quiet = pipeline.audit(actor="test-audit")
    assert quiet["alert"] is False and quiet["missed"] == 0 and quiet["refused_missed"] == 0
    assert json.loads(store.get_bytes(key + ".json"))["alert"] is False


def test_audit_alerts_on_stale_letters(bench, monkeypatch):
    _store, drop, _simulator, url = bench
    drop(NIGHT, 2, seed=27)
    pipeline.collect(NIGHT, actor="t")
    assert pipeline.audit(actor="a")["alert"] is False
    monkeypatch.setenv("DOCPOST_STALE_AFTER_HOURS", "1")
    sql(url, "UPDATE ledger_messages SET created_at = now() - interval '2 hours'")
    found = pipeline.audit(actor="a")
    assert found["alert"] is True and found["stale"] == 2 and found["missed"] == 0


def _flip_digit(data: bytes) -> bytes:
    """The same bytes but one digit of the recipient's number changed: same length."""
    tag = b"CPRnummerIdentifikator>" if b"CPRnummerIdentifikator>" in data else b"CVRnummerIdentifikator>"
    at = data.index(tag) + len(tag) + 7
    return data[:at] + bytes([ord("0") + (data[at] - ord("0") + 1) % 10]) + data[at + 1:]


def test_changed_redrop_of_equal_length_is_a_conflict(bench):
    store, drop, _simulator, _url = bench
    drop(NIGHT, 3, seed=28)
    assert pipeline.collect(NIGHT, actor="t")["new"] == 3
    led = pipeline.ledger()
    first = led.messages(led.message_ids())[0]
    manifest = store.get_bytes(first.s3_prefix + "manifest.xml")
    changed = _flip_digit(manifest)
    assert len(changed) == len(manifest) and changed != manifest
    store.put_bytes(first.s3_prefix + "manifest.xml", changed)
    again = pipeline.collect(NIGHT, actor="t")
    assert (again["new"], again["existing"], again["conflicts"]) == (0, 2, 1)
    [conflict] = led.conflicts()
    assert conflict.message_id == first.id and conflict.existing_content_hash == first.content_hash
    assert led.messages([first.id])[0].content_hash == first.content_hash  # the registered one stays


def test_recollect_registers_nothing_new_also_for_hashes_made_the_old_way(bench):
    store, drop, _simulator, url = bench
    drop(NIGHT, 5, seed=29)
    assert pipeline.collect(NIGHT, actor="t")["new"] == 5
    unchanged = pipeline.collect(NIGHT, actor="t")
    assert (unchanged["new"], unchanged["existing"], unchanged["conflicts"]) == (0, 5, 0)
    led = pipeline.ledger()
    rows = led.messages(led.message_ids())
    # ledgers from before the change: names-and-sizes hashes, with the listing (ETags), without any
    # listing (before migration 0003), and with a listing whose ETags were not recorded
    with_listing, without_listing, without_etags, redropped = rows[0], rows[1], rows[2], rows[3]
    for m in (with_listing, without_listing, without_etags, redropped):
        sql(url, "UPDATE ledger_messages SET content_hash = :h WHERE id = :i", h=legacy_hash(m.listing), i=m.id)
    sql(url, "UPDATE ledger_messages SET listing = NULL WHERE id = :i", i=without_listing.id)
    sql(url, "UPDATE ledger_messages SET listing = :l WHERE id = :i", i=without_etags.id,
        l=json.dumps({n: [size, ""] for n, (size, _e) in without_etags.listing.items()}))
    events_before = sum(len(led.history(i)) for i in led.message_ids())
    upgraded = pipeline.collect(NIGHT, actor="after-upgrade")
    assert (upgraded["new"], upgraded["existing"], upgraded["conflicts"]) == (0, 5, 0)
    assert led.conflicts() == []
    assert sum(len(led.history(i)) for i in led.message_ids()) == events_before
    # an old-way row whose listing kept its ETags still sees a changed re-drop of the same length
    manifest = store.get_bytes(redropped.s3_prefix + "manifest.xml")
    store.put_bytes(redropped.s3_prefix + "manifest.xml", _flip_digit(manifest))
    changed = pipeline.collect(NIGHT, actor="after-upgrade")
    assert (changed["new"], changed["existing"], changed["conflicts"]) == (0, 4, 1)
    assert [c.message_id for c in led.conflicts()] == [redropped.id]
