"""docpost.fjernprint: ForsendelseI against the KOMBIT schemas, and the kombi_request body."""

from __future__ import annotations

import base64

import pytest
from lxml import etree

from docpost import fjernprint as fp
from docpost import memo, model
from memo_testdata import (
    CPR,
    CVR,
    PDF,
    address,
    full_case,
    make_letter,
    reply_not_possible,
)

F = "{urn:oio:fjernprint:1.0.0}"
D = "{urn:oio:dkal:1.0.0}"
NS = dict(fp.NSMAP, memo=memo.NS_MEMO)


def _xml(doc: bytes) -> etree._Element:
    return etree.fromstring(doc)


def _messages(issues) -> str:
    return " | ".join(str(i) for i in issues)


# ---------------------------------------------------------------- ForsendelseI


def test_built_forsendelse_validates_against_kombit_schemas():
    doc = fp.build_forsendelse(make_letter(case=full_case(),
                                           attachments=[("a.pdf", "Vejledning", b"%PDF-a")]))
    assert fp.validate_forsendelse(doc) == []
    root = _xml(doc)
    assert [etree.QName(c).localname for c in root] == [
        "AfsendelseIdentifikator", "ForsendelseModtager", "FilformatNavn",
        "MeddelelseIndholdData", "TransaktionsParametreI", "DokumentParametre",
        "PrintParametre", "DigitalPostParametre", "PostParametre", "BilagSamling"]


def test_cpr_recipient_is_sent_as_zeros_and_never_appears():
    letter = make_letter()
    doc = fp.build_forsendelse(letter)
    assert _xml(doc).findtext(".//adir:CPRnummerIdentifikator", namespaces=NS) == "0000000000"
    assert CPR.encode() not in doc


def test_cvr_recipient_keeps_its_number():
    doc = fp.build_forsendelse(make_letter(id_type=model.IdType.CVR, identifier=CVR,
                                           name="Firma ApS"))
    assert fp.validate_forsendelse(doc) == []
    assert _xml(doc).findtext(".//adir:CVRnummerIdentifikator", namespaces=NS) == CVR


def test_identifier_pdf_and_document_parameters():
    letter = make_letter(case=full_case())
    root = _xml(fp.build_forsendelse(letter))
    assert root.findtext(f"{F}AfsendelseIdentifikator") == letter.message_uuid
    assert root.findtext(f"{D}FilformatNavn") == "PDF"
    assert base64.b64decode(root.findtext(f"{D}MeddelelseIndholdData")) == PDF
    assert root.findtext("fjernprint:DokumentParametre/sd:TitelTekst", namespaces=NS) == \
        "Afgørelse om boligstøtte"
    assert root.findtext("fjernprint:DokumentParametre/sd:BrevDato", namespaces=NS) == "2026-11-27"


def test_structured_address():
    adr = _xml(fp.build_forsendelse(make_letter(addr=address(co_name="Hanne Hansen"))))\
        .find(".//fjernprint:ModtagerAdresse", NS)
    assert [etree.QName(c).localname for c in adr] == [
        "PersonName", "CoNavn", "StreetName", "StreetBuildingIdentifier", "FloorIdentifier",
        "SuiteIdentifier", "PostCodeIdentifier", "CountryIdentificationCode"]
    assert adr.findtext("dkcc:StreetBuildingIdentifier", namespaces=NS) == "12B"
    assert adr.find("dkcc:CountryIdentificationCode", NS).get("scheme") == "iso3166-alpha2"


@pytest.mark.parametrize(
    "changes",
    [dict(street_building="12-14"), dict(country_code="SE", postcode="11122",
                                          district_name="Stockholm"),
     dict(floor="mezz")],
)
def test_address_that_does_not_fit_dkcc_uses_lines(changes):
    a = address(**changes)
    doc = fp.build_forsendelse(make_letter(addr=a))
    assert fp.validate_forsendelse(doc) == []
    adr = _xml(doc).find(".//fjernprint:ModtagerAdresse", NS)
    lines = [c.text for c in adr if etree.QName(c).localname.startswith("PostalAddress")]
    assert lines == a.lines()


