"""S3 cost of a night: drop, find and read N generated submissions on a moto server subprocess.

    .venv/bin/python benchmarks/bench_storage.py [--count 1000] [--workers 16] [--readers 8]

Generates the night in memory first (so PDF generation is not timed), then prints for each
step the wall time, objects/s or letters/s, and S3 requests per letter:
write (S3Sink, _READY last), scan (READY detection), read (validation's access pattern
through S3Submission, sequential and with a thread pool), late-drop sweep over 7 days.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor

from docpost_testbench import stack
from docpost_testbench.generate import generate_night
from docpost.model import READY_MARKER
from docpost.storage import ObjectStore, S3Sink, S3Submission

NIGHT = dt.date(2026, 11, 28)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=16, help="S3Sink threads")
    parser.add_argument("--readers", type=int, default=8, help="threads for the parallel read")
    args = parser.parse_args()

    objects: list[tuple[str, bytes]] = []
    t = time.perf_counter()
    generate_night(args.count, NIGHT, sink=lambda k, d: objects.append((k, d)), seed=1)
    print(f"generated {args.count} submissions ({len(objects)} objects, "
          f"{sum(len(d) for _, d in objects) / 1e6:.1f} MB) in memory in {time.perf_counter() - t:.1f} s")

    moto = stack.start_moto()
    try:
        store = ObjectStore("bench", endpoint_url=moto.url, backend="boto3")
        store.ensure_bucket()
        n = args.count

        store.reset_calls()
        t = time.perf_counter()
        with S3Sink(store, workers=args.workers) as sink:
            for key, data in objects:
                sink(key, data)
        dt_write = time.perf_counter() - t
        print(f"write  {dt_write:6.2f} s  {len(objects) / dt_write:7.0f} objects/s  {n / dt_write:6.0f} letters/s  "
              f"{store.calls / n:5.2f} requests/letter  ({args.workers} threads)")

        store.reset_calls()
        t = time.perf_counter()
        scan = store.scan_inbox(NIGHT)
        dt_scan = time.perf_counter() - t
        print(f"scan   {dt_scan:6.2f} s  {len(scan.ready) / dt_scan:7.0f} letters/s  "
              f"{store.calls / n:5.3f} requests/letter  ({store.calls} listings, {len(scan.ready)} ready, "
              f"{len(scan.pending)} pending)")

        def read_all(key) -> int:
            sub = S3Submission(store, key, files=scan.files[key])
            return sum(len(sub.read(name, 50_000_000)) for name in sub.list_files() if name != READY_MARKER)

        for label, threads in (("read", 1), ("read", args.readers)):
            store.reset_calls()
            t = time.perf_counter()
            if threads == 1:
                total = sum(map(read_all, scan.ready))
            else:
                with ThreadPoolExecutor(threads) as pool:
                    total = sum(pool.map(read_all, scan.ready))
            took = time.perf_counter() - t
            print(f"{label:6} {took:6.2f} s  {len(scan.ready) / took:7.0f} letters/s  "
                  f"{store.calls / n:5.2f} requests/letter  ({threads} thread{'s' * (threads > 1)}, "
                  f"{total / took / 1e6:.1f} MB/s)")

        store.reset_calls()
        t = time.perf_counter()
        swept = store.list_ready_submissions_before(NIGHT + dt.timedelta(days=1), lookback_days=7)
        took = time.perf_counter() - t
        print(f"sweep  {took:6.2f} s  {len(swept)} late-drop candidates over 7 days, {store.calls} requests")
    finally:
        moto.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
