"""MeMo messages for Digital Post: build a letter's ``memo:Message`` and validate it.

The schema is docpost's own (``schemas/memo/``, see its README): element order, cardinalities
and facets as the real service enforces them. XSD 1.0 cannot say "required in memoVersion 1.1"
or "1.2 only", so :func:`validate_memo` adds those version rules on top of the schema.

Every message :func:`build_memo` returns has passed :func:`validate_memo`'s checks.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from docpost import config, model, privacy, xmlsafe
from docpost.errors import DocpostError

NS_MEMO = "https://DigitalPost.dk/MeMo-1"
NS_GRD = "https://data.gov.dk/model/core/"
NS_KLE = "http://kle-online.dk/"
NS_FORM = "http://www.form-online.dk/"
NS_DMV = "https://motorregister.skat.dk/"

NSMAP = {"memo": NS_MEMO, "grd": NS_GRD, "kle": NS_KLE, "form": NS_FORM, "dmv": NS_DMV}
MEMO_VERSIONS = ("1.1", "1.2")
MEMO_SCHEMA = Path("memo") / "memo.xsd"
POST_TYPE = "MYNDIGHEDSPOST"
PDF_MIME = "application/pdf"
LANGUAGE = "da"

_PREFIXES = {
    NS_MEMO: "memo",
    NS_GRD: "grd",
    NS_KLE: "kle",
    NS_FORM: "form",
    NS_DMV: "dmv",
    "https://services.nsi.dk/en/Services/SOR": "sor",
    "https://www.gs1.dk/gs1-standarder/identifikation/gln-global-location-number/": "gln",
    "urn:oio:fjernprint:1.0.0": "fjernprint",
    "urn:oio:dkal:1.0.0": "dkal",
}


# ---------------------------------------------------------------- errors


class MemoError(DocpostError):
    """Root of MeMo errors. ``code`` is stable, the message is plain language."""

    code = "memo.error"

    def __init__(self, message: str, issues: list[MemoIssue] | None = None):
        super().__init__(message)
        self.issues = list(issues or [])


class MemoInvalidError(MemoError):
    """A built or received MeMo message breaks the schema or the version rules."""

    code = "memo.invalid"


class MemoInputError(MemoError):
    """The letter cannot become a MeMo message (missing or malformed input)."""

    code = "memo.input"


@dataclass(frozen=True)
class MemoIssue:
    """One validation error: line (0 when unknown), element path, and what is wrong."""

    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.path}: {self.message}" if self.path else f"{where}{self.message}"


def _summary(issues: list[MemoIssue], what: str) -> str:
    head = "; ".join(str(i) for i in issues[:5])
    more = f" (and {len(issues) - 5} more)" if len(issues) > 5 else ""
    return f"{what} is invalid: {head}{more}"


# ---------------------------------------------------------------- the letter


@dataclass
class OutboundLetter:
    """Everything delivery needs to send one stamped, rendered letter."""

    message_uuid: str  # from the ledger (uuid4-shaped)
    transaction_id: str  # SF1601 x-TransaktionsId, from the ledger
    submission: model.Submission
    reply: model.ReplyAddress
    pdf: bytes  # the main document
    attachments: list[tuple[str, str | None, bytes]] = field(default_factory=list)
    sender_cvr: str = field(default_factory=lambda: config.settings().sender_cvr)
    sender_label: str = "Søby Kommune"
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    channel_wish: model.ChannelWish = model.ChannelWish.AUTO
    memo_version: str = "1.2"

    def __repr__(self) -> str:  # no personal data in tracebacks
        return f"OutboundLetter({self.message_uuid}, {self.submission.key})"

    @property
    def manifest(self) -> model.Manifest:
        return self.submission.manifest


# ---------------------------------------------------------------- safe parsing and schemas

def parse_xml(xml: bytes) -> tuple[etree._ElementTree | None, list[MemoIssue]]:
    """Parse untrusted XML safely; a DOCTYPE is refused. Returns (tree, issues).

    ``huge_tree``: a MeMo message embeds its documents as base64, beyond libxml2's 10 MB text limit.
    """
    try:
        root = etree.fromstring(xml, xmlsafe.parser(huge_tree=True))
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or 0
        return None, [MemoIssue(line, "", f"not well-formed XML: {redact(exc.msg)}")]
    tree = root.getroottree()
    if tree.docinfo.doctype:
        return None, [MemoIssue(1, "", "a DOCTYPE (DTD) is not allowed")]
    return tree, []


def load_schema(relative: Path | str, driver: str | None = None) -> xmlsafe.Schema:
    """The compiled XSD at ``schema_dir/relative`` (:func:`docpost.xmlsafe.schema`).

    ``driver`` is an optional in-memory XSD text (resolved relative to the file) used when the
    schema set needs one entry document (libxml2 imports each namespace once).
    """
    return xmlsafe.schema(config.settings().schema_dir / relative, driver=driver)


_CLARK = re.compile(r"\{([^}]*)\}")
_VALUE = re.compile(r"(The value |^|Element '[^']*': )'.*?'(?= is not| does not)")


def redact(message: str) -> str:
    """Shorten namespaces to prefixes and keep values (possibly personal data) out."""
    message = _CLARK.sub(lambda m: f"{_PREFIXES.get(m.group(1), m.group(1))}:", message)
    message = _VALUE.sub(lambda m: f"{m.group(1)}'…'", message)
    return privacy.scrub(message)


def schema_issues(schema: xmlsafe.Schema, tree: etree._ElementTree) -> list[MemoIssue]:
    """Validate a tree; every error as a :class:`MemoIssue` with personal values redacted."""
    valid, error_log = schema.check(tree)
    if valid:
        return []
    return [MemoIssue(err.line or 0, redact(err.path or ""), redact(err.message)) for err in error_log]


# ---------------------------------------------------------------- validation

_M = f"{{{NS_MEMO}}}"


def _version_issues(tree: etree._ElementTree) -> list[MemoIssue]:
    """The rules XSD 1.0 cannot express: what memoVersion 1.1 requires and forbids."""
    root = tree.getroot()
    issues: list[MemoIssue] = []
    version = root.get("memoVersion")
    header = root.find(f"{_M}MessageHeader")
    if header is None:
        return issues
    if version == "1.1":
        for name in ("mandatory", "legalNotification"):
            if header.find(f"{_M}{name}") is None:
                issues.append(MemoIssue(
                    header.sourceline or 0, tree.getpath(header),
                    f"memo:{name} is required in memoVersion 1.1",
                ))
        for xpath, name in (
            ("memo:Sender/memo:Representative", "Representative"),
            ("memo:ForwardData/memo:originalRepresentative", "originalRepresentative"),
        ):
            for el in header.xpath(xpath, namespaces=NSMAP):
                issues.append(MemoIssue(
                    el.sourceline or 0, redact(tree.getpath(el)),
                    f"memo:{name} is not allowed in memoVersion 1.1 (1.2 only)",
                ))
        sch = root.get("memoSchVersion")
        if sch is not None and not sch.startswith("1.1"):
            issues.append(MemoIssue(
                root.sourceline or 0, "/memo:Message",
                "memoSchVersion must be 1.1.x in a memoVersion 1.1 message",
            ))
    message_type = header.findtext(f"{_M}messageType")
    if message_type == "DIGITALPOST" and root.find(f"{_M}MessageBody") is None:
        issues.append(MemoIssue(
            root.sourceline or 0, "/memo:Message",
            "a DIGITALPOST message needs a memo:MessageBody",
        ))
    return issues


def validate_tree(tree: etree._ElementTree) -> list[MemoIssue]:
    """Validate a parsed MeMo message against docpost's schema and the version rules."""
    root = tree.getroot()
    if root.tag != f"{_M}Message":
        return [MemoIssue(root.sourceline or 0, "/", f"root element must be memo:Message, not "
                          f"{redact(root.tag)}")]
    issues = schema_issues(load_schema(MEMO_SCHEMA), tree)
    return issues + _version_issues(tree)


