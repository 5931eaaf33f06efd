"""The receipt feed on real parts: the SF1601 simulator over HTTPS with mutual TLS, the ledger on
SQLite and PostgreSQL, and moto S3 over HTTP. Odd receipts (tests/poison/receipts.py) are mixed
into the feed between good ones: they are set aside with their codes, the good ones settle their
letters, the cursor passes them all, and infrastructure trouble stops the feed before the cursor moves.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging

import pytest
from ledger_support import S, advance, ledger, postgresql_ledger, registration, sqlite_ledger  # noqa: F401
from sf1601_support import client_for, pki, start  # noqa: F401

from conftest import free_port
from docpost import receipts as rc
from docpost.storage import ObjectStore, StorageUnavailable
from poison.receipts import CPR, expected_counts, expected_set_aside, good_receipt, inject, odd_receipts

pytestmark = pytest.mark.integration

ACTOR = "test:receipts-feed"


@pytest.fixture()
def sim(tmp_path, pki):  # noqa: F811
    handle = start(tmp_path, pki, config={"receipt_delay": 0})
    yield handle
    handle.stop()


@pytest.fixture()
def store(s3_bucket) -> ObjectStore:
    return ObjectStore(backend="boto3")


@pytest.fixture()
def letters(ledger):  # noqa: F811
    """Six messages: four SUBMITTED (ids 0-3), one CANCELLED, one REJECTED."""
    ids = ledger.register([registration(i) for i in range(6)], actor="t").ids
    advance(ledger, ids[:4], S.SUBMITTED)
    ledger.cancel([ids[4]], "t", "withdrawn by the case worker")
    advance(ledger, [ids[5]], S.VALIDATED)
    ledger.reject(ids[5], "render.address-too-long", "the address does not fit", "t")
    return ledger.messages(ids)


def _mixed(letters):
    """Good receipts for the four submitted letters with the corpus between them."""
    good = [good_receipt(letters[0].message_uuid),
            good_receipt(letters[1].message_uuid, state=rc.DELIVERED_PHYSICAL, envelope=True),
            good_receipt(letters[2].message_uuid, state=rc.FAILED,
                         error=("recipient.unknown", f"Modtager {CPR} findes ikke")),
            good_receipt(letters[3].message_uuid)]
    odd = odd_receipts(known_uuid=letters[3].message_uuid, duplicate_of=good[0],
                       not_sent=[letters[4].message_uuid, letters[5].message_uuid])
    mixed: list = []
    for i, case in enumerate(odd):  # a good receipt every few odd ones
        if i % 5 == 0 and good:
            mixed.append(good.pop(0))
        mixed.append(case)
    return mixed + good, odd


def _set_aside_objects(store) -> dict[str, dict]:
    return {key: json.loads(store.get_bytes(key)) for key in store.list_objects(rc.SET_ASIDE_PREFIX)}


def _history(ledger, letters):  # noqa: F811
    return {m.id: [(e.to_state, e.detail) for e in ledger.history(m.id)] for m in letters}


def test_odd_receipts_are_set_aside_and_the_good_ones_settle(sim, pki, store, ledger, letters, caplog):  # noqa: F811
    mixed, odd = _mixed(letters)
    by_cursor = inject(sim, mixed)
    last = max(by_cursor)
    caplog.set_level(logging.DEBUG)
    with client_for(sim, pki) as client:
        counts = rc.fetch_and_settle(client, store, ledger, actor=ACTOR, page_size=4)

    expected = expected_counts(odd)
    assert counts["pages"] == -(-len(mixed) // 4) and counts["receipts"] == len(mixed)
    assert counts["applied"] == 4
    assert counts["duplicates"] == expected["duplicates"] == 1
    assert counts["intermediate"] == expected["intermediate"] == 1
    assert counts["set_aside"] == expected["set_aside"]
    assert counts["set_aside_by_code"] == dict(expected_set_aside(odd))
    assert counts["stale"] == 0 and counts["pending"] == 0 and counts["cursor"] == last

    # the good ones settled their letters; the cancelled and rejected ones are untouched
    states = [m.state for m in ledger.messages([m.id for m in letters])]
    assert states == [S.DELIVERED_DIGITAL, S.DELIVERED_PHYSICAL, S.FAILED, S.DELIVERED_DIGITAL,
                      S.CANCELLED, S.REJECTED]

    # every odd one is in S3 with its code and its raw text, under its cursor
    day = dt.datetime.now(dt.timezone.utc).date().isoformat()
    objects = _set_aside_objects(store)
    want = {f"{rc.SET_ASIDE_PREFIX}{day}/{c}.json": case for c, case in by_cursor.items()
            if getattr(case, "code", None)}
    assert set(objects) == set(want)
    for key, case in want.items():
        record = objects[key]
        assert record["code"] == case.code, case.name
        assert base64.b64decode(record["raw_base64"]) == case.xml, case.name
        assert record["cursor"] == int(key.rsplit("/", 1)[1].removesuffix(".json"))
        assert record["actor"] == ACTOR and record["message"]
        assert CPR not in record["message"] and CPR not in key
    # the CPR some receipts carry reaches no log line (only the set-aside objects hold the raw)
    assert caplog.records and not [r for r in caplog.records if CPR in r.getMessage()]

    # the cursor passed them all: stored and acknowledged
    assert json.loads(store.get_bytes(rc.RECEIPTS_CURSOR_KEY)) == {"cursor": last}
    assert sim.stats()["receipts"]["acked_cursor"] == last

    # a second run changes nothing
    before = (_history(ledger, letters), {k: store.get_bytes(k) for k in objects})
    with client_for(sim, pki) as client:
        again = rc.fetch_and_settle(client, store, ledger, actor=ACTOR, page_size=4)
    assert again["pages"] == 0 and again["applied"] == again["set_aside"] == 0 and again["cursor"] == last
    assert (_history(ledger, letters), {k: store.get_bytes(k) for k in objects}) == before
    assert set(store.list_objects(rc.SET_ASIDE_PREFIX)) == set(objects)

    # the same pages fetched again (a cursor lost): nothing applied twice, nothing set aside twice
    store.put_json(rc.RECEIPTS_CURSOR_KEY, {"cursor": 0})
    with client_for(sim, pki) as client:
        replay = rc.fetch_and_settle(client, store, ledger, actor=ACTOR, page_size=50)
    assert replay["applied"] == 0 and replay["duplicates"] == 4 + 1
    assert replay["set_aside_by_code"] == counts["set_aside_by_code"]
    assert (_history(ledger, letters), {k: store.get_bytes(k) for k in objects}) == before
    assert set(store.list_objects(rc.SET_ASIDE_PREFIX)) == set(objects)


def test_good_receipts_from_real_sends_pass_an_odd_one_in_the_same_page(tmp_path, pki, store, ledger):  # noqa: F811
    """The simulator's own receipts (letters really sent) and odd ones share one page."""
    from sf1601_support import kombi_request, cpr_for

    handle = start(tmp_path, pki, config={"receipt_delay": 0},
                   register={cpr_for(0): "digital", cpr_for(1): "physical"})
    try:
        with client_for(handle, pki) as client:
            sent = [kombi_request(i, cpr_for(i), salt="feed") for i in range(2)]
            for tx, _, body in sent:
                assert client.send(tx, body).transmission_id
            inject(handle, odd_receipts(seed="real")[:3])
            counts = rc.fetch_and_settle(client, store, ledger, actor=ACTOR)
    finally:
        handle.stop()
    # the sent letters are not in this ledger: their receipts are set aside as unknown messages
    assert counts["set_aside_by_code"] == {"receipt.unknown-message": 2, "receipt.xml-invalid": 3}
    assert counts["pages"] == 1 and counts["cursor"] == 5


