"""The SF1601 client against the simulator over HTTPS with mutual TLS: tokens and failures.

Every fault here is really produced by the simulator (503, 429 with Retry-After, a held-back
answer, a closed socket); nothing is mocked.
"""

from __future__ import annotations

import random
import time
import uuid

import pytest

from docpost import receipts as rc
from docpost.channels.sf1601 import (Outcome, Permanent, Retryable, UnknownOutcome,
                                     parse_retry_after)
from docpost.privacy import scrub
from sf1601_support import (client_for, cpr_for, kombi_request, pki, start,  # noqa: F401
                            wait_for_receipts)

pytestmark = pytest.mark.integration


@pytest.fixture()
def sim(tmp_path, pki):  # noqa: F811
    handle = start(tmp_path, pki, config={"receipt_delay": 0.05},
                   faults={"timeout_seconds": 1.5, "retry_after": 1, "seed": 7})
    yield handle
    handle.stop()


def test_tokens_are_cached_and_renewed_before_expiry(tmp_path, pki):  # noqa: F811
    handle = start(tmp_path, pki, config={"access_lifetime": 3.0})
    letters = [kombi_request(i, cpr_for(i)) for i in range(6)]
    try:
        with client_for(handle, pki, token_margin=0.5) as c:
            fetched = time.monotonic()
            for tx, _, body in letters[:5]:
                c.send(tx, body)
            assert c.token_calls == {"saml": 1, "access": 1}
            assert handle.stats()["token_calls"] == {"saml": 1, "access": 1}
            time.sleep(max(0.0, fetched + 2.6 - time.monotonic()))  # past 3.0 - 0.5, before 3.0
            tx, _, body = letters[5]
            c.send(tx, body)
            assert c.token_calls == {"saml": 1, "access": 2}  # SAML token still valid
        stats = handle.stats()
        assert stats["token_calls"] == {"saml": 1, "access": 2}
        assert stats["unauthorized"] == 0  # never sent an expired token
    finally:
        handle.stop()


def test_token_cache_is_thread_safe(sim, pki):  # noqa: F811
    with client_for(sim, pki) as c:
        items = [kombi_request(i, cpr_for(i))[::2] for i in range(24)]
        outcomes = c.send_many(items, concurrency=12)
    assert all(o.accepted for o in outcomes)
    assert sim.stats()["token_calls"] == {"saml": 1, "access": 1}


def test_5xx_is_retryable(sim, pki):  # noqa: F811
    sim.set_faults(error_5xx=1.0)
    tx, msg, body = kombi_request(1, cpr_for(1))
    with client_for(sim, pki) as c:
        with pytest.raises(Retryable) as info:
            c.send(tx, body)
        assert info.value.status_code == 503 and info.value.code == "sf1601.server-error"
        sleeps: list[float] = []
        outcome = c.send_with_retry(tx, body, attempts=3, backoff=0.2, sleep=sleeps.append,
                                    rng=random.Random(1))
    assert (outcome.outcome, outcome.attempts) == (Outcome.RETRYABLE, 3)
    assert len(sleeps) == 2 and 0.1 <= sleeps[0] <= 0.2 and 0.2 <= sleeps[1] <= 0.4  # backoff
    stats = sim.stats()
    assert stats["faults"]["5xx"] == 4 and stats["deliveries"] == {}


def test_429_retry_after_is_honoured(sim, pki):  # noqa: F811
    sim.set_faults(rate_limit=1.0, retry_after=2)
    tx, _, body = kombi_request(2, cpr_for(2))
    with client_for(sim, pki) as c:
        with pytest.raises(Retryable) as info:
            c.send(tx, body)
        assert info.value.status_code == 429 and info.value.retry_after == 2.0
        sleeps: list[float] = []
        outcome = c.send_with_retry(tx, body, attempts=3, backoff=0.01, sleep=sleeps.append)
        assert outcome.outcome is Outcome.RETRYABLE and sleeps == [2.0, 2.0]
        # a Retry-After beyond max_backoff ends the attempts instead of waiting less
        sleeps.clear()
        short = c.send_with_retry(tx, body, attempts=5, max_backoff=1.0, sleep=sleeps.append)
        assert (short.outcome, short.attempts, sleeps) == (Outcome.RETRYABLE, 1, [])
        sim.set_faults(rate_limit=0.0)
        assert c.send_with_retry(tx, body, sleep=sleeps.append).accepted


