"""docpost's MeMo schema and docpost.memo: official examples, built messages, order, facets."""

from __future__ import annotations

import base64
import datetime as dt
import re

import pytest
from lxml import etree

from docpost import memo, model
from memo_testdata import CPR, PDF, full_attention, full_case, make_letter, reply_not_possible

M = "{https://DigitalPost.dk/MeMo-1}"
NS = {"memo": memo.NS_MEMO, "grd": memo.NS_GRD, "kle": memo.NS_KLE, "form": memo.NS_FORM,
      "dmv": memo.NS_DMV}
EXAMPLES = ["MeMo_Minimum_Example.xml", "MeMo_Full_Example.xml", "MeMo_with_attachment.xml",
            "MeMo_NemSMS.xml"]


@pytest.fixture(scope="module")
def examples(reference_dir) -> dict[str, bytes]:
    return {name: (reference_dir / "memo-examples" / name).read_bytes() for name in EXAMPLES}


def _xml(doc: bytes) -> etree._Element:
    return etree.fromstring(doc)


def _messages(issues) -> str:
    return " | ".join(str(i) for i in issues)


# ---------------------------------------------------------------- the schema


@pytest.mark.parametrize("name", EXAMPLES)
def test_official_examples_are_accepted(examples, name):
    assert memo.validate_memo(examples[name]) == []


def test_schema_is_one_xsd_per_namespace():
    from docpost import config

    folder = config.settings().schema_dir / "memo"
    namespaces = [
        re.search(r'targetNamespace="([^"]+)"', p.read_text(encoding="utf-8")).group(1)
        for p in sorted(folder.glob("*.xsd"))
    ]
    assert len(namespaces) == len(set(namespaces)) == 8
    assert memo.NS_MEMO in namespaces


def test_swapped_pair_fails_naming_the_element(examples):
    # the order of the real failure receipt: mandatory placed before label
    doc = examples["MeMo_Full_Example.xml"].decode("utf-8-sig")
    label = "<memo:label>Besked fra Børneforvaltningen</memo:label>"
    mandatory = "<memo:mandatory>true</memo:mandatory>"
    swapped = doc.replace(label, "@@L@@").replace(mandatory, label).replace("@@L@@", mandatory)
    issues = memo.validate_memo(swapped.encode())
    assert issues, "a swapped pair must be rejected"
    assert "mandatory" in _messages(issues)
    assert any(i.path.endswith("memo:mandatory") and i.line > 0 for i in issues)


def test_swapped_sender_and_recipient_fail(examples):
    root = _xml(examples["MeMo_Minimum_Example.xml"])
    header = root.find(f"{M}MessageHeader")
    recipient = header.find(f"{M}Recipient")
    header.remove(recipient)
    header.find(f"{M}Sender").addprevious(recipient)
    issues = memo.validate_memo(etree.tostring(root))
    assert "Recipient" in _messages(issues)


def _minimum(examples, old: str, new: str) -> bytes:
    doc = examples["MeMo_Minimum_Example.xml"].decode()
    assert old in doc
    return doc.replace(old, new, 1).encode()


