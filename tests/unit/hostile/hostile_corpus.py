"""The hostile-input corpus: submission folders built at test time, each with its expected codes.

Large inputs (the 200 MB files) are created as sparse files in the test's temporary folder, never
committed. Every case starts from a copy of a good example submission and breaks one thing.
"""

from __future__ import annotations

import codecs
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from docpost_testbench.generate import pdf_document

ROOT = Path(__file__).resolve().parents[3]
CITIZEN = ROOT / "examples/inbox/sbsys/2026-01-15/sbsys-000001"  # manifest + brev.xml
COMPANY = ROOT / "examples/inbox/byggesag/2026-01-15/byg-000002"  # manifest, att, s&d, 2 PDFs
MB = 1024 * 1024
NS_M = 'xmlns="urn:docpost:manifest:1"'


def _replace(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text("utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, count), "utf-8")


def _sparse(path: Path, size: int, head: bytes = b"") -> None:
    with open(path, "wb") as handle:
        handle.write(head)
        handle.truncate(size)


def _add_attachment(folder: Path, name: str, data: bytes | None = None) -> None:
    _replace(folder / "manifest.xml", "  </Documents>",
             f'    <AdditionalDocument filename="{name}" label="Bilag"/>\n  </Documents>')
    if data is not None:
        (folder / name).write_bytes(data)


def _letter(folder: Path, body: bytes) -> None:
    (folder / "brev.xml").write_bytes(body)


def _small_pdf() -> bytes:
    return pdf_document("Bilag", ["Et lille bilag til sagen, side én."], 1)


XXE_EXTERNAL = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE Manifest [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<Manifest xmlns="urn:docpost:manifest:1"><Title>&xxe;</Title></Manifest>
"""
XXE_PARAMETER = b"""<?xml version="1.0"?>
<!DOCTYPE AttentionData [ <!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote; ]>
<AttentionData xmlns="urn:docpost:attention:1"/>
"""
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE Letter [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Letter xmlns="urn:docpost:letter:1"><Paragraph>&lol9;</Paragraph></Letter>
"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE Manifest SYSTEM "http://127.0.0.1:9/manifest.dtd">
<Manifest xmlns="urn:docpost:manifest:1"/>
"""
DOCTYPE_AFTER_COMMENT = b"""<?xml version="1.0"?>
<!-- a harmless comment --><?pi before?>
<!DOCTYPE Letter [ <!ENTITY a "b"> ]>
<Letter xmlns="urn:docpost:letter:1"><Paragraph>&a;</Paragraph></Letter>
"""
XINCLUDE = b"""<?xml version="1.0"?>
<Letter xmlns="urn:docpost:letter:1" xmlns:xi="http://www.w3.org/2001/XInclude">
  <Paragraph>Hej</Paragraph><xi:include href="file:///etc/passwd" parse="text"/>
</Letter>
"""


def case_xxe_external(f): (f / "manifest.xml").write_bytes(XXE_EXTERNAL)
def case_xxe_parameter(f): (f / "att.xml").write_bytes(XXE_PARAMETER)
def case_billion_laughs(f): _letter(f, BILLION_LAUGHS)
def case_external_dtd(f): (f / "manifest.xml").write_bytes(EXTERNAL_DTD)
def case_doctype_after_comment(f): _letter(f, DOCTYPE_AFTER_COMMENT)
def case_xinclude(f): _letter(f, XINCLUDE)


def case_huge_manifest(f):
    _sparse(f / "manifest.xml", 200 * MB, b'<?xml version="1.0"?>\n<Manifest ' + NS_M.encode() + b">")


def case_huge_attachment(f):
    _add_attachment(f, "stor.pdf")
    _sparse(f / "stor.pdf", 200 * MB, b"%PDF-1.4\n")


def case_huge_unnamed_file(f):
    _sparse(f / "video.mp4", 200 * MB)


def case_deep_nesting_10000(f):
    (f / "att.xml").write_bytes(b'<AttentionData xmlns="urn:docpost:attention:1">' + b"<a>" * 10000 + b"</a>" * 10000 + b"</AttentionData>")


def case_deep_nesting_40(f):
    _letter(f, b'<Letter xmlns="urn:docpost:letter:1">' + b"<Paragraph>" * 40 + b"</Paragraph>" * 40 + b"</Letter>")


def case_encoding_declared_latin1(f):
    _replace(f / "brev.xml", 'encoding="UTF-8"', 'encoding="ISO-8859-1"')


def case_encoding_lies(f):
    text = (f / "brev.xml").read_text("utf-8")
    (f / "brev.xml").write_bytes(text.encode("latin-1"))  # æøå as single bytes, declared UTF-8


def case_invalid_utf8(f):
    data = (f / "manifest.xml").read_bytes().replace(b"Mette", b"Me\xff\xfete")
    (f / "manifest.xml").write_bytes(data)


def case_bom_utf16_declared_utf8(f):
    text = (f / "manifest.xml").read_text("utf-8")
    (f / "manifest.xml").write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))


def case_bom_utf8_declared_cp1252(f):
    text = (f / "manifest.xml").read_text("utf-8").replace('encoding="UTF-8"', 'encoding="windows-1252"')
    (f / "manifest.xml").write_bytes(codecs.BOM_UTF8 + text.encode("utf-8"))


def case_utf16_document(f):
    text = (f / "brev.xml").read_text("utf-8").replace('encoding="UTF-8"', 'encoding="UTF-16"')
    _letter(f, text.encode("utf-16"))


def case_missing_ready(f): (f / "_READY").unlink()
def case_missing_manifest(f): (f / "manifest.xml").unlink()
def case_named_file_missing(f): _add_attachment(f, "bilag-1.pdf")
def case_unnamed_extra_file(f): (f / "noter.docx").write_bytes(b"PK\x03\x04 interne noter")


def case_html_as_pdf(f):
    (f / "byggetilladelse.pdf").write_bytes(b"<!DOCTYPE html><html><body><h1>Byggetilladelse</h1></body></html>")


def case_truncated_pdf(f):
    data = (f / "byggetilladelse.pdf").read_bytes()
    (f / "byggetilladelse.pdf").write_bytes(data[: len(data) // 2])


def case_encrypted_pdf(f):
    (f / "Godkendte tegninger.pdf").write_bytes(pdf_document("Tegninger", ["Fortroligt."], 1, encrypt=True))


def case_path_traversal_named(f): _add_attachment(f, "../../../../etc/passwd")
def case_path_traversal_backslash(f): _add_attachment(f, "..\\..\\windows\\win.ini")


def case_nested_folder(f):
    (f / "bilag").mkdir()
    (f / "bilag" / "bilag.pdf").write_bytes(_small_pdf())


def case_control_character_name(f):
    (f / "bilag\x07.pdf").write_bytes(_small_pdf())  # XML 1.0 cannot even name it


def case_newline_in_name(f):
    _add_attachment(f, "bilag&#10;1.pdf")  # the character reference survives attribute normalisation
    (f / "bilag\n1.pdf").write_bytes(_small_pdf())


def case_forbidden_character_name(f): _add_attachment(f, "bilag:1.pdf", _small_pdf())
def case_unusual_space_name(f): _add_attachment(f, "bilag\u00a01.pdf", _small_pdf())


def case_non_utf8_name(f):
    with open(os.path.join(os.fsencode(f), b"bilag-\xe6.pdf"), "wb") as handle:
        handle.write(_small_pdf())


def case_symlink_outside(f):
    _add_attachment(f, "passwd.pdf")
    os.symlink("/etc/passwd", f / "passwd.pdf")


def case_cpr_impossible_date(f):
    _replace(f / "manifest.xml", "2211771212", "2902010123")  # 29 Feb 1901


def case_cpr_month_13(f):
    _replace(f / "manifest.xml", "2211771212", "0113801234")


def case_att_cpr_impossible_date(f):
    _replace(f / "att.xml", "2512169996", "3104161234")


def case_cvr_bad_check_digit(f):
    _replace(f / "manifest.xml", "34567808", "34567809")


def case_duplicate_element(f):
    _replace(f / "manifest.xml", "  <DocumentType>", "  <Title>Endnu en titel</Title>\n  <DocumentType>")


def case_out_of_order(f):
    text = (f / "manifest.xml").read_text("utf-8")
    text = text.replace("  <DocumentType>afgoerelse</DocumentType>\n", "")
    text = text.replace("  <Title>", "  <DocumentType>afgoerelse</DocumentType>\n  <Title>")
    (f / "manifest.xml").write_text(text, "utf-8")


def case_title_too_long(f):
    _replace(f / "manifest.xml", "<Title>Afgørelse om hjælpemidler</Title>", f"<Title>{'Æ' * 257}</Title>")


def case_empty_letter(f):
    _letter(f, b'<?xml version="1.0" encoding="UTF-8"?>\n<Letter xmlns="urn:docpost:letter:1"><Paragraph>  </Paragraph><Closing>Med venlig hilsen</Closing></Letter>\n')


def case_zero_byte_manifest(f): (f / "manifest.xml").write_bytes(b"")
def case_malformed_xml(f): _replace(f / "manifest.xml", "</Title>", "</Titel>")
def case_undefined_entity(f): _replace(f / "brev.xml", "Kære Mette", "Kære&nbsp;Mette")


def case_html_letter(f):
    _letter(f, b"<html><body><h1>Afg\xc3\xb8relse</h1><p>Hej</p><script>alert(1)</script></body></html>")


def case_wrong_namespace(f):
    _replace(f / "manifest.xml", NS_M, 'xmlns="urn:example:other"')


def case_too_many_files(f):
    for n in range(30):
        (f / f"ekstra-{n:02d}.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")


def case_duplicate_filename(f):
    _add_attachment(f, "Godkendte tegninger.pdf")


def case_reserved_name(f):
    _add_attachment(f, "att.xml")


def case_unknown_channel(f):
    _replace(f / "manifest.xml", "<ChannelWish>auto</ChannelWish>", "<ChannelWish>fax</ChannelWish>")


def case_reply_override_two_choices(f):
    _replace(f / "manifest.xml", "  <Documents>",
             "  <ReplyOverride><NoReply/><Profile>X</Profile></ReplyOverride>\n  <Documents>")


# name -> (base example, builder, expected codes: each must be reported)
CASES: dict[str, tuple[Path, Callable[[Path], None], set[str]]] = {
    "xxe-external-entity": (CITIZEN, case_xxe_external, {"xml.dtd-forbidden"}),
    "xxe-parameter-entity": (COMPANY, case_xxe_parameter, {"xml.dtd-forbidden"}),
    "billion-laughs": (CITIZEN, case_billion_laughs, {"xml.dtd-forbidden"}),
    "external-dtd": (CITIZEN, case_external_dtd, {"xml.dtd-forbidden"}),
    "doctype-after-comment": (CITIZEN, case_doctype_after_comment, {"xml.dtd-forbidden"}),
    "xinclude": (CITIZEN, case_xinclude, {"xml.xinclude-forbidden"}),
    "200mb-manifest": (CITIZEN, case_huge_manifest, {"files.too-large", "submission.too-large"}),
    "200mb-attachment": (CITIZEN, case_huge_attachment, {"files.too-large", "submission.too-large"}),
    "200mb-unnamed-file": (CITIZEN, case_huge_unnamed_file, {"files.unnamed", "submission.too-large"}),
    "nesting-10000-deep": (COMPANY, case_deep_nesting_10000, {"xml.too-deep"}),
    "nesting-40-deep": (CITIZEN, case_deep_nesting_40, {"xml.too-deep"}),
    "declared-latin1": (CITIZEN, case_encoding_declared_latin1, {"xml.encoding-unsupported"}),
    "declared-encoding-lies": (CITIZEN, case_encoding_lies, {"xml.encoding-invalid"}),
    "invalid-utf8": (CITIZEN, case_invalid_utf8, {"xml.encoding-invalid"}),
    "bom-utf16-declared-utf8": (CITIZEN, case_bom_utf16_declared_utf8, {"xml.bom-mismatch"}),
    "bom-utf8-declared-cp1252": (CITIZEN, case_bom_utf8_declared_cp1252, {"xml.bom-mismatch"}),
    "utf16-document": (CITIZEN, case_utf16_document, {"xml.encoding-unsupported"}),
    "missing-ready": (CITIZEN, case_missing_ready, {"submission.not-ready"}),
    "missing-manifest": (CITIZEN, case_missing_manifest, {"manifest.missing"}),
    "named-file-missing": (CITIZEN, case_named_file_missing, {"files.missing"}),
    "unnamed-extra-file": (CITIZEN, case_unnamed_extra_file, {"files.unnamed"}),
    "html-as-pdf": (COMPANY, case_html_as_pdf, {"pdf.not-a-pdf"}),
    "truncated-pdf": (COMPANY, case_truncated_pdf, {"pdf.truncated"}),
    "encrypted-pdf": (COMPANY, case_encrypted_pdf, {"pdf.encrypted"}),
    "path-traversal": (CITIZEN, case_path_traversal_named, {"filename.path-part"}),
    "path-traversal-backslash": (CITIZEN, case_path_traversal_backslash, {"filename.path-part"}),
    "nested-folder": (CITIZEN, case_nested_folder, {"filename.path-part"}),
    "control-character-name": (CITIZEN, case_control_character_name, {"filename.control-characters"}),
    "newline-in-name": (CITIZEN, case_newline_in_name, {"filename.control-characters"}),
    "forbidden-character-name": (CITIZEN, case_forbidden_character_name, {"filename.forbidden-characters"}),
    "unusual-space-name": (CITIZEN, case_unusual_space_name, {"filename.unusual-space"}),
    "non-utf8-name": (CITIZEN, case_non_utf8_name, {"filename.encoding"}),
    "symlink-outside": (CITIZEN, case_symlink_outside, {"files.missing"}),
    "cpr-29-feb-1901": (CITIZEN, case_cpr_impossible_date, {"cpr.invalid-date"}),
    "cpr-month-13": (CITIZEN, case_cpr_month_13, {"cpr.invalid-date"}),
    "att-cpr-impossible-date": (COMPANY, case_att_cpr_impossible_date, {"cpr.invalid-date"}),
    "cvr-bad-check-digit": (COMPANY, case_cvr_bad_check_digit, {"cvr.bad-check-digit"}),
    "duplicate-element": (CITIZEN, case_duplicate_element, {"schema.unexpected-element"}),
    "out-of-order-elements": (CITIZEN, case_out_of_order, {"schema.unexpected-element"}),
    "title-257-chars": (CITIZEN, case_title_too_long, {"schema.too-long"}),
    "empty-letter": (CITIZEN, case_empty_letter, {"letter.empty"}),
    "zero-byte-manifest": (CITIZEN, case_zero_byte_manifest, {"files.empty"}),
    "malformed-xml": (CITIZEN, case_malformed_xml, {"xml.malformed"}),
    "undefined-entity": (CITIZEN, case_undefined_entity, {"xml.malformed"}),
    "html-letter": (CITIZEN, case_html_letter, {"schema.wrong-root"}),
    "wrong-namespace": (CITIZEN, case_wrong_namespace, {"schema.wrong-root"}),
    "too-many-files": (CITIZEN, case_too_many_files, {"submission.too-many-files", "files.unnamed"}),
    "duplicate-filename": (COMPANY, case_duplicate_filename, {"schema.duplicate-value"}),
    "reserved-name": (COMPANY, case_reserved_name, {"files.reserved-name"}),
    "unknown-channel": (CITIZEN, case_unknown_channel, {"schema.invalid-value"}),
    "reply-override-two-choices": (CITIZEN, case_reply_override_two_choices, {"schema.unexpected-element"}),
}


def build(name: str, root: Path) -> Path:
    """Build case ``name`` as ``root/inbox/hostile/2026-01-15/<name>`` and return the folder."""
    base, builder, _ = CASES[name]
    folder = root / "inbox" / "hostile" / "2026-01-15" / name
    shutil.copytree(base, folder)
    builder(folder)
    return folder


def build_good(root: Path, name: str) -> Path:
    folder = root / "inbox" / "good" / "2026-01-15" / name
    shutil.copytree(COMPANY if name.endswith("company") else CITIZEN, folder)
    return folder
