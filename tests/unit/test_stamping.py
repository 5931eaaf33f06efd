"""Reply stamping: profiles loading, the resolution order, rejections, and the carried fields."""

from __future__ import annotations

import datetime as dt
import pickle
import uuid
from pathlib import Path

import pytest
from lxml import etree

from docpost import hierarchy as h
from docpost import model, stamping as s

DAY = dt.date(2026, 11, 27)


def cp(n: int) -> str:
    return str(uuid.UUID(int=n, version=4))


HIERARCHY = f"""<?xml version="1.0" encoding="UTF-8"?>
<ContactHierarchy xmlns="urn:docpost:hierarchy:1" authority="Testby Kommune" version="t1">
  <Mappe id="1" label="Borgerservice"/>
  <Postkasse id="100" mappe="1" label="Borgerservice"/>
  <Emne id="1001" postkasse="100" label="Pas og kørekort" mailbox="pas@testby.dk"
        contactPointID="{cp(1001)}"/>
  <Emne id="1009" postkasse="100" label="Nedlagt filial" mailbox="filial@testby.dk"
        contactPointID="{cp(1009)}" closed="2026-06-01"/>
  <Mappe id="3" label="Børn og Familie"/>
  <Postkasse id="300" mappe="3" label="Børn og Familie"/>
  <Emne id="3002" postkasse="300" label="Familierådgivning"
        mailbox="sbsys://esdh.testby.dk/koe/familie" contactPointID="{cp(3002)}"/>
  <Postkasse id="390" mappe="3" label="Gammel postkasse" closed="2025-01-01"/>
  <Emne id="3901" postkasse="390" label="Gammelt emne" mailbox="gammel@testby.dk"
        contactPointID="{cp(3901)}"/>
</ContactHierarchy>
"""


def letterhead(ident: str, department: str, extra: str = "") -> str:
    return f"""  <Letterhead id="{ident}">
    <municipality>Testby Kommune</municipality>
    <department>{department}</department>
    <addressLine>Torvet 1</addressLine>
    <addressLine>9999 Testby</addressLine>
    <phone>11 22 33 44</phone>
    <email>post@testby.dk</email>
    <web>https://www.testby.dk</web>{extra}
  </Letterhead>"""


PROFILES_PARTS = {
    "letterheads": letterhead("lh-borger", "Borgerservice", "\n    <cvr>12345678</cvr>")
    + "\n" + letterhead("lh-familie", "Børn og Familie"),
    "profiles": """  <Profile name="borgerservice" letterhead="lh-borger"><Reply postkasse="100" emne="1001"/></Profile>
  <Profile name="familie" letterhead="lh-familie"><Reply postkasse="300" emne="3002"/></Profile>
  <Profile name="kvittering" letterhead="lh-borger"><NoReply/></Profile>
  <Profile name="filial" letterhead="lh-borger"><Reply postkasse="100" emne="1009"/></Profile>""",
    "systems": """  <SourceSystem name="sbsys" default="borgerservice">
    <Rule documentTypes="afgoerelse partshoering" profile="familie"/>
    <Rule documentTypes="kvittering" profile="kvittering"/>
  </SourceSystem>
  <SourceSystem name="dubu" default="filial"/>""",
}


def profiles_text(**parts: str) -> str:
    p = {**PROFILES_PARTS, **parts}
    return "\n".join([
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<SendingProfiles xmlns="urn:docpost:profiles:1" version="p1">',
        p["letterheads"], p["profiles"], p["systems"],
        "</SendingProfiles>",
    ]) + "\n"


def line_of(text: str, marker: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if marker in line)


@pytest.fixture()
def tree(tmp_path):
    path = tmp_path / "hierarchy.xml"
    path.write_text(HIERARCHY, encoding="utf-8")
    return h.load_hierarchy(path)