@pytest.mark.parametrize(
    ("old", "new", "element"),
    [
        # UUID version 1 instead of 4, and a malformed one
        ("8C2EA15D-61FB-4BA9", "8C2EA15D-61FB-1BA9", "messageUUID"),
        ("8C2EA15D-61FB-4BA9-9366", "8C2EA15D-61FB-4BA9-7366", "messageUUID"),
        ("8C2EA15D-61FB-4BA9-9366-42F8B194C114", "not-a-uuid", "messageUUID"),
        # dateTimes must end in Z
        ("2024-05-03T12:00:00Z", "2024-05-03T12:00:00", "createdDateTime"),
        ("2024-05-03T12:00:00Z", "2024-05-03T12:00:00+01:00", "createdDateTime"),
        # label at most 256
        ("<memo:label>Pladsanvisning</memo:label>", f"<memo:label>{'x' * 257}</memo:label>", "label"),
        ("<memo:label>Pladsanvisning</memo:label>", "<memo:label></memo:label>", "label"),
        # language is 2 characters
        ("<memo:language>da</memo:language>", "<memo:language>dan</memo:language>", "language"),
        # filenames
        ("Pladsanvisning.pdf", "Plads:anvisning.pdf", "filename"),
        ("Pladsanvisning.pdf", "Plads/anvisning.pdf", "filename"),
        ("Pladsanvisning.pdf", "Plads&lt;anvisning.pdf", "filename"),
        ("Pladsanvisning.pdf", "Plads?.pdf", "filename"),
        ("Pladsanvisning.pdf", "Plads|anvisning.pdf", "filename"),
        ("Pladsanvisning.pdf", "Plads&#10;anvisning.pdf", "filename"),
        ("Pladsanvisning.pdf", "Plads\u00a0anvisning.pdf", "filename"),
        ("Pladsanvisning.pdf", "Plads\u2009anvisning.pdf", "filename"),
        ("Pladsanvisning.pdf", "Plads\u200banvisning.pdf", "filename"),
        ("Pladsanvisning.pdf", " Pladsanvisning.pdf", "filename"),
        # unknown codes
        ("<memo:messageType>DIGITALPOST", "<memo:messageType>EBOKS", "messageType"),
        ("<memo:idType>CPR</memo:idType>", "<memo:idType>PNR</memo:idType>", "idType"),
        ('memoVersion="1.2"', 'memoVersion="1.3"', "memoVersion"),
    ],
)
def test_facets_reject(examples, old, new, element):
    issues = memo.validate_memo(_minimum(examples, old, new))
    assert issues, f"{new!r} must be rejected"
    assert element in _messages(issues)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("<memo:label>Pladsanvisning</memo:label>", f"<memo:label>{'x' * 256}</memo:label>"),
        ("8C2EA15D-61FB-4BA9-9366-42F8B194C114", "8c2ea15d-61fb-4ba9-a366-42f8b194c114"),
        ("Pladsanvisning.pdf", "Plads anvisning (2) æøå.pdf"),
        ("2024-05-03T12:00:00Z", "2024-05-03T12:00:00.123Z"),
    ],
)
def test_facets_accept_boundaries(examples, old, new):
    assert memo.validate_memo(_minimum(examples, old, new)) == []


def test_notification_at_most_150(examples):
    doc = examples["MeMo_NemSMS.xml"].decode()
    ok = doc.replace("Message Text", "n" * 150)
    too_long = doc.replace("Message Text", "n" * 151)
    assert memo.validate_memo(ok.encode()) == []
    assert "notification" in _messages(memo.validate_memo(too_long.encode()))


def test_comment_at_most_512(examples):
    doc = examples["MeMo_Full_Example.xml"].decode("utf-8-sig")
    old = "<memo:comment>kommentar til modtageren</memo:comment>"
    assert memo.validate_memo(doc.replace(old, f"<memo:comment>{'c' * 512}</memo:comment>").encode()) == []
    issues = memo.validate_memo(doc.replace(old, f"<memo:comment>{'c' * 513}</memo:comment>").encode())
    assert "comment" in _messages(issues)


@pytest.mark.parametrize(
    "url",
    ["http://www.tusindfryd.dk", "www.tusindfryd.dk", "/relative/path", "https://",
     "ftp://www.tusindfryd.dk", "https://www.tusindfryd.dk/a b"],
)
def test_action_urls_must_be_absolute_https(examples, url):
    doc = examples["MeMo_Full_Example.xml"].decode("utf-8-sig")
    old = "<memo:url>https://www.tusindfryd.dk</memo:url>"
    assert old in doc
    issues = memo.validate_memo(doc.replace(old, f"<memo:url>{url}</memo:url>").encode())
    assert "url" in _messages(issues)


def test_cardinality_contact_info_at_most_two(examples):
    doc = examples["MeMo_Full_Example.xml"].decode("utf-8-sig")
    info = ("<memo:ContactInfo><memo:label>Ekstra</memo:label><memo:value>x</memo:value>"
            "</memo:ContactInfo></memo:ContactPoint>")
    doc = doc.replace("</memo:ContactPoint>", info, 1)
    assert "ContactInfo" in _messages(memo.validate_memo(doc.encode()))


