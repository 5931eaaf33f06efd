"""The nightly pipeline end to end, stage by stage, on the real parts: moto S3 over HTTP,
PostgreSQL (and SQLite), and the SF1601 simulator over HTTPS with mutual TLS."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from docpost import pipeline
from docpost_testbench.generate import generate_night
from docpost.ledger import Ledger, MessageState
from docpost.storage import ObjectStore, S3Sink
from pg_support import fresh_schema

pytestmark = pytest.mark.integration

NIGHT = dt.date(2026, 11, 26)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from docpost_testbench.pki import create_test_pki

    return create_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture()
def night(tmp_path, s3_bucket, pg_url, pki, monkeypatch):
    """A generated night in S3, a fresh ledger schema, a simulator knowing its recipients."""
    from docpost.ledger import ledger_at
    from docpost_testbench.simulator.runner import start_simulator
    fresh_schema(pg_url)
    monkeypatch.setenv("DOCPOST_DB_URL", pg_url)
    ledger_at.cache_clear()
    pipeline._client_for.cache_clear()
    store = ObjectStore()
    with S3Sink(store) as sink:
        generate_night(60, NIGHT, sink=sink, broken_share=0.15, seed=11)
    register = tmp_path / "recipients.json"
    register.write_bytes(store.get_bytes("recipients.json"))
    sim = start_simulator(tmp_path / "sim", register, {}, tls_cert=pki.server_cert, tls_key=pki.server_key,
                          client_ca=pki.ca_cert, client_cert=(pki.client_cert, pki.client_key),
                          config={"receipt_delay": 0})
    monkeypatch.setenv("DOCPOST_SF1601_URL", sim.url)
    monkeypatch.setenv("DOCPOST_SF1601_CERT", str(pki.client_cert))
    monkeypatch.setenv("DOCPOST_SF1601_KEY", str(pki.client_key))
    monkeypatch.setenv("DOCPOST_SF1601_CA", str(pki.ca_cert))
    expected = json.loads(store.get_bytes("expected.json"))
    yield store, sim, expected
    sim.stop()


def run_night(day=NIGHT, actor="test-run", chunk_size=25, dry_run=False):
    pipeline.collect(day, actor=actor)
    totals = {}
    for chunk in pipeline.plan_chunks(day, chunk_size=chunk_size):
        chunk = pipeline.prepare_chunk(chunk, actor=actor)
        chunk = pipeline.deliver_chunk(chunk, actor=actor, dry_run=dry_run)
        for k, v in chunk.items():
            if isinstance(v, int) and k not in ("index", "count", "first_id", "last_id"):
                totals[k] = totals.get(k, 0) + v
    return totals


def states(led: Ledger) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in led.messages(led.message_ids()):
        out[m.state] = out.get(m.state, 0) + 1
    return out


def test_night_is_delivered_rejected_and_reported(night):
    store, sim, expected = night
    run_night()
    led = pipeline.ledger()
    msgs = led.messages(led.message_ids())
    not_ready = {k for k, v in expected.items() if "submission.not-ready" in v}
    assert len(msgs) == len(expected) - len(not_ready)  # a folder without _READY is left alone
    assert not_ready, "the generated night has a submission without _READY"
    by_sub = {f"{m.source_system}/{m.submission_date.isoformat()}/{m.submission_id}": m for m in msgs}
    assert not (set(by_sub) & not_ready)
    for name, m in by_sub.items():
        sub_id = m.submission_id
        if expected[name]:
            assert m.state == MessageState.REJECTED, (sub_id, m.state, m.reason_code)
            key = f"rejected/{m.source_system}/{NIGHT.isoformat()}/{sub_id}/rejection.json"
            report = json.loads(store.get_bytes(key))
            assert report["errors"] and all(e["code"] for e in report["errors"])
        else:
            # accepted by the simulator, or failed at it for an unknown recipient
            assert m.state in (MessageState.SUBMITTED, MessageState.FAILED), (sub_id, m.state, m.reason_text)
            assert m.reply_type in ("angivet", "ikkeMuligt")
            if m.reply_type == "angivet":
                assert m.reply_postkasse_id and m.reply_emne_id and m.reply_contact_point_id
            assert m.pdf_sha256
    # receipts settle the submitted ones
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pipeline.fetch_receipts(actor="test-receipts")
        if not any(m.state == MessageState.SUBMITTED for m in led.messages(led.message_ids())):
            break
        time.sleep(0.5)
    final = states(led)
    assert final.get("SUBMITTED", 0) == 0, final
    assert final.get("DELIVERED_DIGITAL", 0) > 0 and final.get("DELIVERED_PHYSICAL", 0) > 0, final
    # the register decides: exempt recipients go by print, unknown ones fail with the reason
    register = json.loads(store.get_bytes("recipients.json"))
    from docpost.ledger import recipient_hash
    from docpost import config
    key = config.settings().pseudonym_key
    by_hash = {recipient_hash(("CPR" if len(k) == 10 else "CVR"), k, key): v for k, v in register.items()}
    seen = set()
    for m in led.messages(led.message_ids()):
        status = by_hash.get(m.recipient_hash)
        if m.state == MessageState.REJECTED or status is None:
            continue
        seen.add(status)
        if status == "unknown":
            assert m.state == MessageState.FAILED and m.reason_code and m.reason_text, m
        elif status == "physical":
            assert m.state in (MessageState.DELIVERED_PHYSICAL, MessageState.FAILED), m.state
    assert {"digital", "physical"} <= seen
    # the letter shows its reply address: the reply line is in the rendered PDF's text
    import io

    from pypdf import PdfReader

    stamped = [m for m in led.messages(led.message_ids())
               if m.reply_type == "angivet" and m.state == MessageState.DELIVERED_DIGITAL]
    rendered_by_docpost = 0
    for m in stamped:
        reader = PdfReader(io.BytesIO(store.get_bytes(pipeline.rendered_key(m.ref))))
        if "docpost-ref" not in str((reader.metadata or {}).get("/Keywords", "")):
            continue  # a supplied ready PDF goes as it is (its reply address is in the MeMo)
        rendered_by_docpost += 1
        text = " ".join(p.extract_text() for p in reader.pages)
        assert "Svar via Digital Post" in text, m.message_uuid
    assert rendered_by_docpost
    # each delivered letter reached the simulator exactly once
    stats = sim.stats()
    counts = stats["deliveries"]
    assert counts and max(counts.values()) == 1
    summary = pipeline.summarize(NIGHT, actor="test")
    assert summary["total"] == len(msgs)
    assert json.loads(store.get_bytes(f"reports/{NIGHT.isoformat()}/summary.json"))["total"] == len(msgs)


def test_rerun_changes_nothing(night):
    store, sim, _ = night
    run_night()
    led = pipeline.ledger()
    before = [(m.id, m.state, m.attempts, m.pdf_sha256) for m in led.messages(led.message_ids())]
    events_before = sum(len(led.history(i)) for i in led.message_ids())
    objects_before = store.list_objects("")
    sends_before = sim.stats()
    totals = run_night(actor="second-run")
    after = [(m.id, m.state, m.attempts, m.pdf_sha256) for m in led.messages(led.message_ids())]
    assert after == before
    assert sum(len(led.history(i)) for i in led.message_ids()) == events_before
    assert totals.get("claimed", 0) == 0
    assert store.list_objects("") == objects_before
    assert sim.stats()["requests"] == sends_before["requests"]


def test_stages_read_what_was_registered_and_reject_a_file_replaced_after_ready(night, monkeypatch):
    from docpost.storage import ObjectStore

    store, _, expected = night
    pipeline.collect(NIGHT, actor="t")
    led = pipeline.ledger()
    good = [m for m in led.messages(led.message_ids())
            if not expected[f"{m.source_system}/{NIGHT.isoformat()}/{m.submission_id}"]]
    replaced, same_bytes = good[0], good[1]
    assert replaced.listing and set(replaced.listing) >= {"manifest.xml", "_READY"}
    manifest = store.get_bytes(replaced.s3_prefix + "manifest.xml")
    store.put_bytes(replaced.s3_prefix + "manifest.xml", manifest.replace(b"?>", b"?><!-- changed -->", 1))
    rewritten = same_bytes.s3_prefix + "manifest.xml"
    store.put_bytes(rewritten, store.get_bytes(rewritten))  # written again, same content: same ETag

    calls: list[str] = []
    real_call = ObjectStore._call
    monkeypatch.setattr(ObjectStore, "_call", lambda self, op, key=None, **kw: (calls.append(op), real_call(self, op, key, **kw))[1])
    for chunk in pipeline.plan_chunks(NIGHT, chunk_size=25):
        for stage in (pipeline.validate_chunk, pipeline.stamp_chunk, pipeline.render_chunk):
            chunk = stage(chunk, actor="t")
    assert calls and "list_objects_v2" not in calls  # the listing recorded at registration serves every stage
    first, second = led.messages([replaced.id, same_bytes.id])
    assert first.state == MessageState.REJECTED and first.reason_code == "submission.changed", first.reason_text
    assert second.state == MessageState.RENDERED
    report = json.loads(store.get_bytes(f"rejected/{replaced.source_system}/{NIGHT.isoformat()}/{replaced.submission_id}/rejection.json"))
    assert [e["code"] for e in report["errors"]] == ["submission.changed"] and report["errors"][0]["file"] == "manifest.xml"


def test_dry_run_sends_nothing(night):
    _, sim, _ = night
    run_night(dry_run=True)
    led = pipeline.ledger()
    st = states(led)
    assert st.get("SUBMITTED", 0) == 0 and st.get("RENDERED", 0) > 0
    assert not sim.stats()["deliveries"]


def test_faulty_service_every_letter_delivered_exactly_once(night, monkeypatch):
    """20% 5xx, 10% timeouts after recording, 5% dropped connections, duplicate and out-of-order
    receipts: reruns of the deliver stage (as Airflow's retries and the next night do) end with
    every sendable letter accepted once and delivered once by the simulator's own count."""
    store, sim, expected = night
    sim.set_faults(error_5xx=0.2, timeout=0.1, drop=0.05, timeout_seconds=1.5,
                   duplicate_receipts=0.2, out_of_order_receipts=0.2, seed=3)
    monkeypatch.setenv("DOCPOST_SF1601_TIMEOUT", "1")
    monkeypatch.setenv("DOCPOST_SF1601_ATTEMPTS", "2")
    monkeypatch.setenv("DOCPOST_MAX_SEND_ATTEMPTS", "50")
    pipeline._client_for.cache_clear()
    run_night(chunk_size=20)
    led = pipeline.ledger()
    for _ in range(15):  # what the task retries and the following nights do
        if not led.message_ids(states=[MessageState.RETRYING]):
            break
        for chunk in pipeline.plan_chunks(NIGHT, chunk_size=20):
            pipeline.deliver_chunk(chunk, actor="retry")
    assert not led.message_ids(states=[MessageState.RETRYING])
    assert sim.stats()["faults"], "no fault was produced"
    msgs = led.messages(led.message_ids())
    sent = [m for m in msgs if m.state == MessageState.SUBMITTED]
    stats = sim.stats()
    deliveries, accepted = stats["deliveries"], stats["transactions"]
    # every SUBMITTED letter was accepted by the service exactly once (one transaction per
    # message), whatever the faults; unknown recipients are accepted and fail by receipt later
    assert {m.message_uuid.lower() for m in sent} <= {k.lower() for k in accepted}
    assert max(accepted.values()) == 1 and max(deliveries.values()) == 1
    retried = [m for m in msgs if any(e.to_state == MessageState.RETRYING for e in led.history(m.id))]
    assert retried, "faults at these shares must have forced resends"
    assert all(m.state in (MessageState.SUBMITTED, MessageState.FAILED) for m in retried)


def test_delivery_sends_the_kept_request_and_isolates_a_changed_one_or_a_changed_submission(night):
    """Deliver reads one object per letter, the delivery request prepare kept. A request that was
    not built with the recorded PDF fails alone; a letter rendered before requests were kept
    (none under outbox/) is built again from its submission and its rendered PDF (made again
    when gone), and fails alone when the submission changed since."""
    store, sim, expected = night
    pipeline.collect(NIGHT, actor="t")
    chunks = pipeline.plan_chunks(NIGHT, chunk_size=100)
    for chunk in chunks:
        pipeline.prepare_chunk(chunk, actor="t")
    led = pipeline.ledger()
    rendered = [m for m in led.messages(led.message_ids()) if m.state == MessageState.RENDERED]
    changed_request, old_missing_pdf, old_changed_sub, pdf_changed_after = rendered[:4]
    request = store.get_bytes(pipeline.delivery_key(changed_request.ref))
    store.put_bytes(pipeline.delivery_key(changed_request.ref), request, "application/xml",
                    metadata={pipeline.PDF_SHA256: "0" * 64})
    for m in (old_missing_pdf, old_changed_sub):  # rendered before delivery requests were kept
        store.client.delete_object(Bucket=store.bucket, Key=pipeline.delivery_key(m.ref))
    store.client.delete_object(Bucket=store.bucket, Key=pipeline.rendered_key(old_missing_pdf.ref))
    manifest = old_changed_sub.s3_prefix + "manifest.xml"
    store.put_bytes(manifest, store.get_bytes(manifest).replace(b"?>", b"?><!-- changed -->", 1))
    store.put_bytes(pipeline.rendered_key(pdf_changed_after.ref), b"%PDF-1.4 not read by delivery", "application/pdf")

    totals = {}
    for chunk in chunks:  # no exception: each letter's trouble stays its own
        for k, v in pipeline.deliver_chunk(chunk, actor="t").items():
            totals[k] = totals.get(k, 0) + v if isinstance(v, int) else v
    a, b, c, d = led.messages([changed_request.id, old_missing_pdf.id, old_changed_sub.id, pdf_changed_after.id])
    assert (a.state, a.reason_code) == (MessageState.FAILED, "deliver.rendered-pdf-changed")
    assert b.state == MessageState.SUBMITTED  # built again, rendered again: the same letter
    assert store.get_bytes(pipeline.rendered_key(old_missing_pdf.ref))[:5] == b"%PDF-"
    assert (c.state, c.reason_code) == (MessageState.FAILED, "submission.changed")
    assert d.state == MessageState.SUBMITTED  # the kept request is what is sent
    for m, code in ((a, "deliver.rendered-pdf-changed"), (c, "submission.changed")):
        report = json.loads(store.get_bytes(f"rejected/{m.source_system}/{NIGHT.isoformat()}/{m.submission_id}/rejection.json"))
        assert report["stage"] == "deliver" and report["errors"][0]["code"] == code
    others = [m for m in led.messages([r.id for r in rendered[3:]])]
    assert others and all(m.state in (MessageState.SUBMITTED, MessageState.FAILED) for m in others)
    assert totals["failed"] >= 2 and totals["submitted"] >= len(rendered) - 2 - totals["failed"]


def test_prepare_reads_each_file_once_records_every_step_and_deliver_reads_one_object(night, monkeypatch):
    """The CPU stages in one pass: each submitted file is read once (an empty one not at all),
    two objects are written per rendered letter (PDF, delivery request), and the ledger has
    VALIDATED, STAMPED and RENDERED with their events as the separate stages record them; a
    rejected letter is rejected at the step it failed in. Deliver reads one object per letter."""
    from collections import Counter

    from docpost.storage import ObjectStore as Store

    store, _sim, _expected = night
    pipeline.collect(NIGHT, actor="t")
    led = pipeline.ledger()
    ops: Counter = Counter()
    call = Store._call

    reads: Counter = Counter()

    def counted(self, op, key=None, **kwargs):
        ops[op, (key or "").split("/")[0]] += 1
        if op == "get_object":
            reads[key] += 1
        return call(self, op, key, **kwargs)

    monkeypatch.setattr(Store, "_call", counted)
    for chunk in pipeline.plan_chunks(NIGHT, chunk_size=25):
        pipeline.prepare_chunk(chunk, actor="t")
    msgs = led.messages(led.message_ids())
    rendered = [m for m in msgs if m.state == MessageState.RENDERED]
    rejected = [m for m in msgs if m.state == MessageState.REJECTED]
    assert rendered and rejected
    assert max(n for key, n in reads.items() if key.startswith("inbox/")) == 1  # no file read twice
    for m in rendered:  # every file of a rendered letter read, _READY (empty) not
        assert {m.s3_prefix + name for name, (size, _e) in m.listing.items() if size} <= set(reads)
        assert m.s3_prefix + "_READY" not in reads
    assert ops["put_object", "rendered"] == ops["put_object", "outbox"] == len(rendered)
    assert ops["put_object", "rejected"] == 2 * len(rejected)
    assert not ops["list_objects_v2", "inbox"]
    for m in rendered:
        steps = [(e.from_state, e.to_state) for e in led.history(m.id)][1:]
        assert steps == [(MessageState.RECEIVED, MessageState.VALIDATED), (MessageState.VALIDATED, MessageState.STAMPED),
                         (MessageState.STAMPED, MessageState.RENDERED)], steps
        assert m.recipient_masked and m.reply_type and m.pdf_sha256
    stages = Counter()
    for m in rejected:
        report = json.loads(store.get_bytes(f"rejected/{m.source_system}/{NIGHT.isoformat()}/{m.submission_id}/rejection.json"))
        stages[report["stage"]] += 1
        if report["stage"] != "validate":  # validated first, then refused by a later step
            assert MessageState.VALIDATED in [e.to_state for e in led.history(m.id)]
    assert stages["validate"] and set(stages) <= {"validate", "stamp", "render"}

    ops.clear()
    for chunk in pipeline.plan_chunks(NIGHT, chunk_size=25):
        pipeline.deliver_chunk(chunk, actor="t")
    assert ops["get_object", "outbox"] == len(rendered) and not ops["get_object", "inbox"]


def test_prepare_takes_each_letter_up_where_it_stands_and_a_rerun_changes_nothing(night):
    """Letters left VALIDATED or STAMPED (by the separate stages, or a run killed between its
    ledger writes) are taken up from there: each step recorded once, nothing recorded twice."""
    pipeline.collect(NIGHT, actor="t")
    (chunk,) = pipeline.plan_chunks(NIGHT, chunk_size=100)
    led = pipeline.ledger()
    ids = led.message_ids()
    third = ids[len(ids) // 3]
    pipeline.validate_chunk(pipeline.Chunk.of(chunk).as_dict() | {"last_id": ids[2 * len(ids) // 3]}, actor="t")
    pipeline.stamp_chunk(pipeline.Chunk.of(chunk).as_dict() | {"last_id": third}, actor="t")
    before = {m.id: m.state for m in led.messages(ids)}
    assert {MessageState.RECEIVED, MessageState.VALIDATED, MessageState.STAMPED} <= set(before.values())
    first = pipeline.prepare_chunk(chunk, actor="t")
    received = [i for i, s in before.items() if s == MessageState.RECEIVED]
    assert 0 < first["validated"] == sum(
        1 for i in received if MessageState.VALIDATED in [e.to_state for e in led.history(i)])
    assert first["stamped"] >= first["validated"] and first["rendered"] > 0
    for m in led.messages(ids):
        steps = [e.to_state for e in led.history(m.id)]
        assert len(steps) == len(set(steps)), (m.id, steps)  # no step twice
        if m.state == MessageState.RENDERED:
            assert steps[-3:] == [MessageState.VALIDATED, MessageState.STAMPED, MessageState.RENDERED]
    after = [(m.id, m.state, m.pdf_sha256, len(led.history(m.id))) for m in led.messages(ids)]
    again = pipeline.prepare_chunk(chunk, actor="t")
    assert again["claimed"] == 0
    assert [(m.id, m.state, m.pdf_sha256, len(led.history(m.id))) for m in led.messages(ids)] == after