def test_address_too_long_for_print_is_an_input_error():
    a = address(street_building="1-3", street_name="x" * 40)
    with pytest.raises(fp.ForsendelseInputError) as caught:
        fp.build_forsendelse(make_letter(addr=a))
    assert caught.value.code == "fjernprint.input"


def test_no_address_means_no_modtager_adresse():
    doc = fp.build_forsendelse(make_letter(addr=False))
    assert fp.validate_forsendelse(doc) == []
    assert _xml(doc).find(".//fjernprint:ModtagerAdresse", NS) is None


def test_legacy_reply_fields_given():
    dpp = _xml(fp.build_forsendelse(make_letter())).find(f"{F}DigitalPostParametre")
    assert [etree.QName(c).localname for c in dpp] == [
        "MeddelelseSvarTypeNavn", "MeddelelseSvarPostkasseIdentifikator",
        "MeddelelseSvarEmneIdentifikator", "MedsendDokumentRegistreringIndikator"]
    assert dpp.findtext(f"{D}MeddelelseSvarTypeNavn") == "angivet"
    assert dpp.findtext(f"{D}MeddelelseSvarPostkasseIdentifikator") == "100"
    assert dpp.findtext(f"{D}MeddelelseSvarEmneIdentifikator") == "1001"


def test_legacy_reply_fields_not_possible():
    dpp = _xml(fp.build_forsendelse(make_letter(reply=reply_not_possible())))\
        .find(f"{F}DigitalPostParametre")
    assert dpp.findtext(f"{D}MeddelelseSvarTypeNavn") == "ikkeMuligt"
    assert dpp.find(f"{D}MeddelelseSvarPostkasseIdentifikator") is None
    assert dpp.find(f"{D}MeddelelseSvarEmneIdentifikator") is None


def test_fesd_metadata_from_case_document():
    fesd = _xml(fp.build_forsendelse(make_letter(case=full_case()))).find(
        ".//dkal:MeddelelseFESDmetadata", NS)
    assert [etree.QName(c).localname for c in fesd] == [
        "FESDdokumentIdentifikator", "FESDaktoerIdentifikator", "FESDsagIdentifikator"]
    # the KOMBIT UUID type is lower case: the case's upper-case UUID is normalised
    assert fesd.findtext(f"{D}FESDsagIdentifikator") == "a1b2c3d4-0000-4000-8000-000000000001"


@pytest.mark.parametrize(("legal", "category"), [(True, "Prioritaire"), (False, "Economique")])
def test_post_category(legal, category):
    root = _xml(fp.build_forsendelse(make_letter(legal_notification=legal)))
    assert root.findtext("fjernprint:PostParametre/fjernprint:PostKategoriKode", namespaces=NS) == category


def test_print_options_and_attachments():
    opts = fp.PrintOptions(simplex_duplex="Simplex", colour="Farve", envelope="C4",
                           post_category="Bulk", forsendelse_type=3)
    letter = make_letter(attachments=[("a.pdf", "Første", b"%PDF-1"), ("b.pdf", None, b"%PDF-2")])
    doc = fp.build_forsendelse(letter, opts)
    root = _xml(doc)
    assert root.findtext(f"{F}ForsendelseTypeIdentifikator") == "3"
    assert root.findtext(f"{F}PrintParametre/{F}KuvertTypeKode") == "C4"
    bilag = root.findall(f"{F}BilagSamling/{F}Bilag")
    assert [b.findtext(f"{F}BilagNavn") for b in bilag] == ["Første", "b.pdf"]
    assert [b.findtext(f"{F}BilagSorteringsIndeksIdentifikator") for b in bilag] == ["1", "2"]
    assert base64.b64decode(bilag[1].findtext(f"{D}VedhaeftningIndholdData")) == b"%PDF-2"