def test_timeout_after_send_is_unknown_and_retried_with_the_same_transaction(sim, pki):  # noqa: F811
    sim.set_faults(timeout=1.0)
    tx, msg, body = kombi_request(3, cpr_for(3))
    with client_for(sim, pki, timeout=0.5) as c:
        with pytest.raises(UnknownOutcome) as info:
            c.send(tx, body)
        assert info.value.code == "sf1601.timeout-after-send"
        assert sim.stats()["deliveries"] == {msg: 1}  # it did arrive
        sim.set_faults(timeout=0.0)
        outcome = c.send_with_retry(tx, body)
    assert outcome.accepted and outcome.attempts == 1
    stats = sim.stats()
    assert stats["duplicates"] == 1 and stats["deliveries"] == {msg: 1}


def test_dropped_connection_is_unknown_and_safe_to_retry(sim, pki):  # noqa: F811
    sim.set_faults(drop=1.0)
    with client_for(sim, pki) as c:
        sent = []
        for i in range(6):
            tx, msg, body = kombi_request(10 + i, cpr_for(10 + i))
            with pytest.raises(UnknownOutcome) as info:
                c.send(tx, body)
            assert info.value.code == "sf1601.connection-dropped"
            sent.append((tx, msg, body))
        recorded = sim.stats()["deliveries"]
        assert 0 < len(recorded) < 6  # some were dropped before, some after recording
        sim.set_faults(drop=0.0)
        outcomes = c.send_many([(tx, body) for tx, _, body in sent], concurrency=3)
    assert all(o.accepted for o in outcomes)
    assert sim.stats()["deliveries"] == {msg: 1 for _, msg, _ in sent}


def test_connection_refused_is_retryable(pki):  # noqa: F811
    from docpost.channels.sf1601 import SF1601Client

    with SF1601Client("https://127.0.0.1:9", "29189846", ca=str(pki.ca_cert), timeout=1) as c:
        outcome = c.send_with_retry(str(uuid.uuid4()), b"<kombi_request/>", attempts=2,
                                    backoff=0.01)
    assert outcome.outcome is Outcome.RETRYABLE and outcome.code == "sf1601.connect-failed"


def test_schema_rejection_is_permanent_without_retries(sim, pki, reference_dir):  # noqa: F811
    from sf1601_support import wrap_example

    memo = (reference_dir / "memo-examples" / "MeMo_Minimum_Example.xml").read_bytes()
    broken = memo.replace(b"<memo:idType>CPR</memo:idType>", b"<memo:idType>XYZ</memo:idType>")
    with client_for(sim, pki) as c:
        outcome = c.send_with_retry(str(uuid.uuid4()), wrap_example(broken))
        bad_tx = c.send_with_retry("not-a-uuid", wrap_example(memo))
    assert (outcome.outcome, outcome.attempts) == (Outcome.PERMANENT, 1)
    assert isinstance(outcome.error, Permanent)
    assert outcome.error.error_code == "memo.invalid" and "idType" in outcome.error.error_text
    assert "2211771212" not in str(outcome.error)  # the recipient's CPR is not echoed
    assert bad_tx.outcome is Outcome.PERMANENT and bad_tx.code == "sf1601.bad-transaction-id"
    assert sim.stats()["requests"] == 1


def test_send_many_keeps_order_and_isolates_bad_items(sim, pki):  # noqa: F811
    items = [kombi_request(20 + i, cpr_for(20 + i))[::2] for i in range(5)]
    items.insert(2, (str(uuid.uuid4()), b"<kombi_request><KombiValgKode>Digital Post"
                                        b"</KombiValgKode></kombi_request>"))
    with client_for(sim, pki) as c:
        outcomes = c.send_many(items, concurrency=4)
    assert [o.transaction_id for o in outcomes] == [tx for tx, _ in items]
    assert [o.outcome for o in outcomes] == [Outcome.ACCEPTED] * 2 + [Outcome.PERMANENT] \
        + [Outcome.ACCEPTED] * 3


