"""PKO_PostStatus receipts: the real samples, outcomes, building, and hostile input."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt

import pytest

from docpost import receipts as rc


@pytest.fixture(scope="module")
def samples(reference_dir):
    folder = reference_dir / "post-status"
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("kind", ["success", "error"])
def test_envelope_and_decoded_sample_are_the_same_event(samples, kind):
    decoded = rc.parse_post_status(samples[f"PKO_PostStatus.{kind}.decoded.xml"])
    enveloped = rc.parse_post_status(samples[f"PostStatusBeskedModtag.{kind}.xml"])
    assert decoded.event_id is None
    assert enveloped.event_id and len(enveloped.event_id) == 36
    assert dataclasses.replace(enveloped, event_id=None) == decoded
    assert decoded.transmission_id == decoded.correlation_id
    assert decoded.transaction_time.tzinfo is not None


def test_success_sample_is_delivered_digitally(samples):
    status = rc.parse_post_status(samples["PKO_PostStatus.success.decoded.xml"])
    assert status.status_code == "Afleveret Digital Post"
    assert status.channel == rc.CHANNEL_DIGITAL
    assert (status.error_code, status.error_text) == (None, None)
    assert rc.outcome(status) == rc.DELIVERED_DIGITAL


def test_error_sample_carries_the_services_reason(samples):
    status = rc.parse_post_status(samples["PostStatusBeskedModtag.error.xml"])
    assert rc.outcome(status) == rc.FAILED
    assert status.error_code == "memo.invalid"
    assert 'tag name "mandatory" is not allowed' in status.error_text
    assert "<label>" in status.error_text  # entities decoded


@pytest.mark.parametrize("kind", ["success", "error"])
def test_built_receipt_is_byte_identical_to_the_real_sample(samples, kind):
    original = samples[f"PKO_PostStatus.{kind}.decoded.xml"]
    s = rc.parse_post_status(original)
    built = rc.build_post_status(
        transmission_id=s.transmission_id, message_uuid=s.message_uuid, message_id=s.message_id,
        status_code=s.status_code, channel=s.channel, transaction_time=s.transaction_time,
        correlation_id=s.correlation_id, error_code=s.error_code, error_text=s.error_text)
    assert built == original.strip()


def test_envelope_round_trip():
    inner = rc.build_post_status(
        transmission_id="1ab6eb87-a457-4ad3-8952-ed8f18a1676a",
        message_uuid="8853363b-43ec-4d0a-a54d-65447f9447ed", status_code=rc.STATUS_DELIVERED_PHYSICAL,
        channel=rc.CHANNEL_PHYSICAL, transaction_time=dt.datetime(2026, 11, 28, 22, 1, tzinfo=dt.UTC),
        message_id="0d7a7d95-0c4a-4f86-bd98-c599d0b81128")
    wrapped = rc.wrap_in_envelope(inner, event_id="bd12c645-de98-453a-ac80-f58a76942eda",
                                  sender_cvr="29189846", created=dt.datetime.now(dt.UTC))
    parsed = rc.parse_post_status(wrapped)
    assert parsed.event_id == "bd12c645-de98-453a-ac80-f58a76942eda"
    assert parsed == dataclasses.replace(rc.parse_post_status(inner), event_id=parsed.event_id)
    assert rc.outcome(parsed) == rc.DELIVERED_PHYSICAL


@pytest.mark.parametrize(("code", "channel", "expected"), [
    ("Afleveret Digital Post", "Digital Post", rc.DELIVERED_DIGITAL),
    ("Afleveret Fysisk Post", "Fysisk Post", rc.DELIVERED_PHYSICAL),
    ("Afleveret", "Fysisk Post", rc.DELIVERED_PHYSICAL),
    ("Fejlet", "Digital Post", rc.FAILED),
    ("Fejlet", "Fysisk Post", rc.FAILED),
    ("Modtaget", "Digital Post", None),
    ("Under behandling", "Fysisk Post", None),
])
def test_outcome(code, channel, expected):
    status = rc.PostStatus(transmission_id="t", message_uuid="m", status_code=code, channel=channel)
    assert rc.outcome(status) == expected


def test_receipt_key_ignores_uuid_case():
    a = rc.PostStatus("ABC", "DEF", "Fejlet")
    b = rc.PostStatus("abc", "def", "Fejlet", event_id="x")
    assert a.key == b.key
    assert a.key != rc.PostStatus("abc", "def", "Modtaget").key


def test_entity_expansion_is_refused():
    bomb = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b'<PKO_PostStatus xmlns="http://serviceplatformen.dk/xml/print/PKO_PostStatus/1/types">'
            b'<TransmissionId>&b;</TransmissionId></PKO_PostStatus>')
    with pytest.raises(rc.MalformedReceipt) as info:
        rc.parse_post_status(bomb)
    assert info.value.code == "receipt.xml-unsafe"


def test_external_entity_is_not_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    xxe = (f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>'
           '<PKO_PostStatus xmlns="http://serviceplatformen.dk/xml/print/PKO_PostStatus/1/types">'
           '<TransmissionId>&x;</TransmissionId></PKO_PostStatus>').encode()
    with pytest.raises(rc.ReceiptError) as info:
        rc.parse_post_status(xxe)
    assert "TOPSECRET" not in str(info.value)


@pytest.mark.parametrize(("xml", "error", "reason"), [
    (b"<not-closed>", rc.MalformedReceipt, "xml-invalid"),
    (b"<Other xmlns='urn:x'/>", rc.NotAReceipt, "not-post-status"),
    (b'<PKO_PostStatus xmlns="http://serviceplatformen.dk/xml/print/PKO_PostStatus/1/types">'
     b"<TransmissionId>t</TransmissionId><TransaktionsStatusKode>Fejlet</TransaktionsStatusKode>"
     b"</PKO_PostStatus>", rc.IncompleteReceipt, "missing-field"),
])
def test_bad_receipts_raise_with_a_reason(xml, error, reason):
    with pytest.raises(error) as info:
        rc.parse_post_status(xml)
    assert info.value.code == "receipt." + reason


def test_envelope_with_bad_payload(samples):
    envelope = samples["PostStatusBeskedModtag.success.xml"]
    start = envelope.index(b'file-type=".xml">') + len(b'file-type=".xml">')
    broken = envelope[:start] + b"!!not base64!!" + envelope[envelope.index(b"</Base64>"):]
    with pytest.raises(rc.MalformedReceipt) as info:
        rc.parse_post_status(broken)
    assert info.value.code == "receipt.bad-base64"
    other = base64.b64encode(b"<Other/>")
    not_status = envelope[:start] + other + envelope[envelope.index(b"</Base64>"):]
    with pytest.raises(rc.NotAReceipt):
        rc.parse_post_status(not_status)


def test_format_utc_refuses_naive_times():
    with pytest.raises(ValueError):
        rc.format_utc(dt.datetime(2026, 1, 1))
    assert rc.format_utc(dt.datetime(2026, 1, 1, 1, 2, 3, 456789,
                                     tzinfo=dt.timezone(dt.timedelta(hours=1)))) \
        == "2026-01-01T00:02:03.456Z"
