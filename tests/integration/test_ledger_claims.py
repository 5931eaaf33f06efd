"""Fenced claims: a stage's writes carry its claim token and apply only while the row still holds
it; leases are renewed while a worker works; an operator cannot cancel a letter being worked on.
Every test runs on PostgreSQL and on a SQLite file (``ledger`` fixture)."""

from __future__ import annotations

import time

import pytest
from ledger_support import S, advance, ledger, postgresql_ledger, registration, sqlite_ledger  # noqa: F401

from docpost.cli import main
from docpost.ledger import Move, Receipt, UnexpectedState
from docpost.ledger.errors import ClaimedMessage, LedgerError

pytestmark = pytest.mark.integration


def history_states(ledger, mid) -> list[tuple[str | None, str]]:
    return [(e.from_state and e.from_state.value, e.to_state.value) for e in ledger.history(mid)]


def test_claim_hands_out_one_token_as_the_fence(ledger):
    ids = ledger.register([registration(i) for i in range(4)], actor="t").ids
    refs = ledger.claim([S.RECEIVED], 2, "w", 60, token="tok-1")  # the worker's own token
    assert [r.id for r in refs] == ids[:2] and {r.claim_token for r in refs} == {"tok-1"}
    made = ledger.claim([S.RECEIVED], 10, "x", 60)  # else one new token per claim, on every ref
    assert [r.id for r in made] == ids[2:] and len({r.claim_token for r in made}) == 1
    assert made[0].claim_token not in (None, "tok-1")
    assert [m.claim_token for m in ledger.messages(ids)] == ["tok-1"] * 2 + [made[0].claim_token] * 2


def test_a_stale_tokens_write_is_skipped_not_applied(ledger):
    ids = ledger.register([registration(i) for i in range(3)], actor="t").ids
    first = ledger.claim([S.RECEIVED], 10, "run-a#validate:0", lease_seconds=-1)  # lease already over
    token_a = first[0].claim_token
    second = ledger.claim([S.RECEIVED], 10, "run-b#validate:0", lease_seconds=60)  # takes them over
    assert [r.id for r in second] == ids
    token_b = second[0].claim_token

    stale = ledger.transition_each([Move(i, "a was here") for i in ids], S.VALIDATED, "run-a",
                                   expected_from=[S.RECEIVED], fence=token_a)
    assert (stale.moved, stale.lost, stale.settled) == ([], ids, [])
    assert all(m.state is S.RECEIVED for m in ledger.messages(ids))
    assert all(len(ledger.history(i)) == 1 for i in ids)  # no event either
    assert ledger.transition(ids, S.VALIDATED, "run-a", fence=token_a).lost == ids
    assert ledger.hold([(ids[0], "internal.Boom", "x")], "run-a", fence=token_a) == []
    assert ledger.reject_many([(ids[0], "c", "t")], "run-a", fence=token_a).lost == [ids[0]]
    assert ledger.release(ids, "run-a#validate:0", token=token_a) == 0

    fresh = ledger.transition(ids, S.VALIDATED, "run-b", expected_from=S.RECEIVED, fence=token_b)
    assert (fresh.moved, fresh.lost) == (ids, [])
    assert [m.faults for m in ledger.messages(ids)] == [0, 0, 0]


def test_renewal_keeps_a_claim_and_a_lost_one_is_reported(ledger):
    ids = ledger.register([registration(i) for i in range(4)], actor="t").ids
    refs = ledger.claim([S.RECEIVED], 10, "w", lease_seconds=1)
    token = refs[0].claim_token
    assert ledger.renew(ids, "w", token, 60) == ids
    time.sleep(1.2)  # the first lease is over: the renewed one holds
    assert ledger.claim([S.RECEIVED], 10, "other", 60) == []
    assert ledger.renew(ids, "w", "not-the-token", 60) == []
    assert ledger.renew(ids, "someone-else", token, 60) == []
    # a claim whose lease ran out but that nobody took over still holds the token: renewed
    ledger.renew(ids, "w", token, -1)
    assert ledger.renew(ids, "w", token, 60) == ids
    # once another worker took one over, it is lost: not renewed, and the takeover stands
    ledger.renew(ids[:1], "w", token, -1)
    taken = ledger.claim([S.RECEIVED], 10, "other", 60)
    assert [r.id for r in taken] == ids[:1]
    assert ledger.renew(ids, "w", token, 60) == ids[1:]
    assert ledger.messages(ids[:1])[0].claimed_by == "other"