def test_s3_unreachable_for_the_set_aside_write_stops_the_feed_before_the_cursor(
        sim, pki, store, ledger, letters, s3_bucket):  # noqa: F811
    mixed, odd = _mixed(letters)
    by_cursor = inject(sim, mixed)

    class NoRetries(ObjectStore):
        def _botocore_config(self):
            from botocore.config import Config

            return Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=2)

    dead = NoRetries(s3_bucket, endpoint_url=f"http://127.0.0.1:{free_port()}", backend="boto3")

    class SetAsideUnreachable:
        """The working S3 for the cursor; the set-aside objects go to an S3 nobody listens on."""

        def __getattr__(self, name):
            return getattr(store, name)

        def exists(self, key):
            return (dead if key.startswith(rc.SET_ASIDE_PREFIX) else store).exists(key)

        def put_json(self, key, obj):
            (dead if key.startswith(rc.SET_ASIDE_PREFIX) else store).put_json(key, obj)

    with client_for(sim, pki) as client:
        with pytest.raises(StorageUnavailable):
            rc.fetch_and_settle(client, SetAsideUnreachable(), ledger, actor=ACTOR, page_size=4)
        assert not store.exists(rc.RECEIPTS_CURSOR_KEY)
        assert sim.stats()["receipts"]["acked_cursor"] == 0
        # all of S3 unreachable: the same, before anything is fetched
        with pytest.raises(StorageUnavailable):
            rc.fetch_and_settle(client, dead, ledger, actor=ACTOR)
        assert sim.stats()["receipts"]["acked_cursor"] == 0
        # S3 back: the next run settles everything
        counts = rc.fetch_and_settle(client, store, ledger, actor=ACTOR, page_size=4)
    assert counts["cursor"] == max(by_cursor) and counts["applied"] == 4
    assert counts["set_aside_by_code"] == dict(expected_set_aside(odd))
    assert json.loads(store.get_bytes(rc.RECEIPTS_CURSOR_KEY)) == {"cursor": max(by_cursor)}


