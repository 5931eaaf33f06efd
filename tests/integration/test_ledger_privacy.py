"""After a full run, no ledger column anywhere holds a clear CPR or CVR number."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

import pytest
from ledger_support import DAY, S, advance, cpr, cvr, ledger, postgresql_ledger, registration, sqlite_ledger  # noqa: F401
from sqlalchemy import MetaData, select

from docpost.ledger import Move, Receipt

pytestmark = pytest.mark.integration


def full_run(ledger) -> list[str]:
    """Drive messages through every path, with identifiers slipped into every free text."""
    regs = [registration(i, title=f"Afgørelse vedr. {cpr(i)}") for i in range(30)]
    regs += [registration(i, source="opus-debitor", cvr_recipient=True, title=f"Rykker til CVR {cvr(i)}")
             for i in range(30, 40)]
    late = dataclasses.replace(registration(40), recipient_id_type=None, recipient_identifier=None)
    ids = ledger.register(regs + [late], actor="dag:nightly/run-1").ids
    ledger.register([registration(5, content="changed")], actor="dag:nightly/run-2")  # conflict
    ledger.transition(ids[-1:], S.VALIDATED, "validate", recipient=("CPR", cpr(40)))
    ledger.reject_many([(ids[0], "xsd_invalid", f"CPR {cpr(0)} is not a valid recipient"),
                        (ids[30], "xsd_invalid", f"CVR {cvr(30)} unknown")], actor="validate")
    ledger.cancel(ids[1:2], "operator:jane", f"citizen {cpr(1)[:6]}-{cpr(1)[6:]} asked us to stop")
    live = ids[2:30] + ids[31:40]
    advance(ledger, live, S.RENDERED)
    ledger.transition_each([Move(mid, f"sent to {cpr(2)}") for mid in live[:5]], S.SUBMITTED, "send")
    ledger.transition(live[5:], S.SUBMITTED, "send", count_attempt=True, detail=f"batch incl. {cvr(31)}")
    ms = ledger.messages(live)
    receipts = [Receipt(m.message_uuid, S.DELIVERED_DIGITAL, "Digital Post", "Afleveret Digital Post",
                        at=dt.datetime(2026, 11, 27, 9, tzinfo=dt.UTC)) for m in ms[:20]]
    receipts += [Receipt(m.message_uuid, S.FAILED, None, "Fejlet", "E-404", f"Modtager {cpr(i)} / {cvr(i)} findes ikke")
                 for i, m in enumerate(ms[20:30])]
    receipts.append(Receipt("0f2c3b9e-1111-4a4a-8b8b-000000000000", S.FAILED, error_text=f"ukendt {cpr(77)}"))
    ledger.apply_receipts(receipts)
    failed = [m.id for m in ms[20:25]]
    ledger.requeue(failed, "operator:jane", f"retry for {cpr(3)}")
    # late receipts for the requeued messages' earlier generation (recorded on the message, with events)
    ledger.apply_receipts([Receipt(m.message_uuid, S.FAILED, None, "Fejlet", "E-404", f"igen {cpr(21)} / {cvr(21)}")
                           for m in ms[20:22]] + [Receipt(ms[22].message_uuid, S.DELIVERED_DIGITAL, "Digital Post")])
    ledger.purge(0, "retention", now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    return [cpr(i) for i in range(41)] + [cvr(i) for i in range(30, 40)] + [cvr(i) for i in range(41)] + [cpr(77)]


def forms(identifier: str) -> list[str]:
    out = [identifier]
    if len(identifier) == 10:
        out.append(f"{identifier[:6]}-{identifier[6:]}")
    return out


def test_no_clear_identifier_in_any_column_of_any_ledger_table(ledger):
    identifiers = full_run(ledger)
    pattern = re.compile("|".join(re.escape(f) for i in identifiers for f in forms(i)))
    meta = MetaData()
    meta.reflect(ledger.engine)
    scanned = 0
    with ledger.engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(select(table)):
                for column, value in row._mapping.items():
                    scanned += 1
                    hit = pattern.search(str(value)) if value is not None else None
                    assert hit is None, f"clear identifier in {table.name}.{column}"
    assert {"ledger_messages", "ledger_events", "ledger_conflicts", "ledger_receipts",
            "ledger_generations"} <= set(meta.tables)
    assert scanned > 1000
    with ledger.engine.connect() as conn:  # the earlier generations were scanned too
        assert len(conn.execute(select(meta.tables["ledger_generations"])).all()) == 5
    # the masked forms are there, so the run did store recipients
    kept = [m for m in ledger.messages(ledger.message_ids(DAY)) if m.recipient_masked]
    assert kept and all(m.recipient_masked.endswith("****") for m in kept)
    if ledger.dialect == "sqlite":  # and not in the file's bytes either (free pages, WAL)
        path = Path(ledger.url.database)
        raw = b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())
        assert re.search(pattern.pattern.encode(), raw) is None
