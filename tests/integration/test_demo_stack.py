"""The embedded demo's stack: every part it starts is stopped again (no server left running)."""

from __future__ import annotations

import datetime as dt
import os
import socket

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


def test_demo_stack_starts_and_stops_every_part(tmp_path, monkeypatch):
    from docpost_testbench import demo

    monkeypatch.setattr(os, "environ", dict(os.environ))  # start() points this process at its S3
    parts = demo.start(tmp_path / "demo", count=3, night=dt.date(2026, 11, 26), seed=1, broken_share=0.0,
                       say=lambda line: None)
    try:
        servers = [("127.0.0.1", parts.moto.port), (parts.mailsink.host, parts.mailsink.port)]
        assert all(_listening(*s) for s in servers)
        assert parts.env["DOCPOST_SMTP_PORT"] == str(parts.mailsink.port)
        assert parts.simulator.pid and parts.moto.handle.alive()
    finally:
        parts.stop()
    assert not parts.moto.handle.alive()
    assert not any(_listening(*s) for s in servers)
    with pytest.raises(ProcessLookupError):
        os.kill(parts.simulator.pid, 0)
