"""Requeue is a new generation, and a DELIVERED receipt overrides giving up (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from ledger_support import DAY, S, advance, ledger, postgresql_ledger, registration, sqlite_ledger  # noqa: F401
from sqlalchemy import select

from docpost.cli import main
from docpost.ledger import Ledger, Receipt, UnknownMessage, identity
from docpost.ledger.schema import generations, receipts

pytestmark = pytest.mark.integration

AT = dt.datetime(2026, 11, 27, 9, tzinfo=dt.UTC)


def gave_up(ledger: Ledger, ids: list[int]) -> None:
    """Sent, retried, and given up on after max attempts (as the deliver stage does)."""
    advance(ledger, ids, S.SUBMITTED)
    ledger.transition(ids, S.RETRYING, "deliver", count_attempt=True, reason_code="sf1601.timeout", reason_text="t")
    ledger.transition(ids, S.FAILED, "deliver", reason_code="sf1601.timeout", reason_text="gave up after 5 attempts")


def delivered(message_uuid: str, state=S.DELIVERED_DIGITAL) -> Receipt:
    channel = "Digital Post" if state is S.DELIVERED_DIGITAL else "Fysisk Post"
    return Receipt(message_uuid, state, channel, f"Afleveret {channel}", at=AT)


def receipt_rows(ledger: Ledger) -> list[tuple]:
    with ledger.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(receipts.c.message_uuid, receipts.c.message_id, receipts.c.disposition).order_by(receipts.c.id))]


def test_requeue_starts_a_new_generation_with_new_ids_and_keeps_the_old_ones(ledger):
    regs = [registration(i) for i in range(3)]
    ids = ledger.register(regs, actor="t").ids
    gave_up(ledger, ids[:2])
    before = ledger.messages(ids)
    ledger.requeue(ids[:2], "operator:jane", "SF1601 is back")

    after = ledger.messages(ids)
    for reg, old, new in zip(regs[:2], before, after):
        assert (new.generation, new.state, new.attempts, new.reason_code) == (1, S.STAMPED, 0, None)
        assert new.message_uuid == identity.message_uuid(reg.source_system, reg.submission_id, reg.content_hash, 1)
        assert new.transaction_id == identity.transaction_id(reg.source_system, reg.submission_id, reg.content_hash, 1)
        assert len({old.message_uuid, old.transaction_id, new.message_uuid, new.transaction_id}) == 4
        (g,) = ledger.generations(new.id)
        assert (g.generation, g.message_uuid, g.transaction_id, g.ended_state, g.failed_from, g.reason_code,
                g.ended_by) == (0, old.message_uuid, old.transaction_id, S.FAILED, "RETRYING", "sf1601.timeout",
                                "operator:jane")
        last = ledger.history(new.id)[-1]
        assert (last.from_state, last.to_state, last.actor) == (S.FAILED, S.STAMPED, "operator:jane")
        assert "SF1601 is back" in last.detail and new.transaction_id in last.detail
        assert old.transaction_id in last.detail and "generation 1" in last.detail
        # the earlier ids still find the message, as do the new ones
        for key in (old.message_uuid, old.transaction_id, old.message_uuid.upper(), new.message_uuid,
                    new.transaction_id):
            assert ledger.get(key).id == new.id
            assert [m.id for m in ledger.find(key)] == [new.id]
        assert ledger.generation_of(old.message_uuid) == (new.id, 0)
        assert ledger.generation_of(new.message_uuid) == (new.id, 1)
        assert ledger.generation_of(old.transaction_id) is None  # a messageUUID, not a transaction id
    assert after[2].generation == 0 and after[2].message_uuid == before[2].message_uuid
    assert ledger.generations(ids[2]) == []
    assert ledger.ids_for([before[0].message_uuid, after[1].message_uuid, before[1].message_uuid]) == [
        ids[0], ids[1], ids[1]]
    with pytest.raises(UnknownMessage):
        ledger.ids_for([before[0].transaction_id])

    # a second requeue: generation 2, both earlier generations kept
    ledger.transition(ids[:1], S.FAILED, "render", reason_code="render.crash", reason_text="font missing")
    ledger.requeue(ids[:1], "operator:jane")
    m = ledger.messages(ids[:1])[0]
    assert m.generation == 2 and m.state is S.STAMPED
    assert [(g.generation, g.message_uuid, g.failed_from) for g in ledger.generations(m.id)] == [
        (0, before[0].message_uuid, "RETRYING"), (1, after[0].message_uuid, "STAMPED")]
    assert m.message_uuid not in {before[0].message_uuid, after[0].message_uuid}
    for old in (before[0].message_uuid, after[0].message_uuid):
        assert ledger.get(old).id == m.id
    with ledger.engine.connect() as conn:
        assert conn.execute(select(generations.c.generation).where(generations.c.message_id == m.id)
                            .order_by(generations.c.generation)).scalars().all() == [0, 1]


def test_a_delivered_receipt_for_generation_0_settles_a_resend_not_yet_submitted(ledger):
    ids = ledger.register([registration(i) for i in range(2)], actor="t").ids
    gave_up(ledger, ids)
    old = ledger.messages(ids)
    ledger.requeue(ids, "operator:jane")
    ledger.transition(ids[1:], S.RENDERED, "render")

    result = ledger.apply_receipts([delivered(old[0].message_uuid), delivered(old[1].message_uuid, S.DELIVERED_PHYSICAL)])
    assert (result.applied, result.stale, result.pending) == (2, 0, 0)
    a, b = ledger.messages(ids)
    assert (a.state, a.channel, a.generation) == (S.DELIVERED_DIGITAL, "digital", 1)
    assert (b.state, b.channel) == (S.DELIVERED_PHYSICAL, "physical")
    last = ledger.history(a.id)[-1]
    assert (last.from_state, last.to_state) == (S.STAMPED, S.DELIVERED_DIGITAL)
    assert f"receipt for generation 0 (messageUUID {old[0].message_uuid})" in last.detail
    assert "resend (generation 1) is not needed" in last.detail
    assert receipt_rows(ledger) == [(old[0].message_uuid, ids[0], "applied"), (old[1].message_uuid, ids[1], "applied")]
    # the resend's own late receipt (were it sent) changes nothing more
    assert ledger.apply_receipts([delivered(a.message_uuid)]).duplicates == 1


def test_a_receipt_for_generation_0_after_the_resend_was_submitted_is_recorded_only(ledger):
    ids = ledger.register([registration(i) for i in range(2)], actor="t").ids
    gave_up(ledger, ids)
    old = ledger.messages(ids)
    ledger.requeue(ids, "operator:jane")
    advance_from_stamped = [S.RENDERED, S.SUBMITTED]
    for state in advance_from_stamped:
        ledger.transition(ids, state, "t")
    events_before = len(ledger.history(ids[0]))

    result = ledger.apply_receipts([delivered(old[0].message_uuid),
                                    Receipt(old[1].message_uuid, S.FAILED, None, "Fejlet", "E-1", "gone", at=AT)])
    assert (result.applied, result.stale, result.pending) == (0, 2, 0)
    a, b = ledger.messages(ids)
    assert a.state is S.SUBMITTED and b.state is S.SUBMITTED  # never moved backwards nor settled early
    history = ledger.history(a.id)
    assert len(history) == events_before + 1
    assert (history[-1].from_state, history[-1].to_state) == (S.SUBMITTED, S.SUBMITTED)
    assert "receipt for generation 0" in history[-1].detail and "recorded, state kept" in history[-1].detail
    assert receipt_rows(ledger) == [(old[0].message_uuid, ids[0], "stale"), (old[1].message_uuid, ids[1], "stale")]
    # the new generation's own receipt settles it
    assert ledger.apply_receipts([delivered(a.message_uuid)]).applied == 1
    assert ledger.messages(ids[:1])[0].state is S.DELIVERED_DIGITAL


def test_a_pending_receipt_of_a_requeued_generation_is_matched_later(ledger):
    reg = registration(5)
    first = identity.message_uuid(reg.source_system, reg.submission_id, reg.content_hash)
    mid = ledger.register([reg], actor="t").ids[0]
    advance(ledger, [mid], S.RENDERED)
    assert ledger.apply_receipts([delivered(first)]).pending == 1  # not submitted (as far as the ledger knows)
    ledger.transition([mid], S.FAILED, "deliver", reason_code="deliver.rendered-pdf-changed", reason_text="x")
    ledger.requeue([mid], "operator:jane")
    assert ledger.messages([mid])[0].state is S.STAMPED
    result = ledger.apply_receipts([])
    assert (result.applied, result.pending) == (1, 0)
    assert ledger.messages([mid])[0].state is S.DELIVERED_DIGITAL


def test_a_delivered_receipt_overrides_failed_from_giving_up(ledger):
    ids = ledger.register([registration(i) for i in range(4)], actor="t").ids
    gave_up(ledger, ids[:1])  # RETRYING -> FAILED after max attempts
    advance(ledger, ids[1:2], S.RENDERED)
    ledger.transition(ids[1:2], S.FAILED, "deliver", reason_code="E-400", reason_text="refused")  # hard refusal
    advance(ledger, ids[2:3], S.SUBMITTED)
    advance(ledger, ids[3:], S.STAMPED)
    ledger.transition(ids[3:], S.FAILED, "render", reason_code="render.crash", reason_text="never sent")
    ms = ledger.messages(ids)

    batch = [delivered(ms[0].message_uuid), delivered(ms[1].message_uuid, S.DELIVERED_PHYSICAL),
             # a FAILED receipt, then a DELIVERED one (e.g. digital failed, print delivered), one batch
             Receipt(ms[2].message_uuid, S.FAILED, None, "Fejlet", "E-1", "not digital", at=AT),
             delivered(ms[2].message_uuid, S.DELIVERED_PHYSICAL),
             delivered(ms[3].message_uuid)]
    result = ledger.apply_receipts(batch)
    assert (result.applied, result.stale) == (4, 1)
    a, b, c, d = ledger.messages(ids)
    assert (a.state, a.reason_code, a.failed_from, a.channel) == (S.DELIVERED_DIGITAL, None, None, "digital")
    last = ledger.history(a.id)[-1]
    assert (last.from_state, last.to_state, last.actor) == (S.FAILED, S.DELIVERED_DIGITAL, "receipts")
    assert "delivered after all: overrides FAILED (sf1601.timeout, failed from RETRYING)" in last.detail
    assert b.state is S.DELIVERED_PHYSICAL  # a refusal, then a receipt saying delivered: it was delivered
    assert c.state is S.DELIVERED_PHYSICAL
    assert [e.to_state for e in ledger.history(c.id)[-2:]] == [S.FAILED, S.DELIVERED_PHYSICAL]
    assert "failed from SUBMITTED" in ledger.history(c.id)[-1].detail
    assert (d.state, d.reason_code) == (S.FAILED, "render.crash")  # never left docpost: stale
    # a late FAILED receipt does not undo the delivery
    assert ledger.apply_receipts([Receipt(ms[0].message_uuid, S.FAILED, None, "Fejlet", "E", at=AT)]).stale == 1
    assert ledger.messages(ids[:1])[0].state is S.DELIVERED_DIGITAL


def test_status_and_requeue_commands_show_the_generations(ledger, monkeypatch, capsys):
    monkeypatch.setenv("DOCPOST_DB_URL", ledger.url.render_as_string(hide_password=False))
    monkeypatch.setenv("DOCPOST_PSEUDONYM_KEY", "ledger-test-pseudonym-key")
    mid = ledger.register([registration(1)], actor="t").ids[0]
    gave_up(ledger, [mid])
    old = ledger.messages([mid])[0]
    assert main(["requeue", old.message_uuid, "--reason", "fixed", "--output", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["requeued"]
    new = ledger.messages([mid])[0]
    assert row == {"message_uuid": new.message_uuid, "state": "STAMPED", "generation": 1,
                   "transaction_id": new.transaction_id, "requeued_as": old.message_uuid}
    assert main(["status", old.message_uuid, "--output", "json"]) == 0  # found by the earlier messageUUID
    (found,) = json.loads(capsys.readouterr().out)["messages"]
    assert (found["message_uuid"], found["generation"]) == (new.message_uuid, 1)
    assert [(g["generation"], g["message_uuid"], g["transaction_id"]) for g in found["earlier_generations"]] == [
        (0, old.message_uuid, old.transaction_id)]
    assert main(["status", old.transaction_id]) == 0
    out = capsys.readouterr().out
    assert new.message_uuid in out and "earlier generations" in out and old.message_uuid in out