def test_database_unreachable_stops_the_feed_before_the_cursor(sim, pki, store, letters):
    from docpost.ledger import Ledger
    from sqlalchemy.exc import OperationalError

    inject(sim, [good_receipt(letters[0].message_uuid)] + odd_receipts()[:2])
    gone = Ledger(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/docpost", pseudonym_key=b"k")
    with client_for(sim, pki) as client:
        with pytest.raises(OperationalError):
            rc.fetch_and_settle(client, store, gone, actor=ACTOR)
    assert not store.exists(rc.RECEIPTS_CURSOR_KEY) and not store.list_objects(rc.SET_ASIDE_PREFIX)
    assert sim.stats()["receipts"]["acked_cursor"] == 0


def test_a_value_the_database_refuses_is_set_aside_on_postgresql(sim, pki, store, postgresql_ledger):  # noqa: F811
    from ledger_support import wipe

    led = postgresql_ledger
    wipe(led)
    ids = led.register([registration(i) for i in range(2)], actor="t").ids
    advance(led, ids, S.SUBMITTED)
    a, b = led.messages(ids)
    too_long = good_receipt(a.message_uuid).replace(rc.STATUS_DELIVERED_DIGITAL.encode(),
                                                    rc.STATUS_DELIVERED_DIGITAL.encode() + b"!" * 120)
    inject(sim, [too_long, good_receipt(b.message_uuid)])
    with client_for(sim, pki) as client:
        counts = rc.fetch_and_settle(client, store, led, actor=ACTOR)
    assert counts["set_aside_by_code"] == {"internal.DataError": 1} and counts["applied"] == 1
    assert [m.state for m in led.messages(ids)] == [S.SUBMITTED, S.DELIVERED_DIGITAL]
    assert counts["cursor"] == 2


def test_receipts_for_an_earlier_generation_are_recognised_not_set_aside(sim, pki, store, ledger):  # noqa: F811
    """A requeued message's late receipts under its earlier messageUUID: matched through the
    generations, not set aside as unknown; one that was cancelled since is not a "never sent" one."""
    ids = ledger.register([registration(i) for i in range(3)], actor="t").ids
    advance(ledger, ids, S.SUBMITTED)
    ledger.transition(ids, S.FAILED, "deliver", reason_code="sf1601.timeout", reason_text="gave up")
    old = ledger.messages(ids)
    ledger.requeue(ids, "operator:jane", "resend")
    ledger.transition(ids[1:2], S.RENDERED, "render")
    ledger.transition(ids[1:2], S.SUBMITTED, "deliver")
    ledger.cancel(ids[2:], "operator:jane", "withdrawn")
    inject(sim, [good_receipt(m.message_uuid) for m in old])
    with client_for(sim, pki) as client:
        counts = rc.fetch_and_settle(client, store, ledger, actor=ACTOR)
    assert counts["set_aside"] == 0 and counts["set_aside_by_code"] == {}
    assert (counts["applied"], counts["stale"], counts["pending"]) == (1, 2, 0)
    first, second, third = ledger.messages(ids)
    assert first.state is S.DELIVERED_DIGITAL and first.generation == 1  # the letter did arrive: no resend
    assert second.state is S.SUBMITTED  # its resend is out: its own receipt decides
    assert third.state is S.CANCELLED
    assert "receipt for generation 0" in ledger.history(third.id)[-1].detail