def test_invalid_print_option_is_rejected_by_the_schema():
    with pytest.raises(fp.ForsendelseInvalidError) as caught:
        fp.build_forsendelse(make_letter(), fp.PrintOptions(envelope="C6"))
    assert "KuvertTypeKode" in str(caught.value)
    assert caught.value.code == "fjernprint.invalid"


def test_schema_enforces_order_in_forsendelse():
    root = _xml(fp.build_forsendelse(make_letter()))
    fmt = root.find(f"{D}FilformatNavn")
    root.remove(fmt)
    root.find(f"{D}MeddelelseIndholdData").addnext(fmt)
    issues = fp.validate_forsendelse(etree.tostring(root))
    assert "MeddelelseIndholdData" in _messages(issues) or "FilformatNavn" in _messages(issues)


def test_real_cpr_number_in_forsendelse_is_refused():
    doc = fp.build_forsendelse(make_letter()).replace(b"0000000000", CPR.encode())
    issues = fp.validate_forsendelse(doc)
    assert "0000000000" in _messages(issues)
    assert CPR not in _messages(issues)


def test_validate_forsendelse_wrong_root_and_doctype():
    assert "ForsendelseI" in fp.validate_forsendelse(b"<x/>")[0].message
    assert "DOCTYPE" in fp.validate_forsendelse(b"<!DOCTYPE x><x/>")[0].message


# ---------------------------------------------------------------- kombi_request


@pytest.mark.parametrize(
    ("wish", "code"),
    [(model.ChannelWish.AUTO, "Automatisk Valg"), (model.ChannelWish.DIGITAL, "Digital Post"),
     (model.ChannelWish.PHYSICAL, "Fysisk Post")],
)
def test_kombi_valg_for(wish, code):
    assert fp.kombi_valg_for(wish) == code
    assert fp.kombi_valg_for(wish.value) == code


def _c14n(doc: bytes) -> bytes:
    return etree.tostring(etree.fromstring(doc), method="c14n")


def test_kombi_request_round_trip():
    letter = make_letter(attachments=[("a.pdf", None, b"%PDF-a")])
    m, f = memo.build_memo(letter), fp.build_forsendelse(letter)
    body = fp.build_kombi_request("Automatisk Valg", m, f)
    root = _xml(body)
    assert root.tag == "kombi_request"
    assert [etree.QName(c).text for c in root] == [
        "KombiValgKode", f"{{{memo.NS_MEMO}}}Message", f"{F}ForsendelseISamling"]
    assert root.find(f"{F}ForsendelseISamling/{F}ForsendelseI") is not None
    parsed = fp.parse_kombi_request(body)
    assert parsed.kombi_valg == "Automatisk Valg"
    assert memo.validate_memo(parsed.memo) == []
    assert fp.validate_forsendelse(parsed.forsendelse) == []
    assert _c14n(parsed.memo) == _c14n(m)
    assert _c14n(parsed.forsendelse) == _c14n(f)


def test_kombi_request_digital_and_physical_only():
    letter = make_letter()
    digital = fp.parse_kombi_request(fp.build_kombi_request("Digital Post", memo.build_memo(letter), None))
    assert digital.forsendelse is None and digital.memo is not None
    physical = fp.parse_kombi_request(
        fp.build_kombi_request("Fysisk Post", None, fp.build_forsendelse(letter)))
    assert physical.memo is None and physical.forsendelse is not None


def test_build_kombi_request_refuses_bad_combinations():
    m = memo.build_memo(make_letter())
    with pytest.raises(fp.KombiValgError):
        fp.build_kombi_request("Automatisk", m, None)
    with pytest.raises(fp.KombiContentError):
        fp.build_kombi_request("Fysisk Post", m, None)
    with pytest.raises(fp.KombiContentError):
        fp.build_kombi_request("Automatisk Valg", None, None)
    with pytest.raises(fp.KombiMalformedError):
        fp.build_kombi_request("Digital Post", b"<!DOCTYPE x><x/>", None)