@pytest.mark.parametrize("letters", [300, pytest.param(2000, marks=pytest.mark.slow)])
def test_fault_heavy_night_delivers_every_letter_exactly_once(tmp_path, pki, letters):  # noqa: F811
    handle = start(tmp_path, pki, config={"receipt_delay": 0.05},
                   faults={"error_5xx": 0.2, "timeout": 0.1, "timeout_seconds": 1.0, "seed": 11})
    try:
        work = {}
        for i in range(letters):
            tx, msg, body = kombi_request(i, cpr_for(i), salt="night")
            work[tx] = (msg, body)
        pending = dict(work)
        rounds = 0
        with client_for(handle, pki, timeout=0.6, max_connections=16) as c:
            while pending and rounds < 5:  # the next task run picks up what is RETRYING
                rounds += 1
                outcomes = c.send_many([(tx, body) for tx, (_, body) in pending.items()],
                                       concurrency=16, attempts=4, backoff=0.05, max_backoff=0.3)
                assert not [o for o in outcomes if o.outcome is Outcome.PERMANENT]
                pending = {o.transaction_id: work[o.transaction_id] for o in outcomes
                           if not o.accepted}
            assert not pending
            receipts, _ = wait_for_receipts(c, letters, timeout=20)
        stats = handle.stats()
        messages = {msg for msg, _ in work.values()}
        assert stats["deliveries"] == {msg: 1 for msg in messages}
        assert stats["transactions"] == {msg: 1 for msg in messages}
        assert stats["faults"]["5xx"] > letters * 0.1 and stats["faults"]["timeout"] > letters * 0.05
        assert stats["duplicates"] >= stats["faults"]["timeout"] * 0.5  # unknown outcomes resent
        assert {r.message_uuid for r in receipts} == messages
        assert all(rc.outcome(r) == rc.DELIVERED_DIGITAL for r in receipts)
    finally:
        handle.stop()


def test_retry_after_parsing_and_scrubbing():
    import datetime as dt
    import email.utils

    now = dt.datetime(2026, 11, 28, 22, 0, tzinfo=dt.UTC)
    later = email.utils.format_datetime(now + dt.timedelta(seconds=90), usegmt=True)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(later, now=now) == 90.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert scrub("recipientID 0101901234 / 010190-1234, CVR 29189846, tx "
                 "1ab6eb87-a457-4ad3-8952-ed8f18a1676a") == (
        "recipientID 010190-**** / 010190-****, CVR 2918****, tx 1ab6eb87-a457-4ad3-8952-ed8f18a1676a")


def test_refused_or_expired_credentials_never_fail_the_letter(tmp_path, pki):  # noqa: F811
    from docpost.channels.sf1601 import SF1601Client, transaction_time

    handle = start(tmp_path, pki, config={"access_lifetime": 0.5})
    try:
        tx, msg, body = kombi_request(50, cpr_for(50))
        with SF1601Client(handle.url, "123", cert=(str(pki.client_cert), str(pki.client_key)),
                          ca=str(pki.ca_cert), timeout=2) as wrong_cvr:
            outcome = wrong_cvr.send_with_retry(tx, body, attempts=2, backoff=0.01)
        assert outcome.outcome is Outcome.RETRYABLE and outcome.code == "sf1601.token-refused"

        with client_for(handle, pki, token_margin=0.0) as c:
            stale = c.authorization()
            time.sleep(0.7)
            with handle.http() as http:
                refused = http.post("/service/KombiPostAfsend_1/kombi", content=body, headers={
                    "Authorization": stale, "x-TransaktionsId": tx,
                    "x-TransaktionsTid": transaction_time(), "Content-Type": "application/xml"})
            assert refused.status_code == 401 and b"token.expired" in refused.content
            assert c.send_with_retry(tx, body).accepted  # the client renews by itself
            assert c.token_calls["access"] == 2
        assert handle.stats()["deliveries"] == {msg: 1}
    finally:
        handle.stop()
