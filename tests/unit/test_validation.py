"""docpost.validation: the API other stages call, on the example submissions and variants of them."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from docpost import model, validation, xmlsafe

ROOT = Path(__file__).resolve().parents[2]
CITIZEN = ROOT / "examples/inbox/sbsys/2026-01-15/sbsys-000001"
COMPANY = ROOT / "examples/inbox/byggesag/2026-01-15/byg-000002"


def copy(src: Path, tmp_path: Path, name: str = "s1") -> Path:
    folder = tmp_path / "inbox" / "sbsys" / "2026-01-15" / name
    shutil.copytree(src, folder)
    return folder


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text("utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), "utf-8")


class MemorySource:
    """A SubmissionSource over a dict, recording reads (as the S3 source will be read)."""

    def __init__(self, files: dict[str, bytes], key: model.SubmissionKey):
        self.files, self.key, self.reads = files, key, []

    def list_files(self):
        return {name: len(data) for name, data in self.files.items()}

    def read(self, name, max_bytes):
        self.reads.append(name)
        data = self.files[name]
        if len(data) > max_bytes:
            raise validation.FileTooLarge("too large")
        return data


def test_company_example_maps_onto_the_model():
    report = validation.validate(validation.LocalSubmission(COMPANY))
    assert report.valid, report.to_text()
    sub = report.submission
    assert sub.key == model.SubmissionKey("byggesag", dt.date(2026, 1, 15), "byg-000002")
    m = sub.manifest
    assert m.recipient.id_type is model.IdType.CVR and m.recipient.identifier == "34567808"
    assert m.recipient.name == "Bøgh & Kjær Byg ApS"
    assert m.recipient.address.lines() == [
        "c/o Ålykke Administration", "Præstegårdsvej 7", "Ålykkegård", "5960 Marstal"]
    assert m.channel_wish is model.ChannelWish.DIGITAL and m.mandatory and not m.legal_notification
    assert m.reply_override == model.ReplyOverride(postkasse_id=100, emne_id=1001)
    assert m.not_before == dt.date(2026, 1, 16)
    assert m.main_file.role is model.FileRole.MAIN and m.main_file.name == "byggetilladelse.pdf"
    assert [f.name for f in m.attachments] == ["Godkendte tegninger.pdf"]
    assert set(sub.documents) == {"byggetilladelse.pdf", "Godkendte tegninger.pdf"}
    assert sub.documents["byggetilladelse.pdf"].startswith(b"%PDF-")
    att = sub.attention
    assert att.line == "Jørgen Bøgh / Byggeafdelingen"
    assert att.production_unit_number == "1012345678" and att.telephone == "+45 62 53 10 00"
    assert att.cpr_numbers == (("2512169996", "Emilie Hansen"),)
    assert att.kle[0] == model.KleRef("02.34.02", "K08", "Byggetilladelser, tilbygninger", "KLE 2024")
    assert att.form[0].task_key == "02.10.05.05"
    assert att.vehicles == (("AB12345", "WFR18ZZ67W0949591"),)
    assert att.cadastral_numbers == ("12a Marstal Markjorder",)
    case = sub.case
    assert case.case_uuid == "6f1c2a3e-8b7d-4c5e-9f01-2a3b4c5d6e7f" and case.kle.subject_key == "02.34.02"
    assert case.letter_date == dt.date(2026, 1, 15) and case.created == dt.date(2026, 1, 14)
    assert case.acting_party_name == "Teknik og Miljø, Søby Kommune"
    assert sub.letter is None


def test_citizen_example_letter_blocks():
    report = validation.validate(validation.LocalSubmission(CITIZEN))
    assert report.valid, report.to_text()
    letter = report.submission.letter
    kinds = [type(b).__name__ for b in letter.blocks]
    assert kinds[:4] == ["Heading", "Paragraph", "Heading", "Paragraph"]
    table = next(b for b in letter.blocks if isinstance(b, model.Table))
    assert table.header and table.rows[0] == ("Hjælpemiddel", "Udlevering", "Egenbetaling")
    bullets = next(b for b in letter.blocks if isinstance(b, model.BulletList))
    assert not bullets.ordered and len(bullets.items) == 3
    assert letter.closing == "Med venlig hilsen" and letter.signature[0] == "Lone Bækgaard"
    assert report.submission.manifest.recipient.address.lines() == ["Søndergade 12B, 2., th", "8000 Aarhus C"]
    assert report.submission.documents == {}


def test_content_hash_is_sha256_over_sorted_names_and_bytes_without_ready():
    files = {p.name: p.read_bytes() for p in CITIZEN.iterdir()}
    expected = hashlib.sha256()
    for name in sorted(files):
        if name != "_READY":
            expected.update(name.encode() + b"\0" + len(files[name]).to_bytes(8, "big") + files[name])
    report = validation.validate(MemorySource(files, model.SubmissionKey("x", dt.date(2026, 1, 1), "1")))
    assert report.submission.content_hash == expected.hexdigest()
    files["_READY"] = b"anything"
    assert validation.validate(MemorySource(files, report.key)).submission.content_hash == expected.hexdigest()
    files["brev.xml"] = files["brev.xml"].replace(b"rollator", b"Rollator")
    assert validation.validate(MemorySource(files, report.key)).submission.content_hash != expected.hexdigest()


def test_every_file_is_read_once_through_the_source():
    files = {p.name: p.read_bytes() for p in COMPANY.iterdir()}
    source = MemorySource(files, model.SubmissionKey("byggesag", dt.date(2026, 1, 15), "m"))
    assert validation.validate(source).valid
    assert sorted(source.reads) == sorted(n for n in files if n != "_READY")


def test_every_error_of_every_file_is_reported(tmp_path):
    folder = copy(COMPANY, tmp_path)
    edit(folder / "manifest.xml", "<DocumentType>afgoerelse", "<DocumentType>brev")
    edit(folder / "manifest.xml", "<PostCodeIdentifier>5960", "<PostCodeIdentifier>596")
    edit(folder / "att.xml", "<subjectKey>02.34.02</subjectKey>", "<subjectKey>2.34</subjectKey>")
    edit(folder / "s&d.xml", "<BrevDato>2026-01-15", "<BrevDato>15-01-2026")
    (folder / "extra.txt").write_text("x")
    report = validation.validate(validation.LocalSubmission(folder))
    assert not report.valid and report.submission is None
    found = {(i.code, i.file, i.path) for i in report.issues}
    assert ("schema.invalid-value", "manifest.xml", "/Manifest/DocumentType") in found
    assert ("schema.invalid-value", "manifest.xml", "/Manifest/Recipient/PostalAddress/PostCodeIdentifier") in found
    assert ("schema.invalid-value", "att.xml", "/AttentionData/ContentData/KLEdata/subjectKey") in found
    assert ("schema.invalid-value", "s&d.xml", "/SagDokument/Dokument/BrevDato") in found
    assert ("files.unnamed", "extra.txt", None) in found
    assert all(i.line for i in report.issues if i.code.startswith("schema."))
    doc_type = next(i for i in report.issues if i.path == "/Manifest/DocumentType")
    assert "'brev'" in doc_type.message  # a value that is no personal data may be shown


def test_json_and_text_reports(tmp_path):
    folder = copy(CITIZEN, tmp_path)
    edit(folder / "manifest.xml", "2211771212", "3002771212")
    edit(folder / "manifest.xml", "<Name>Mette Hansen</Name>", f"<Name>{'Mette Hansen ' * 12}</Name>")
    report = validation.validate(validation.LocalSubmission(folder))
    data = report.to_json()
    assert set(data) == {"submission", "valid", "errors"}
    assert data["submission"] == "sbsys/2026-01-15/s1" and data["valid"] is False
    assert all(set(e) == {"code", "file", "line", "path", "message"} for e in data["errors"])
    assert {e["code"] for e in data["errors"]} == {"cpr.invalid-date", "schema.too-long"}
    text = report.to_text()
    assert "REJECTED" in text and "cpr.invalid-date" in text and "line 5" in text
    shown = json.dumps(data, ensure_ascii=False) + text
    assert "3002771212" not in shown and "Mette Hansen" not in shown
    assert "300277-****" in shown


def test_schema_value_of_personal_field_is_not_echoed(tmp_path):
    folder = copy(CITIZEN, tmp_path)
    edit(folder / "manifest.xml", "<StreetName>Søndergade</StreetName>", "<StreetName></StreetName>")
    edit(folder / "manifest.xml", "2211771212", "22117712")
    report = validation.validate(validation.LocalSubmission(folder))
    shown = json.dumps(report.to_json())
    assert "schema.invalid-value" in report.codes and "22117712" not in shown


def test_title_boundary_256_valid_257_not(tmp_path):
    ok = copy(CITIZEN, tmp_path, "ok")
    edit(ok / "manifest.xml", "<Title>Afgørelse om hjælpemidler</Title>", f"<Title>{'ø' * 256}</Title>")
    assert validation.validate(validation.LocalSubmission(ok)).valid
    bad = copy(CITIZEN, tmp_path, "bad")
    edit(bad / "manifest.xml", "<Title>Afgørelse om hjælpemidler</Title>", f"<Title>{'ø' * 257}</Title>")
    assert validation.validate(validation.LocalSubmission(bad)).codes == ["schema.too-long"]


def test_reply_override_kinds(tmp_path):
    for n, (xml, expected) in enumerate([
        ("<NoReply/>", model.ReplyOverride(no_reply=True)),
        ("<Profile>BYG/AFGOERELSE</Profile>", model.ReplyOverride(profile="BYG/AFGOERELSE")),
        ("<Reply><MeddelelseSvarPostkasseIdentifikator>300</MeddelelseSvarPostkasseIdentifikator>"
         "<MeddelelseSvarEmneIdentifikator>3002</MeddelelseSvarEmneIdentifikator></Reply>",
         model.ReplyOverride(postkasse_id=300, emne_id=3002)),
    ]):
        folder = copy(CITIZEN, tmp_path, f"r{n}")
        edit(folder / "manifest.xml", "  <Documents>", f"  <ReplyOverride>{xml}</ReplyOverride>\n  <Documents>")
        report = validation.validate(validation.LocalSubmission(folder))
        assert report.valid, report.to_text()
        assert report.submission.manifest.reply_override == expected


def test_physical_letter_needs_an_address(tmp_path):
    folder = copy(CITIZEN, tmp_path)
    text = (folder / "manifest.xml").read_text("utf-8")
    start, end = text.index("    <PostalAddress>"), text.index("</PostalAddress>") + len("</PostalAddress>\n")
    (folder / "manifest.xml").write_text(text[:start] + text[end:], "utf-8")
    assert validation.validate(validation.LocalSubmission(folder)).valid  # auto: the address may come from CPR
    edit(folder / "manifest.xml", "<ChannelWish>auto", "<ChannelWish>physical")
    assert validation.validate(validation.LocalSubmission(folder)).codes == ["recipient.address-missing"]


def test_validate_many_survives_a_failing_source_and_goes_on():
    class Exploding:
        key = model.SubmissionKey("x", dt.date(2026, 1, 1), "boom")

        def list_files(self):
            raise RuntimeError("a bug in a source")

        def read(self, name, max_bytes):
            raise AssertionError

    good = validation.LocalSubmission(CITIZEN)
    reports = list(validation.validate_many([good, Exploding(), good]))
    assert [r.valid for r in reports] == [True, False, True]
    assert reports[1].codes == ["validator.internal-error"]


def test_unlistable_source_is_reported_not_raised(tmp_path):
    report = validation.validate(validation.LocalSubmission(tmp_path / "does-not-exist"))
    assert report.codes == ["source.unreadable"] and not report.valid


def test_local_submission_key_and_safe_reads(tmp_path):
    folder = copy(CITIZEN, tmp_path, "abc-1")
    source = validation.LocalSubmission(folder)
    assert source.key == model.SubmissionKey("sbsys", dt.date(2026, 1, 15), "abc-1")
    assert validation.LocalSubmission(tmp_path).key.source_system == "local"
    with pytest.raises(validation.UnsafeFileName):
        source.read("../../../etc/passwd", 1000)
    with pytest.raises(validation.FileTooLarge):
        source.read("brev.xml", 10)
    (folder / "link.pdf").symlink_to(CITIZEN / "brev.xml")
    assert "link.pdf" not in source.list_files()
    with pytest.raises(validation.SourceError):
        source.read("link.pdf", 10_000)


def test_discover_night_tree_single_folder_and_any_tree(tmp_path):
    a = copy(CITIZEN, tmp_path, "a")
    copy(COMPANY, tmp_path, "b")
    assert [s.key.submission_id for s in validation.discover(tmp_path)] == ["a", "b"]
    assert [s.path for s in validation.discover(a)] == [a]
    other = tmp_path / "any"
    shutil.copytree(CITIZEN, other / "x" / "one")
    shutil.copytree(COMPANY, other / "two")
    assert sorted(s.path.name for s in validation.discover(other)) == ["one", "two"]
    with pytest.raises(validation.SourceError):
        validation.discover(tmp_path / "nope")


def test_xmlschema_engine_agrees_on_examples_and_a_broken_one(tmp_path):
    for folder in (CITIZEN, COMPANY):
        assert validation.validate(validation.LocalSubmission(folder), engine="xmlschema").valid
    bad = copy(CITIZEN, tmp_path)
    edit(bad / "manifest.xml", "<Title>Afgørelse om hjælpemidler</Title>", f"<Title>{'x' * 300}</Title>")
    report = validation.validate(validation.LocalSubmission(bad), engine="xmlschema")
    assert report.codes == ["schema.too-long"] and report.issues[0].path == "/Manifest/Title"


def test_summary_counts_submissions_per_code(tmp_path):
    bad = copy(CITIZEN, tmp_path, "bad")
    (bad / "_READY").unlink()
    reports = list(validation.validate_many([validation.LocalSubmission(CITIZEN), validation.LocalSubmission(bad)]))
    assert validation.summary(reports) == {
        "submissions": 2, "valid": 1, "rejected": 1, "by_code": {"submission.not-ready": 1}}


def test_filename_rules():
    assert validation.filename_problems("Vejledning om klage 1.pdf") == []
    assert validation.filename_problems("bilag-æøå.pdf") == []
    codes = lambda n: [c for c, _ in validation.filename_problems(n)]  # noqa: E731
    assert codes("a/b.pdf") == ["filename.path-part"]
    assert codes("..") == ["filename.path-part"]
    assert codes("a\tb.pdf") == ["filename.control-characters"]
    assert codes("a\u2028b.pdf") == ["filename.control-characters"]
    assert codes('a"b.pdf') == ["filename.forbidden-characters"]
    assert codes("a\u200bb.pdf") == ["filename.unusual-space"]
    assert codes("x" * 256) == ["filename.too-long"]


def test_xmlsafe_accepts_utf8_with_bom_and_refuses_entities():
    tree = xmlsafe.parse(b"\xef\xbb\xbf<?xml version='1.0' encoding='utf-8'?><a>\xc3\xa6</a>")
    assert tree.getroot().text == "æ"
    with pytest.raises(xmlsafe.MalformedXML):
        xmlsafe.parse(b"<a>&ouml;</a>")
    with pytest.raises(xmlsafe.XMLTooLarge):
        xmlsafe.parse(b"<a>" + b" " * 100 + b"</a>", max_bytes=50)
    with pytest.raises(xmlsafe.XMLTooManyElements):
        xmlsafe.parse(b"<a>" + b"<b/>" * 100 + b"</a>", max_elements=50)


def test_a_listing_that_understates_a_size_still_never_reads_past_the_limit(tmp_path):
    folder = copy(CITIZEN, tmp_path)
    (folder / "brev.xml").write_bytes(b"<Letter>" + b" " * (3 * 1024 * 1024) + b"</Letter>")
    inner = validation.LocalSubmission(folder)

    class Lying:
        key = inner.key

        def list_files(self):
            return {name: min(size, 100) for name, size in inner.list_files().items()}

        def read(self, name, max_bytes):
            return inner.read(name, max_bytes)

    report = validation.validate(Lying())
    assert report.codes == ["files.too-large"] and report.issues[0].file == "brev.xml"


def test_a_blank_name_and_a_date_python_cannot_hold_are_refused_not_crashed_on(tmp_path):
    blank = copy(CITIZEN, tmp_path, "blank")
    text = (blank / "manifest.xml").read_text("utf-8")
    start = text.index("<Name>") + len("<Name>")
    (blank / "manifest.xml").write_text(text[:start] + "   " + text[text.index("</Name>"):], "utf-8")
    assert validation.validate(validation.LocalSubmission(blank)).codes == ["schema.invalid-value"]
    for n, date in enumerate(("10000-01-01", "-0001-01-01", "2026-02-30")):
        late = copy(CITIZEN, tmp_path, f"d{n}")
        edit(late / "manifest.xml", "  <CaseReference>", f"  <DoNotDeliverUntilDate>{date}</DoNotDeliverUntilDate>\n  <CaseReference>")
        report = validation.validate(validation.LocalSubmission(late))  # raised ValueError for the first two
        assert report.codes == ["schema.invalid-value"], (date, report.codes)
    fine = copy(CITIZEN, tmp_path, "fine")
    edit(fine / "manifest.xml", "  <CaseReference>", "  <DoNotDeliverUntilDate>2026-02-28</DoNotDeliverUntilDate>\n  <CaseReference>")
    assert validation.validate(validation.LocalSubmission(fine)).submission.manifest.not_before == dt.date(2026, 2, 28)