def test_version_1_1_requires_mandatory_and_legal_notification(examples):
    doc = _minimum(examples, 'memoVersion="1.2"', 'memoVersion="1.1" memoSchVersion="1.1.0"')
    messages = _messages(memo.validate_memo(doc))
    assert "mandatory" in messages and "legalNotification" in messages
    with_both = doc.replace(
        b"</memo:label>",
        b"</memo:label><memo:mandatory>false</memo:mandatory>"
        b"<memo:legalNotification>false</memo:legalNotification>", 1)
    assert memo.validate_memo(with_both) == []


def test_version_1_1_refuses_1_2_only_elements(examples):
    doc = examples["MeMo_Full_Example.xml"].replace(b'memoVersion="1.2"', b'memoVersion="1.1"')
    messages = _messages(memo.validate_memo(doc))
    assert "Representative" in messages and "originalRepresentative" in messages


def test_digitalpost_needs_a_body(examples):
    root = _xml(examples["MeMo_Minimum_Example.xml"])
    root.remove(root.find(f"{M}MessageBody"))
    assert "MessageBody" in _messages(memo.validate_memo(etree.tostring(root)))


def test_unsafe_and_broken_xml_are_issues_not_expansions():
    bomb = (b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa">]>'
            b'<memo:Message xmlns:memo="https://DigitalPost.dk/MeMo-1" memoVersion="1.2">&a;'
            b"</memo:Message>")
    issues = memo.validate_memo(bomb)
    assert issues and "DOCTYPE" in issues[0].message
    broken = memo.validate_memo(b"<memo:Message xmlns:memo='x'>\n<a></b>")
    assert broken and broken[0].line == 2
    wrong_root = memo.validate_memo(b"<Message/>")
    assert "root element" in wrong_root[0].message


def test_issue_messages_do_not_carry_personal_values(examples):
    doc = examples["MeMo_Full_Example.xml"].decode("utf-8-sig")
    doc = doc.replace("<grd:cprNumber>2512169996</grd:cprNumber>",
                      "<grd:cprNumber>25121699961</grd:cprNumber>")
    issues = memo.validate_memo(doc.encode())
    assert "cprNumber" in _messages(issues)
    assert "25121699961" not in _messages(issues)
    assert "2512169996" not in _messages(issues)


# ---------------------------------------------------------------- building


@pytest.mark.parametrize("version", ["1.2", "1.1"])
def test_built_message_validates(version):
    letter = make_letter(memo_version=version, attention=full_attention(), case=full_case(),
                         attachments=[("bilag 1.pdf", "Vejledning", b"%PDF-att")],
                         mandatory=True, not_before=dt.date(2026, 12, 1))
    doc = memo.build_memo(letter)
    assert memo.validate_memo(doc) == []
    root = _xml(doc)
    assert root.get("memoVersion") == version
    assert (root.get("memoSchVersion") == "1.1.0") is (version == "1.1")
    header = root.find(f"{M}MessageHeader")
    assert header.findtext(f"{M}messageUUID") == letter.message_uuid
    assert header.findtext(f"{M}label") == "Afgørelse om boligstøtte"
    assert header.findtext(f"{M}mandatory") == "true"
    assert header.findtext(f"{M}legalNotification") == "false"
    assert header.findtext(f"{M}doNotDeliverUntilDate") == "2026-12-01"
    assert header.findtext(f"{M}reply") == "true"


def test_header_children_in_reference_order():
    doc = memo.build_memo(make_letter(attention=full_attention(), case=full_case(),
                                      not_before=dt.date(2026, 12, 1)))
    header = _xml(doc).find(f"{M}MessageHeader")
    names = [etree.QName(c).localname for c in header]
    assert names == ["messageType", "messageUUID", "messageID", "label", "reply",
                     "doNotDeliverUntilDate", "mandatory", "legalNotification", "postType",
                     "Sender", "Recipient", "ContentData"]


