"""Benchmark: build MeMo + ForsendelseI + kombi_request and send them to the SF1601 simulator.

The simulator runs in a SUBPROCESS over HTTPS with mutual TLS (a throwaway PKI), so its CPU
is measured apart from the client's. Prints letters/s for building, for sending, and for both,
and the simulator's CPU share (CPU seconds per wall second of the send phase).

    .venv/bin/python benchmarks/bench_sf1601.py [--letters 2000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
import uuid
from pathlib import Path

from docpost import model

PDF = b"%PDF-1.4\n% docpost benchmark letter\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"  # ~10 kB


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (psutil if present, else /proc)."""
    try:
        import psutil

        times = psutil.Process(pid).cpu_times()
        return times.user + times.system
    except ImportError:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def letter(i: int):
    from docpost.memo import OutboundLetter

    cpr = f"{1 + i % 28:02d}{1 + (i // 28) % 12:02d}{50 + (i // 336) % 50:02d}{1000 + i % 9000:04d}"
    address = model.PostalAddress(street_name="Vestergade", street_building=str(1 + i % 90),
                                  postcode="8000", district_name="Aarhus C")
    manifest = model.Manifest(
        recipient=model.Recipient(model.IdType.CPR, cpr, "Bench Borger", address),
        title=f"Afgørelse nr. {i}", document_type="afgoerelse",
        files=(model.ContentFile("brev.xml", model.FileRole.LETTER),))
    submission = model.Submission(
        key=model.SubmissionKey("sbsys", dt.date(2026, 11, 28), f"B{i:05d}"),
        manifest=manifest, content_hash="0" * 64)
    reply = model.ReplyAddress(reply_type=model.ReplyType.GIVEN, rule="bench", postkasse_id=100,
                               postkasse_label="Borgerservice", emne_id=1001, emne_label="Generelt",
                               contact_point_id="5b0b5c1e-8a37-4f51-9d2c-3a8e0f6d2b11")
    base = uuid.uuid5(uuid.NAMESPACE_URL, f"docpost-bench/{i}").int
    return OutboundLetter(
        message_uuid=str(uuid.UUID(int=base, version=4)),
        transaction_id=str(uuid.UUID(int=base ^ 0xFFFF_FFFF, version=4)),
        submission=submission, reply=reply, pdf=PDF, sender_cvr="29189846",
        created=dt.datetime(2026, 11, 28, 22, 0, tzinfo=dt.timezone.utc))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--letters", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    from docpost.channels.sf1601 import SF1601Client
    from docpost.fjernprint import build_forsendelse, build_kombi_request
    from docpost.memo import build_memo
    from docpost_testbench.simulator import start_simulator
    from docpost_testbench.pki import create_test_pki

    work = Path(tempfile.mkdtemp(prefix="bench-sf1601-"))
    pki = create_test_pki(work / "pki")
    handle = start_simulator(work / "state", None, {}, tls_cert=pki.server_cert,
                             tls_key=pki.server_key, client_ca=pki.ca_cert,
                             client_cert=(pki.client_cert, pki.client_key), subprocess_mode=True,
                             config={"receipt_delay": 0.5})
    try:
        t0 = time.perf_counter()
        client_cpu0 = time.process_time()
        items = []
        for i in range(args.letters):
            out = letter(i)
            body = build_kombi_request("Automatisk Valg", build_memo(out), build_forsendelse(out))
            items.append((out.transaction_id, body))
        build_s = time.perf_counter() - t0
        build_cpu = time.process_time() - client_cpu0

        with SF1601Client(handle.url, "29189846", cert=(str(pki.client_cert), str(pki.client_key)),
                          ca=str(pki.ca_cert), timeout=30, max_connections=args.concurrency) as client:
            client.authorization()  # tokens outside the timing
            sim_cpu0, client_cpu0 = cpu_seconds(handle.pid), time.process_time()
            t1 = time.perf_counter()
            outcomes = client.send_many(items, concurrency=args.concurrency)
            send_s = time.perf_counter() - t1
            sim_cpu = cpu_seconds(handle.pid) - sim_cpu0
            send_cpu = time.process_time() - client_cpu0
        stats = handle.stats()
    finally:
        handle.stop()

    accepted = sum(o.accepted for o in outcomes)
    delivered_once = sum(1 for n in stats["deliveries"].values() if n == 1)
    size = sum(len(b) for _, b in items) / len(items)
    print(f"letters:                {args.letters} (kombi_request {size / 1024:.1f} kB avg, "
          f"concurrency {args.concurrency}, HTTPS with mutual TLS, {os.cpu_count()} CPUs)")
    print(f"build MeMo+ForsendelseI: {args.letters / build_s:8.1f} letters/s "
          f"({build_s:.2f} s, client CPU {build_cpu:.2f} s)")
    print(f"send to simulator:      {args.letters / send_s:8.1f} letters/s "
          f"({send_s:.2f} s, client CPU {send_cpu:.2f} s)")
    print(f"build + send:           {args.letters / (build_s + send_s):8.1f} letters/s")
    print(f"simulator CPU share:    {sim_cpu / send_s:8.1%} of one core during sending "
          f"({sim_cpu:.2f} CPU s, {sim_cpu / args.letters * 1000:.2f} ms per letter)")
    print(f"accepted: {accepted}/{args.letters}; delivered exactly once per the simulator: "
          f"{delivered_once}")
    return 0 if accepted == args.letters == delivered_once else 1


if __name__ == "__main__":
    raise SystemExit(main())
