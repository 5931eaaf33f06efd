"""From a submission's validated XML to the domain types of :mod:`docpost.model`.

The functions here trust their input: :mod:`docpost.validation` parses the files safely and checks
them against the XSDs first, then calls these to build the :class:`~docpost.model.Submission`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping

from lxml import etree

from docpost import model
from docpost.model import NS_ATTENTION, NS_CASE, NS_LETTER, NS_MANIFEST, READY_MARKER


def content_hash(files: Mapping[str, bytes]) -> str:
    """sha256 over every file but ``_READY``, in name order: name, NUL, 8-byte length, bytes."""
    digest = hashlib.sha256()
    for name in sorted(files):
        if name == READY_MARKER:
            continue
        data = files[name]
        digest.update(name.encode("utf-8", "surrogateescape") + b"\0")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


class _Reader:
    """Child-text access in one namespace."""

    def __init__(self, ns: str):
        self.ns = ns

    def q(self, name: str) -> str:
        return f"{{{self.ns}}}{name}"

    def child(self, parent: etree._Element | None, name: str) -> etree._Element | None:
        return None if parent is None else parent.find(self.q(name))

    def children(self, parent: etree._Element | None, name: str) -> list[etree._Element]:
        return [] if parent is None else parent.findall(self.q(name))

    def text(self, parent: etree._Element | None, name: str) -> str | None:
        el = self.child(parent, name)
        if el is None or el.text is None:
            return None
        return el.text.strip() or None

    def date(self, parent: etree._Element | None, name: str) -> dt.date | None:
        value = self.text(parent, name)
        return dt.date.fromisoformat(value[:10]) if value else None

    def boolean(self, parent: etree._Element | None, name: str) -> bool:
        return self.text(parent, name) in ("true", "1")


_M = _Reader(NS_MANIFEST)
_A = _Reader(NS_ATTENTION)
_C = _Reader(NS_CASE)
_L = _Reader(NS_LETTER)


def parse_address(el: etree._Element | None) -> model.PostalAddress | None:
    if el is None:
        return None
    return model.PostalAddress(
        street_name=_M.text(el, "StreetName") or "",
        street_building=_M.text(el, "StreetBuildingIdentifier") or "",
        postcode=_M.text(el, "PostCodeIdentifier") or "",
        district_name=_M.text(el, "DistrictName") or "",
        floor=_M.text(el, "FloorIdentifier"),
        suite=_M.text(el, "SuiteIdentifier"),
        co_name=_M.text(el, "CoNavn"),
        mail_delivery_sublocation=_M.text(el, "MailDeliverySublocationIdentifier"),
        post_office_box=_M.text(el, "PostOfficeBoxIdentifier"),
        country_code=_M.text(el, "CountryIdentificationCode") or "DK",
    )


def parse_recipient(el: etree._Element) -> model.Recipient:
    cpr = _M.text(el, "CPRnummerIdentifikator")
    return model.Recipient(
        id_type=model.IdType.CPR if cpr else model.IdType.CVR,
        identifier=cpr or _M.text(el, "CVRnummerIdentifikator") or "",
        name=_M.text(el, "Name") or "",
        address=parse_address(_M.child(el, "PostalAddress")),
    )


def parse_reply_override(el: etree._Element | None) -> model.ReplyOverride | None:
    if el is None:
        return None
    reply = _M.child(el, "Reply")
    if reply is not None:
        return model.ReplyOverride(
            postkasse_id=int(_M.text(reply, "MeddelelseSvarPostkasseIdentifikator") or 0),
            emne_id=int(_M.text(reply, "MeddelelseSvarEmneIdentifikator") or 0),
        )
    if _M.child(el, "NoReply") is not None:
        return model.ReplyOverride(no_reply=True)
    return model.ReplyOverride(profile=_M.text(el, "Profile"))


def manifest_files(root: etree._Element) -> tuple[model.ContentFile, ...]:
    """The content files the manifest names, main document first (tolerates a schema-invalid tree)."""
    documents = _M.child(root, "Documents")
    files: list[model.ContentFile] = []
    for el in _M.children(documents, "MainDocument"):
        role = model.FileRole.MAIN if el.get("role") == "main" else model.FileRole.LETTER
        mime = "application/xml" if role is model.FileRole.LETTER else "application/pdf"
        files.append(model.ContentFile(el.get("filename") or "", role, el.get("label"), mime))
    for el in _M.children(documents, "AdditionalDocument"):
        files.append(model.ContentFile(el.get("filename") or "", model.FileRole.ATTACHMENT, el.get("label")))
    return tuple(files)


def parse_manifest(tree: etree._ElementTree) -> model.Manifest:
    root = tree.getroot()
    return model.Manifest(
        recipient=parse_recipient(_M.child(root, "Recipient")),
        title=(_M.child(root, "Title").text or "").strip(),
        document_type=_M.text(root, "DocumentType") or "",
        channel_wish=model.ChannelWish(_M.text(root, "ChannelWish") or "auto"),
        files=manifest_files(root),
        reply_override=parse_reply_override(_M.child(root, "ReplyOverride")),
        not_before=_M.date(root, "DoNotDeliverUntilDate"),
        case_reference=_M.text(root, "CaseReference"),
        mandatory=_M.boolean(root, "Mandatory"),
        legal_notification=_M.boolean(root, "LegalNotification"),
    )


def _kle(el: etree._Element, reader: _Reader) -> model.KleRef:
    return model.KleRef(
        subject_key=reader.text(el, "subjectKey") or "",
        activity_facet=reader.text(el, "activityFacet"),
        label=reader.text(el, "label"),
        version=reader.text(el, "version"),
    )


def parse_attention(tree: etree._ElementTree) -> model.Attention:
    root = tree.getroot()
    person = _A.child(root, "AttentionPerson")
    unit = _A.child(root, "AttentionUnit")
    pu = _A.child(root, "ProductionUnit")
    email = _A.child(root, "EMail")
    content = _A.child(root, "ContentData")
    return model.Attention(
        person_id=_A.text(person, "personID"),
        person_label=_A.text(person, "label"),
        unit_label=_A.text(unit, "label"),
        email=_A.text(email, "emailAddress"),
        email_related_agent=_A.text(email, "relatedAgent"),
        production_unit_number=_A.text(pu, "productionUnitNumber"),
        production_unit_name=_A.text(pu, "productionUnitName"),
        telephone=_A.text(_A.child(root, "Telephone"), "telephoneNumber"),
        cpr_numbers=tuple(
            (_A.text(el, "cprNumber") or "", _A.text(el, "name")) for el in _A.children(content, "CPRdata")
        ),
        kle=tuple(_kle(el, _A) for el in _A.children(content, "KLEdata")),
        form=tuple(
            model.FormRef(
                task_key=_A.text(el, "taskKey") or "",
                activity_facet=_A.text(el, "activityFacet"),
                label=_A.text(el, "label"),
                version=_A.text(el, "version"),
            )
            for el in _A.children(content, "FORMdata")
        ),
        vehicles=tuple(
            (_A.text(el, "licenseNumber"), _A.text(el, "chassisNumber"))
            for el in _A.children(content, "MotorVehicle")
        ),
        cadastral_numbers=tuple(
            _A.text(el, "propertyNumber") or "" for el in _A.children(content, "PropertyNumber")
        ),
    )


def parse_case(tree: etree._ElementTree) -> model.CaseDocument:
    root = tree.getroot()
    case = _C.child(root, "Sag")
    doc = _C.child(root, "Dokument")
    actor = _C.child(root, "Aktoer")
    kle = _C.child(case, "FESDsagsklassifikation")
    return model.CaseDocument(
        case_number=_C.text(case, "SagsNummer"),
        case_uuid=(_C.text(case, "FESDsagIdentifikator") or "").lower() or None,
        case_title=_C.text(case, "SagsTitel"),
        case_system=_C.text(case, "Sagssystem"),
        kle=_kle(kle, _C) if kle is not None else None,
        document_number=_C.text(doc, "DokumentNummer"),
        document_uuid=(_C.text(doc, "FESDdokumentIdentifikator") or "").lower() or None,
        document_title=_C.text(doc, "DokumentTitel"),
        acting_party_id=(_C.text(actor, "FESDaktoerIdentifikator") or "").lower() or None,
        acting_party_name=_C.text(actor, "AktoerNavn"),
        letter_date=_C.date(doc, "BrevDato"),
        created=_C.date(doc, "OprettetDato"),
    )


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


def parse_letter(tree: etree._ElementTree) -> model.Letter:
    root = tree.getroot()
    blocks: list[model.Block] = []
    for el in root:
        if not isinstance(el.tag, str):
            continue
        name = etree.QName(el).localname
        if name == "Heading":
            blocks.append(model.Heading(_clean(el.text), int(el.get("level", "1"))))
        elif name == "Paragraph":
            blocks.append(model.Paragraph(_clean(el.text)))
        elif name == "List":
            items = tuple(_clean(i.text) for i in _L.children(el, "Item"))
            blocks.append(model.BulletList(items, ordered=el.get("ordered") in ("true", "1")))
        elif name == "Table":
            rows = tuple(tuple(_clean(c.text) for c in _L.children(r, "Cell")) for r in _L.children(el, "Row"))
            blocks.append(model.Table(rows, header=el.get("header", "true") in ("true", "1")))
    signature = _L.child(root, "Signature")
    return model.Letter(
        blocks=tuple(blocks),
        closing=_L.text(root, "Closing"),
        signature=tuple(_clean(line.text) for line in _L.children(signature, "Line")),
    )


def letter_is_empty(letter: model.Letter) -> bool:
    """True when the letter has no block with any text."""
    for block in letter.blocks:
        if isinstance(block, (model.Heading, model.Paragraph)) and block.text:
            return False
        if isinstance(block, model.BulletList) and any(block.items):
            return False
        if isinstance(block, model.Table) and any(any(row) for row in block.rows):
            return False
    return True
