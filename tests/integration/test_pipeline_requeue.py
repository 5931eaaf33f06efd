"""Requeue is a new generation, end to end: a letter sent, given up on, requeued and sent again by
the stages is a second, distinct SF1601 transaction at the simulator (not the stored answer to
the first), and both generations' receipts are recognised."""

from __future__ import annotations

import io
import time

import pytest
from test_pipeline import NIGHT, night, pki, run_night  # noqa: F401 - the night fixture and its parts

from docpost import pipeline
from docpost.ledger import MessageState

pytestmark = pytest.mark.integration
S = MessageState


def _rendered_by_docpost(store, m) -> bool:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(store.get_bytes(pipeline.rendered_key(m.ref))))
    return "docpost-ref" in str((reader.metadata or {}).get("/Keywords", ""))


def test_a_requeued_letter_is_sent_again_as_a_new_transaction(night):  # noqa: F811
    store, sim, _ = night
    run_night()
    led = pipeline.ledger()
    delivered_at_sim = sim.stats()["deliveries"]
    sent = [m for m in led.messages(led.message_ids(states=[S.SUBMITTED]))
            if delivered_at_sim.get(m.message_uuid) == 1 and _rendered_by_docpost(store, m)]
    assert sent, "the night has a letter docpost rendered and the simulator delivered"
    old = sent[0]
    before = sim.stats()
    assert before["transactions"].get(old.message_uuid) == 1

    # the delivery stage gives up on it (as after max attempts), an operator requeues it
    led.transition([old.id], S.RETRYING, "deliver", count_attempt=True, reason_code="sf1601.timeout",
                   reason_text="timed out")
    led.transition([old.id], S.FAILED, "deliver", reason_code="sf1601.timeout", reason_text="gave up after 1 attempts")
    led.requeue([old.id], "operator:jane", "sent again")
    new = led.messages([old.id])[0]
    assert (new.state, new.generation) == (S.STAMPED, 1)
    assert new.message_uuid != old.message_uuid and new.transaction_id != old.transaction_id

    totals = run_night(actor="after-requeue")  # the stages render and deliver the new generation
    assert totals.get("submitted") == 1, totals
    new = led.messages([old.id])[0]
    assert new.state is S.SUBMITTED and new.pdf_sha256 and new.pdf_sha256 != old.pdf_sha256
    after = sim.stats()
    # a second, distinct transaction for the letter: not the stored answer to the first
    assert after["requests"] > before["requests"]
    assert after["transactions"].get(old.message_uuid) == 1
    assert after["transactions"].get(new.message_uuid) == 1
    assert after["deliveries"].get(new.message_uuid) == 1
    assert sum(after["transactions"].values()) == sum(before["transactions"].values()) + 1

    # receipts: generation 0's is recorded (the resend is out), generation 1's settles the letter
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pipeline.fetch_receipts(actor="test-receipts")
        if led.messages([old.id])[0].state is not S.SUBMITTED:
            break
        time.sleep(0.5)
    final = led.messages([old.id])[0]
    assert final.state in (S.DELIVERED_DIGITAL, S.DELIVERED_PHYSICAL), final.state
    details = [e.detail or "" for e in led.history(old.id)]
    assert any(f"receipt for generation 0 (messageUUID {old.message_uuid})" in d for d in details), details
    assert led.get(old.message_uuid).id == old.id and led.get(old.transaction_id).id == old.id