@pytest.fixture()
def profiles(tmp_path, tree, monkeypatch):
    monkeypatch.setenv("DOCPOST_SENDER_CVR", "87654321")
    path = tmp_path / "profiles.xml"
    path.write_text(profiles_text(), encoding="utf-8")
    return s.load_profiles(path, tree)


def submission(source="sbsys", document_type="orientering", override=None, day=DAY,
               case_reference="SAG-2026-0042", sid="sub-1"):
    manifest = model.Manifest(
        recipient=model.Recipient(model.IdType.CPR, "0101901234", "Testperson"),
        title="Brev", document_type=document_type, reply_override=override,
        case_reference=case_reference)
    return model.Submission(model.SubmissionKey(source, day, sid), manifest, "sha256:0")


# ---------------------------------------------------------------------------------------------
# The resolution order


def test_default_profile(profiles, tree):
    st = s.stamp(submission(document_type="orientering"), profiles)
    r = st.reply
    assert r.reply_type is model.ReplyType.GIVEN
    assert r.rule == "default:sbsys" and st.profile == "borgerservice"
    assert (r.postkasse_id, r.emne_id) == (100, 1001)
    assert r.postkasse_label == "Borgerservice" and r.emne_label == "Pas og kørekort"
    assert r.contact_point_id == tree.emne(1001).contact_point_id
    assert r.mailbox == "pas@testby.dk"
    assert st.letterhead.department == "Borgerservice"
    assert st.letterhead.cvr == "12345678"  # given in the letterhead


def test_document_type_profile(profiles):
    for doc_type in ("afgoerelse", "partshoering"):
        st = s.stamp(submission(document_type=doc_type), profiles)
        assert st.reply.rule == f"rule:sbsys/{doc_type}" and st.profile == "familie"
        assert (st.reply.postkasse_id, st.reply.emne_id) == (300, 3002)
        assert st.letterhead.department == "Børn og Familie"
        assert st.letterhead.cvr == "87654321"  # from DOCPOST_SENDER_CVR


def test_manifest_override_explicit_postkasse_emne(profiles, tree):
    sub = submission(document_type="orientering",
                     override=model.ReplyOverride(postkasse_id=300, emne_id=3002))
    st = s.stamp(sub, profiles)
    assert st.reply.rule == "override"
    assert (st.reply.postkasse_id, st.reply.emne_id) == (300, 3002)
    assert st.reply.contact_point_id == tree.emne(3002).contact_point_id
    # the letterhead still comes from the profile that would otherwise apply
    assert st.profile == "borgerservice" and st.letterhead.department == "Borgerservice"


def test_override_naming_a_missing_emne_is_rejected(profiles):
    sub = submission(override=model.ReplyOverride(postkasse_id=100, emne_id=9999))
    with pytest.raises(s.UnknownEmne) as info:
        s.stamp(sub, profiles)
    err = info.value
    assert err.code == "stamping.unknown-emne"
    assert "9999" in err.message and err.submission == str(sub.key)
    assert "0101901234" not in err.message and "Testperson" not in err.message


def test_override_naming_a_missing_postkasse_or_a_foreign_emne(profiles):
    with pytest.raises(s.UnknownPostkasse) as info:
        s.stamp(submission(override=model.ReplyOverride(postkasse_id=700, emne_id=7001)), profiles)
    assert info.value.code == "stamping.unknown-postkasse" and "700" in info.value.message
    with pytest.raises(s.EmneNotInPostkasse) as info:
        s.stamp(submission(override=model.ReplyOverride(postkasse_id=100, emne_id=3002)), profiles)
    assert info.value.code == "stamping.emne-not-in-postkasse"


@pytest.mark.parametrize("override", [
    model.ReplyOverride(),
    model.ReplyOverride(no_reply=True, profile="familie"),
    model.ReplyOverride(emne_id=3002),
    model.ReplyOverride(postkasse_id=300),
])
def test_ill_formed_override_is_rejected(profiles, override):
    with pytest.raises(s.InvalidOverride) as info:
        s.stamp(submission(override=override), profiles)
    assert info.value.code == "stamping.invalid-override"


