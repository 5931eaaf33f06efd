"""Ledger throughput: register N messages and advance them through the states in bulk.

    .venv/bin/python benchmarks/bench_ledger.py [--count 100000] [--batch 5000] [--only sqlite|postgresql]

Runs on a fresh SQLite file and on a scratch PostgreSQL database (created and dropped on
127.0.0.1:5432, or DOCPOST_TEST_PG), and prints rows/s per step: register, VALIDATED, STAMPED,
RENDERED, claim + SUBMITTED (as workers do), receipts (DELIVERED_*), and the daily report.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from docpost.ledger import Ledger, MessageState, Receipt, Registration
from docpost_testbench.stack import use_bench_key

S = MessageState
DAY = dt.date(2026, 11, 28)
SOURCES = ("sbsys", "momentum", "opus-debitor", "kmd-ydelse", "dubu", "byggesag")
PG_ADMIN = os.environ.get("DOCPOST_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def registrations(count: int) -> list[Registration]:
    """Deterministic submissions: CPR-shaped recipients, six source systems."""
    out = []
    for i in range(count):
        source = SOURCES[i % len(SOURCES)]
        sub = f"BENCH-{i:07d}"
        out.append(Registration(
            source_system=source, submission_id=sub, submission_date=DAY,
            content_hash=hashlib.sha256(f"{source}/{sub}".encode()).hexdigest(),
            s3_prefix=f"inbox/{source}/{DAY.isoformat()}/{sub}/", recipient_id_type="CPR",
            recipient_identifier=f"{i % 28 + 1:02d}{i % 12 + 1:02d}{i % 100:02d}{i % 10000:04d}",
            case_number=f"SAG-{i // 5:06d}", document_number=f"DOK-{i}", document_type="afgoerelse",
        ))
    return out


def timed(label: str, rows: int, results: list, func) -> None:
    start = time.perf_counter()
    func()
    seconds = time.perf_counter() - start
    results.append((label, rows, seconds))
    print(f"  {label:<28} {rows:>8} rows  {seconds:7.2f} s  {rows / seconds:>10,.0f} rows/s", flush=True)


def run(ledger: Ledger, count: int, batch: int) -> list:
    ledger.upgrade()
    regs = registrations(count)
    ids: list[int] = []
    results: list = []

    def register():
        for start in range(0, count, batch):
            ids.extend(ledger.register(regs[start : start + batch], actor="bench:register").ids)

    def move(state, **fields):
        def step():
            for start in range(0, count, batch):
                ledger.transition(ids[start : start + batch], state, f"bench:{state.lower()}", **fields)
        return step

    def claim_and_submit():
        worker = f"bench-{uuid.uuid4().hex[:6]}"
        while refs := ledger.claim([S.RENDERED], batch, worker, lease_seconds=600):
            got = [r.id for r in refs]
            ledger.transition(got, S.SUBMITTED, "bench:send", expected_from=S.RENDERED, count_attempt=True)
            ledger.release(got, worker)

    def receipts():
        uuids = [m.message_uuid for m in ledger.refs(ids)]
        at = dt.datetime(2026, 11, 28, 9, tzinfo=dt.UTC)
        for start in range(0, count, batch):
            ledger.apply_receipts([
                Receipt(u, S.DELIVERED_DIGITAL if i % 5 else S.DELIVERED_PHYSICAL, None, "Afleveret", at=at)
                for i, u in enumerate(uuids[start : start + batch], start)
            ])

    timed("register (RECEIVED)", count, results, register)
    timed("-> VALIDATED", count, results, move(S.VALIDATED))
    timed("-> STAMPED (+reply ids)", count, results, move(S.STAMPED, reply_postkasse_id=100, reply_emne_id=1001))
    timed("-> RENDERED (+pdf sha)", count, results, move(S.RENDERED, pdf_sha256="0" * 64))
    timed("claim + SUBMITTED + release", count, results, claim_and_submit)
    timed("receipts -> DELIVERED_*", count, results, receipts)
    report = []
    timed("report (one date)", count, results, lambda: report.append(ledger.report(DAY)))
    delivered = report[0].by_state["DELIVERED_DIGITAL"] + report[0].by_state["DELIVERED_PHYSICAL"]
    assert delivered == count, f"only {delivered} of {count} delivered"
    return results


def main(argv: list[str] | None = None) -> int:
    use_bench_key()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5000, help="messages per call (a mapped chunk)")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args(argv)
    summary = {}

    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            print(f"SQLite ({args.count} messages, batches of {args.batch})")
            ledger = Ledger(f"sqlite:///{Path(tmp) / 'bench.db'}")
            summary["sqlite"] = run(ledger, args.count, args.batch)
            ledger.close()

    if args.only in (None, "postgresql"):
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        name = f"docpost_bench_{os.getpid()}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            print(f"PostgreSQL ({args.count} messages, batches of {args.batch})")
            ledger = Ledger(make_url(PG_ADMIN).set(database=name))
            summary["postgresql"] = run(ledger, args.count, args.batch)
            ledger.close()
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

    print("\nwhole lifecycle (register -> delivered), messages per second:")
    for db, results in summary.items():
        seconds = sum(s for label, _rows, s in results if not label.startswith("report"))
        print(f"  {db:<11} {args.count / seconds:>10,.0f} messages/s  ({seconds:.1f} s, 6 state changes each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
