"""What the benchmarks measure of the processes they start: CPU seconds and peak memory by
component (:class:`CpuSampler`), and S3 requests from moto's access log (:func:`moto_requests`)."""

from __future__ import annotations

import re
import threading
from collections import Counter
from pathlib import Path

import psutil

#: Airflow's task runner titles the process that runs a task so: docpost's code runs there.
TASK_TITLE = "airflow worker --"
# moto's access log: '127.0.0.1 - - [date] "GET /bucket/key?query HTTP/1.1" 200 -' (maybe coloured)
REQUEST_LINE = re.compile(r'"(?:\x1b\[[0-9;]*m)*(GET|PUT|POST|HEAD|DELETE) /([^/ ?]+)/?([^ ?]*)(\?[^ ]*)? HTTP')


class CpuSampler:
    """CPU seconds and peak RSS of the processes under ``roots`` (group name -> pids, each with
    its descendants), sampled every second; a process titled as a task process counts as
    ``docpost tasks`` (its peak RSS kept per process). A process's last second may be missed."""

    def __init__(self, roots: dict[str, list[int]]) -> None:
        self.roots = roots
        self.cpu: dict[int, tuple[str, float]] = {}
        self.rss: dict[int, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        with self._lock:
            for group, pids in self.roots.items():
                for pid in pids:
                    try:
                        root = psutil.Process(pid)
                        procs = [root, *root.children(recursive=True)]
                    except psutil.Error:
                        continue
                    for proc in procs:
                        try:
                            title = " ".join(proc.cmdline())
                            times = proc.cpu_times()
                            rss = proc.memory_info().rss
                        except psutil.Error:
                            continue
                        kind = "docpost tasks" if TASK_TITLE in title else group
                        self.cpu[proc.pid] = (kind, times.user + times.system)
                        if kind == "docpost tasks":
                            self.rss[proc.pid] = max(self.rss.get(proc.pid, 0), rss)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self._sample()

    def start(self) -> CpuSampler:
        self._sample()
        self.base = dict(self.cpu)  # what each process had used before the run
        self._thread.start()
        return self

    def totals(self) -> dict[str, float]:
        """CPU seconds by group since :meth:`start`, sampled now."""
        self._sample()
        out: Counter = Counter()
        with self._lock:
            for pid, (kind, seconds) in self.cpu.items():
                out[kind] += seconds - self.base.get(pid, (kind, 0.0))[1]
        return dict(out)

    def stop(self) -> dict:
        """``cpu``: seconds by group since :meth:`start`; ``peak_rss_mib`` of the largest task
        process; ``task_processes`` seen."""
        self._stop.set()
        self._thread.join()
        return {"cpu": self.totals(), "peak_rss_mib": max(self.rss.values(), default=0) / 2**20,
                "task_processes": len(self.rss)}


def moto_requests(log: Path, bucket: str, since: int = 0) -> tuple[Counter, int]:
    """Requests to ``bucket`` in moto's access log after line ``since``, by (method, first key
    part); and the log's line count."""
    counts: Counter = Counter()
    n = 0
    if log.exists():
        with open(log, errors="replace") as fh:
            for n, line in enumerate(fh, start=1):
                if n <= since:
                    continue
                m = REQUEST_LINE.search(line)
                if m and m.group(2) == bucket:
                    counts[m.group(1), m.group(3).split("/")[0] or "(bucket)"] += 1
    return counts, n
