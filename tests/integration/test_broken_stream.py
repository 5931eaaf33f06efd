"""S3 answering and then breaking off mid-body is infrastructure trouble, never the letter's fault.

A loopback proxy in front of the moto server passes every request through, except that it cuts
the connection halfway through the body of objects under ``inbox/`` (a real broken response
stream, as a flaky network or a dying S3 node gives). Reading then fails with
``storage.unavailable``; a stage keeps every letter in its state and fails for a retry; once S3
answers whole again the same stage does its work.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
from urllib.parse import urlparse

import pytest

from docpost import pipeline
from docpost_testbench.generate import generate_night
from docpost.ledger import MessageState
from docpost.storage import ObjectStore, S3Sink, StorageUnavailable

pytestmark = pytest.mark.integration

NIGHT = dt.date(2026, 11, 24)
S = MessageState


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        part = conn.recv(65536)
        if not part:
            return data
        data += part
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


class CuttingProxy:
    """Forwards HTTP to ``upstream`` one request per connection; cuts object bodies under inbox/."""

    def __init__(self, upstream: str) -> None:
        url = urlparse(upstream)
        self.upstream = (url.hostname, url.port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.cut = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            request = _read_request(conn)
            if not request:
                return
            head, _, body = request.partition(b"\r\n\r\n")
            lines = [ln for ln in head.split(b"\r\n") if not ln.lower().startswith(b"connection:")]
            target = lines[0].split(b" ")[1]
            cut = lines[0].startswith(b"GET ") and b"/inbox/" in target and b"list-type" not in target
            with socket.create_connection(self.upstream) as up:
                up.sendall(b"\r\n".join(lines + [b"Connection: close"]) + b"\r\n\r\n" + body)
                answer = b""
                while part := up.recv(65536):
                    answer += part
            if cut:
                rhead, _, rbody = answer.partition(b"\r\n\r\n")
                if len(rbody) > 1:
                    self.cut += 1
                    conn.sendall(rhead + b"\r\n\r\n" + rbody[: len(rbody) // 2])
                    return  # closed halfway through the body
            conn.sendall(answer)

    def close(self) -> None:
        self.server.close()


@pytest.fixture()
def proxy(s3_endpoint):
    p = CuttingProxy(s3_endpoint)
    yield p
    p.close()


@pytest.fixture()
def night_in_ledger(s3_bucket, tmp_path, monkeypatch):
    from docpost.ledger import ledger_at

    monkeypatch.setenv("DOCPOST_DB_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger_at.cache_clear()
    with S3Sink(ObjectStore()) as sink:
        generate_night(6, NIGHT, sink=sink, broken_share=0.0, seed=3)
    pipeline.collect(NIGHT, actor="test")
    return pipeline.ledger()


def test_a_body_cut_short_is_storage_unavailable(proxy, s3_bucket, monkeypatch):
    store = ObjectStore()
    store.put_bytes("inbox/sbsys/2026-11-24/x/manifest.xml", b"<Manifest>" + b"x" * 5000 + b"</Manifest>")
    monkeypatch.setenv("DOCPOST_S3_ENDPOINT_URL", proxy.url)
    with pytest.raises(StorageUnavailable) as info:
        ObjectStore().get_bytes("inbox/sbsys/2026-11-24/x/manifest.xml")
    assert info.value.code == "storage.unavailable" and proxy.cut >= 1
    with pytest.raises(StorageUnavailable):
        ObjectStore().get_bytes("inbox/sbsys/2026-11-24/x/manifest.xml", max_bytes=100_000)


def test_a_stage_keeps_every_letter_when_s3_breaks_off_then_works_when_it_answers(
        night_in_ledger, proxy, s3_endpoint, monkeypatch):
    led = night_in_ledger
    [chunk] = pipeline.plan_chunks(NIGHT, chunk_size=50)
    ids = led.message_ids()
    assert len(ids) == 6

    monkeypatch.setenv("DOCPOST_S3_ENDPOINT_URL", proxy.url)
    with pytest.raises(pipeline.StageIncomplete) as info:
        pipeline.validate_chunk(chunk, actor="test")
    assert "6 of 6" in str(info.value) and proxy.cut >= 6
    after = led.messages(ids)
    assert {m.state for m in after} == {S.RECEIVED}  # nothing made final, nothing rejected
    assert all(m.claimed_by is None for m in after)  # and the claims were given back
    assert ObjectStore().list_objects("rejected/") == {}

    monkeypatch.setenv("DOCPOST_S3_ENDPOINT_URL", s3_endpoint)
    done = pipeline.validate_chunk(chunk, actor="test")
    assert done["validated"] == 6 and done["rejected"] == 0
    assert {m.state for m in led.messages(ids)} == {S.VALIDATED}
