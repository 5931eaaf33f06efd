"""The ledger queries behind planning by state and the audit, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from ledger_support import DAY, S, advance, ledger, postgresql_ledger, registration, sqlite_ledger  # noqa: F401

pytestmark = pytest.mark.integration


def test_message_ids_of_any_date_in_an_id_range(ledger):
    old = ledger.register([registration(i, day=DAY - dt.timedelta(days=30)) for i in range(3)], actor="t").ids
    new = ledger.register([registration(i) for i in range(3, 6)], actor="t").ids
    advance(ledger, old[:1], S.RENDERED)
    ledger.transition(old[:1], S.RETRYING, "t", count_attempt=True)
    workable = [S.RECEIVED, S.RENDERED, S.RETRYING]
    assert ledger.message_ids(states=workable) == old + new
    assert ledger.message_ids(states=[S.RETRYING, S.RENDERED]) == old[:1]
    assert ledger.message_ids(states=workable, first_id=old[1], last_id=new[0]) == [old[1], old[2], new[0]]
    assert ledger.message_ids(submission_date=DAY, states=workable) == new


def test_stale_messages_count_and_list_the_oldest_without_personal_data(ledger):
    ids = ledger.register([registration(i, day=DAY - dt.timedelta(days=i)) for i in range(4)], actor="t").ids
    ledger.cancel(ids[3:], "t", "not needed")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=50)
    total, rows = ledger.stale_messages(48, [S.RECEIVED], now=later, limit=2)
    assert total == 3 and len(rows) == 2
    assert set(rows[0]) == {"message_uuid", "state", "reason_code", "submission_date", "created_at"}
    assert [r["message_uuid"] for r in rows] == [m.message_uuid for m in ledger.messages(ids[:2])]
    assert ledger.stale_messages(48, [S.RECEIVED]) == (0, [])


def test_known_submissions(ledger):
    ledger.register([registration(1), registration(2, source="momentum")], actor="t")
    asked = [("sbsys", "SUB-000001"), ("momentum", "SUB-000001"), ("momentum", "SUB-000002"), ("sbsys", "X")]
    assert ledger.known_submissions(asked) == {("sbsys", "SUB-000001"), ("momentum", "SUB-000002")}
    assert ledger.known_submissions([]) == set()
