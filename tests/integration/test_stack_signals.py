"""``docpost demo --ui`` stops whole on SIGTERM and SIGHUP, as on Ctrl-C: no orphans.

The full stack (moto, the SF1601 simulator, ``airflow standalone`` with its scheduler,
dag-processor, api-server, triggerer, log servers and executor workers) takes 30-60 s to start
on a small machine, so SIGTERM gets the full stack and SIGHUP (a closed terminal) the start-up:
it arrives once moto, the simulator and the mail server run, while the demo prepares Airflow
(``airflow pools set`` in a session of its own). Both check the exit code (128 + signal) and that
no process of the demo's tree, recorded before the signal by pid and create time, survives.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from docpost_testbench import stack

pytestmark = [pytest.mark.slow, pytest.mark.airflow, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
UI_READY = "Ctrl-C (or SIGTERM, SIGHUP) stops the stack."
SETUP_READY = "mail server (SMTP)"
STOP_BOUND = 90.0  # standalone gets 30 s for its own orderly stop, then SIGTERM/SIGKILL


class Demo:
    """``docpost demo --ui`` as a subprocess in a temporary DOCPOST_HOME, its output in a queue."""

    def __init__(self, tmp_path: Path) -> None:
        docpost_home = tmp_path / "docpost-home"
        (docpost_home / "cache").mkdir(parents=True)
        template = stack.metadata_db_template()  # the shared cache: spares a migration per test
        shutil.copyfile(template, docpost_home / "cache" / template.name)
        self.home = docpost_home / "demo"
        env = {k: v for k, v in os.environ.items() if k != "DOCPOST_DB_URL"}  # the demo's own ledger
        env.update(DOCPOST_HOME=str(docpost_home), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "docpost"), "demo", "--ui", "--count", "5", "--home", str(self.home)],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,  # the signal goes to the demo alone, not to its group
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, prefix: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail(f"the demo ended (code {self.proc.wait()}) before {prefix!r}:\n{self.output()[-4000:]}")
            self.lines.append(line)
            if line.startswith(prefix):
                return
        pytest.fail(f"no {prefix!r} within {timeout:.0f} s:\n{self.output()[-4000:]}")

    def drain(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                return
            self.lines.append(line)

    def tree(self) -> list[psutil.Process]:
        """The demo and every process below it, and anything else running with its home in
        the environment (in case something was re-parented already)."""
        root = psutil.Process(self.proc.pid)
        procs = {p.pid: p for p in [root, *root.children(recursive=True)]}
        for p in psutil.process_iter():
            if p.pid in procs:
                continue
            try:
                if str(self.home) in p.environ().get("AIRFLOW_HOME", "") + p.environ().get("DOCPOST_HOME", ""):
                    procs[p.pid] = p
            except psutil.Error:
                pass
        return list(procs.values())


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running: same pid *and* create time (psutil checks both), not a zombie."""
    alive = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


def _describe(procs: list[psutil.Process]) -> str:
    out = []
    for p in procs:
        try:
            out.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
        except psutil.Error:
            out.append(f"{p.pid} (gone)")
    return "\n".join(out)


def _cleanup(demo: Demo | None, recorded: list[psutil.Process]) -> None:
    """Whatever is left (the test failed): SIGKILL it, so no stack outlives the test."""
    if demo is not None and demo.proc.poll() is None:
        known = {p.pid for p in recorded}
        recorded = recorded + [p for p in demo.tree() if p.pid not in known]
        demo.proc.kill()
    left = _alive(recorded)
    for p in left:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(left, timeout=10)
    if demo is not None:
        demo.proc.wait(timeout=10)


def _signal_and_check(demo: Demo, sig: signal.Signals, must_have: list[str]) -> float:
    recorded = demo.tree()
    names = _describe(recorded)
    for needle in must_have:
        assert needle in names, f"{needle!r} is not running:\n{names}"
    t0 = time.monotonic()
    os.kill(demo.proc.pid, sig)
    try:
        code = demo.proc.wait(timeout=STOP_BOUND)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the demo did not exit within {STOP_BOUND:.0f} s of {sig.name}:\n{demo.output()[-3000:]}")
    took = time.monotonic() - t0
    demo.drain()
    assert code == 128 + sig, (code, demo.output()[-3000:])
    assert f"stopped by {sig.name}; the stack is stopped" in demo.output()
    deadline = time.monotonic() + 10  # the watchdog notices its owner's end within milliseconds
    while _alive(recorded) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _alive(recorded)
    assert not left, f"left running after {sig.name}:\n{_describe(left)}"
    return took


def test_sigterm_stops_the_whole_ui_stack(tmp_path):
    demo = None
    recorded: list[psutil.Process] = []
    try:
        t0 = time.monotonic()
        demo = Demo(tmp_path)
        demo.wait_for(UI_READY, timeout=400)
        up = time.monotonic() - t0
        time.sleep(5)  # the scheduler forks its log server and executor workers after the API answers
        recorded = demo.tree()
        took = _signal_and_check(demo, signal.SIGTERM, [
            "moto_server", "docpost.cli simulator", "airflow standalone", "airflow scheduler",
            "airflow dag-processor", "api_server", "airflow triggerer", "serve-logs"])
        print(f"\nstack up in {up:.0f} s ({len(recorded)} processes); stopped by SIGTERM in {took:.1f} s")
    finally:
        _cleanup(demo, recorded)


def test_sighup_during_start_up_stops_what_was_started(tmp_path):
    demo = None
    recorded: list[psutil.Process] = []
    try:
        demo = Demo(tmp_path)
        demo.wait_for(SETUP_READY, timeout=120)
        recorded = demo.tree()
        took = _signal_and_check(demo, signal.SIGHUP, ["moto_server", "docpost.cli simulator"])
        assert "Airflow UI" not in demo.output()  # it was stopped before Airflow ran
        print(f"\n{len(recorded)} processes stopped by SIGHUP in {took:.1f} s")
    finally:
        _cleanup(demo, recorded)