M_MIN = b'<memo:Message xmlns:memo="https://DigitalPost.dk/MeMo-1" memoVersion="1.2"/>'
SAMLING = (b'<fjernprint:ForsendelseISamling xmlns:fjernprint="urn:oio:fjernprint:1.0.0">'
           b"<fjernprint:ForsendelseI/></fjernprint:ForsendelseISamling>")


@pytest.mark.parametrize(
    ("body", "error", "words"),
    [
        (b"<kombi_request><KombiValgKode>Post</KombiValgKode>" + M_MIN + b"</kombi_request>",
         fp.KombiValgError, "KombiValgKode"),
        (b"<kombi_request>" + M_MIN + b"</kombi_request>", fp.KombiValgError, "no KombiValgKode"),
        (b"<kombi_request>" + M_MIN + b"<KombiValgKode>Digital Post</KombiValgKode></kombi_request>",
         fp.KombiOrderError, "KombiValgKode"),
        (b"<kombi_request><KombiValgKode>Automatisk Valg</KombiValgKode>" + SAMLING + M_MIN
         + b"</kombi_request>", fp.KombiOrderError, "memo:Message"),
        (b"<kombi_request><KombiValgKode>Digital Post</KombiValgKode>" + M_MIN + M_MIN
         + b"</kombi_request>", fp.KombiOrderError, "more than once"),
        (b"<kombi_request><KombiValgKode>Digital Post</KombiValgKode><Extra/>" + M_MIN
         + b"</kombi_request>", fp.KombiContentError, "Extra"),
        (b"<kombi_request><KombiValgKode>Digital Post</KombiValgKode>" + M_MIN + SAMLING
         + b"</kombi_request>", fp.KombiContentError, "takes no"),
        (b"<kombi_request><KombiValgKode>Fysisk Post</KombiValgKode>" + M_MIN
         + b"</kombi_request>", fp.KombiContentError, "needs a fjernprint:ForsendelseI"),
        (b"<kombi_request><KombiValgKode>Automatisk Valg</KombiValgKode></kombi_request>",
         fp.KombiContentError, "needs a memo:Message"),
        (b"<kombi_request><KombiValgKode>Fysisk Post</KombiValgKode>"
         b'<fjernprint:ForsendelseISamling xmlns:fjernprint="urn:oio:fjernprint:1.0.0"/>'
         b"</kombi_request>", fp.KombiContentError, "exactly one"),
        (b'<kombi_request xmlns="urn:x"><KombiValgKode>Digital Post</KombiValgKode></kombi_request>',
         fp.KombiMalformedError, "kombi_request"),
        (b"<kombi_request><KombiValgKode>Digital Post", fp.KombiMalformedError, "XML"),
        (b'<!DOCTYPE k [<!ENTITY e "x">]><kombi_request/>', fp.KombiMalformedError, "DOCTYPE"),
        (b"<kombi_request>text<KombiValgKode>Digital Post</KombiValgKode></kombi_request>",
         fp.KombiContentError, "text"),
    ],
)
def test_parse_kombi_request_names_the_fault(body, error, words):
    with pytest.raises(error) as caught:
        fp.parse_kombi_request(body)
    assert words in str(caught.value)
    assert isinstance(caught.value, fp.KombiRequestError)
    assert caught.value.code.startswith("kombi.")


def test_kombi_request_tolerates_whitespace_and_comments():
    body = (b"<?xml version='1.0'?>\n<kombi_request>\n  <!-- c -->\n"
            b"  <KombiValgKode> Digital Post </KombiValgKode>\n  " + M_MIN + b"\n</kombi_request>")
    assert fp.parse_kombi_request(body).kombi_valg == "Digital Post"