def validate_memo(xml: bytes) -> list[MemoIssue]:
    """Every error in a MeMo message (line, path, message); an empty list means valid."""
    tree, issues = parse_xml(xml)
    if tree is None:
        return issues
    return validate_tree(tree)


# ---------------------------------------------------------------- building

_FORBIDDEN_IN_FILENAME = re.compile(
    r'[<>:"/\\|?*\x00-\x1f\x7f-\x9f\u00a0\u1680\u2000-\u200f\u2028-\u202f\u205f\u3000\ufeff]+'
)


#: Unicode categories a file name loses: invisible format characters (soft hyphen, joiners) go,
#: private-use, surrogate and unassigned code points become "_".
_BY_CATEGORY = {"Cf": "", "Co": "_", "Cs": "_", "Cn": "_"}


def _label(text: str | None, limit: int = 256) -> str | None:
    """A MeMo label (at most 256 characters): shortened with an ellipsis where it is longer."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"


def safe_filename(name: str, suffix: str = ".pdf", limit: int = 120) -> str:
    """A filename Digital Post accepts: no ``<>:"/\\|?*``, line breaks, unusual spaces, invisible
    (soft hyphen, joiners) or private-use characters."""
    import unicodedata

    name = "".join(_BY_CATEGORY.get(unicodedata.category(ch), ch) for ch in name)
    stem = _FORBIDDEN_IN_FILENAME.sub("_", name).strip(" ._") or "dokument"
    if suffix and stem.lower().endswith(suffix.lower()):
        stem = stem[: -len(suffix)].rstrip(" ._") or "dokument"
    return f"{stem[: limit - len(suffix)].rstrip(' ._')}{suffix}"


def utc_z(value: dt.datetime) -> str:
    """A dateTime in UTC written with ``Z`` (whole seconds)."""
    if value.tzinfo is None:
        raise MemoInputError("a MeMo dateTime must be timezone-aware (UTC)")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sub(parent: etree._Element, tag: str, text: str | bytes | None = None) -> etree._Element:
    el = etree.SubElement(parent, tag)
    if text is not None:
        el.text = text
    return el


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _file(parent: etree._Element, filename: str, content: bytes) -> None:
    f = _sub(parent, f"{_M}File")
    _sub(f, f"{_M}encodingFormat", PDF_MIME)
    _sub(f, f"{_M}filename", filename)
    _sub(f, f"{_M}language", LANGUAGE)
    _sub(f, f"{_M}content", base64.b64encode(content))


def _sender(header: etree._Element, letter: OutboundLetter) -> None:
    sender = _sub(header, f"{_M}Sender")
    _sub(sender, f"{_M}senderID", letter.sender_cvr)
    _sub(sender, f"{_M}idType", model.IdType.CVR.value)
    _sub(sender, f"{_M}label", letter.sender_label)
    case = letter.submission.case
    att = _sub(sender, f"{_M}AttentionData")
    if case is not None and case.acting_party_id:
        cr = _sub(att, f"{_M}ContentResponsible")
        _sub(cr, f"{_M}contentResponsibleID", case.acting_party_id)
        if case.acting_party_name:
            _sub(cr, f"{_M}label", case.acting_party_name)
    gs = _sub(att, f"{_M}GeneratingSystem")
    _sub(gs, f"{_M}generatingSystemID", letter.submission.key.source_system)
    _sub(gs, f"{_M}label", (case.case_system if case and case.case_system else
                            letter.submission.key.source_system))
    reply = letter.reply
    if reply.reply_type is model.ReplyType.GIVEN and reply.contact_point_id:
        cp = _sub(sender, f"{_M}ContactPoint")
        _sub(cp, f"{_M}contactPointID", reply.contact_point_id)
        label = " / ".join(p for p in (reply.postkasse_label, reply.emne_label) if p)
        if label:
            _sub(cp, f"{_M}label", label)


def _recipient(header: etree._Element, letter: OutboundLetter) -> None:
    who = letter.manifest.recipient
    rec = _sub(header, f"{_M}Recipient")
    _sub(rec, f"{_M}recipientID", who.identifier)
    _sub(rec, f"{_M}idType", who.id_type.value)
    if who.name:
        _sub(rec, f"{_M}label", who.name)
    att = letter.submission.attention
    if att is None:
        return
    parts: list[tuple[str, list[tuple[str, str | None]]]] = []
    if att.person_id or att.line:
        parts.append((f"{_M}AttentionPerson", [(f"{_M}personID", att.person_id),
                                               (f"{_M}label", _label(att.line))]))
    if att.production_unit_number:
        parts.append((f"{{{NS_GRD}}}ProductionUnit", [
            (f"{{{NS_GRD}}}productionUnitNumber", att.production_unit_number),
            (f"{{{NS_GRD}}}productionUnitName", att.production_unit_name)]))
    if att.email:
        parts.append((f"{_M}EMail", [(f"{_M}emailAddress", att.email),
                                     (f"{_M}relatedAgent", att.email_related_agent)]))
    if att.telephone:
        parts.append((f"{_M}Telephone", [(f"{_M}telephoneNumber", att.telephone)]))
    if not parts:
        return
    data = _sub(rec, f"{_M}AttentionData")
    for tag, children in parts:
        el = _sub(data, tag)
        for child, text in children:
            if text:
                _sub(el, child, text)


def _content_data(header: etree._Element, letter: OutboundLetter) -> None:
    att = letter.submission.attention or model.Attention()
    case = letter.submission.case or model.CaseDocument()
    manifest = letter.manifest
    items: list[etree._Element] = []

    def group(tag: str, children: list[tuple[str, str | None]]) -> None:
        el = etree.Element(tag)
        for child, text in children:
            if text:
                _sub(el, child, text)
        items.append(el)

    g = f"{{{NS_GRD}}}"
    if att.cpr_numbers:
        cpr, name = att.cpr_numbers[0]
        group(f"{g}CPRdata", [(f"{g}cprNumber", cpr), (f"{g}name", name)])
    vehicle = next((v for v in att.vehicles if v[0] or v[1]), None)
    if vehicle:
        d = f"{{{NS_DMV}}}"
        group(f"{d}MotorVehicle", [(f"{d}licenseNumber", vehicle[0]),
                                   (f"{d}chassisNumber", vehicle[1])])
    if att.cadastral_numbers:
        group(f"{g}PropertyNumber", [(f"{g}propertyNumber", att.cadastral_numbers[0])])
    case_id = case.case_number or manifest.case_reference
    if case_id:
        group(f"{_M}CaseID", [(f"{_M}caseID", case_id), (f"{_M}caseSystem", case.case_system)])
    kle = case.kle or (att.kle[0] if att.kle else None)
    if kle is not None:
        k = f"{{{NS_KLE}}}"
        group(f"{k}KLEdata", [(f"{k}subjectKey", kle.subject_key), (f"{k}version", kle.version),
                              (f"{k}activityFacet", kle.activity_facet), (f"{k}label", kle.label)])
    if att.form:
        fr = att.form[0]
        f = f"{{{NS_FORM}}}"
        group(f"{f}FORMdata", [(f"{f}taskKey", fr.task_key), (f"{f}version", fr.version),
                               (f"{f}activityFacet", fr.activity_facet), (f"{f}label", fr.label)])
    # further classifications (MeMo allows one of each) as AdditionalContentData, at most 10
    extra: list[tuple[str, str, str]] = []
    extra += [("KLE", k.label or "KLE", k.subject_key) for k in att.kle
              if kle is None or k.subject_key != kle.subject_key]
    extra += [("FORM", f.label or "FORM", f.task_key) for f in att.form[1:]]
    extra += [("Ejendom", "Ejendomsnummer", n) for n in att.cadastral_numbers[1:]]
    for kind, name, value in extra[:10]:
        group(f"{_M}AdditionalContentData", [(f"{_M}contentDataType", kind),
                                             (f"{_M}contentDataName", name),
                                             (f"{_M}contentDataValue", value)])
    if items:
        data = _sub(header, f"{_M}ContentData")
        data.extend(items)


def memo_tree(letter: OutboundLetter) -> etree._Element:
    """The ``memo:Message`` element for a letter (not yet validated)."""
    if letter.memo_version not in MEMO_VERSIONS:
        raise MemoInputError(f"memoVersion must be one of {', '.join(MEMO_VERSIONS)}")
    if not letter.pdf:
        raise MemoInputError("the letter has no main document (empty PDF)")
    manifest = letter.manifest
    root = etree.Element(f"{_M}Message", nsmap=NSMAP)
    root.set("memoVersion", letter.memo_version)
    if letter.memo_version == "1.1":
        root.set("memoSchVersion", "1.1.0")

    header = _sub(root, f"{_M}MessageHeader")
    _sub(header, f"{_M}messageType", "DIGITALPOST")
    _sub(header, f"{_M}messageUUID", letter.message_uuid)
    _sub(header, f"{_M}messageID", letter.transaction_id)
    _sub(header, f"{_M}label", manifest.title)
    _sub(header, f"{_M}reply", _bool(letter.reply.reply_type is not model.ReplyType.NOT_POSSIBLE))
    if manifest.not_before is not None:
        _sub(header, f"{_M}doNotDeliverUntilDate", manifest.not_before.isoformat())
    _sub(header, f"{_M}mandatory", _bool(manifest.mandatory))
    _sub(header, f"{_M}legalNotification", _bool(manifest.legal_notification))
    _sub(header, f"{_M}postType", POST_TYPE)
    _sender(header, letter)
    _recipient(header, letter)
    _content_data(header, letter)

    body = _sub(root, f"{_M}MessageBody")
    _sub(body, f"{_M}createdDateTime", utc_z(letter.created))
    main = _sub(body, f"{_M}MainDocument")
    _sub(main, f"{_M}label", manifest.title)
    _file(main, safe_filename(manifest.title), letter.pdf)
    for filename, label, content in letter.attachments:
        doc = _sub(body, f"{_M}AdditionalDocument")
        name = safe_filename(filename)
        _sub(doc, f"{_M}label", label or name[:-4])
        _file(doc, name, content)
    return root


def build_memo(letter: OutboundLetter) -> bytes:
    """The letter as a MeMo message (UTF-8 bytes), validated; :class:`MemoInvalidError` if not."""
    root = memo_tree(letter)
    tree = root.getroottree()
    issues = validate_tree(tree)
    if issues:
        raise MemoInvalidError(_summary(issues, "the built MeMo message"), issues)
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")
