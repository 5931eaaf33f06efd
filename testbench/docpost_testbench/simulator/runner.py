"""Run the simulator: in this process (a background thread) or as a subprocess.

Both bind the listening socket first (port 0 picks a free port) and report the URL only once
the server accepts connections. With ``client_ca`` the server demands a client certificate
signed by it (mutual TLS, ``ssl.CERT_REQUIRED``), as SF1601 does with the OCES certificate.
"""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx

from docpost import serving

READY_PREFIX = "docpost-simulator listening on "


@dataclass
class SimulatorHandle:
    """A running simulator: its URL, how to stop it, and a client for the ``/sim`` endpoints."""

    url: str
    stop: Callable[[], None]
    client_cert: tuple[str, str] | None = None
    ca: str | None = None
    pid: int | None = None  # the subprocess, if any
    app: object | None = field(default=None, repr=False)  # in-thread: the ASGI app

    def http(self, timeout: float = 10.0) -> httpx.Client:
        """An httpx client for this simulator (client certificate included when TLS)."""
        from docpost.channels.sf1601 import tls_context

        verify: ssl.SSLContext | bool = tls_context(self.client_cert, self.ca) if self.ca else True
        return httpx.Client(base_url=self.url, verify=verify, timeout=timeout)

    def get(self, path: str) -> dict:
        with self.http() as client:
            response = client.get(path)
            response.raise_for_status()
            return response.json()

    def stats(self) -> dict:
        return self.get("/sim/stats")

    def set_faults(self, **changes: object) -> dict:
        with self.http() as client:
            response = client.post("/sim/faults", json=changes)
            response.raise_for_status()
            return response.json()

    def inject_receipts(self, receipts: list[bytes | str]) -> list[int]:
        """Publish these raw receipts (odd ones too) at the end of the feed; their cursors."""
        body = {"receipts": [{"xml": r.decode("utf-8", "replace") if isinstance(r, bytes) else r}
                             for r in receipts]}
        with self.http() as client:
            response = client.post("/sim/receipts/inject", json=body)
            response.raise_for_status()
            return response.json()["cursors"]

    def __enter__(self) -> SimulatorHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(app, *, host: str = "127.0.0.1", port: int = 8601, tls_cert: str | None = None,  # noqa: ANN001
          tls_key: str | None = None, client_ca: str | None = None,
          announce: Callable[[str], None] | None = None) -> None:
    """Serve in the foreground until interrupted; ``announce(url)`` once accepting."""
    serving.serve(app, serving.bind(host, port), serving.tls_options(tls_cert, tls_key, client_ca),
                  announce=announce, graceful=1)


def start_simulator(
    state_dir: Path | str | None = None,
    register_path: Path | str | None = None,
    faults: dict | None = None,
    *,
    tls_cert: str | Path | None = None,
    tls_key: str | Path | None = None,
    client_ca: str | Path | None = None,
    client_cert: tuple[str, str] | None = None,
    subprocess_mode: bool = False,
    host: str = "127.0.0.1",
    port: int = 0,
    config: dict | None = None,
    startup_timeout: float = 30.0,
) -> SimulatorHandle:
    """Start the simulator and wait until it answers; ``handle.stop()`` ends it.

    ``client_cert`` (cert, key) and ``client_ca`` are what the handle's own client presents and
    trusts; ``client_ca`` also makes the server require client certificates.
    """
    ca = str(client_ca) if client_ca else None
    if subprocess_mode:
        handle = _start_subprocess(state_dir, register_path, faults or {}, tls_cert, tls_key, ca,
                                   host, port, config or {}, startup_timeout)
    else:
        handle = _start_thread(state_dir, register_path, faults or {}, tls_cert, tls_key, ca,
                               host, port, config or {}, startup_timeout)
    handle.client_cert = (str(client_cert[0]), str(client_cert[1])) if client_cert else None
    handle.ca = ca
    deadline = time.monotonic() + startup_timeout
    try:
        while True:  # the server accepts; check it also answers (TLS included)
            try:
                handle.get("/sim/health")
                return handle
            except (httpx.TransportError, httpx.HTTPStatusError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    except BaseException:  # failed or interrupted (Ctrl-C, SIGTERM): stop what was started
        handle.stop()
        raise


def _start_thread(state_dir, register_path, faults, tls_cert, tls_key, ca, host, port, config,  # noqa: ANN001
                  startup_timeout) -> SimulatorHandle:
    import uvicorn

    from docpost_testbench.simulator.app import SimulatorConfig, create_app

    app = create_app(state_dir, register_path, faults, ca=ca, config=SimulatorConfig(**config))
    sock = serving.bind(host, port)
    server = uvicorn.Server(serving.uvicorn_config(app, serving.tls_options(tls_cert, tls_key, ca), graceful=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="sf1601-simulator")
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the SF1601 simulator did not start")
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        app.state.simulator.close()  # the AMQP publisher too

    return SimulatorHandle(serving.url_of(host, sock.getsockname()[1], bool(tls_cert)), stop, app=app)


def fault_arguments(faults: dict) -> list[str]:
    """CLI flags for a faults dict (``error_5xx`` -> ``--fault-5xx`` ...)."""
    from docpost_testbench.simulator.app import FAULT_FLAGS

    args: list[str] = []
    for key, value in faults.items():
        if key == "seed":
            args += ["--seed", str(value)]
        else:
            args += [FAULT_FLAGS[key], str(value)]
    return args


def _start_subprocess(state_dir, register_path, faults, tls_cert, tls_key, ca, host, port,  # noqa: ANN001
                      config, startup_timeout) -> SimulatorHandle:
    cmd = [sys.executable, "-m", "docpost.cli", "simulator", "--host", host, "--port", str(port)]
    if state_dir:
        cmd += ["--state", str(state_dir)]
    if register_path:
        cmd += ["--register", str(register_path)]
    if tls_cert:
        cmd += ["--tls-cert", str(tls_cert), "--tls-key", str(tls_key)]
    if ca:
        cmd += ["--client-ca", ca]
    cmd += fault_arguments(faults)
    for key, value in config.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            cmd += [flag] if value else []
        else:
            cmd += [flag, str(value)]
    from docpost_testbench import stack

    # a session of its own, registered with the stack's watchdog: a terminal's SIGINT/SIGHUP is
    # for the owner, which stops it, and it cannot outlive the owner (see stack.spawn_session)
    handle = stack.spawn_session(cmd, stdout=subprocess.PIPE, stderr=None, text=True,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
    proc = handle.process
    url = None
    deadline = time.monotonic() + startup_timeout
    assert proc.stdout is not None
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            match = re.match(re.escape(READY_PREFIX) + r"(\S+)", line.strip())
            if match:
                url = match.group(1)
                break
    except BaseException:  # interrupted while starting: no simulator left behind
        handle.stop(timeout=2)
        raise
    if url is None:
        handle.stop(timeout=2)
        raise RuntimeError("the SF1601 simulator subprocess did not start")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # drain

    def stop() -> None:
        handle.stop(timeout=10)  # SIGTERM to its group, then SIGKILL to whatever is left

    return SimulatorHandle(url, stop, pid=proc.pid)