def test_expired_claim_taken_over_fences_the_first_worker(ledger):
    """The overlap of the issue: worker A's lease runs out while it sends, B takes the letters
    over and records SUBMITTED; A's late outcome (a transient failure: RETRYING) is skipped
    instead of moving the letter backwards."""
    ids = ledger.register([registration(i) for i in range(3)], actor="t").ids
    advance(ledger, ids, S.RENDERED)
    a = ledger.claim([S.RENDERED, S.RETRYING], 10, "night-a#deliver:0", lease_seconds=-1)[0].claim_token
    b = ledger.claim([S.RENDERED, S.RETRYING], 10, "night-b#deliver:0", lease_seconds=60)[0].claim_token
    done = ledger.transition_each([Move(i, "accepted") for i in ids], S.SUBMITTED, "night-b",
                                  expected_from=[S.RENDERED, S.RETRYING], fence=b)
    assert done.moved == ids
    late = ledger.transition_each([Move(i, "sf1601.timeout", {"reason_code": "sf1601.timeout"}) for i in ids],
                                  S.RETRYING, "night-a", [S.RENDERED, S.RETRYING], count_attempt=True, fence=a)
    assert (late.moved, late.lost) == ([], ids)
    for i in ids:
        assert history_states(ledger, i)[-1] == ("RENDERED", "SUBMITTED")
    assert {m.state for m in ledger.messages(ids)} == {S.SUBMITTED}
    # without a fence (as before) the same late write would have moved them backwards
    assert ledger.release(ids, "night-a#deliver:0", token=a) == 0
    assert ledger.release(ids, "night-b#deliver:0", token=b) == 3


def test_receipt_settling_a_letter_mid_chunk_is_a_no_op_for_it(ledger):
    ids = ledger.register([registration(i) for i in range(4)], actor="t").ids
    advance(ledger, ids, S.SUBMITTED)
    ledger.transition(ids, S.RETRYING, "deliver", count_attempt=True)  # all four to be sent again
    token = ledger.claim([S.RENDERED, S.RETRYING], 10, "w#deliver:0", 60)[0].claim_token
    settled = ledger.messages(ids[1:2])[0]
    # meanwhile a receipt for the first send arrives and settles one of them
    assert ledger.apply_receipts([Receipt(settled.message_uuid, S.DELIVERED_DIGITAL, "Digital Post",
                                          "Afleveret Digital Post")]).applied == 1
    moves = [Move(i, "accepted") for i in ids]
    with pytest.raises(UnexpectedState):  # unfenced (as before): the whole batch fails
        ledger.transition_each(moves, S.SUBMITTED, "w", expected_from=[S.RENDERED, S.RETRYING])
    result = ledger.transition_each(moves, S.SUBMITTED, "w", expected_from=[S.RENDERED, S.RETRYING], fence=token)
    assert (sorted(result.moved), result.settled, result.lost) == (ids[:1] + ids[2:], ids[1:2], [])
    assert [m.state for m in ledger.messages(ids)] == [S.SUBMITTED, S.DELIVERED_DIGITAL, S.SUBMITTED, S.SUBMITTED]
    # a transient failure recorded for the settled one is a no-op too, never DELIVERED -> RETRYING
    again = ledger.transition_each([Move(ids[1], "x")], S.RETRYING, "w", [S.RENDERED, S.RETRYING],
                                   count_attempt=True, fence=token)
    assert (again.moved, again.settled) == ([], ids[1:2])


