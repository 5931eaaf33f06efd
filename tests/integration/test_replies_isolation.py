"""Fault isolation of reply routing end to end: the poison corpus (tests/poison/inbound.py) in the
SF1601 simulator's inbound feed over mutual TLS, PostgreSQL, and a real loopback SMTP server.

Every odd message ends mailed safely or in the manual queue with its code, the good ones are
mailed, everything handled is acknowledged and nothing else; no stored mail carries an injected
header; an unexpected exception with one message is that message's (``internal.<Type>``, its text
never logged); the SMTP server or the database going away stops the pass without acknowledging
anything more or making anything final, and a later pass finishes the work, mailing each once."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
from pg_support import fresh_schema
from replies_support import process_inbound

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TODAY = dt.date(2026, 11, 27)


@pytest.fixture(scope="module")
def bench(tmp_path_factory, pg_url):
    """An empty reply-routing bench: a fresh database, the simulator (no night needed: the
    messages are injected), DOCPOST_* pointing at both."""
    from docpost.ledger import ledger_at
    from docpost.replies import service
    from docpost_testbench.simulator.runner import start_simulator
    from docpost_testbench.pki import create_test_pki

    tmp = tmp_path_factory.mktemp("replies-isolation")
    pki = create_test_pki(tmp / "pki")
    fresh_schema(pg_url)
    ledger_at.cache_clear()
    service._migrated.cache_clear()
    register = tmp / "recipients.json"
    register.write_text(json.dumps({}))
    sim = start_simulator(tmp / "sim", register, {}, tls_cert=pki.server_cert, tls_key=pki.server_key,
                          client_ca=pki.ca_cert, client_cert=(pki.client_cert, pki.client_key),
                          config={"receipt_delay": 0})
    mp = pytest.MonkeyPatch()
    for k, v in {"DOCPOST_DB_URL": pg_url, "DOCPOST_SF1601_URL": sim.url,
                 "DOCPOST_SF1601_CERT": str(pki.client_cert), "DOCPOST_SF1601_KEY": str(pki.client_key),
                 "DOCPOST_SF1601_CA": str(pki.ca_cert)}.items():
        mp.setenv(k, v)
    yield sim
    sim.stop()
    mp.undo()


@pytest.fixture()
def world(bench, tmp_path, monkeypatch):
    """Empty reply tables, nothing pending in the feed, a fresh loopback SMTP sink."""
    from sqlalchemy import text

    from docpost_testbench.mailsink import start_mailsink
    from docpost.replies.service import default_ledger

    led = default_ledger()
    with led.engine.begin() as conn:
        conn.execute(text("TRUNCATE reply_mails, reply_decisions, reply_inbound RESTART IDENTITY"))
    assert bench.get("/sim/inbound/stats")["pending"] == 0, "a test left messages in the feed"
    sink = start_mailsink(tmp_path / "mail")
    monkeypatch.setenv("DOCPOST_SMTP_HOST", sink.host)
    monkeypatch.setenv("DOCPOST_SMTP_PORT", str(sink.port))
    yield bench, sink, led
    sink.stop()


def open_emner(n: int) -> list[int]:
    from docpost.hierarchy import load_hierarchy

    h = load_hierarchy()
    return [e.id for e in h.emner if not h.is_closed(e, TODAY)][:n]


def goods(prefix: str, n: int) -> list[tuple[str, bytes]]:
    from poison.inbound import good

    return [(f"{prefix}-{i}", good(f"{prefix}-{i}", emne_id=e, label=f"Spørgsmål {prefix} {i}"))
            for i, e in enumerate(open_emner(n))]


def handled(led) -> set[str]:  # noqa: ANN001
    from docpost.replies.store import ReplyStore

    return {r.inbound_id for r in ReplyStore(led).records() if r.state in ("MAILED", "MANUAL")}


def acked(sim, injected) -> set[str]:  # noqa: ANN001
    from docpost.replies.service import inbound_key
    from poison.inbound import acked_ids

    return {inbound_key(i) for i, done in acked_ids(sim).items() if done and i in injected}


def test_every_odd_message_ends_mailed_safely_or_queued_with_its_code(world):
    from poison.inbound import check, inject, raw_mail_problems


    sim, sink, led = world
    injected = inject(sim, goods("good", 4)) | inject(sim)  # good ones first, then the corpus
    with sim.http() as client:  # the simulator's own malformed and hostile kinds
        generated = client.post("/sim/inbound/generate", json={"seed": 3, "counts": {"malformed": 2, "hostile": 2}})
        generated.raise_for_status()
    others = {g["id"]: g["kind"] for g in generated.json()["generated"]}

    result = process_inbound("test:poison", batch_size=10, today=TODAY)
    assert check(injected, mails=sink.messages(), ledger=led) == []
    assert raw_mail_problems(sink.directory) == []
    assert result["pulled"] == result["acked"] == len(injected) + len(others)
    assert sim.get("/sim/inbound/stats")["pending"] == 0
    assert acked(sim, injected) == handled(led) - set(others)
    from docpost.replies.store import ReplyStore

    store = ReplyStore(led)
    assert {store.get(i).reason_code for i in others} == {"inbound.malformed", "inbound.hostile"}
    again = process_inbound("test:poison-again", today=TODAY)
    assert again["pulled"] == 0 and not again.get("mailed") and not sink.duplicates()


def test_an_unexpected_exception_with_one_message_is_its_own(world, monkeypatch, caplog):
    from poison.inbound import CPR, check, inject

    from docpost.replies import mail as mailmod
    from docpost.replies.store import ReplyStore

    sim, sink, led = world
    original = mailmod.compose

    def compose(**kw):  # noqa: ANN202 - a library failing on this one message, quoting it
        if kw["message"].label.endswith(" 1"):
            raise LookupError(f"cannot encode {kw['message'].label!r} from {CPR}")
        return original(**kw)

    monkeypatch.setattr(mailmod, "compose", compose)
    caplog.set_level(logging.DEBUG)
    injected = inject(sim, goods("good", 4), prefix="bug-")
    result = process_inbound("test:bug", today=TODAY)
    bad = "bug-good-1"
    store = ReplyStore(led)
    record = store.get(bad)
    assert (record.state, record.reason_code) == ("MANUAL", "internal.LookupError")
    assert CPR not in caplog.text and "cannot encode" not in caplog.text and "internal.LookupError" in caplog.text
    assert "cannot encode" not in (record.reason_text or "")
    assert result["mailed"] == 3 and result["acked"] == 4 and sim.get("/sim/inbound/stats")["pending"] == 0
    good_ones = {k: v for k, v in injected.items() if k != bad}
    assert check(good_ones, mails=sink.messages(), ledger=led) == []
    assert store.payload(record) is not None  # kept for a manual assignment


def test_smtp_down_acknowledges_only_what_was_queued_before_and_makes_nothing_final(world, monkeypatch):
    from conftest import free_port
    from poison.inbound import check, corpus, inject, raw_mail_problems

    from docpost.replies.errors import MailUnavailable
    from docpost.replies.store import ReplyStore

    sim, sink, led = world
    cases = {c.name: c for c in corpus(large=False)}
    first = [cases["title-nul"], cases["utf16"]]  # queued before the mail server is found down
    later = [cases["title-crlf-injection"], cases["xinclude"]]
    injected = (inject(sim, first, prefix="down-") | inject(sim, goods("good", 3), prefix="down-")
                | inject(sim, later, prefix="down-"))
    monkeypatch.setenv("DOCPOST_SMTP_PORT", str(free_port()))  # nothing listens there
    for _ in range(2):  # a retry while it is still down changes nothing
        with pytest.raises(MailUnavailable):
            process_inbound("test:smtp-down", today=TODAY)
        store = ReplyStore(led)
        states = {r.inbound_id: r.state for r in store.records()}
        assert acked(sim, injected) == {"down-title-nul", "down-utf16"} == handled(led)
        assert states == {"down-title-nul": "MANUAL", "down-utf16": "MANUAL", "down-good-0": "ROUTED"}
        assert sink.messages() == []

    monkeypatch.setenv("DOCPOST_SMTP_PORT", str(sink.port))
    result = process_inbound("test:smtp-up", today=TODAY)
    assert result["mailed"] == 4 and sim.get("/sim/inbound/stats")["pending"] == 0
    assert acked(sim, injected) == handled(led) == {k for k in injected}
    assert check(injected, mails=sink.messages(), ledger=led) == [] and raw_mail_problems(sink.directory) == []


def test_database_gone_mid_pass_stops_acknowledging_and_a_later_pass_finishes(world, monkeypatch, pg_url):
    """The database refuses connections and drops the open ones right after a mail went out: the
    pass fails with the database's error; what was acknowledged had been handled; nothing more is
    acknowledged. With the database back, the next pass finishes, each mail once in its mailbox
    (the one in doubt is resent with its Message-ID and Date, which the mailbox store drops)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError
    from poison.inbound import check, inject

    from conftest import PG_ADMIN_URL
    from docpost.replies.mail import SmtpTransport

    sim, sink, led = world
    monkeypatch.setenv("DOCPOST_CLAIM_LEASE_SECONDS", "0")  # the failed pass's claim runs out at once
    injected = inject(sim, goods("good", 5), prefix="db-")
    name = make_url(pg_url).database
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")

    class DroppingTransport(SmtpTransport):
        sent = 0

        def send(self, message, recipients):  # noqa: ANN001
            super().send(message, recipients)
            DroppingTransport.sent += 1
            if DroppingTransport.sent == 2:
                with admin.connect() as conn:
                    conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
                    conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                      "WHERE datname = :d AND pid <> pg_backend_pid()"), {"d": name})

    transport = DroppingTransport()
    try:
        with pytest.raises(DBAPIError):
            process_inbound("test:db-gone", today=TODAY, transport=transport)
    finally:
        transport.close()
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
    assert len(sink.messages()) == 2
    done = acked(sim, injected)
    assert done == {"db-good-0"} and done <= handled(led)  # the second mail's record was lost

    result = process_inbound("test:db-back", today=TODAY)
    assert sim.get("/sim/inbound/stats")["pending"] == 0 and result["acked"] == 4
    assert check(injected, mails=sink.messages(), ledger=led) == []
    assert len(sink.duplicates()) <= 1