def test_sender_contact_point_from_stamping():
    letter = make_letter()
    sender = _xml(memo.build_memo(letter)).find(f"{M}MessageHeader/{M}Sender")
    assert sender.findtext(f"{M}senderID") == "29189846"
    assert sender.findtext(f"{M}idType") == "CVR"
    assert sender.findtext(f"{M}label") == "Søby Kommune"
    cp = sender.find(f"{M}ContactPoint")
    assert cp.findtext(f"{M}contactPointID") == letter.reply.contact_point_id
    assert cp.findtext(f"{M}label") == "Borgerservice / Generelle henvendelser"
    assert sender.findtext(f"{M}AttentionData/{M}GeneratingSystem/{M}generatingSystemID") == "sbsys"


def test_no_reply_means_no_contact_point_and_reply_false():
    root = _xml(memo.build_memo(make_letter(reply=reply_not_possible())))
    assert root.find(f".//{M}ContactPoint") is None
    assert root.findtext(f"{M}MessageHeader/{M}reply") == "false"


def test_recipient_and_attention():
    root = _xml(memo.build_memo(make_letter(attention=full_attention())))
    rec = root.find(f"{M}MessageHeader/{M}Recipient")
    assert rec.findtext(f"{M}recipientID") == CPR
    assert rec.findtext(f"{M}idType") == "CPR"
    assert rec.findtext(f"{M}label") == "Jens Hansen"
    att = rec.find(f"{M}AttentionData")
    assert [etree.QName(c).localname for c in att] == ["AttentionPerson", "ProductionUnit",
                                                        "EMail", "Telephone"]
    assert att.findtext(f"{M}AttentionPerson/{M}label") == "Karen Sørensen / Ydelseskontoret"
    assert att.findtext(f"{M}EMail/{M}emailAddress") == "ydelse@soeby.dk"


def test_cvr_recipient():
    root = _xml(memo.build_memo(make_letter(id_type=model.IdType.CVR, identifier="12345678",
                                            name="Firma ApS")))
    assert root.findtext(f"{M}MessageHeader/{M}Recipient/{M}idType") == "CVR"


def test_content_data_from_att_and_case():
    root = _xml(memo.build_memo(make_letter(attention=full_attention(), case=full_case())))
    data = root.find(f"{M}MessageHeader/{M}ContentData")
    assert [etree.QName(c).localname for c in data] == [
        "CPRdata", "MotorVehicle", "PropertyNumber", "CaseID", "KLEdata", "FORMdata",
        "AdditionalContentData", "AdditionalContentData"]
    assert data.findtext("memo:CaseID/memo:caseID", namespaces=NS) == "2026-000123"
    assert data.findtext("memo:CaseID/memo:caseSystem", namespaces=NS) == "SBSYS"
    # the case's KLE (s&d.xml) wins over att.xml's; att.xml's own KLE goes to AdditionalContentData
    assert data.findtext("kle:KLEdata/kle:subjectKey", namespaces=NS) == "27.12.00"
    assert data.findtext("kle:KLEdata/kle:activityFacet", namespaces=NS) == "G01"
    extra = [e.findtext("memo:contentDataValue", namespaces=NS)
             for e in data.findall("memo:AdditionalContentData", NS)]
    assert extra == ["27.24.00", "12b"]
    assert data.findtext("grd:CPRdata/grd:cprNumber", namespaces=NS) == CPR


def test_no_content_data_without_metadata():
    root = _xml(memo.build_memo(make_letter()))
    assert root.find(f"{M}MessageHeader/{M}ContentData") is None


def test_body_carries_pdf_and_attachments():
    letter = make_letter(attachments=[("Bilag: vejledning.pdf", "Vejledning", b"%PDF-a"),
                                      ("skema.pdf", None, b"%PDF-b")])
    body = _xml(memo.build_memo(letter)).find(f"{M}MessageBody")
    assert body.findtext(f"{M}createdDateTime") == "2026-11-28T22:15:03Z"
    main = body.find(f"{M}MainDocument/{M}File")
    assert main.findtext(f"{M}encodingFormat") == "application/pdf"
    assert main.findtext(f"{M}language") == "da"
    assert main.findtext(f"{M}filename") == "Afgørelse om boligstøtte.pdf"
    assert base64.b64decode(main.findtext(f"{M}content")) == PDF
    docs = body.findall(f"{M}AdditionalDocument")
    assert [d.findtext(f"{M}label") for d in docs] == ["Vejledning", "skema"]
    assert [d.findtext(f"{M}File/{M}filename") for d in docs] == ["Bilag_ vejledning.pdf", "skema.pdf"]
    assert [base64.b64decode(d.findtext(f"{M}File/{M}content")) for d in docs] == [b"%PDF-a", b"%PDF-b"]