def test_closed_contact_point_by_override(profiles):
    override = model.ReplyOverride(postkasse_id=100, emne_id=1009)  # closed 2026-06-01
    before = s.stamp(submission(override=override, day=dt.date(2026, 5, 31)), profiles)
    assert before.reply.emne_id == 1009
    with pytest.raises(s.ClosedContactPoint) as info:
        s.stamp(submission(override=override, day=dt.date(2026, 6, 1)), profiles)
    assert info.value.code == "stamping.closed-contact-point"
    assert "2026-06-01" in info.value.message


def test_closed_postkasse_closes_its_emner(profiles):
    with pytest.raises(s.ClosedContactPoint):
        s.stamp(submission(override=model.ReplyOverride(postkasse_id=390, emne_id=3901)), profiles)


def test_closed_contact_point_by_default_profile_names_the_profile(profiles):
    with pytest.raises(s.ClosedContactPoint) as info:
        s.stamp(submission(source="dubu"), profiles)
    assert "'filial'" in info.value.message


def test_ikke_muligt_by_rule_leaves_no_reply_address_anywhere(profiles):
    st = s.stamp(submission(document_type="kvittering"), profiles)
    r = st.reply
    assert r.reply_type is model.ReplyType.NOT_POSSIBLE
    assert r.rule == "rule:sbsys/kvittering"
    assert (r.postkasse_id, r.postkasse_label, r.emne_id, r.emne_label,
            r.contact_point_id, r.mailbox) == (None,) * 6
    assert r.line is None and s.reply_line(r, "SAG-1") is None
    assert s.legacy_reply_fields(r) == {"MeddelelseSvarTypeNavn": "ikkeMuligt"}
    assert st.ledger_fields()["reply_contact_point_id"] is None


def test_ikke_muligt_by_manifest_override(profiles):
    st = s.stamp(submission(document_type="afgoerelse",
                            override=model.ReplyOverride(no_reply=True)), profiles)
    assert st.reply.reply_type is model.ReplyType.NOT_POSSIBLE
    assert st.reply.rule == "override:ikkeMuligt"
    assert st.profile == "familie"  # letterhead of the document-type rule


def test_named_profile(profiles):
    st = s.stamp(submission(document_type="kvittering",
                            override=model.ReplyOverride(profile="Familie")), profiles)
    assert st.reply.rule == "override:profile:familie" and st.profile == "familie"
    assert (st.reply.postkasse_id, st.reply.emne_id) == (300, 3002)


def test_unknown_profile(profiles):
    with pytest.raises(s.UnknownProfile) as info:
        s.stamp(submission(override=model.ReplyOverride(profile="jobcenter")), profiles)
    assert info.value.code == "stamping.unknown-profile"
    assert "'jobcenter'" in info.value.message and "familie" in info.value.message


def test_no_profile_for_an_unknown_source_system(profiles):
    for override in (None, model.ReplyOverride(no_reply=True)):
        with pytest.raises(s.NoProfile) as info:
            s.stamp(submission(source="ukendt-system", override=override), profiles)
        assert info.value.code == "stamping.no-profile"
        assert "'ukendt-system'" in info.value.message
        assert "/" not in info.value.message.split("(")[-1].split(")")[0]  # no server path


def test_determinism(profiles, tmp_path, tree):
    subs = [submission(document_type=d, override=o) for d, o in [
        ("orientering", None), ("afgoerelse", None), ("kvittering", None),
        ("orientering", model.ReplyOverride(postkasse_id=300, emne_id=3002)),
        ("orientering", model.ReplyOverride(profile="kvittering"))]]
    first = [s.stamp(x, profiles) for x in subs]
    again = [s.stamp(x, profiles) for x in subs]
    reloaded = s.load_profiles(tmp_path / "profiles.xml", h.load_hierarchy(tmp_path / "hierarchy.xml"))
    fresh = [s.stamp(x, reloaded) for x in subs]
    assert first == again == fresh
    assert pickle.loads(pickle.dumps(first)) == first
    assert len({(st.reply.rule, st.reply.emne_id) for st in first}) == len(subs)


