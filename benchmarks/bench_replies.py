"""Reply routing throughput: one ``process_inbound`` pass over N inbound messages.

Real parts: the SF1601 simulator (HTTP, in a thread) serving the inbound pull/ack endpoints, a
SQLite (default) or PostgreSQL (``--db-url``) ledger, and the loopback SMTP mail sink. The
messages are new messages to random open Emner (each parsed, schema-checked, routed, recorded,
mailed with an attachment and acknowledged) plus a share of unroutable ones.

    .venv/bin/python benchmarks/bench_replies.py [--count 300] [--db-url URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import tempfile
import time
import uuid
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--db-url")
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-replies-"))
    os.environ["DOCPOST_DB_URL"] = args.db_url or f"sqlite:///{tmp / 'ledger.db'}"
    from docpost.hierarchy import load_hierarchy
    from docpost_testbench.mailsink import start_mailsink
    from docpost.replies import process_inbound
    from docpost_testbench.simulator import inbound as sim_inbound
    from docpost_testbench.simulator.runner import start_simulator

    sim = start_simulator(tmp / "sim")
    sink = start_mailsink(tmp / "mail")
    os.environ.update(DOCPOST_SF1601_URL=sim.url, DOCPOST_SMTP_HOST=sink.host,
                      DOCPOST_SMTP_PORT=str(sink.port))
    today = dt.date(2026, 11, 27)
    h = load_hierarchy()
    emner = [e for e in h.emner if not h.is_closed(e, today)]
    rng = random.Random(1)
    db = sim.app.state.simulator.store.db
    def add(i: int) -> bool:
        unroutable = i % 10 == 9
        cp = str(uuid.UUID(int=rng.getrandbits(128), version=4)) if unroutable else \
            emner[rng.randrange(len(emner))].contact_point_id
        memo = sim_inbound.build_inbound_memo(
            message_uuid=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            sender_id=f"{1 + i % 28:02d}0190{1000 + i:04d}", sender_id_type="CPR",
            municipality_cvr="29189846", label=f"Henvendelse {i}", text="Hej " * 200,
            created=dt.datetime(2026, 11, 27, 8, tzinfo=dt.UTC), contact_point_id=cp,
            attachment=("bilag.pdf", sim_inbound.PDF_ATTACHMENT * 20))
        db.execute("INSERT INTO inbound_messages (id, kind, memo, created_at) VALUES (?, ?, ?, ?)",
                   (f"bench-{i}", "bench", memo, time.time()))
        return not unroutable

    warmup = 20  # imports, migrations, schema compilation, first connections: not measured
    for i in range(warmup):
        add(-1 - i)
    process_inbound("bench-warmup", batch_size=args.batch_size, today=today)
    warm_mails = len(sink.messages())
    routable = sum(add(i) for i in range(args.count))

    start = time.perf_counter()
    counts = process_inbound("bench", batch_size=args.batch_size, today=today)
    elapsed = time.perf_counter() - start
    mailed = len(sink.messages()) - warm_mails
    sim.stop()
    sink.stop()
    backend = "postgresql" if args.db_url else "sqlite"
    print(f"reply routing ({backend} ledger): {args.count} inbound messages in {elapsed:.2f}s = "
          f"{args.count / elapsed:.0f} messages/s ({routable} routed and mailed, "
          f"{args.count - routable} to manual)")
    print(f"counts: {dict(sorted(counts.items()))}")
    assert mailed == routable == counts.get("mailed"), (mailed, routable, counts)


if __name__ == "__main__":
    main()
