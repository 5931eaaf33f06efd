"""The SF1601 simulator over real HTTPS with mutual TLS: checks, register, mailbox, receipts."""

from __future__ import annotations

import ssl
import socket
import time
import uuid

import httpx
import pytest
from lxml import etree

from docpost import receipts as rc
from docpost.channels.sf1601 import Permanent, SF1601Client, transaction_time
from sf1601_support import (PDF, client_for, cpr_for, kombi_request, pki, start,  # noqa: F401
                            wait_for_receipts, wrap_example)

pytestmark = pytest.mark.integration


@pytest.fixture()
def sim(tmp_path, pki):  # noqa: F811
    handle = start(tmp_path, pki, register={cpr_for(0): "digital", cpr_for(1): "physical",
                                            cpr_for(2): "unknown"},
                   config={"receipt_delay": 0.05, "default_recipient": "digital"})
    yield handle
    handle.stop()


@pytest.fixture()
def client(sim, pki):  # noqa: F811
    with client_for(sim, pki) as c:
        yield c


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.split("//")[1].rsplit(":", 1)
    return host, int(port)


def test_tls_handshake_without_client_certificate_is_refused(sim, pki):  # noqa: F811
    host, port = _host_port(sim.url)
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.maximum_version = ssl.TLSVersion.TLSv1_2  # the refusal shows in the handshake itself
    with socket.create_connection((host, port), timeout=5) as raw:
        with pytest.raises(ssl.SSLError):
            context.wrap_socket(raw, server_hostname=host)
    context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    with socket.create_connection((host, port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            assert tls.version() == "TLSv1.2"
    # over TLS 1.3 too, nothing gets through: no token is issued, no request is seen
    with SF1601Client(sim.url, "29189846", cert=None, ca=str(pki.ca_cert), timeout=2) as bare:
        with pytest.raises(Exception) as info:
            bare.send(str(uuid.uuid4()), b"<kombi_request/>")
        assert type(info.value).__name__ in ("Retryable", "UnknownOutcome")
    stats = sim.stats()
    assert stats["token_calls"] == {"saml": 0, "access": 0}
    assert stats["requests"] == 0


def test_official_memo_examples_are_accepted_and_delivered(sim, client, reference_dir):
    examples = reference_dir / "memo-examples"
    sent = {}
    for name in ("MeMo_Minimum_Example.xml", "MeMo_Full_Example.xml", "MeMo_with_attachment.xml"):
        memo = (examples / name).read_bytes()
        result = client.send(str(uuid.uuid4()), wrap_example(memo, "Automatisk Valg"))
        assert result.transmission_id
        sent[name] = etree.fromstring(memo).findtext(".//{*}messageUUID").lower()
    stats = sim.stats()
    assert stats["accepted"] == 3
    assert set(stats["deliveries"]) == set(sent.values())


def test_duplicate_transaction_returns_the_first_answer_and_delivers_once(sim, client):
    tx, msg, body = kombi_request(10, cpr_for(0))
    first = client.send(tx, body)
    second = client.send(tx, body)
    assert second == first
    stats = sim.stats()
    assert stats["deliveries"] == {msg: 1}
    assert stats["duplicates"] == 1
    receipts, _ = wait_for_receipts(client, 1)
    time.sleep(0.3)
    more, _ = client.fetch_receipts(0)
    assert [r.message_uuid for r in more] == [msg]  # one receipt, not two


def test_same_message_under_a_new_transaction_is_not_delivered_twice(sim, client):
    tx, msg, body = kombi_request(11, cpr_for(0))
    client.send(tx, body)
    client.send(str(uuid.uuid4()), body)
    stats = sim.stats()
    assert stats["deliveries"] == {msg: 1}
    assert stats["letters"]["duplicate"] == 1


def test_register_and_kombivalg_decide_the_channel(sim, client):
    digital, physical, unknown = cpr_for(0), cpr_for(1), cpr_for(2)
    cases = [
        (20, digital, "Automatisk Valg", rc.DELIVERED_DIGITAL),
        (21, physical, "Automatisk Valg", rc.DELIVERED_PHYSICAL),
        (22, unknown, "Automatisk Valg", rc.FAILED),
        (23, physical, "Digital Post", rc.FAILED),
        (24, digital, "Fysisk Post", rc.DELIVERED_PHYSICAL),
        (25, cpr_for(99), "Automatisk Valg", rc.DELIVERED_DIGITAL),  # not in register: default
    ]
    expected = {}
    for i, recipient, valg, outcome in cases:
        tx, msg, body = kombi_request(i, recipient, valg)
        client.send(tx, body)
        expected[msg] = outcome
    receipts, _ = wait_for_receipts(client, len(cases))
    got = {r.message_uuid: rc.outcome(r) for r in receipts}
    assert got == expected
    failed = {r.message_uuid: r for r in receipts if rc.outcome(r) == rc.FAILED}
    assert all(r.error_code and r.error_text for r in failed.values())

    mailbox = sim.get(f"/sim/mailbox/{digital}")
    assert mailbox["recipient"].endswith("-****")
    assert [letter["channel"] for letter in mailbox["letters"]] == ["digital"]
    printed = sim.get(f"/sim/mailbox/{physical}")["letters"]
    assert [(p["channel"], p["status"]) for p in printed] == [("physical", "delivered"),
                                                             ("digital", "failed")]
    # Fysisk Post without MeMo: the ForsendelseI carries 0000000000, never the CPR number
    assert [p["channel"] for p in sim.get("/sim/mailbox/0000000000")["letters"]] == ["physical"]
    with sim.http() as http:
        for letter in (mailbox["letters"][0], printed[0]):
            pdf = http.get(letter["pdf_url"])
            assert pdf.headers["content-type"] == "application/pdf"
            assert pdf.content == PDF
    assert sim.get(f"/sim/mailbox/{unknown}")["letters"][0]["status"] == "failed"


def test_post_forespoerg_answers_from_the_register(sim, client):
    assert client.digital_post_status(cpr_for(0)) is True
    assert client.digital_post_status(cpr_for(1)) is False
    assert sim.stats()["token_calls"] == {"saml": 1, "access": 1}  # its own service token


@pytest.mark.parametrize("change", ["swap", "bad-uuid", "no-memo"])
def test_invalid_input_is_refused_with_the_schema_errors(sim, client, reference_dir, change):
    memo = (reference_dir / "memo-examples" / "MeMo_Minimum_Example.xml").read_bytes()
    if change == "swap":  # label before messageUUID: element order is enforced
        memo = memo.replace(b"<memo:messageUUID>8C2EA15D-61FB-4BA9-9366-42F8B194C114</memo:messageUUID>",
                            b"").replace(b"</memo:label>", b"</memo:label><memo:messageUUID>"
                                         b"8C2EA15D-61FB-4BA9-9366-42F8B194C114</memo:messageUUID>")
        body = wrap_example(memo)
    elif change == "bad-uuid":
        body = wrap_example(memo.replace(b"8C2EA15D-61FB-4BA9", b"8C2EA15D-61FB-1BA9"))
    else:
        body = b"<kombi_request><KombiValgKode>Digital Post</KombiValgKode></kombi_request>"
    with pytest.raises(Permanent) as info:
        client.send(str(uuid.uuid4()), body)
    assert info.value.status_code == 400
    assert info.value.error_code == ("kombi.invalid" if change == "no-memo" else "memo.invalid")
    assert info.value.error_text
    stats = sim.stats()
    assert stats["deliveries"] == {} and stats["rejected"] == 1


def _raw_post(sim, client, headers: dict, body: bytes = b"<kombi_request/>") -> httpx.Response:
    with sim.http() as http:
        return http.post("/service/KombiPostAfsend_1/kombi", content=body, headers=headers)


def test_headers_and_token_are_checked(sim, client):
    good = {"Authorization": client.authorization(), "x-TransaktionsId": str(uuid.uuid4()),
            "x-TransaktionsTid": transaction_time(), "Content-Type": "application/xml"}
    assert _raw_post(sim, client, {**good, "Authorization": "Holder-of-key nope"}).status_code == 401
    assert _raw_post(sim, client, {k: v for k, v in good.items() if k != "Authorization"}).status_code == 401
    assert _raw_post(sim, client, {**good, "x-TransaktionsId": "42"}).status_code == 400
    no_z = {**good, "x-TransaktionsTid": "2026-11-28T22:00:00+01:00"}
    answer = _raw_post(sim, client, no_z)
    assert answer.status_code == 400
    assert b"header.invalid" in answer.content
    assert _raw_post(sim, client, {**good, "Content-Type": "text/plain"}).status_code == 415
    assert sim.stats()["accepted"] == 0


def test_state_survives_a_restart(tmp_path, pki):  # noqa: F811
    state = tmp_path / "state"
    tx, msg, body = kombi_request(30, cpr_for(0))
    first_sim = start(tmp_path, pki, state=state)
    with client_for(first_sim, pki) as c:
        first = c.send(tx, body)
        first_sim.stop()
        second_sim = start(tmp_path, pki, state=state)
        c.base_url = c.sts_url = second_sim.url  # same state, new port; old token unknown
        again = c.send(tx, body)
    stats = second_sim.stats()
    second_sim.stop()
    assert again.transmission_id == first.transmission_id
    assert stats["deliveries"] == {msg: 1}
    assert stats["unauthorized"] == 1 and stats["duplicates"] == 1  # refreshed its token once
    assert c.token_calls == {"saml": 2, "access": 2}


def test_receipt_feed_with_duplicates_and_out_of_order_entries(tmp_path, pki):  # noqa: F811
    handle = start(tmp_path, pki, faults={"duplicate_receipts": 1.0, "out_of_order_receipts": 1.0},
                   config={"receipt_delay": 0.05})
    try:
        with client_for(handle, pki) as c:
            sent = set()
            for i in range(8):
                tx, msg, body = kombi_request(40 + i, cpr_for(i))
                c.send(tx, body)
                sent.add(msg)
            receipts, cursor = wait_for_receipts(c, 3 * len(sent))
            assert len(receipts) == 3 * len(sent)
            again, _ = c.fetch_receipts(0)  # not acknowledged: the same feed again
            assert again == receipts[:len(again)]

            final_at, intermediate_at, unique = {}, {}, set()
            for position, r in enumerate(receipts):
                if rc.outcome(r) is None:
                    intermediate_at[r.message_uuid] = position
                else:
                    final_at.setdefault(r.message_uuid, position)
                    unique.add(r.key)
            assert set(final_at) == sent and len(unique) == len(sent)
            assert all(intermediate_at[m] > final_at[m] for m in sent)  # arrives after the final

            c.ack_receipts(cursor - 2)
            rest, next_cursor = c.fetch_receipts(None)  # None: after the acknowledged cursor
            assert rest == receipts[-2:] and next_cursor == cursor
            assert handle.stats()["receipts"]["acked_cursor"] == cursor - 2
    finally:
        handle.stop()


def test_receipts_in_envelopes(tmp_path, pki):  # noqa: F811
    handle = start(tmp_path, pki, config={"receipt_delay": 0.05, "receipt_envelope": True})
    try:
        with client_for(handle, pki) as c:
            tx, msg, body = kombi_request(60, cpr_for(0))
            c.send(tx, body)
            receipts, _ = wait_for_receipts(c, 1)
        assert [r.message_uuid for r in receipts] == [msg]
        assert receipts[0].event_id and rc.outcome(receipts[0]) == rc.DELIVERED_DIGITAL
    finally:
        handle.stop()


def test_faults_are_switchable_at_run_time(sim, client):
    sim.set_faults(error_5xx=1.0)
    with pytest.raises(Exception) as info:
        client.send(str(uuid.uuid4()), b"<kombi_request/>")
    assert getattr(info.value, "status_code", None) == 503
    assert sim.get("/sim/faults")["error_5xx"] == 1.0
    sim.set_faults(error_5xx=0.0)
    with sim.http() as http:
        assert http.post("/sim/faults", json={"no_such_fault": 1}).status_code == 400


@pytest.mark.slow
def test_simulator_runs_as_a_subprocess(tmp_path, pki):  # noqa: F811
    handle = start(tmp_path, pki, subprocess_mode=True, faults={"error_5xx": 0.0, "seed": 3})
    try:
        assert handle.pid
        with client_for(handle, pki) as c:
            tx, msg, body = kombi_request(70, cpr_for(0))
            c.send(tx, body)
        assert handle.stats()["deliveries"] == {msg: 1}
    finally:
        handle.stop()