def test_build_is_deterministic():
    assert memo.build_memo(make_letter(seed=7)) == memo.build_memo(make_letter(seed=7))
    assert memo.build_memo(make_letter(seed=7)) != memo.build_memo(make_letter(seed=8))


def test_invalid_letter_raises_with_all_issues_and_no_personal_data():
    letter = make_letter(title="t" * 300, message_uuid="11111111-1111-1111-1111-111111111111")
    with pytest.raises(memo.MemoInvalidError) as caught:
        memo.build_memo(letter)
    err = caught.value
    assert err.code == "memo.invalid"
    paths = " ".join(i.path for i in err.issues)
    assert "messageUUID" in paths and "label" in paths
    assert CPR not in str(err) and "Jens Hansen" not in str(err)
    assert isinstance(err, memo.MemoError)


def test_bad_input_raises_input_error():
    letter = make_letter()
    letter.created = dt.datetime(2026, 11, 28, 22, 0)  # naive
    with pytest.raises(memo.MemoInputError):
        memo.build_memo(letter)
    with pytest.raises(memo.MemoInputError):
        memo.build_memo(make_letter(memo_version="1.0"))
    with pytest.raises(memo.MemoInputError):
        memo.build_memo(make_letter(pdf=b""))


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Afgørelse: hjælp/støtte?", "Afgørelse_ hjælp_støtte.pdf"),
     ("brev.pdf", "brev.pdf"), ("", "dokument.pdf"), ("a\u00a0b\nc", "a_b_c.pdf")],
)
def test_safe_filename(name, expected, examples):
    assert memo.safe_filename(name) == expected
    doc = _minimum(examples, "Pladsanvisning.pdf", memo.safe_filename(name))
    assert memo.validate_memo(doc) == []


def test_schema_comes_from_schema_dir(monkeypatch, tmp_path, examples):
    monkeypatch.setenv("DOCPOST_SCHEMA_DIR", str(tmp_path))
    with pytest.raises(OSError):
        memo.validate_memo(examples["MeMo_Minimum_Example.xml"])


def test_cli_memo_check(examples, tmp_path, capsys):
    from docpost import cli, fjernprint

    good = tmp_path / "good.xml"
    good.write_bytes(examples["MeMo_Full_Example.xml"])
    letter = make_letter()
    kombi = tmp_path / "kombi.xml"
    kombi.write_bytes(fjernprint.build_kombi_request(
        "Automatisk Valg", memo.build_memo(letter), fjernprint.build_forsendelse(letter)))
    assert cli.main(["memo", "check", str(good), str(kombi)]) == 0
    out = capsys.readouterr().out
    assert "good.xml: MeMo message valid" in out and "kombi_request (Automatisk Valg) valid" in out
    bad = tmp_path / "bad.xml"
    bad.write_bytes(_minimum(examples, "2024-05-03T12:00:00Z", "2024-05-03T12:00:00"))
    assert cli.main(["memo", "check", str(bad)]) == 1
    assert "createdDateTime" in capsys.readouterr().out


def test_sender_attention_from_case_document():
    att = _xml(memo.build_memo(make_letter(case=full_case()))).find(
        f"{M}MessageHeader/{M}Sender/{M}AttentionData")
    assert [etree.QName(c).localname for c in att] == ["ContentResponsible", "GeneratingSystem"]
    assert att.findtext(f"{M}ContentResponsible/{M}contentResponsibleID") == \
        "a1b2c3d4-0000-4000-8000-000000000003"
    assert att.findtext(f"{M}GeneratingSystem/{M}label") == "SBSYS"