def test_stamp_many_never_raises_for_one_bad_submission(profiles):
    subs = [submission(sid="a"),
            submission(sid="b", override=model.ReplyOverride(postkasse_id=100, emne_id=9999)),
            submission(sid="c", source="ukendt"),
            submission(sid="d", document_type="afgoerelse")]
    out = s.stamp_many(subs, profiles)
    assert [type(x) for x in out] == [s.Stamp, s.UnknownEmne, s.NoProfile, s.Stamp]
    assert out[1].submission.endswith("/b") and out[2].submission.endswith("/c")
    assert out[3].reply.emne_id == 3002
    errors = pickle.loads(pickle.dumps(out[1:3]))
    assert [(type(e), e.code, e.submission) for e in errors] == \
        [(type(e), e.code, e.submission) for e in out[1:3]]


# ---------------------------------------------------------------------------------------------
# Where the reply address is carried


def _digitalpostparametre_schema(oio, tmp_path):
    """The real DigitalPostParametre.xsd. libxml2 honours only the first import of a namespace,
    so an entry schema first imports one DKAL aggregate including every DKAL file it needs."""
    dkal = ["AfsendelseDatoTid", "MeddelelseIndholdstypeIdentifikator", "MeddelelseSvarTypeNavn",
            "MeddelelseSvarPostkasseIdentifikator", "MeddelelseSvarEmneIdentifikator",
            "MeddelelseFESDmetadata"]
    xs = 'xmlns="http://www.w3.org/2001/XMLSchema"'
    (tmp_path / "dkal.xsd").write_text(
        f'<schema {xs} targetNamespace="{s.NS_DKAL}">'
        + "".join(f'<include schemaLocation="{(oio / f"{n}.xsd").as_uri()}"/>' for n in dkal)
        + "</schema>")
    (tmp_path / "entry.xsd").write_text(
        f'<schema {xs}><import namespace="{s.NS_DKAL}" schemaLocation="dkal.xsd"/>'
        f'<import namespace="urn:oio:fjernprint:1.0.0" '
        f'schemaLocation="{(oio / "DigitalPostParametre.xsd").as_uri()}"/></schema>')
    return etree.XMLSchema(etree.parse(str(tmp_path / "entry.xsd")))


def test_legacy_fields_validate_against_the_real_digitalpostparametre(profiles, tmp_path):
    # the unchanged KOMBIT copy the product ships (origin: schemas/kombit/README.md)
    oio = Path(__file__).resolve().parents[2] / "schemas/kombit/SF1600_EP_SP1-2/xsd/oio"
    schema = _digitalpostparametre_schema(oio, tmp_path)
    fjernprint = "urn:oio:fjernprint:1.0.0"
    for sub in (submission(document_type="kvittering"), submission()):
        fields = s.legacy_reply_fields(s.stamp(sub, profiles).reply)
        root = etree.Element(f"{{{fjernprint}}}DigitalPostParametre",
                             nsmap={"fjernprint": fjernprint, "dkal": s.NS_DKAL})
        for name, value in fields.items():
            etree.SubElement(root, f"{{{s.NS_DKAL}}}{name}").text = value
        etree.SubElement(root, f"{{{fjernprint}}}MedsendDokumentRegistreringIndikator").text = "false"
        assert schema.validate(root), schema.error_log
    # the schema does check the fields: a negative Postkasse id fails
    assert etree.QName(root[1]).localname == "MeddelelseSvarPostkasseIdentifikator"
    root[1].text = "-1"
    assert not schema.validate(root)
    given = s.legacy_reply_fields(s.stamp(submission(), profiles).reply)
    assert list(given.items()) == [("MeddelelseSvarTypeNavn", "angivet"),
                                   ("MeddelelseSvarPostkasseIdentifikator", "100"),
                                   ("MeddelelseSvarEmneIdentifikator", "1001")]


