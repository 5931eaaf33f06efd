"""docpost_testbench.stack's moto server subprocess: starts on a free port, serves S3, stops cleanly."""

from __future__ import annotations

import socket

import httpx
import pytest

from docpost_testbench import stack
from docpost.storage import ObjectStore

pytestmark = pytest.mark.integration


def test_moto_subprocess_serves_s3_and_stops_without_a_trace():
    moto = stack.start_moto()
    try:
        assert moto.url == f"http://127.0.0.1:{moto.port}"
        store = ObjectStore("stack-test", endpoint_url=moto.url, backend="boto3")
        store.ensure_bucket()
        store.put_text("reports/x.txt", "hej")
        assert store.get_bytes("reports/x.txt") == b"hej"
        members = moto.handle.members()
        assert moto.handle.pid in members
    finally:
        moto.stop()
    assert moto.handle.members() == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(moto.url, timeout=2)


def test_moto_on_a_taken_port_fails_with_the_log(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(stack.StackError) as failed:
            stack.start_moto(port, log_path=tmp_path / "moto.log", timeout=15)
    assert failed.value.code in ("stack.start_failed", "stack.timeout")
    assert "moto_server" in failed.value.message
