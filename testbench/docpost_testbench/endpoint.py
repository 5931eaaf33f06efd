"""The PostModtag endpoint (``docpost postmodtag serve``) as a child process, for the demo and tests.

It runs in a session of its own, registered with the stack's watchdog (:func:`stack.spawn_session`),
on a fixed port so that a restart keeps its URL; with the test PKI it speaks mutual TLS as the
Postkomponent expects.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from docpost_testbench import stack

READY_PREFIX = "docpost postmodtag listening on "


class Endpoint:
    """``docpost postmodtag serve`` on 127.0.0.1:``port`` with ``env`` (DOCPOST_* of the DAGs)."""

    def __init__(self, env: dict[str, str], pki: Any, port: int | None = None) -> None:
        self.env, self.pki, self.port = env, pki, port or stack.free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.handle: stack.ProcessHandle | None = None

    def start(self, timeout: float = 60.0) -> Endpoint:
        cmd = [sys.executable, "-m", "docpost.cli", "postmodtag", "serve", "--host", "127.0.0.1",
               "--port", str(self.port), "--cert", str(self.pki.server_cert), "--key", str(self.pki.server_key),
               "--client-ca", str(self.pki.ca_cert)]
        self.handle = stack.spawn_session(cmd, env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"},
                                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, text=True)
        out = self.handle.process.stdout
        assert out is not None
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                line = out.readline()
                if not line:
                    raise RuntimeError(f"the PostModtag endpoint did not start (exit {self.handle.process.poll()})")
                if line.startswith(READY_PREFIX):
                    return self
            raise RuntimeError("the PostModtag endpoint did not start in time")
        except BaseException:
            self.stop()
            raise

    def kill(self) -> None:
        """SIGKILL, as a crash would end it."""
        if self.handle is not None and self.handle.alive():
            os.kill(self.handle.pid, signal.SIGKILL)
            self.handle.process.wait()

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.stop(timeout=10)

    def push_settings(self) -> dict[str, str]:
        """What the simulator needs to push here (``POST /sim/inbound/push``)."""
        return {"url": self.url, "cert": str(self.pki.client_cert), "key": str(self.pki.client_key),
                "ca": str(self.pki.ca_cert)}

    def http(self, cert: bool = True):  # noqa: ANN201 - an httpx.Client
        import httpx

        from docpost.channels.sf1601 import tls_context

        return httpx.Client(base_url=self.url, timeout=30, verify=tls_context(
            (str(self.pki.client_cert), str(self.pki.client_key)) if cert else None, str(self.pki.ca_cert)))
