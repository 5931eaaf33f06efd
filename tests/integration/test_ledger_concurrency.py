"""Two worker processes claim from the same ledger and never get the same message."""

from __future__ import annotations

import multiprocessing

import pytest
from ledger_support import S, advance, claim_worker, postgresql_ledger, registration, sqlite_ledger, wipe  # noqa: F401
from sqlalchemy import func, select

from docpost.ledger.schema import events, messages

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N = 1200


@pytest.mark.parametrize("db", ["postgresql", "sqlite"])
def test_two_processes_never_claim_the_same_message(request, db):
    ledger = request.getfixturevalue(f"{db}_ledger")
    wipe(ledger)
    ids = ledger.register([registration(i) for i in range(N)], actor="t").ids
    advance(ledger, ids, S.RENDERED)
    url = ledger.url.render_as_string(hide_password=False)

    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    workers = [ctx.Process(target=claim_worker, args=(url, name, barrier, results)) for name in ("a", "b")]
    for w in workers:
        w.start()
    got = dict((name, (claimed, error)) for name, claimed, error in (results.get(timeout=300) for _ in workers))
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0

    (a, err_a), (b, err_b) = got["a"], got["b"]
    assert (err_a, err_b) == (None, None)
    assert set(a).isdisjoint(b), f"{len(set(a) & set(b))} message(s) claimed by both workers"
    assert len(a) == len(set(a)) and len(b) == len(set(b))
    assert sorted(a + b) == ids  # every message claimed exactly once
    assert a and b  # both really worked at the same time
    with ledger.engine.connect() as conn:
        sends = conn.execute(
            select(events.c.message_id, func.count()).where(events.c.to_state == "SUBMITTED")
            .group_by(events.c.message_id)).all()
        attempts = conn.execute(select(func.max(messages.c.attempts), func.min(messages.c.attempts))).one()
    assert len(sends) == N and {n for _mid, n in sends} == {1}
    assert tuple(attempts) == (1, 1)
    owners = {m.id: m.claimed_by for m in ledger.messages(ids)}
    assert {mid for mid, owner in owners.items() if owner == "a"} == set(a)
