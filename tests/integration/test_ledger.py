"""The ledger suite: every test runs on a SQLite file and on PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest
from ledger_support import DAY, KEY, S, advance, cpr, ledger, postgresql_ledger, registration, sqlite_ledger  # noqa: F401
from sqlalchemy import event, func, select

from docpost.ledger import (
    CHUNK,
    IllegalTransition,
    InvalidField,
    Ledger,
    Move,
    Receipt,
    UnexpectedState,
    UnknownMessage,
    identity,
)
from docpost.ledger.schema import conflicts, events, messages, receipts

pytestmark = pytest.mark.integration


def event_count(ledger: Ledger, message_id: int | None = None) -> int:
    stmt = select(func.count()).select_from(events)
    if message_id is not None:
        stmt = stmt.where(events.c.message_id == message_id)
    with ledger.engine.connect() as conn:
        return conn.execute(stmt).scalar_one()


def states(ledger: Ledger, ids) -> list[str]:
    return [m.state.value for m in ledger.messages(ids)]


# -- registration and identity ------------------------------------------------------------------


def test_register_creates_received_messages_with_derived_ids(ledger):
    regs = [registration(i) for i in range(5)]
    result = ledger.register(regs, actor="dag:nightly/run-1")

    assert [m.created for m in result.messages] == [True] * 5
    assert result.conflicts == []
    for reg, m in zip(regs, result.messages):
        assert m.state is S.RECEIVED
        assert m.message_uuid == identity.message_uuid(reg.source_system, reg.submission_id, reg.content_hash)
        assert m.transaction_id == identity.transaction_id(reg.source_system, reg.submission_id, reg.content_hash)
        parsed = uuid.UUID(m.message_uuid)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert uuid.UUID(m.transaction_id).version == 4
        assert m.message_uuid != m.transaction_id
        history = ledger.history(m.id)
        assert [(e.from_state, e.to_state, e.actor) for e in history] == [(None, S.RECEIVED, "dag:nightly/run-1")]
    assert len({m.message_uuid for m in result.messages}) == 5


def test_registering_the_same_identity_again_returns_the_existing_message(ledger):
    first = ledger.register([registration(i) for i in range(3)], actor="run-1")
    ledger.transition(first.ids[:1], S.VALIDATED, "run-1")
    again = ledger.register([registration(i) for i in range(3)], actor="run-2")

    assert again.ids == first.ids
    assert [m.created for m in again.messages] == [False, False, False]
    assert again.messages[0].state is S.VALIDATED
    assert event_count(ledger) == 4  # 3 registrations + 1 transition, nothing for the rerun
    # a repeat inside one batch is one message
    twice = ledger.register([registration(7), registration(7)], actor="run-3")
    assert twice.ids[0] == twice.ids[1] and [m.created for m in twice.messages] == [True, False]


def test_same_submission_with_different_content_is_a_recorded_conflict(ledger):
    original = ledger.register([registration(1)], actor="run-1").messages[0]
    changed = registration(1, content="edited afterwards")
    result = ledger.register([changed, registration(2)], actor="run-2")

    assert [m.submission_id for m in result.messages] == ["SUB-000002"]
    assert len(result.conflicts) == 1
    c = result.conflicts[0]
    assert (c.message_id, c.submission_id, c.conflicting_content_hash) == (
        original.id, "SUB-000001", changed.content_hash)
    assert c.existing_content_hash == registration(1).content_hash
    assert ledger.message_ids(DAY) == [original.id, result.messages[0].id]  # no second message
    assert ledger.messages([original.id])[0].content_hash == registration(1).content_hash  # not overwritten
    ledger.register([changed], actor="run-3")  # seen again: still one conflict row
    assert len(ledger.conflicts(DAY)) == 1
    assert [x.submission_id for x in ledger.report(DAY).conflicts] == ["SUB-000001"]


def test_recipient_is_stored_masked_and_hashed_and_found_by_hash(ledger):
    ids = ledger.register([registration(3), registration(4, cvr_recipient=True)], actor="t").ids
    person, company = ledger.messages(ids)
    assert person.recipient_masked == cpr(3)[:6] + "-****"
    assert person.recipient_hash == identity.recipient_hash("CPR", cpr(3), KEY)
    assert company.recipient_id_type == "CVR" and company.recipient_masked.endswith("****")
    assert [m.id for m in ledger.by_recipient("CPR", cpr(3))] == [ids[0]]
    assert ledger.by_recipient("CPR", cpr(5)) == []
    assert cpr(3) not in repr(registration(3)) and cpr(3) not in repr(person)


def test_recipient_can_be_set_later_by_a_transition(ledger):
    reg = dataclasses.replace(registration(8), recipient_id_type=None, recipient_identifier=None)
    mid = ledger.register([reg], actor="collect").ids[0]
    assert ledger.messages([mid])[0].recipient_masked is None
    ledger.transition([mid], S.VALIDATED, "validate", recipient=("CPR", cpr(8)), title="Afgørelse om boligstøtte")
    m = ledger.messages([mid])[0]
    assert m.recipient_masked == cpr(8)[:6] + "-****" and m.title == "Afgørelse om boligstøtte"
    assert m.recipient_hash == identity.recipient_hash("CPR", cpr(8), KEY)


# -- state machine ------------------------------------------------------------------------------


def test_happy_path_sets_fields_and_writes_one_event_per_transition(ledger):
    ids = ledger.register([registration(i) for i in range(4)], actor="collect").ids
    ledger.transition(ids, S.VALIDATED, "validate")
    ledger.transition(ids, S.STAMPED, "stamp", reply_type="angivet", reply_postkasse_id=100, reply_emne_id=1001,
                      reply_contact_point_id="cp-1001")
    ledger.transition(ids, S.RENDERED, "render", pdf_sha256="ab" * 32)
    result = ledger.transition(ids, S.SUBMITTED, "send", count_attempt=True, channel="digital")

    assert result.moved == ids and result.unchanged == []
    for m in ledger.messages(ids):
        assert (m.state, m.reply_postkasse_id, m.reply_emne_id, m.reply_contact_point_id) == (
            S.SUBMITTED, 100, 1001, "cp-1001")
        assert (m.pdf_sha256, m.attempts, m.channel) == ("ab" * 32, 1, "digital")
        assert m.submitted_at is not None and m.submitted_at.tzinfo is not None
        assert [(e.from_state, e.to_state) for e in ledger.history(m.id)] == [
            (None, S.RECEIVED), (S.RECEIVED, S.VALIDATED), (S.VALIDATED, S.STAMPED),
            (S.STAMPED, S.RENDERED), (S.RENDERED, S.SUBMITTED)]


def test_reentering_the_current_state_is_a_noop_unless_an_attempt_is_counted(ledger):
    ids = ledger.register([registration(i) for i in range(3)], actor="t").ids
    ledger.transition(ids[:2], S.VALIDATED, "t")
    before = event_count(ledger)
    result = ledger.transition(ids, S.VALIDATED, "rerun")
    assert result.moved == [ids[2]] and sorted(result.unchanged) == ids[:2]
    assert event_count(ledger) == before + 1

    advance(ledger, ids, S.RENDERED)
    ledger.transition(ids, S.RETRYING, "send", count_attempt=True, detail="503 from SF1601")
    ledger.transition(ids, S.RETRYING, "send", count_attempt=True, detail="timeout")
    m = ledger.messages(ids[:1])[0]
    assert m.state is S.RETRYING and m.attempts == 2
    assert [e.detail for e in ledger.history(m.id)][-2:] == ["503 from SF1601", "timeout"]


@pytest.mark.parametrize(("setup", "target"), [
    (S.VALIDATED, S.RECEIVED),  # backwards
    (S.RECEIVED, S.SUBMITTED),  # skipping stages
    (S.SUBMITTED, S.CANCELLED),  # too late to cancel
])
def test_illegal_transition_moves_nothing_and_names_the_states(ledger, setup, target):
    ids = ledger.register([registration(i) for i in range(3)], actor="t").ids
    if setup is not S.RECEIVED:
        advance(ledger, ids[1:], setup)  # ids[0] stays RECEIVED; the batch holds one legal move at most
    before = (states(ledger, ids), event_count(ledger))
    with pytest.raises(IllegalTransition) as info:
        ledger.transition(ids, target, "t")
    assert info.value.to_state == target.value and info.value.code == "ledger.illegal-transition"
    assert target.value in str(info.value)
    assert (states(ledger, ids), event_count(ledger)) == before  # all or nothing


def test_final_states_are_final_and_failed_leaves_only_by_requeue(ledger):
    ids = ledger.register([registration(i) for i in range(3)], actor="t").ids
    ledger.reject(ids[0], "xsd_invalid", "manifest.xml line 4: missing Title", "validate")
    advance(ledger, ids[1:], S.SUBMITTED)
    ledger.transition([ids[1]], S.DELIVERED_DIGITAL, "receipts")
    ledger.transition([ids[2]], S.FAILED, "send", reason_code="E4", reason_text="rejected by SF1601")
    for mid, target in ((ids[0], S.VALIDATED), (ids[1], S.RETRYING), (ids[2], S.SUBMITTED), (ids[2], S.RENDERED)):
        with pytest.raises(IllegalTransition):
            ledger.transition([mid], target, "t")


def test_expected_from_guards_against_a_concurrent_move(ledger):
    ids = ledger.register([registration(i) for i in range(2)], actor="t").ids
    advance(ledger, ids, S.RENDERED)
    ledger.transition(ids[:1], S.SUBMITTED, "other worker")
    with pytest.raises(UnexpectedState) as info:
        ledger.transition(ids, S.RETRYING, "send", expected_from=S.RENDERED)
    assert info.value.from_state == "SUBMITTED" and info.value.code == "ledger.unexpected-state"
    assert states(ledger, ids) == ["SUBMITTED", "RENDERED"]


def test_unknown_ids_and_fields_are_refused(ledger):
    ids = ledger.register([registration(1)], actor="t").ids
    with pytest.raises(UnknownMessage):
        ledger.transition([ids[0], ids[0] + 999], S.VALIDATED, "t")
    with pytest.raises(InvalidField):
        ledger.transition(ids, S.VALIDATED, "t", state="DELIVERED_DIGITAL")
    with pytest.raises(InvalidField):
        ledger.transition(ids, S.VALIDATED, "t", channel="carrier pigeon")
    assert states(ledger, ids) == ["RECEIVED"]
    with pytest.raises(UnknownMessage):
        ledger.ids_for([str(uuid.uuid4())])


def test_bulk_reject_keeps_each_reason_and_scrubs_identifiers(ledger):
    ids = ledger.register([registration(i) for i in range(3)], actor="t").ids
    result = ledger.reject_many([
        (ids[0], "xsd_invalid", "manifest.xml: element Titel missing"),
        (ids[1], "unknown_emne", f"Emne 9999 does not exist (recipient {cpr(1)})"),
    ], actor="validate")
    assert sorted(result.moved) == ids[:2]
    a, b, c = ledger.messages(ids)
    assert (a.state, a.reason_code, a.reason_text) == (S.REJECTED, "xsd_invalid", "manifest.xml: element Titel missing")
    assert (b.reason_code, b.reason_text) == ("unknown_emne", f"Emne 9999 does not exist (recipient {cpr(1)[:6]}-****)")
    assert c.state is S.RECEIVED
    assert ledger.history(b.id)[-1].detail == f"unknown_emne: Emne 9999 does not exist (recipient {cpr(1)[:6]}-****)"


def test_transition_each_sets_values_per_message(ledger):
    ids = ledger.register([registration(i) for i in range(3)], actor="t").ids
    advance(ledger, ids, S.STAMPED)
    ledger.transition_each([Move(mid, f"pdf {i}", {"pdf_sha256": f"{i:064x}"}) for i, mid in enumerate(ids)],
                           S.RENDERED, "render")
    assert [m.pdf_sha256 for m in ledger.messages(ids)] == [f"{i:064x}" for i in range(3)]
    assert [ledger.history(mid)[-1].detail for mid in ids] == ["pdf 0", "pdf 1", "pdf 2"]


# -- bulk ---------------------------------------------------------------------------------------


def _bulk_run(ledger, n):
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(ledger.engine, "before_cursor_execute", count)
    try:
        ids = ledger.register([registration(i) for i in range(n)], actor="bulk").ids
        registered = len(statements)
        ledger.transition(ids, S.VALIDATED, "bulk")
        moved = len(statements) - registered
    finally:
        event.remove(ledger.engine, "before_cursor_execute", count)
    chunks = -(-n // ledger.chunk_size)
    assert len(ids) == len(set(ids)) == n
    assert registered <= 3 * chunks + 1  # BEGIN; insert, read back, events per chunk; never per row
    assert moved <= 3 * chunks + 1  # BEGIN; lock, events, update per chunk
    assert ledger.report(DAY).by_state["VALIDATED"] == n
    assert event_count(ledger) == 2 * n


def test_bulk_operations_use_a_few_statements_per_chunk(ledger, monkeypatch):
    monkeypatch.setattr(ledger, "chunk_size", 250)
    _bulk_run(ledger, 1100)


@pytest.mark.slow
def test_bulk_operations_at_full_chunk_size(ledger):
    _bulk_run(ledger, CHUNK * 2 + 500)


# -- claims -------------------------------------------------------------------------------------


def test_claims_are_exclusive_until_released_or_expired(ledger):
    ids = ledger.register([registration(i) for i in range(10)], actor="t").ids
    advance(ledger, ids, S.RENDERED)
    first = ledger.claim([S.RENDERED, S.RETRYING], 4, "worker-a", lease_seconds=300)
    second = ledger.claim([S.RENDERED], 10, "worker-b", lease_seconds=300)
    assert [r.id for r in first] == ids[:4]
    assert [r.id for r in second] == ids[4:]
    assert ledger.claim([S.RENDERED], 10, "worker-c") == []
    assert first[0].transaction_id == ledger.messages(ids[:1])[0].transaction_id

    assert ledger.release([r.id for r in first], "worker-b") == 0  # not b's to release
    assert ledger.release([r.id for r in first[:2]], "worker-a") == 2
    assert [r.id for r in ledger.claim([S.RENDERED], 10, "worker-c")] == ids[:2]

    expired = ledger.claim([S.RECEIVED, S.RENDERED], 10, "worker-d", lease_seconds=-1)
    assert expired == []  # everything RENDERED is still leased
    ledger.release(ids, "worker-b")
    short = ledger.claim([S.RENDERED], 2, "worker-e", lease_seconds=-1)  # lease already over
    assert [r.id for r in short] == ids[4:6]
    assert [r.id for r in ledger.claim([S.RENDERED], 10, "worker-f")] == ids[4:]


def test_claim_within_ids_and_date(ledger):
    ids = ledger.register([registration(i) for i in range(6)], actor="t").ids
    other = ledger.register([registration(99, day=DAY + dt.timedelta(days=1))], actor="t").ids
    got = ledger.claim([S.RECEIVED], 10, "w", message_ids=ids[2:4])
    assert [r.id for r in got] == ids[2:4]
    got = ledger.claim([S.RECEIVED], 10, "w", submission_date=DAY + dt.timedelta(days=1))
    assert [r.id for r in got] == other


# -- queries ------------------------------------------------------------------------------------


def test_lookups_by_uuid_submission_id_case_number_and_date(ledger):
    regs = [registration(i) for i in range(12)] + [registration(1, source="momentum")]
    ids = ledger.register(regs, actor="t").ids
    advance(ledger, ids[:5], S.VALIDATED)
    m = ledger.messages([ids[3]])[0]

    assert ledger.get(m.message_uuid).id == m.id
    assert ledger.get(m.transaction_id).id == m.id
    assert ledger.get(m.message_uuid.upper()).id == m.id
    assert [x.id for x in ledger.find(m.message_uuid)] == [m.id]
    assert [x.source_system for x in ledger.find("SUB-000001")] == ["sbsys", "momentum"]
    assert [x.id for x in ledger.by_submission_id("SUB-000001", "momentum")] == [ids[12]]
    assert [x.id for x in ledger.find("SAG-0000")] == ids[:10] + [ids[12]]
    assert ledger.message_ids(DAY, [S.VALIDATED]) == ids[:5]
    assert ledger.message_ids(DAY, [S.RECEIVED], source_system="sbsys") == ids[5:12]
    assert ledger.message_ids(DAY + dt.timedelta(days=1)) == []
    assert ledger.ids_for([m.message_uuid]) == [m.id]
    assert [r.id for r in ledger.refs(ids[2:4])] == ids[2:4]


def test_awaiting_receipt_finds_old_submissions_only(ledger):
    ids = ledger.register([registration(i) for i in range(3)], actor="t").ids
    advance(ledger, ids[:2], S.SUBMITTED)
    now = dt.datetime.now(dt.UTC)
    assert ledger.awaiting_receipt(6, now=now) == []
    later = ledger.awaiting_receipt(6, now=now + dt.timedelta(hours=7))
    assert [r.id for r in later] == ids[:2] and later[0].state is S.SUBMITTED
    ledger.transition(ids[:1], S.DELIVERED_PHYSICAL, "receipts")
    assert [r.id for r in ledger.awaiting_receipt(6, now=now + dt.timedelta(hours=7))] == ids[1:2]
    assert ledger.report(DAY, now=now + dt.timedelta(hours=7), overdue_hours=6).awaiting_receipt_overdue == 1


def test_report_counts_by_state_channel_and_source_system(ledger):
    ids = ledger.register([registration(i) for i in range(6)] + [registration(i, source="dubu") for i in range(3)],
                          actor="t").ids
    advance(ledger, ids[:4], S.SUBMITTED)
    ledger.transition(ids[:2], S.DELIVERED_DIGITAL, "r", channel="digital")
    ledger.transition(ids[2:3], S.DELIVERED_PHYSICAL, "r", channel="physical")
    ledger.reject(ids[6], "xsd_invalid", "bad", "v")
    report = ledger.report(DAY)
    assert report.total == 9
    assert {k: v for k, v in report.by_state.items() if v} == {
        "DELIVERED_DIGITAL": 2, "DELIVERED_PHYSICAL": 1, "SUBMITTED": 1, "RECEIVED": 4, "REJECTED": 1}
    assert report.by_channel == {"digital": 2, "physical": 1, "none": 6}
    assert report.by_source_system == {
        "dubu": {"REJECTED": 1, "RECEIVED": 2},
        "sbsys": {"DELIVERED_DIGITAL": 2, "DELIVERED_PHYSICAL": 1, "SUBMITTED": 1, "RECEIVED": 2}}
    assert report.to_dict()["by_state"]["REJECTED"] == 1


# -- receipts -----------------------------------------------------------------------------------


def test_receipts_apply_once_and_duplicates_are_harmless(ledger):
    ids = ledger.register([registration(i) for i in range(3)], actor="t").ids
    advance(ledger, ids, S.SUBMITTED)
    ms = ledger.messages(ids)
    at = dt.datetime(2026, 11, 27, 8, 30, tzinfo=dt.UTC)
    batch = [
        Receipt(ms[0].message_uuid, S.DELIVERED_DIGITAL, "Digital Post", "Afleveret Digital Post", at=at),
        Receipt(ms[1].message_uuid, S.DELIVERED_PHYSICAL, "Fysisk Post", "Afleveret Fysisk Post", at=at),
        Receipt(ms[2].message_uuid, S.FAILED, None, "Fejlet", "E-101", f"Modtager {cpr(2)} findes ikke", at=at),
    ]
    first = ledger.apply_receipts(batch + batch[:1])
    assert (first.applied, first.duplicates, first.stale, first.pending) == (3, 1, 0, 0)
    again = ledger.apply_receipts(batch)
    assert (again.applied, again.duplicates) == (0, 3)
    a, b, c = ledger.messages(ids)
    assert (a.state, a.channel, a.receipt_status) == (S.DELIVERED_DIGITAL, "digital", "Afleveret Digital Post")
    assert (b.state, b.channel) == (S.DELIVERED_PHYSICAL, "physical")
    assert (c.state, c.reason_code, c.failed_from) == (S.FAILED, "E-101", "SUBMITTED")
    assert c.reason_text == f"Modtager {cpr(2)[:6]}-**** findes ikke"
    assert ledger.history(a.id)[-1].at == at and ledger.history(a.id)[-1].actor == "receipts"
    assert event_count(ledger, a.id) == 6
    # the same outcome reported again with another timestamp changes nothing
    later = ledger.apply_receipts([dataclasses.replace(batch[0], at=at + dt.timedelta(minutes=5))])
    assert later.duplicates == 1 and event_count(ledger, a.id) == 6
    # a contradicting late receipt is kept as stale, not applied
    stale = ledger.apply_receipts([Receipt(ms[0].message_uuid, S.FAILED, status_code="Fejlet", at=at)])
    assert stale.stale == 1 and ledger.messages(ids[:1])[0].state is S.DELIVERED_DIGITAL


def test_receipt_before_its_message_waits_and_applies_on_submission(ledger):
    reg = registration(42)
    muid = identity.message_uuid(reg.source_system, reg.submission_id, reg.content_hash)
    early = ledger.apply_receipts([Receipt(muid.upper(), S.DELIVERED_DIGITAL, "digital", "Afleveret Digital Post")])
    assert (early.applied, early.pending) == (0, 1)
    assert ledger.report(DAY).pending_receipts == 1

    mid = ledger.register([reg], actor="t").ids[0]
    advance(ledger, [mid], S.RENDERED)
    assert ledger.apply_receipts([]).pending == 1  # known now, but not yet submitted
    ledger.transition([mid], S.SUBMITTED, "send")
    m = ledger.messages([mid])[0]
    assert (m.state, m.channel) == (S.DELIVERED_DIGITAL, "digital")
    assert ledger.report(DAY).pending_receipts == 0
    with ledger.engine.connect() as conn:
        row = conn.execute(select(receipts.c.message_id, receipts.c.disposition)).one()
    assert tuple(row) == (mid, "applied")


def test_receipt_outcome_must_be_a_delivery_state(ledger):
    with pytest.raises(InvalidField):
        ledger.apply_receipts([Receipt(str(uuid.uuid4()), S.VALIDATED)])


# -- operators ----------------------------------------------------------------------------------


def test_cancel_before_submission_only(ledger):
    ids = ledger.register([registration(i) for i in range(3)], actor="t").ids
    advance(ledger, ids[1:2], S.RENDERED)
    advance(ledger, ids[2:], S.SUBMITTED)
    result = ledger.cancel(ids[:2], "operator:jane", "duplicate letter")
    assert sorted(result.moved) == ids[:2]
    m = ledger.messages(ids[:1])[0]
    assert (m.state, m.reason_code, m.reason_text) == (S.CANCELLED, "cancelled", "duplicate letter")
    assert ledger.history(m.id)[-1].actor == "operator:jane"
    with pytest.raises(IllegalTransition, match="not yet submitted"):
        ledger.cancel(ids[2:], "operator:jane", "too late")


def test_requeue_sends_failed_messages_back_to_where_they_can_be_resent(ledger):
    ids = ledger.register([registration(i) for i in range(3)], actor="t").ids
    advance(ledger, ids[:2], S.RENDERED)
    ledger.transition(ids[:1], S.SUBMITTED, "send", count_attempt=True)
    ledger.transition(ids[:2], S.FAILED, "send", reason_code="E5", reason_text="gave up")
    advance(ledger, ids[2:], S.STAMPED)
    ledger.transition(ids[2:], S.FAILED, "render", reason_code="render_crash", reason_text="font missing")

    with pytest.raises(IllegalTransition):
        ledger.requeue(ids[:1] + [ledger.register([registration(9)], actor="t").ids[0]], "operator:jane")
    assert states(ledger, ids[:1]) == ["FAILED"]

    ledger.requeue(ids, "operator:jane", "certificate renewed")
    a, b, c = ledger.messages(ids)
    # a new generation: its PDF carries the new messageUUID, so it is rendered again, then sent
    assert (a.state, a.attempts, a.reason_code, a.failed_from, a.generation) == (S.STAMPED, 0, None, None, 1)
    assert b.state is S.STAMPED and c.state is S.STAMPED
    last = ledger.history(a.id)[-1]
    assert (last.from_state, last.to_state, last.actor) == (S.FAILED, S.STAMPED, "operator:jane")
    assert last.detail.startswith("certificate renewed; generation 1: ")
    ledger.transition(ids[:1], S.RENDERED, "render")
    ledger.transition(ids[:1], S.SUBMITTED, "send")  # resendable again


# -- retention ----------------------------------------------------------------------------------


def test_purge_removes_personal_data_of_settled_messages_and_keeps_history(ledger):
    ids = ledger.register([registration(i, title=f"Brev {i}") for i in range(4)], actor="t").ids
    advance(ledger, ids[:3], S.SUBMITTED)
    ledger.transition(ids[:1], S.DELIVERED_DIGITAL, "r")
    ledger.transition(ids[1:2], S.FAILED, "r", reason_code="E", reason_text="recipient unknown")
    m = ledger.messages(ids[1:2])[0]
    ledger.apply_receipts([Receipt(m.message_uuid, S.FAILED, error_text="dead", status_code="Fejlet")])
    history_before = {mid: len(ledger.history(mid)) for mid in ids}

    assert ledger.purge(30, "retention") == 0  # nothing old enough
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=31)
    assert ledger.purge(30, "retention", now=future) == 2
    delivered, failed, submitted, received = ledger.messages(ids)
    for purged in (delivered, failed):
        assert (purged.recipient_masked, purged.recipient_hash, purged.title, purged.reason_text) == (None,) * 4
        assert purged.purged_at is not None and purged.recipient_id_type == "CPR"
        assert len(ledger.history(purged.id)) == history_before[purged.id] + 1
        assert ledger.history(purged.id)[-1].detail.startswith("personal data removed")
    assert failed.reason_code == "E" and delivered.state is S.DELIVERED_DIGITAL
    for kept in (submitted, received):
        assert kept.recipient_masked and kept.title and kept.purged_at is None
    assert ledger.by_recipient("CPR", cpr(0)) == []
    with ledger.engine.connect() as conn:
        assert conn.execute(select(receipts.c.error_text)).scalars().all() == [None]
    assert ledger.purge(30, "retention", now=future) == 0  # once


# -- schema -------------------------------------------------------------------------------------


def test_schema_matches_the_models_after_migration(ledger):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from docpost import migrations
    from docpost.ledger.schema import metadata

    assert ledger.revision() == migrations.head_revision()
    ledger.upgrade()  # idempotent
    with ledger.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": migrations.VERSION_TABLE})
        assert compare_metadata(ctx, metadata) == []
    assert {t.name for t in (messages, events, conflicts, receipts)} <= set(
        __import__("sqlalchemy").inspect(ledger.engine).get_table_names())


def test_last_registered_is_the_latest_registration_of_the_date(ledger):
    other_day = DAY + dt.timedelta(days=400)
    assert ledger.last_registered(other_day) is None
    before = dt.datetime.now(dt.UTC)
    first = ledger.register([registration(9001, day=other_day)], actor="test").messages[0]
    second = ledger.register([registration(9002, day=other_day)], actor="test").messages[0]
    last = ledger.last_registered(other_day)
    assert last.tzinfo is not None and before <= last <= dt.datetime.now(dt.UTC)
    created = {m.id: m.created_at for m in ledger.messages([first.id, second.id])}
    assert last == max(created.values()) == created[second.id]