def test_cancel_refuses_a_claimed_letter(ledger):
    ids = ledger.register([registration(i) for i in range(3)], actor="t").ids
    advance(ledger, ids, S.RENDERED)
    refs = ledger.claim([S.RENDERED], 1, "night#deliver:0", 60)
    claimed = ledger.messages([refs[0].id])[0]
    with pytest.raises(ClaimedMessage) as info:
        ledger.cancel(ids, "operator:jane", "sent by mistake")
    err = info.value
    assert isinstance(err, LedgerError) and err.code == "ledger.claimed"
    assert claimed.message_uuid in err.message and "being worked on" in err.message
    assert {m.state for m in ledger.messages(ids)} == {S.RENDERED}  # nothing moved
    # the unclaimed ones can be cancelled; the claimed one once its claim is released (or expired)
    assert ledger.cancel(ids[1:], "operator:jane", "sent by mistake").moved == ids[1:]
    ledger.release([refs[0].id], "night#deliver:0", token=refs[0].claim_token)
    assert ledger.cancel(ids[:1], "operator:jane", "sent by mistake").moved == ids[:1]
    ids2 = ledger.register([registration(10 + i) for i in range(2)], actor="t").ids
    ledger.claim([S.RECEIVED], 10, "gone#validate:0", lease_seconds=-1)  # a killed task's expired claim
    assert ledger.cancel(ids2, "operator:jane", "withdrawn").moved == ids2


def test_cli_cancel_of_a_claimed_letter_exits_1(ledger, monkeypatch, capsys):
    monkeypatch.setenv("DOCPOST_DB_URL", ledger.url.render_as_string(hide_password=False))
    monkeypatch.setenv("DOCPOST_PSEUDONYM_KEY", "ledger-test-pseudonym-key")
    ids = ledger.register([registration(i) for i in range(1)], actor="t").ids
    ledger.claim([S.RECEIVED], 1, "night#validate:0", 60)
    m = ledger.messages(ids)[0]
    assert main(["cancel", m.message_uuid, "--reason", "stop"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("docpost: error: ledger.claimed: ") and m.message_uuid in err
    assert ledger.messages(ids)[0].state is S.RECEIVED


# -- the stage side: renewal while a task works, expiry when it is killed ------------------------


@pytest.fixture()
def stage_ledger(postgresql_ledger, monkeypatch):
    """The pipeline's shared ledger on the PostgreSQL test database, with a short lease."""
    from ledger_support import wipe

    from docpost.ledger import ledger_at

    wipe(postgresql_ledger)
    monkeypatch.setenv("DOCPOST_DB_URL", postgresql_ledger.url.render_as_string(hide_password=False))
    monkeypatch.setenv("DOCPOST_CLAIM_LEASE_SECONDS", "0.6")
    ledger_at.cache_clear()
    yield postgresql_ledger
    ledger_at.cache_clear()


def test_a_working_task_keeps_its_claims_and_a_killed_one_loses_them_after_the_lease(stage_ledger):
    from docpost import pipeline

    led = stage_ledger
    ids = led.register([registration(i) for i in range(5)], actor="t").ids
    chunk = pipeline.Chunk("2026-11-27", 0, 1, ids[0], ids[-1])
    with pipeline._claimed(chunk, [S.RECEIVED], "run-a", "validate") as claims:
        assert [r.id for r in claims.refs] == ids and {r.claim_token for r in claims.refs} == {claims.token}
        time.sleep(1.5)  # two and a half leases: the heartbeat renews every 0.2 s
        assert led.claim([S.RECEIVED], 10, "run-b#validate:0", 60) == []
        assert claims.renewals >= 3 and claims.lost == set()
    assert all(m.claimed_by is None for m in led.messages(ids))  # released after

    # a killed task: its heartbeat is gone (the process with it) and nothing released its claims
    killed = pipeline._claimed(chunk, [S.RECEIVED], "run-a", "validate")
    claims = killed.__enter__()
    claims.stop()
    assert led.claim([S.RECEIVED], 10, "run-b#validate:0", 60) == []  # still within the lease
    # the task's retry (same worker name) takes its own claims back at once, with a new fence
    with pipeline._claimed(chunk, [S.RECEIVED], "run-a", "validate") as retry:
        assert [r.id for r in retry.refs] == ids and retry.token != claims.token
        # the killed attempt, were it still writing somewhere, is fenced out
        assert led.transition(ids, S.VALIDATED, "run-a", fence=claims.token).lost == ids
    # another run's task gets them once the lease of a killed task has run out
    killed = pipeline._claimed(chunk, [S.RECEIVED], "run-a", "validate")
    claims = killed.__enter__()
    claims.stop()
    time.sleep(0.8)
    assert [r.id for r in led.claim([S.RECEIVED], 10, "run-b#validate:0", 60)] == ids
    assert claims.renew() == set(ids) and claims.lost == set(ids)
