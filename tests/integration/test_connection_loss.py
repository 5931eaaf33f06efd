"""PostgreSQL connections terminated in the middle of a chunk (``pg_terminate_backend`` from a second
connection, while a stage's write transaction is open): the stage stops with an infrastructure
error, which Airflow retries; the retry (the same task again) completes the night. Nothing is
lost, nothing is sent twice to SF1601, and no letter is REJECTED, FAILED, held or quarantined
because of it."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from sqlalchemy import create_engine, event, text

from docpost import pipeline
from docpost.errors import is_infrastructure
from docpost.ledger import MessageState
from docpost.storage import ObjectStore, S3Sink
from pg_support import fresh_schema

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NIGHT = dt.date(2026, 11, 26)
LETTERS = 20
CHUNK = 10
S = MessageState
TERMINATE = ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
             "WHERE datname = current_database() AND pid <> pg_backend_pid()")
OTHERS = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from docpost_testbench.pki import create_test_pki

    return create_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture()
def night(tmp_path, s3_bucket, pg_url, pki, monkeypatch):
    """A night of good letters in S3, an empty ledger, a simulator knowing every recipient."""
    from docpost.ledger import ledger_at
    from docpost_testbench.generate import generate_night
    from docpost_testbench.simulator.runner import start_simulator

    fresh_schema(pg_url)
    monkeypatch.setenv("DOCPOST_DB_URL", pg_url)
    ledger_at.cache_clear()
    pipeline._client_for.cache_clear()
    store = ObjectStore()
    with S3Sink(store) as sink:
        generate_night(LETTERS, NIGHT, sink=sink, broken_share=0.0, seed=17)
    register = dict.fromkeys(json.loads(store.get_bytes("recipients.json")), "digital")
    (tmp_path / "recipients.json").write_text(json.dumps(register))
    sim = start_simulator(tmp_path / "sim", tmp_path / "recipients.json", {}, tls_cert=pki.server_cert,
                          tls_key=pki.server_key, client_ca=pki.ca_cert,
                          client_cert=(pki.client_cert, pki.client_key), config={"receipt_delay": 0})
    monkeypatch.setenv("DOCPOST_SF1601_URL", sim.url)
    monkeypatch.setenv("DOCPOST_SF1601_CERT", str(pki.client_cert))
    monkeypatch.setenv("DOCPOST_SF1601_KEY", str(pki.client_key))
    monkeypatch.setenv("DOCPOST_SF1601_CA", str(pki.ca_cert))
    try:
        yield sim, pg_url
    finally:
        sim.stop()


class Cutter:
    """Terminates every other connection of the database from a connection of its own, once, when
    the ledger is about to write a stage's events (its write transaction open, rows locked): the
    statement then runs on a connection that is gone."""

    def __init__(self, engine, url: str) -> None:
        self.admin = create_engine(url, isolation_level="AUTOCOMMIT")
        self.armed = False
        self.cuts = 0
        event.listen(engine, "before_cursor_execute", self._before)

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if not self.armed or not statement.lstrip().upper().startswith("INSERT INTO LEDGER_EVENTS"):
            return
        self.armed = False
        with self.admin.connect() as admin:
            admin.execute(text(TERMINATE))
            deadline = time.monotonic() + 5
            while admin.execute(text(OTHERS)).scalar_one() and time.monotonic() < deadline:
                time.sleep(0.05)
        self.cuts += 1

    def close(self) -> None:
        self.admin.dispose()


def test_terminated_connections_mid_chunk_stop_the_stage_and_the_retry_completes_the_night(night):
    sim, url = night
    actor = "dag:docpost_nightly/scheduled__2026-11-26T22:00:00+00:00"
    pipeline.collect(NIGHT, actor=actor)
    led = pipeline.ledger()
    cutter = Cutter(led.engine, url)
    chunks = pipeline.plan_chunks(NIGHT, chunk_size=CHUNK)
    assert len(chunks) == LETTERS // CHUNK
    stopped: dict[str, BaseException] = {}
    try:
        for name in ("validate_chunk", "stamp_chunk", "render_chunk", "deliver_chunk"):
            stage = getattr(pipeline, name)
            for chunk in chunks:
                # the first chunk of validate and of deliver loses its connections mid-write
                cutter.armed = chunk["index"] == 0 and name in ("validate_chunk", "deliver_chunk")
                try:
                    stage(chunk, actor=actor)
                except Exception as exc:  # noqa: BLE001 - what the task would do: fail, then retry
                    assert cutter.cuts and not cutter.armed, exc
                    assert is_infrastructure(exc), repr(exc)  # retried by Airflow, never a letter's fault
                    stopped[name] = exc
                    out = stage(chunk, actor=actor)  # the task's retry: same task, same worker
                    assert out["claimed"] == CHUNK and out.get("lost", 0) == 0, out
    finally:
        cutter.close()
    assert set(stopped) == {"validate_chunk", "deliver_chunk"} and cutter.cuts == 2

    msgs = led.messages(led.message_ids())
    assert len(msgs) == LETTERS
    assert {m.state for m in msgs} == {S.SUBMITTED}, [(m.state, m.reason_code) for m in msgs]
    assert all(m.faults == 0 and m.reason_code is None and m.claimed_by is None for m in msgs)
    for m in msgs:  # one event per step: nothing recorded twice, nothing half-recorded
        assert [e.to_state for e in led.history(m.id)] == [S.RECEIVED, S.VALIDATED, S.STAMPED, S.RENDERED,
                                                           S.SUBMITTED], m.message_uuid
    # nothing doubled at SF1601: one transaction and one delivered letter per message. The chunk
    # whose SUBMITTED write was cut is sent again by the retry under the same transaction id, which
    # SF1601 answers from its record (a duplicate request, not a second letter).
    stats = sim.stats()
    assert sorted(stats["transactions"]) == sorted(m.message_uuid for m in msgs)
    assert set(stats["transactions"].values()) == {1} and set(stats["deliveries"].values()) == {1}
    assert stats["accepted"] == LETTERS and stats["duplicates"] == CHUNK, stats
    report = pipeline.summarize(NIGHT, actor=actor)
    assert report["submitted"] == LETTERS and report.get("failed", 0) == 0 and report.get("rejected", 0) == 0
