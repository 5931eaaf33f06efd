"""The PostModtag wire format (docpost.postmodtag.wire): what docpost assumes of SF1606's payload."""

from __future__ import annotations

import json

import pytest

from docpost.postmodtag import wire

UUID = "0b4e6a56-54a3-4c43-9d0e-6f5b1e0e7a11"


def test_an_accepted_answer_round_trips():
    status, headers, body = wire.encode_answer(wire.accepted(UUID), "tx-1")
    assert status == 200 and headers["x-TransaktionsId"] == "tx-1"
    assert json.loads(body) == {"messageUUID": UUID, "result": "accepted", "reasonCode": None, "reasonText": None}
    answer = wire.decode_answer(status, body)
    assert answer.accepted and not answer.retry and answer.message_uuid == UUID


def test_a_refusal_carries_its_reason_and_is_not_retried():
    status, _, body = wire.encode_answer(wire.refused("inbound.hostile", "refused before parsing: xml.dtd-forbidden"))
    assert status == 422
    answer = wire.decode_answer(status, body)
    assert (answer.result, answer.reason_code, answer.retry) == ("refused", "inbound.hostile", False)


def test_unavailable_is_503_with_retry_after_and_retried():
    status, headers, body = wire.encode_answer(wire.unavailable())
    assert status == 503 and headers["Retry-After"].isdigit()
    answer = wire.decode_answer(status, body)
    assert answer.retry and not answer.accepted and answer.reason_code == wire.UNAVAILABLE
    assert wire.decode_answer(502, b"<html>bad gateway</html>").retry  # a proxy's 5xx: retried too


@pytest.mark.parametrize("status, body", [
    (200, b"not json"), (404, b'{"detail": "Not Found"}'), (200, b'{"result": "refused"}'),
    (422, b'{"result": "accepted"}'), (200, b"[]"),
])
def test_anything_else_is_not_an_answer(status, body):
    with pytest.raises(wire.WireError):
        wire.decode_answer(status, body)


@pytest.mark.parametrize("value, ok", [
    (UUID, True), (UUID.upper(), True), (f"  {UUID} ", True), ("", False), (None, False),
    ("in-" + UUID, False), ("1234", False), (UUID + "0", False),
])
def test_the_message_uuid_must_be_a_uuid(value, ok):
    if ok:
        assert wire.message_uuid(value) == UUID
    else:
        with pytest.raises(wire.WireError) as caught:
            wire.message_uuid(value)
        assert caught.value.code == wire.NO_MESSAGE_UUID


@pytest.mark.parametrize("content_type, ok", [
    ("application/xml", True), ("text/xml; charset=utf-8", True), (None, True),
    ("application/octet-stream", True), ("application/json", False), ("multipart/form-data; boundary=x", False),
])
def test_only_xml_bodies_are_taken(content_type, ok):
    if ok:
        wire.check_request(content_type, "10")
    else:
        with pytest.raises(wire.WireError) as caught:
            wire.check_request(content_type, "10")
        assert caught.value.code == wire.MEDIA_TYPE


def test_size_limits_and_empty_bodies_are_refused():
    with pytest.raises(wire.WireError) as caught:
        wire.check_request("application/xml", str(wire.MAX_BODY_BYTES + 1))
    assert caught.value.code == wire.TOO_LARGE
    with pytest.raises(wire.WireError) as caught:
        wire.check_request("application/xml", "many")
    assert caught.value.code == wire.TOO_LARGE
    for body in (b"", b"  \n"):
        with pytest.raises(wire.WireError) as caught:
            wire.memo_of(body)
        assert caught.value.code == wire.EMPTY
    assert wire.memo_of(b"<x/>") == b"<x/>"


def test_the_request_is_the_memo_itself_and_odd_transaction_ids_are_not_echoed():
    headers, body = wire.request(b"<memo/>", "tx-9")
    assert body == b"<memo/>" and headers == {"Content-Type": "application/xml", "x-TransaktionsId": "tx-9"}
    assert wire.transaction_id({"x-TransaktionsId": "abc-1"}) == "abc-1"
    assert wire.transaction_id({"x-TransaktionsId": "a\r\nBcc: x"}) is None
    assert wire.transaction_id({}) is None and wire.transaction_id(None) is None