def test_reply_line_and_reference(profiles):
    sub = submission(case_reference="SAG-2026-0042")
    reply = s.stamp(sub, profiles).reply
    assert s.letter_reference(sub) == "SAG-2026-0042"
    assert s.reply_line(reply, s.letter_reference(sub)) == \
        "Svar via Digital Post: Borgerservice / Pas og kørekort (ref. SAG-2026-0042)"
    assert s.reply_line(reply, None) == "Svar via Digital Post: Borgerservice / Pas og kørekort"
    bare = submission(case_reference=None)
    with_case = model.Submission(bare.key, bare.manifest, bare.content_hash,
                                 case=model.CaseDocument(case_number="27.12.00-G01-7-26"))
    assert s.letter_reference(bare) is None
    assert s.letter_reference(with_case) == "27.12.00-G01-7-26"


def test_ledger_fields(profiles):
    st = s.stamp(submission(document_type="afgoerelse"), profiles)
    assert st.ledger_fields() == {
        "reply_type": "angivet", "reply_rule": "rule:sbsys/afgoerelse",
        "reply_postkasse_id": 300, "reply_emne_id": 3002,
        "reply_contact_point_id": cp(3002), "sending_profile": "familie"}


# ---------------------------------------------------------------------------------------------
# Loading profiles: each configuration error, with its line


def _profiles_error(tmp_path, tree, text, expected, marker):
    path = tmp_path / "broken-profiles.xml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(expected) as info:
        s.load_profiles(path, tree)
    err = info.value
    assert isinstance(err, s.ProfilesError) and err.path == str(path)
    assert err.line == line_of(text, marker), str(err)
    assert str(err).startswith(f"{path}:{err.line}: ")
    return err


def test_profile_naming_a_missing_emne_is_a_load_error(tmp_path, tree):
    text = profiles_text(profiles=PROFILES_PARTS["profiles"] + '\n  <Profile name="x" '
                         'letterhead="lh-borger"><Reply postkasse="100" emne="9999"/></Profile>')
    err = _profiles_error(tmp_path, tree, text, s.UndefinedEmne, 'emne="9999"')
    assert err.code == "profiles.unknown-emne" and "9999" in err.message


@pytest.mark.parametrize("profile, expected, code", [
    ('<Profile name="x" letterhead="lh-borger"><Reply postkasse="700" emne="7001"/></Profile>',
     s.UndefinedPostkasse, "profiles.unknown-postkasse"),
    ('<Profile name="x" letterhead="lh-borger"><Reply postkasse="100" emne="3002"/></Profile>',
     s.EmneOutsidePostkasse, "profiles.emne-not-in-postkasse"),
    ('<Profile name="x" letterhead="lh-ukendt"><NoReply/></Profile>',
     s.UndefinedLetterhead, "profiles.unknown-letterhead"),
    ('<Profile name="familie" letterhead="lh-borger"><NoReply/></Profile>',
     s.DuplicateName, "profiles.duplicate-name"),
])
def test_profile_reference_errors(tmp_path, tree, profile, expected, code):
    text = profiles_text(profiles=PROFILES_PARTS["profiles"] + "\n  " + profile)
    err = _profiles_error(tmp_path, tree, text, expected, profile)
    assert err.code == code


def test_source_system_errors(tmp_path, tree):
    text = profiles_text(systems=PROFILES_PARTS["systems"] + """
  <SourceSystem name="momentum" default="jobcenter"/>""")
    err = _profiles_error(tmp_path, tree, text, s.UndefinedProfile, 'name="momentum"')
    assert err.code == "profiles.unknown-profile"
    text = profiles_text(systems="""  <SourceSystem name="sbsys" default="borgerservice">
    <Rule documentTypes="afgoerelse" profile="familie"/>
    <Rule documentTypes="rykker afgoerelse" profile="kvittering"/>
  </SourceSystem>""")
    err = _profiles_error(tmp_path, tree, text, s.DuplicateRule, 'documentTypes="rykker')
    assert err.code == "profiles.duplicate-rule"


