"""Reply routing rules on the real contact hierarchy, and safe parsing of inbound MeMo."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from docpost.hierarchy import load_hierarchy
from docpost.replies.errors import InboundHostile, InboundMalformed
from docpost.replies.mail import compose, mail_address, message_id_for
from docpost.replies.parsing import InboundMessage, legacy_number, parse_inbound
from docpost.replies.routing import Original, route
from docpost_testbench.simulator.inbound import HOSTILE_LAUGHS, HOSTILE_XXE, build_inbound_memo

TODAY = dt.date(2026, 11, 27)
H = load_hierarchy()
OPEN = H.emne(1001)  # Borgerservice / Pas, kørekort og legitimation
OTHER = H.emne(3002)  # Børn og Familie / Familierådgivning
CLOSED = H.emne(1005)  # closed 2026-01-01
CLOSED_BY_POSTKASSE = H.emne(6901)  # its Postkasse 690 closed 2025-07-01
LETTER = "6b0b5c1e-8a37-4f51-9d2c-3a8e0f6d2b11"
CPR = "0101901234"


def message(cp=None, reply_to=None, legacy=None) -> InboundMessage:
    return InboundMessage(message_uuid=str(uuid.uuid4()), label="Svar", sender_id=CPR,
                          sender_id_type="CPR", contact_point_id=cp, reply_to=reply_to,
                          reply_case_id=None, legacy=legacy, text="hej")


def ledger_with(*originals: Original):
    found = {o.message_uuid: o for o in originals}
    return lambda u: found.get(u)


STAMPED = Original(LETTER, "SAG-2026-17", "angivet", OTHER.id, OTHER.contact_point_id)
NO_REPLY = Original(LETTER, "SAG-2026-18", "ikkeMuligt", None, None)


def test_the_hierarchy_has_what_these_tests_rely_on():
    assert OPEN and OTHER and not H.is_closed(OPEN, TODAY) and not H.is_closed(OTHER, TODAY)
    assert H.is_closed(CLOSED, TODAY) and H.is_closed(CLOSED_BY_POSTKASSE, TODAY)


def test_contact_point_routes_to_its_emne_even_against_the_stamped_address():
    r = route(message(OPEN.contact_point_id.upper(), LETTER), H, ledger_with(STAMPED), TODAY)
    assert r.routed and r.emne == OPEN and r.rule == "contact-point"
    assert r.original == STAMPED  # the thread link is kept
    assert [d.outcome for d in r.decisions] == ["routed", "linked"]


def test_a_new_message_routes_by_its_contact_point():
    r = route(message(OTHER.contact_point_id), H, ledger_with(), TODAY)
    assert r.emne == OTHER and r.original is None


@pytest.mark.parametrize("emne", [CLOSED, CLOSED_BY_POSTKASSE])
def test_closed_contact_point_goes_to_manual_even_when_the_letter_is_known(emne):
    r = route(message(emne.contact_point_id, LETTER), H, ledger_with(STAMPED), TODAY)
    assert not r.routed and r.reason == "route.closed-contact-point"
    assert r.original == STAMPED


def test_a_contact_point_closed_later_still_routes_before_its_closing_day():
    r = route(message(CLOSED.contact_point_id), H, ledger_with(), dt.date(2025, 12, 31))
    assert r.emne == CLOSED


def test_unknown_contact_point_without_other_address_is_manual():
    r = route(message(str(uuid.uuid4())), H, ledger_with(), TODAY)
    assert r.reason == "route.unknown-contact-point"


def test_unknown_contact_point_falls_back_to_the_letters_stamped_address():
    r = route(message(str(uuid.uuid4()), LETTER), H, ledger_with(STAMPED), TODAY)
    assert r.emne == OTHER and r.rule == "original-letter"
    assert r.decisions[0].reason == "route.unknown-contact-point"


def test_reply_without_contact_point_uses_the_stamped_address():
    r = route(message(None, LETTER), H, ledger_with(STAMPED), TODAY)
    assert r.emne == OTHER and r.rule == "original-letter" and r.original.case_number == "SAG-2026-17"


def test_reply_to_a_letter_sent_with_ikke_muligt_is_manual():
    r = route(message(None, LETTER), H, ledger_with(NO_REPLY), TODAY)
    assert r.reason == "route.reply-not-possible" and r.original == NO_REPLY


def test_reply_to_a_message_docpost_never_sent_is_manual_unless_its_contact_point_routes():
    r = route(message(None, LETTER), H, ledger_with(), TODAY)
    assert r.reason == "route.unknown-original"
    r = route(message(OPEN.contact_point_id, LETTER), H, ledger_with(), TODAY)
    assert r.emne == OPEN and r.original is None


def test_legacy_numbers_route_when_nothing_else_does():
    assert route(message("1001"), H, ledger_with(), TODAY).emne == OPEN
    assert route(message(None, legacy=(300, 3002)), H, ledger_with(), TODAY).emne == OTHER
    wrong_postkasse = route(message(None, legacy=(200, 3002)), H, ledger_with(), TODAY)
    assert wrong_postkasse.reason == "route.unknown-legacy-number"
    assert route(message(None, legacy=(None, 9999)), H, ledger_with(), TODAY).reason == "route.unknown-legacy-number"
    assert route(message(None, legacy=(None, 1005)), H, ledger_with(), TODAY).reason == "route.closed-contact-point"


def test_no_address_at_all_is_manual():
    r = route(message(), H, ledger_with(), TODAY)
    assert r.reason == "route.no-address" and r.decisions[-1].outcome == "manual"


def test_legacy_number_shapes():
    assert legacy_number("1001") == (None, 1001)
    assert legacy_number("100/1001") == (100, 1001)
    assert legacy_number(OPEN.contact_point_id) is None and legacy_number("12345") is None


# ----------------------------------------------------------------------------- parsing


def memo(**kw) -> bytes:
    args = dict(message_uuid=str(uuid.UUID(int=7, version=4)), sender_id=CPR, sender_id_type="CPR",
                municipality_cvr="29189846", label="Svar: afgørelse", text="Tak for brevet æøå",
                created=dt.datetime(2026, 11, 27, 8, 0, tzinfo=dt.UTC),
                attachment=("bilag.pdf", b"%PDF-1.4 x"))
    args.update(kw)
    return build_inbound_memo(**args)


def test_parse_a_reply_with_its_text_and_attachment():
    m = parse_inbound(memo(contact_point_id=OPEN.contact_point_id, reply_to=LETTER,
                           reply_contact_point_id=OPEN.contact_point_id, case_id="SAG-1"))
    assert m.is_reply and m.reply_to == LETTER and m.contact_point_id == OPEN.contact_point_id
    assert m.text == "Tak for brevet æøå" and [a.filename for a in m.attachments] == ["bilag.pdf"]
    assert m.sender_masked == "010190-****" and CPR not in repr(m)


def test_parse_takes_a_legacy_number_from_the_contact_point():
    m = parse_inbound(memo(contact_point_id="300/3002"))
    assert m.legacy == (300, 3002) and not m.is_reply


@pytest.mark.parametrize("data", [HOSTILE_XXE % b"x", HOSTILE_LAUGHS % b"x",
                                  b'<?xml version="1.0"?><!DOCTYPE a SYSTEM "http://evil/x.dtd"><a/>'])
def test_hostile_xml_is_refused_without_expanding_anything(data):
    with pytest.raises(InboundHostile) as info:
        parse_inbound(data)
    assert info.value.code == "inbound.hostile" and "passwd" not in str(info.value)


@pytest.mark.parametrize("data", [b"<memo:Message", b"", "<a>\u00e6</a>".encode("latin-1"),
                                  b'<a xmlns="urn:x">not memo</a>'])
def test_malformed_or_not_memo_is_refused(data):
    with pytest.raises(InboundMalformed):
        parse_inbound(data)


def test_schema_invalid_memo_is_malformed_and_the_message_names_no_personal_data():
    bad = memo(contact_point_id=OPEN.contact_point_id).replace(b"<memo:idType>CVR", b"<memo:idType>XYZ")
    with pytest.raises(InboundMalformed) as info:
        parse_inbound(bad)
    assert CPR not in str(info.value)


# ----------------------------------------------------------------------------- mail


def test_queue_mailboxes_are_mailed_at_their_system_gateway():
    assert mail_address("byg@soeby.dk") == "byg@soeby.dk"
    assert mail_address("sbsys://esdh.soeby.dk/koe/familieraadgivning") == "koe.familieraadgivning@esdh.soeby.dk"


def test_message_id_is_deterministic_per_inbound_message():
    assert message_id_for("in-1") == message_id_for("in-1") != message_id_for("in-2")


def test_mail_carries_case_number_emne_and_the_original_letter():
    m = parse_inbound(memo(contact_point_id=OTHER.contact_point_id, reply_to=LETTER))
    mail = compose(inbound_id="in-1", message=m, emne=OTHER, postkasse_label="Børn og Familie",
                   original=STAMPED, rule="contact-point", assigned_by=None, memo=b"<x/>",
                   sender="docpost@soeby.dk", address="a@b.dk", mailbox=OTHER.mailbox,
                   date=dt.datetime(2026, 11, 27, 8, 30, tzinfo=dt.timezone.utc))
    assert mail["Date"].datetime == dt.datetime(2026, 11, 27, 8, 30, tzinfo=dt.timezone.utc)  # same on a resend
    assert "SAG-2026-17" in mail["Subject"] and OTHER.label in mail["Subject"]
    body = mail.get_body(preferencelist=("plain",)).get_content()
    assert LETTER in body and "Tak for brevet" in body and CPR not in body
    assert mail["Message-ID"] == message_id_for("in-1") and LETTER in mail["In-Reply-To"]
    assert sorted(a.get_filename() for a in mail.iter_attachments()) == ["bilag.pdf", "memo.xml"]