def test_schema_and_syntax_errors(tmp_path, tree):
    text = profiles_text(systems="""  <SourceSystem name="sbsys" default="borgerservice">
    <Rule documentTypes="afgorelse" profile="familie"/>
  </SourceSystem>""")
    err = _profiles_error(tmp_path, tree, text, s.ProfilesSchemaError, 'documentTypes="afgorelse"')
    assert err.code == "profiles.schema" and "afgorelse" in err.message
    text = profiles_text().replace("<NoReply/></Profile>", "<NoReply></Profile>")
    err = _profiles_error(tmp_path, tree, text, s.ProfilesMalformedXml, "<NoReply></Profile>")
    assert err.code == "profiles.malformed-xml"


def test_missing_logo_is_a_load_error(tmp_path, tree):
    text = profiles_text(letterheads=letterhead("lh-borger", "B", "\n    <logo>logos/nope.png</logo>")
                         + "\n" + letterhead("lh-familie", "F"))
    err = _profiles_error(tmp_path, tree, text, s.MissingLogo, "<logo>")
    assert err.code == "profiles.missing-logo"
    (tmp_path / "logos").mkdir()
    (tmp_path / "logos" / "nope.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    ok = s.load_profiles(tmp_path / "broken-profiles.xml", tree)
    assert ok.profile("borgerservice").letterhead.logo_path == str(tmp_path / "logos" / "nope.png")


def test_all_profile_errors_are_listed(tmp_path, tree):
    text = profiles_text(profiles=PROFILES_PARTS["profiles"] + """
  <Profile name="x" letterhead="lh-borger"><Reply postkasse="100" emne="9999"/></Profile>
  <Profile name="y" letterhead="lh-nej"><NoReply/></Profile>""")
    path = tmp_path / "p.xml"
    path.write_text(text, encoding="utf-8")
    errors = s.check_profiles(path, tree)
    assert [type(e) for e in errors] == [s.UndefinedEmne, s.UndefinedLetterhead]


# ---------------------------------------------------------------------------------------------
# The shipped configuration

SOURCE_SYSTEMS = ("sbsys", "momentum", "opus-debitor", "kmd-ydelse", "dubu", "byggesag")
DOCUMENT_TYPES = ("afgoerelse", "partshoering", "indkaldelse", "orientering", "opkraevning",
                  "rykker", "kvittering", "bevilling")


def test_shipped_profiles_stamp_every_source_system_and_document_type():
    profiles = s.load_profiles()
    assert set(SOURCE_SYSTEMS) <= set(profiles.source_systems)
    tree = profiles.hierarchy
    for source in SOURCE_SYSTEMS:
        for doc_type in DOCUMENT_TYPES:
            st = s.stamp(submission(source=source, document_type=doc_type), profiles)
            if st.reply.reply_type is model.ReplyType.GIVEN:
                emne = tree.emne(st.reply.emne_id)
                assert emne.contact_point_id == st.reply.contact_point_id
                assert not tree.is_closed(emne, DAY)
            assert st.letterhead.municipality == "Søby Kommune"
            assert st.letterhead.logo_path is None or \
                __import__("pathlib").Path(st.letterhead.logo_path).is_file()
    assert s.stamp(submission(override=model.ReplyOverride(postkasse_id=100, emne_id=1001)),
                   profiles).reply.emne_label
    assert s.stamp(submission(override=model.ReplyOverride(postkasse_id=300, emne_id=3002)),
                   profiles).reply.postkasse_label == "Børn og Familie"
    with pytest.raises(s.UnknownEmne):
        s.stamp(submission(override=model.ReplyOverride(postkasse_id=100, emne_id=9999)), profiles)
